"""`make bench`: jaxnn against Keras 3 (JAX and TensorFlow backends) and PyTorch, one fresh process each.

Commands:
  make bench                    # = python -m experiments.bench (all models and batch sizes)
  make bench QUICK=1            # = python -m experiments.bench --quick (784-128-10 only, < 3 min on 2 cores)
Writes runs/bench/results.json and prints the table, the start-up and compilation-cache figures and the
issue's targets (met / missed). Peers come from `pip install -e .[bench]`; a missing one is a "missing" row.
"""
