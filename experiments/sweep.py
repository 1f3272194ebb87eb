"""Hyperparameter sweep: many 784-128-10 MLPs trained at once, accuracy against one hyperparameter.

Every (value, seed) pair is one model of `jaxnn.fit_many`, and all of them train in one compiled program
(jax.vmap of the compiled epoch). The swept values are traced, so the program compiles once whatever
they are. The model is 784 -> Dense(128, relu, He-uniform) -> Dropout -> Dense(10, softmax), adam, batch
128, 10 % of the training set held out for validation; each value is trained with --seeds seeds.

Command:
  python -m experiments.sweep                              # learning rate, 12 values log-spaced in [1e-4, 1]
  python -m experiments.sweep --sweep dropout_rate         # or weight_decay, l2 (default values for each)
  python -m experiments.sweep --sweep l2 --values 0 1e-4 1e-3 1e-2
Measured on the embedded sample (7,200 train / 800 validation / 2,000 test), 2 seeds per value, 10 epochs, on
a fresh clone on this repository's 2-core CPU machine while another training shared it:
  learning rate (24 models): test accuracy rises from 88.8 % at 1e-4 to 96.0 % at 6.6e-3 (the best on
    validation, 95.1 %), 95.2 % at 1.5e-2, 93.2 % at 3.5e-2, and collapses above: 79 % at 8.1e-2, chance
    (10-16 %) from 0.19 on. 17.4 s in fit_many (compile 1.9 s), 22.8 s for the whole command.
  dropout rate (16 models, lr 1e-3): flat within noise, test 94.4-94.7 % from 0 to 0.4, 94.3 % at 0.5,
    93.5 % at 0.7; 26.7 s in fit_many (compile 4.8 s), 35.4 s for the whole command.

Writes runs/sweep/ (or --out): results.json, accuracy_vs_<hyperparameter>.png, curves.png. The K models'
stacked state is checkpointed under OUT/checkpoints/<hyperparameter>/; `--resume` continues all of them from
the newest checkpoint (refused if the values, seeds or settings differ).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Sequence

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import sweep as sweep_lib
from jaxnn import training
from jaxnn.layers import Dense, Dropout
from jaxnn.models import Sequential

LOSS = "sparse_categorical_crossentropy"
DEFAULT_VALUES = {
    "learning_rate": tuple(float(v) for v in np.logspace(-4, 0, 12)),
    "dropout_rate": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    "weight_decay": (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "l2": (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
}


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int | None = None
  n_test: int | None = None
  sweep: str = "learning_rate"  # which hyperparameter: learning_rate, dropout_rate, weight_decay, l2
  values: tuple[float, ...] | None = None  # None: DEFAULT_VALUES[sweep]
  seeds: int = 2  # models per value (seeds seed, seed + 1, ...)
  hidden: int = 128
  optimizer: str = "adam"
  learning_rate: float = 1e-3  # when another hyperparameter is swept
  dropout: float = 0.0  # when another hyperparameter is swept
  epochs: int = 10
  batch_size: int = 128
  validation_split: float = 0.1
  seed: int = 0
  out: str = "runs/sweep"
  verbose: int = 0
  resume: bool = False
  checkpoint_every: int | None = None


def build_model(config: Config, num_classes: int) -> Sequential:
  """784 -> hidden ReLU -> Dropout -> classes softmax (the Dropout's rate is replaced when it is swept)."""
  return Sequential([Dense(config.hidden, activation="relu", kernel_initializer="he_uniform"),
                     Dropout(config.dropout), Dense(num_classes, activation="softmax")], name="mlp")


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("sweep", __doc__)
  common.add_data_args(p)
  p.add_argument("--sweep", default=Config.sweep, choices=tuple(DEFAULT_VALUES), help="hyperparameter to sweep")
  p.add_argument("--values", type=float, nargs="+", help="its values (default: a range for each hyperparameter)")
  p.add_argument("--seeds", type=cli.positive_int, default=Config.seeds, help="models per value")
  p.add_argument("--hidden", type=cli.positive_int, default=Config.hidden)
  p.add_argument("--optimizer", default=Config.optimizer)
  p.add_argument("--learning-rate", type=float, default=Config.learning_rate, help="when not swept")
  p.add_argument("--dropout", type=float, default=Config.dropout, help="dropout rate when not swept")
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=Config.batch_size)
  p.add_argument("--validation-split", type=float, default=Config.validation_split)
  a = p.parse_args(argv)
  return Config(dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train, n_test=a.n_test, sweep=a.sweep,
                values=None if a.values is None else tuple(a.values), seeds=a.seeds, hidden=a.hidden,
                optimizer=a.optimizer, learning_rate=a.learning_rate, dropout=a.dropout, epochs=a.epochs,
                batch_size=a.batch_size, validation_split=a.validation_split, seed=a.seed, out=a.out,
                verbose=a.verbose, resume=a.resume, checkpoint_every=a.checkpoint_every)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  values = list(config.values or DEFAULT_VALUES[config.sweep])
  # Bad values or optimizer settings fail here, before any data is read.
  sweep_lib.check_values(config.sweep, values)
  optimizer = optimizers.OptimizerConfig(config.optimizer, learning_rate=config.learning_rate)
  ds, x_train, x_test = common.load_flat(config)
  print(ds.describe())
  model = build_model(config, ds.num_classes)

  # Model k trains value k // seeds with seed config.seed + k % seeds.
  per_model = np.repeat(values, config.seeds)
  seeds = [config.seed + j for _ in values for j in range(config.seeds)]
  start = time.perf_counter()
  states, histories = sweep_lib.fit_many(
      model, x_train, ds.y_train, loss=LOSS, seeds=seeds, **{config.sweep: per_model}, optimizer=optimizer,
      metrics=["accuracy"], epochs=config.epochs, batch_size=min(config.batch_size, len(x_train)),
      validation_split=config.validation_split, verbose=config.verbose,
      checkpoint=common.checkpointing(config, config.sweep, config.epochs))
  train_seconds = time.perf_counter() - start
  test = [training.evaluate(model, s, x_test, ds.y_test, loss=LOSS, metrics=["accuracy"])
          for s in sweep_lib.unstack(states)]

  results = []
  for i, value in enumerate(values):
    ks = range(i * config.seeds, (i + 1) * config.seeds)
    results.append({
        "value": value, "seeds": [seeds[k] for k in ks],
        "val_accuracy": [histories[k]["val_accuracy"][-1] for k in ks],
        "test_accuracy": [test[k]["accuracy"] for k in ks],
        "train_loss": [histories[k]["loss"][-1] for k in ks],
        "val_accuracy_curve": np.mean([histories[k]["val_accuracy"] for k in ks], axis=0).tolist(),
    })
  for r in results:
    r["val_accuracy_mean"] = float(np.mean(r["val_accuracy"]))
    r["test_accuracy_mean"] = float(np.mean(r["test_accuracy"]))
  best = max(results, key=lambda r: r["val_accuracy_mean"])

  out = config.out
  files = [plot_accuracy(results, config.sweep, os.path.join(out, f"accuracy_vs_{config.sweep}.png")),
           plot_curves(results, config.sweep, os.path.join(out, "curves.png"))]
  summary = {
      "dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
      "n_train": int(len(x_train)), "n_test": int(len(x_test)), "config": dataclasses.asdict(config),
      "jax_backend": jax.default_backend(), "model": model.config(), "sweep": config.sweep,
      "models": len(seeds), "train_seconds": train_seconds, "compile_seconds": histories[0].compile_seconds,
      "best": {"value": best["value"], "val_accuracy_mean": best["val_accuracy_mean"],
               "test_accuracy_mean": best["test_accuracy_mean"]},
      "results": results, "plots": [os.path.basename(f) for f in files],
  }
  rows = [(f"{r['value']:.3g}", r["val_accuracy_mean"], r["test_accuracy_mean"], min(r["test_accuracy"]),
           max(r["test_accuracy"]), float(np.mean(r["train_loss"]))) for r in results]
  print(f"\n{len(seeds)} models in one program: {train_seconds:.1f}s "
        f"(compile {histories[0].compile_seconds:.1f}s); best {config.sweep} {best['value']:.3g}")
  return common.finish(out, summary, rows, header=(config.sweep, "val_acc", "test_acc", "test_min", "test_max",
                                                    "train_loss"))


