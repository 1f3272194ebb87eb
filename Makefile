# Every target bootstraps what it needs: a virtual environment in .venv with jaxnn installed editable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.jaxnn-installed
EXTRAS ?= tfds,test
ARGS ?=
# pytest-xdist workers: one per core (the suite is dominated by single-threaded XLA compiles).
TEST_JOBS ?= auto

.PHONY: setup run test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m experiments.mnist_mlp $(ARGS)

test: setup
	$(PY) -m pytest -q -n $(TEST_JOBS) tests

clean:
	rm -rf $(VENV) runs .pytest_cache
