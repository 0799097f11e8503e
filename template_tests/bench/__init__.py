"""`make bench`: how our API serves the project's sample model, against Seldon MLServer.

Every system serves the same trained pipeline on one pinned CPU while wrk drives it
from another, over loopback: our API as generated (`python -m api`), MLServer's
scikit-learn runtime tuned for latency, and MLServer with adaptive batching. The
pipeline's own `predict_proba` on a prebuilt one-row frame, in-process, is the floor
no server can beat. `python -m template_tests.bench --help` lists the options;
`--smoke` is the quick end-to-end check the template's tests run.
"""