def _x_scale(ax, values: Sequence[float]) -> None:
  positive = [v for v in values if v > 0]
  if len(positive) > 1 and max(positive) / min(positive) > 20:
    # Log spacing; a value of 0 stays on the axis through a linear stretch below the smallest value.
    ax.set_xscale("symlog", linthresh=min(positive)) if min(values) <= 0 else ax.set_xscale("log")


def plot_accuracy(results: list[dict], name: str, path: str) -> str:
  """Validation and test accuracy against the value: the mean over seeds as a line, each seed as a dot."""
  fig, ax = plt.subplots(figsize=(6.5, 4))
  values = [r["value"] for r in results]
  for key, color in (("val_accuracy", "C0"), ("test_accuracy", "C1")):
    ax.plot(values, [np.mean(r[key]) for r in results], color=color, marker="o", label=key.replace("_", " "))
    for r in results:
      ax.scatter([r["value"]] * len(r[key]), r[key], color=color, s=10, alpha=0.5)
  _x_scale(ax, values)
  ax.set_xlabel(name)
  ax.set_ylabel("accuracy")
  ax.set_title(f"accuracy vs {name} (line: mean over seeds; dots: seeds)")
  ax.grid(alpha=0.3)
  ax.legend()
  return plots.save(fig, path)


def plot_curves(results: list[dict], name: str, path: str) -> str:
  """Validation accuracy per epoch, one line per value (mean over seeds)."""
  fig, ax = plt.subplots(figsize=(6.5, 4))
  cmap = plt.get_cmap("viridis")
  for i, r in enumerate(results):
    curve = r["val_accuracy_curve"]
    ax.plot(range(1, len(curve) + 1), curve, color=cmap(i / max(len(results) - 1, 1)), label=f"{r['value']:.3g}")
  ax.set_xlabel("epoch")
  ax.set_ylabel("validation accuracy")
  ax.set_title(f"validation accuracy per epoch, by {name}")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="sweep")
