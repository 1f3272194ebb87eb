# Every target bootstraps what it needs: a virtual environment in .venv with jaxnn installed editable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.jaxnn-installed
EXTRAS ?= tfds,test
ARGS ?=
# pytest-xdist workers: one per core (the suite is dominated by single-threaded XLA compiles).
TEST_JOBS ?= auto
# make bench QUICK=1: the small model only, fewer epochs (under 3 minutes on 2 cores).
QUICK ?=
BENCH_STAMP := $(VENV)/.jaxnn-bench-installed

.PHONY: setup run test bench clean

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

# The bench's peers (PyTorch, Keras) are the `bench` extra, installed on top of the environment above.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[$(EXTRAS),bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m experiments.bench $(if $(filter-out 0,$(QUICK)),--quick) $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
