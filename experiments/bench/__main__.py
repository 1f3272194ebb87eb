"""python -m experiments.bench [--quick]: see experiments/bench/__init__.py."""

from experiments.bench import driver
from jaxnn import cli

if __name__ == "__main__":
  cli.run(driver.main, prog="bench")
