"""Runnable experiments: `python -m experiments.NAME`; each writes runs/NAME/results.json and PNG plots."""
