"""Regularization: an MLP that overfits 500 digits, and what L1, L2, dropout, max-norm and early stopping do.

The base model, 784 -> Dense(512, relu) -> Dense(512, relu) -> Dense(10, softmax) trained with adam for
50 epochs on the first 500 training digits, reaches 100 % training accuracy and a clear gap to the
validation digits (the next 1,000 of the training split). Each variant changes one thing:
  l1, l2, l1_l2   kernel_regularizer on every Dense layer (Keras' penalties, added to the loss);
  dropout         Dropout(0.5) after each hidden layer;
  max_norm        kernel_constraint: each unit's incoming weight vector is projected back to norm <= 1;
  early_stopping  the base model, stopped when val_loss has not improved for 5 epochs (best weights kept).
All start from the same weights. gap = train accuracy - validation accuracy, both measured at inference on
the final weights; gap closed = (gap_base - gap) / gap_base. The same two numbers are reported for the
crossentropy (validation minus training), which is where the penalties act first.

Command:
  python -m experiments.regularization
Measured (embedded sample, fresh clone; 50 s on 2 CPU cores shared with another training; 27 s alone on a later
machine, where early stopping's run is one epoch shorter since it stops as Keras' does, with the same best
weights kept and the same figures for them):
  variant         epochs  train_acc  val_acc  gap    gap_closed  ce_gap  ce_gap_closed  test_acc
  base            50      1.000      0.895    0.105    0 %       0.487     0 %          0.883
  l1 (1e-4)       50      1.000      0.889    0.111   -6 %       0.385    21 %          0.874
  l2 (1e-3)       50      1.000      0.890    0.110   -5 %       0.379    22 %          0.877
  l1_l2           50      1.000      0.889    0.111   -6 %       0.410    16 %          0.872
  dropout (0.5)   50      1.000      0.903    0.097    8 %       0.467     4 %          0.894
  max_norm (1.0)  50      1.000      0.892    0.108   -3 %       0.467     4 %          0.882
  early_stopping  10      0.998      0.894    0.104    1 %       0.335    31 %          0.881
What it shows: on 500 digits the accuracy gap is mostly the data's. The penalties shrink the crossentropy
gap by 16-22 % but keep 100 % training accuracy (with adam an L2 penalty is not weight decay), so the
accuracy gap does not close; dropout closes 8 % of it, max-norm nothing; early stopping closes 31 % of the
crossentropy gap (1 % of the accuracy gap) at no cost in validation accuracy. Differences under about 1 %
(10 of the 1,000 validation digits) are within noise: with an earlier data order, early stopping had closed
15 % of the accuracy gap and dropout 1 %.

Writes runs/regularization/ (or --out): results.json, curves.png (train vs validation accuracy and
crossentropy per variant), gap.png.
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Any, Sequence

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import constraints
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import regularizers
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.layers import Dropout
from jaxnn.models import Sequential

LOSS = "sparse_categorical_crossentropy"
METRICS = ("accuracy", "sparse_categorical_crossentropy")  # crossentropy without the penalty, to compare runs
VARIANTS = ("base", "l1", "l2", "l1_l2", "dropout", "max_norm", "early_stopping")


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int = 500  # training digits: the first n of the training split
  n_val: int = 1000  # validation digits: the next n of the training split
  n_test: int = 2000
  hidden: tuple[int, ...] = (512, 512)
  epochs: int = 50
  batch_size: int = 32
  learning_rate: float = 1e-3  # adam
  l1: float = 1e-4
  l2: float = 1e-3
  l1_l2: tuple[float, float] = (1e-5, 1e-4)
  dropout: float = 0.5
  max_norm: float = 1.0
  patience: int = 5
  variants: tuple[str, ...] = VARIANTS
  seed: int = 0
  out: str = "runs/regularization"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def build_model(config: Config, variant: str) -> Sequential:
  """The base MLP with the variant's one change."""
  dense_args: dict[str, Any] = {}
  if variant == "l1":
    dense_args["kernel_regularizer"] = regularizers.L1(config.l1)
  elif variant == "l2":
    dense_args["kernel_regularizer"] = regularizers.L2(config.l2)
  elif variant == "l1_l2":
    dense_args["kernel_regularizer"] = regularizers.L1L2(*config.l1_l2)
  elif variant == "max_norm":
    dense_args["kernel_constraint"] = constraints.MaxNorm(config.max_norm)
  layers = []
  for units in config.hidden:
    layers.append(Dense(units, activation="relu", **dense_args))
    if variant == "dropout":
      layers.append(Dropout(config.dropout))
  layers.append(Dense(10, activation="softmax", **dense_args))
  return Sequential(layers, name=variant)


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("regularization", __doc__)
  common.add_data_args(p, n_train=Config.n_train, n_test=Config.n_test)
  p.add_argument("--n-val", type=cli.positive_int, default=Config.n_val,
                 help="validation digits, taken from the training split after the training digits")
  p.add_argument("--hidden", type=cli.positive_int, nargs="+", default=list(Config.hidden))
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=Config.batch_size)
  p.add_argument("--learning-rate", type=cli.positive_float, default=Config.learning_rate, help="adam's learning rate")
  p.add_argument("--l1", type=cli.nonnegative_float, default=Config.l1)
  p.add_argument("--l2", type=cli.nonnegative_float, default=Config.l2)
  p.add_argument("--l1-l2", type=cli.nonnegative_float, nargs=2, default=list(Config.l1_l2), metavar=("L1", "L2"))
  p.add_argument("--dropout", type=cli.fraction, default=Config.dropout, help="fraction dropped")
  p.add_argument("--max-norm", type=cli.positive_float, default=Config.max_norm)
  p.add_argument("--patience", type=cli.nonnegative_int, default=Config.patience,
                 help="early stopping's patience (epochs)")
  p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
  a = p.parse_args(argv)
  variants = tuple(a.variants) if "base" in a.variants else ("base", *a.variants)  # gaps are relative to base
  return Config(dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train, n_val=a.n_val, n_test=a.n_test,
                hidden=tuple(a.hidden), epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.learning_rate,
                l1=a.l1, l2=a.l2, l1_l2=tuple(a.l1_l2), dropout=a.dropout, max_norm=a.max_norm,
                patience=a.patience, variants=variants, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  # Bad strengths fail here, before loading data.
  models = {v: build_model(config, v) for v in config.variants if v != "early_stopping"}
  if "early_stopping" in config.variants:
    # The base model object itself (not an equal copy), so that the two runs share compiled programs.
    models["early_stopping"] = models["base"]
  optimizer = optimizers.OptimizerConfig(name="adam", learning_rate=config.learning_rate)
  tx = optimizers.get(optimizer)  # one optax object for every run: the two base runs share a compiled epoch
  args = types.SimpleNamespace(dataset=config.dataset, data_dir=config.data_dir,
                               n_train=config.n_train + config.n_val, n_test=config.n_test)
  ds, x_all, x_test = common.load_flat(args)
  if len(x_all) < config.n_train + config.n_val:
    raise JaxnnError(f"{len(x_all)} training examples cannot give n_train={config.n_train} "
                     f"plus n_val={config.n_val}")
  x_train, y_train = x_all[:config.n_train], ds.y_train[:config.n_train]
  x_val, y_val = x_all[config.n_train:], ds.y_train[config.n_train:]
  y_test = ds.y_test
  print(f"{ds.describe()}; training on {len(x_train)}, validating on {len(x_val)}")

  # Every variant starts from the same weights: penalties, constraints and dropout add no params, so the
  # base model's params fit them all.
  params = models["base"].init(jax.random.key(config.seed), x_train.shape[1:])
  results, histories = {}, {}
  for variant, model in models.items():
    stopper = None
    if variant == "early_stopping":
      stopper = training.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    state, history = training.fit(
        model, params, x_train, y_train, loss=LOSS, optimizer=tx, metrics=list(METRICS),
        epochs=config.epochs, batch_size=config.batch_size, validation_data=(x_val, y_val),
        early_stopping=stopper, key=jax.random.fold_in(jax.random.key(config.seed), 1), verbose=config.verbose,
        checkpoint=common.checkpointing(config, variant, config.epochs))
    # Final numbers at inference on the final weights: the history's training accuracy is measured with
    # dropout on and while the weights move.
    scores = {split: training.evaluate(model, state.params, x, y, loss=LOSS, metrics=list(METRICS))
              for split, (x, y) in {"train": (x_train, y_train), "val": (x_val, y_val),
                                    "test": (x_test, y_test)}.items()}
    r = {"model": model.config(), "epochs": len(history.epoch)}
    for split, s in scores.items():
      r[f"{split}_accuracy"] = s["accuracy"]
      r[f"{split}_crossentropy"] = s["sparse_categorical_crossentropy"]
    if stopper is not None:
      r["best_epoch"] = int(np.argmin(history["val_loss"])) + 1
    r["gap"] = r["train_accuracy"] - r["val_accuracy"]
    r["crossentropy_gap"] = r["val_crossentropy"] - r["train_crossentropy"]
    r["history"] = history.history
    results[variant] = r
    histories[variant] = history.history

  base = results["base"]
  for r in results.values():
    r["gap_closed"] = (base["gap"] - r["gap"]) / base["gap"] if base["gap"] else 0.0
    r["crossentropy_gap_closed"] = ((base["crossentropy_gap"] - r["crossentropy_gap"]) / base["crossentropy_gap"]
                                    if base["crossentropy_gap"] else 0.0)

  out = config.out
  files = [plot_curves(histories, os.path.join(out, "curves.png")),
           plot_gaps(results, os.path.join(out, "gap.png"))]
  summary = {
      "dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
      "n_train": int(len(x_train)), "n_val": int(len(x_val)), "n_test": int(len(x_test)),
      "config": dataclasses.asdict(config), "optimizer": optimizers.serialize(optimizer),
      "jax_backend": jax.default_backend(), "variants": results,
      "plots": [os.path.basename(f) for f in files],
  }
  rows = [(v, r["epochs"], r["train_accuracy"], r["val_accuracy"], r["gap"], f"{100 * r['gap_closed']:.0f} %",
           r["crossentropy_gap"], f"{100 * r['crossentropy_gap_closed']:.0f} %", r["test_accuracy"])
          for v, r in results.items()]
  print()
  return common.finish(out, summary, rows, header=(
      "variant", "epochs", "train_acc", "val_acc", "gap", "gap_closed", "ce_gap", "ce_gap_closed", "test_acc"))


def plot_curves(histories: dict[str, dict[str, list[float]]], path: str) -> str:
  """Per variant: training and validation accuracy (top) and crossentropy (bottom); base in grey."""
  n = len(histories)
  fig, axes = plt.subplots(2, n, figsize=(2.9 * n, 5.6), sharey="row", squeeze=False)
  base = histories["base"]
  for j, (variant, h) in enumerate(histories.items()):
    for i, key in enumerate(("accuracy", "sparse_categorical_crossentropy")):
      ax = axes[i, j]
      if variant != "base":
        ax.plot(np.arange(1, len(base[key]) + 1), base[f"val_{key}"], color="0.7", label="base validation")
      epochs = np.arange(1, len(h[key]) + 1)
      ax.plot(epochs, h[key], color="C0", label="train")
      ax.plot(epochs, h[f"val_{key}"], color="C1", label="validation")
      ax.grid(alpha=0.3)
      if i == 0:
        ax.set_title(variant)
      else:
        ax.set_xlabel("epoch")
      if j == 0:
        ax.set_ylabel("accuracy" if i == 0 else "crossentropy")
  axes[0, -1].legend(fontsize=7)
  fig.suptitle("train (blue) vs validation (orange); training curves are measured during the epoch")
  fig.tight_layout()
  return plots.save(fig, path)


def plot_gaps(results: dict[str, dict[str, Any]], path: str) -> str:
  """Bars: train-validation accuracy gap and final validation accuracy per variant."""
  names = list(results)
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
  axes[0].bar(names, [results[v]["gap"] for v in names], color=[f"C{i}" for i in range(len(names))])
  axes[0].set_title("train - validation accuracy")
  val = [results[v]["val_accuracy"] for v in names]
  axes[1].bar(names, val, color=[f"C{i}" for i in range(len(names))])
  axes[1].set_ylim(min(val) - 0.05, min(1.0, max(val) + 0.02))
  axes[1].set_title("validation accuracy")
  for ax in axes:
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="regularization")
