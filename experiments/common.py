"""What every experiment shares: its argument parser, MNIST arrays, and writing results.json + a table."""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np

from jaxnn import cli
from jaxnn import data


def parser(name: str, doc: str | None) -> cli.ArgumentParser:
  """An argument parser with the flags every experiment has: --out, --seed, --verbose."""
  p = cli.ArgumentParser(prog=f"python -m experiments.{name}", description=(doc or "").split("\n")[0])
  p.add_argument("--out", default=os.path.join("runs", name), help="output folder (default: runs/%(prog)s)")
  p.add_argument("--seed", type=int, default=0, help="PRNG seed")
  p.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="per-epoch progress lines")
  return p


def add_data_args(p: cli.ArgumentParser, *, n_train: int | None = None, n_test: int | None = None) -> None:
  """--dataset / --data-dir / --n-train / --n-test, as in the main job."""
  p.add_argument("--dataset", default=None, help="TFDS name or 'sample' (default: mnist, resolved as the main job)")
  p.add_argument("--data-dir", help="folder of IDX files")
  p.add_argument("--n-train", type=cli.positive_int, default=n_train, help="first N training examples")
  p.add_argument("--n-test", type=cli.positive_int, default=n_test, help="first N test examples")


def dataset_name(dataset: str | None, data_dir: str | None) -> str:
  """The name a run is recorded under: --dataset, else the --data-dir folder's name, else mnist."""
  if dataset:
    return dataset
  return os.path.basename(os.path.normpath(data_dir)) if data_dir else "mnist"


def load_flat(args: Any) -> tuple[data.Dataset, np.ndarray, np.ndarray]:
  """Loads the dataset the flags name (subset as asked): the Dataset plus scaled, flattened train / test x."""
  ds = data.load(dataset_name(args.dataset, args.data_dir), args.data_dir, verbose=True)
  if args.n_train or args.n_test:
    ds = data.subset(ds, n_train=args.n_train, n_test=args.n_test)
  return ds, data.flatten(data.scale(ds.x_train)), data.flatten(data.scale(ds.x_test))


def key(seed: int) -> jax.Array:
  return jax.random.key(seed)


def finish(out: str, results: dict[str, Any], rows: Sequence[Sequence[Any]], header: Sequence[str]) -> dict:
  """Writes out/results.json atomically and prints the results table."""
  path = cli.write_json(os.path.join(out, "results.json"), results)
  print(cli.table(rows, header))
  print(f"wrote {path}")
  return results
