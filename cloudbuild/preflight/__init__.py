"""Preflight: run what a push would run, on this machine, before pushing.

`python -m cloudbuild preflight --branch B --changed FILE ...` decides which
pipelines the push fires (the same code as `plan`), runs each fired build's steps
for real against a loopback double of the Google APIs, then sends a real prediction
to what was deployed. See cloudbuild/README.md, "Preflight".
"""
