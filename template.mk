# Targets of the template repository only (this file does not ship: the
# generated project's Makefile is the root Makefile without it).
DEMO_DIR ?= $(shell mktemp -d -u /tmp/gitops-ml-demo.XXXXXX)

.PHONY: demo template-test

demo: setup ## Render a project from example-answers.yml, train, serve, predict, stop
	$(BIN)/python -m template_tests.demo --dest "$(DEMO_DIR)" --venv "$(abspath $(VENV))"

template-test: setup ## The template's own tests: render a matrix, update, generated project's tests
	$(BIN)/python -m pytest -q -n auto template_tests

test: template-test
