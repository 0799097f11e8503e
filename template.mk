# Targets of the template repository only (this file does not ship: the
# generated project's Makefile is the root Makefile without it).
DEMO_DIR ?= $(shell mktemp -d -u /tmp/gitops-ml-demo.XXXXXX)
BENCH_DIR ?= build/bench
BENCH_REQUIREMENTS := template_tests/bench/requirements-mlserver

.PHONY: demo template-test bench bench-deps bench-lock

demo: setup ## Render a project from example-answers.yml, train, serve, predict, stop
	$(BIN)/python -m template_tests.demo --dest "$(DEMO_DIR)" --venv "$(abspath $(VENV))"

template-test: setup bench-deps ## The template's own tests: render a matrix, update, generated project's tests
	$(BIN)/python -m pytest -q -n auto template_tests

test: template-test

# wrk is the load generator of the benchmark and of its smoke test. Installing it only
# when it is missing keeps the target idempotent and off the network once it is there.
bench-deps: ## Install wrk (Debian's package) if it is missing
	@command -v wrk >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; \
	}

bench: setup bench-deps ## Benchmark our API against Seldon MLServer on the sample model (BENCH_DIR)
	$(BIN)/python -m template_tests.bench --out $(BENCH_DIR)

# MLServer must load the pickled pipeline with the very libraries that trained it, so
# the libraries both sides share are constrained to the dev lock's versions.
bench-lock: setup ## Re-resolve the MLServer lock from its .in file and the dev lock
	@mkdir -p $(BENCH_DIR)
	grep -E '^(numpy|pandas|scikit-learn|scipy|joblib)==' requirements-dev.txt > $(BENCH_DIR)/shared-pins.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --custom-compile-command "make bench-lock" \
	  -c $(BENCH_DIR)/shared-pins.txt $(BENCH_REQUIREMENTS).in -o $(BENCH_REQUIREMENTS).txt
