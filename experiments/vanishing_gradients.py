"""Vanishing and exploding gradients in a deep MLP, and what fixes them.

Twelve hidden layers of 64 units, a linear output and crossentropy from logits (so that a huge or saturated
output still has a gradient), trained with SGD (momentum 0.9, lr 0.01) for 8 epochs on 2,000 digits:
  sigmoid_glorot      vanishing: each layer multiplies the backpropagated signal by sigmoid' <= 1/4;
  tanh_glorot         Glorot's variance keeps tanh's signal about constant: the classic fix for tanh;
  relu_he             He's variance 2 / fan_in keeps ReLU's signal constant: the fix for ReLU;
  tanh_normal_1       too-large init (stddev 1.0): tanh saturates and the backpropagated gradient grows
                      layer by layer toward the input (exploding), then training kills the signal;
  relu_normal_1       too-large init with ReLU: activations and gradients explode, the loss is ~1e9 and
                      turns nan in the first epoch;
  relu_normal_1_clip  the same with `OptimizerConfig(..., global_clipnorm=1.0)`: clipping bounds each step,
                      so the loss stays finite, but it does not fix the network's scale
(and, with --settings, tanh_normal_1_clip: clipping does not undo tanh's saturation either).
Per layer, at init and after every epoch, on 512 training digits: the norm of dL/dkernel and of
dL/d(layer outputs). Two ratios: the first layer's kernel gradient over the output layer's (ratio), and
the backpropagated signal dL/d(outputs) at the first hidden layer over dL/d(logits) (signal_ratio).

Command:
  python -m experiments.vanishing_gradients
Measured (embedded sample, fresh clone; 31 s on 2 CPU cores shared with another training):
  setting             grad_first  grad_last  ratio_init  ratio_end  signal_ratio_init  loss_init  loss_end  train_acc
  sigmoid_glorot      6.1e-08     0.474      1.3e-07     3.9e-07    1.9e-07            2.38       2.31      0.103
  tanh_glorot         0.631       0.182      3.47        5.75       0.72               2.31       0.178     0.949
  relu_he             0.474       0.113      4.18        3.26       1.06               2.31       0.240     0.934
  tanh_normal_1       6.3e+03     0.795      7.9e+03     1.8e-05    4.2e+04            11.1       2.32      0.096
  relu_normal_1       1.1e+09     2.8e+09    0.38        nan        1.1e+09            5.6e+09    nan       0.103
  relu_normal_1_clip  1.1e+09     2.8e+09    0.38        0.41       1.1e+09            5.6e+09    1.6e+08   0.323

Writes runs/vanishing_gradients/ (or --out): results.json (nan written as null), grad_norms_at_init.png,
grad_norms_during_training.png, training_curves.png.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
from typing import Any, Sequence

import jax
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np

from experiments import common
from experiments.initialization import layer_statistics
from jaxnn import cli
from jaxnn import initializers
from jaxnn import losses
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.layers import Dense
from jaxnn.models import Sequential

# Name -> (activation, kernel initializer, global_clipnorm or None).
SETTINGS = {
    "sigmoid_glorot": ("sigmoid", "glorot_uniform", None),
    "tanh_glorot": ("tanh", "glorot_uniform", None),
    "relu_he": ("relu", "he_normal", None),
    "tanh_normal_1": ("tanh", initializers.RandomNormal(stddev=1.0), None),
    "tanh_normal_1_clip": ("tanh", initializers.RandomNormal(stddev=1.0), 1.0),
    "relu_normal_1": ("relu", initializers.RandomNormal(stddev=1.0), None),
    "relu_normal_1_clip": ("relu", initializers.RandomNormal(stddev=1.0), 1.0),
}
# Logits out, so that a huge or saturated output still gives a gradient (probabilities would be clipped).
LOSS = losses.get("sparse_categorical_crossentropy", from_logits=True)


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int = 2000
  n_test: int | None = None  # the lesson measures training only; the test digits are not used
  depth: int = 12  # hidden layers
  width: int = 64
  settings: tuple[str, ...] = tuple(s for s in SETTINGS if s != "tanh_normal_1_clip")
  epochs: int = 8
  batch_size: int = 64
  learning_rate: float = 0.01
  momentum: float = 0.9
  stats_batch: int = 512
  seed: int = 0
  out: str = "runs/vanishing_gradients"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def build_model(config: Config, activation: str | None, kernel_initializer: Any) -> Sequential:
  layers = [Dense(config.width, activation=activation, kernel_initializer=kernel_initializer)
            for _ in range(config.depth)]
  layers.append(Dense(10, kernel_initializer=kernel_initializer))  # logits
  return Sequential(layers, name=f"mlp_{config.depth}x{config.width}_{activation}")


def finite_or_none(values: Sequence[float]) -> list[float | None]:
  """JSON-safe: nan / inf become null (json.dump would write the non-standard NaN / Infinity)."""
  return [float(v) if math.isfinite(v) else None for v in values]


def ratio(a: float, b: float) -> float | None:
  """a / b, or None where it is not a finite number."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return finite_or_none([np.float64(a) / np.float64(b)])[0]


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("vanishing_gradients", __doc__)
  common.add_data_args(p, n_train=Config.n_train, n_test=Config.n_test)
  p.add_argument("--depth", type=cli.positive_int, default=Config.depth, help="hidden layers")
  p.add_argument("--width", type=cli.positive_int, default=Config.width, help="units per hidden layer")
  p.add_argument("--settings", nargs="+", default=list(Config.settings), choices=list(SETTINGS))
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=Config.batch_size)
  p.add_argument("--learning-rate", type=cli.positive_float, default=Config.learning_rate, help="SGD learning rate")
  p.add_argument("--momentum", type=float, default=Config.momentum, help="SGD momentum")
  p.add_argument("--stats-batch", type=cli.positive_int, default=Config.stats_batch,
                 help="training digits the gradient norms are measured on")
  a = p.parse_args(argv)
  return Config(dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train, n_test=a.n_test, depth=a.depth,
                width=a.width, settings=tuple(a.settings), epochs=a.epochs, batch_size=a.batch_size,
                learning_rate=a.learning_rate, momentum=a.momentum, stats_batch=a.stats_batch, seed=a.seed,
                out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  txs = {}
  for clip in {SETTINGS[s][2] for s in config.settings}:
    # One optax object per clipping choice, shared by the runs that use it (and their compiled epochs).
    txs[clip] = optimizers.get(optimizers.OptimizerConfig(
        name="sgd", learning_rate=config.learning_rate, kwargs={"momentum": config.momentum},
        global_clipnorm=clip))
  ds, x_train, _ = common.load_flat(types.SimpleNamespace(**dataclasses.asdict(config)))
  y_train = ds.y_train
  print(ds.describe())
  x_stats, y_stats = x_train[:config.stats_batch], y_train[:config.stats_batch]
  # The initializer only matters to `init`: per activation, one model object trains and measures every
  # initialization, so they share compiled programs.
  trained_models = {act: build_model(config, act, "glorot_uniform")
                    for act in {SETTINGS[s][0] for s in config.settings}}

  results, records = {}, {}
  # Nor does `init` depend on the activation: one init model per initializer, shared by the settings.
  init_models = {}
  for name in config.settings:
    activation, kernel_init, clip = SETTINGS[name]
    model = trained_models[activation]
    init_model = init_models.setdefault(repr(kernel_init), build_model(config, None, kernel_init))
    params = init_model.init(jax.random.key(config.seed), x_train.shape[1:])
    stats = [jax.device_get(layer_statistics(params, x_stats, y_stats, model=model, loss=LOSS))]
    state, logs = params, {}
    for epoch in range(config.epochs):
      # One epoch per call, to measure the gradients between epochs; the state carries on (same optimizer
      # state, shuffling by epoch number) and the compiled epoch is reused.
      state, history = training.fit(
          model, state if epoch else params, x_train, y_train, loss=LOSS, optimizer=txs[clip],
          metrics=["accuracy"], epochs=1, batch_size=config.batch_size,
          key=jax.random.fold_in(jax.random.key(config.seed), 1), verbose=config.verbose,
          # No NaN guard: the exploding settings are here to show the loss turning nan.
          max_bad_steps=None, checkpoint=common.checkpointing(config, f"{name}/epoch_{epoch + 1}", 1))
      for k, v in history.history.items():
        logs.setdefault(k, []).extend(v)
      stats.append(jax.device_get(layer_statistics(state.params, x_stats, y_stats, model=model, loss=LOSS)))
    kernel = np.stack([s["kernel_grad_norm"] for s in stats])  # (epochs + 1, layers)
    signal = np.stack([s["output_grad_norm"] for s in stats])
    nonfinite = [i + 1 for i, v in enumerate(logs["loss"]) if not math.isfinite(v)]
    results[name] = {
        "activation": activation, "kernel_initializer": initializers.serialize(initializers.get(kernel_init)),
        "global_clipnorm": clip,
        "loss_at_init": finite_or_none([stats[0]["loss"]])[0],
        "kernel_grad_norm_at_init": finite_or_none(kernel[0]),
        "output_grad_norm_at_init": finite_or_none(signal[0]),
        "first_to_last_ratio_at_init": ratio(kernel[0, 0], kernel[0, -1]),
        "signal_first_to_last_ratio_at_init": ratio(signal[0, 0], signal[0, -1]),
        "first_to_last_ratio_per_epoch": [ratio(a, b) for a, b in zip(kernel[:, 0], kernel[:, -1])],
        "kernel_grad_norm_per_epoch": [finite_or_none(row) for row in kernel],
        "max_kernel_grad_norm_per_epoch": finite_or_none(kernel.max(axis=1)),
        "first_nonfinite_loss_epoch": nonfinite[0] if nonfinite else None,
        "final_loss": finite_or_none(logs["loss"][-1:])[0],
        "final_accuracy": logs["accuracy"][-1],
        "history": {k: finite_or_none(v) for k, v in logs.items()},
    }
    records[name] = (kernel, float(stats[0]["loss"]), logs)  # the plots draw nan as a gap

  out = config.out
  files = [plot_at_init(records, os.path.join(out, "grad_norms_at_init.png")),
           plot_during_training(records, os.path.join(out, "grad_norms_during_training.png")),
           plot_training(records, os.path.join(out, "training_curves.png"))]
  summary = {
      "dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
      "n_train": int(len(x_train)), "config": dataclasses.asdict(config),
      "jax_backend": jax.default_backend(), "settings": results,
      "plots": [os.path.basename(f) for f in files],
  }
  rows = []
  for name, r in results.items():
    k = r["kernel_grad_norm_at_init"]
    nan_at = r["first_nonfinite_loss_epoch"]
    rows.append((name, _num(k[0]), _num(k[-1]), _num(r["first_to_last_ratio_at_init"]),
                 _num(r["first_to_last_ratio_per_epoch"][-1]), _num(r["signal_first_to_last_ratio_at_init"]),
                 _num(r["loss_at_init"]),
                 f"nan (epoch {nan_at})" if nan_at else _num(r["final_loss"]), r["final_accuracy"]))
  print()
  return common.finish(out, summary, rows, header=(
      "setting", "grad_first", "grad_last", "ratio_init", "ratio_end", "signal_ratio_init", "loss_init",
      "loss_end", "train_acc"))


def _num(v: float | None) -> str:
  return "nan" if v is None or not math.isfinite(v) else f"{v:.3g}"


def _positive(v: Any) -> np.ndarray:
  """Values for a log axis: zeros, nan and inf left out (nan is not drawn)."""
  v = np.asarray(v, np.float64)
  return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def plot_at_init(records: dict[str, tuple[np.ndarray, float, dict]], path: str) -> str:
  """||dL/dkernel|| per layer at init, one line per setting, log scale."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, (name, (kernel, _, _)) in enumerate(records.items()):
    ax.semilogy(np.arange(1, kernel.shape[1] + 1), _positive(kernel[0]), "o-", color=f"C{i}", label=name)
  ax.set_xlabel("layer (1 = next to the input; last = output layer)")
  ax.set_ylabel("||dL/dkernel||")
  ax.set_title("gradient norm per layer at init")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, path)


def plot_during_training(records: dict[str, tuple[np.ndarray, float, dict]], path: str) -> str:
  """Per setting: ||dL/dkernel|| per layer at init and after each epoch (darker = later)."""
  n = len(records)
  cols = min(n, 4)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
  for ax, (name, (kernel, _, logs)) in zip(axes.flat, records.items()):
    layers = np.arange(1, kernel.shape[1] + 1)
    for e in range(kernel.shape[0]):
      ax.semilogy(layers, _positive(kernel[e]), color=plt.cm.viridis(1 - e / max(1, kernel.shape[0] - 1)),
                  label="init" if e == 0 else (f"epoch {e}" if e == kernel.shape[0] - 1 else None))
    nonfinite = [e for e, v in enumerate(logs["loss"], 1) if not math.isfinite(v)]
    ax.set_title(name + (f" (nan from epoch {nonfinite[0]})" if nonfinite else ""), fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  fig.supxlabel("layer")
  fig.supylabel("||dL/dkernel||")
  fig.tight_layout()
  return plots.save(fig, path)


def plot_training(records: dict[str, tuple[np.ndarray, float, dict]], path: str) -> str:
  """Training loss (log scale; nan epochs missing) and training accuracy per epoch."""
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  for i, (name, (_, loss_at_init, logs)) in enumerate(records.items()):
    epochs = np.arange(0, len(logs["loss"]) + 1)
    nonfinite = [e for e, v in enumerate(logs["loss"], 1) if not math.isfinite(v)]
    axes[0].semilogy(epochs, _positive([loss_at_init, *logs["loss"]]), "o-", color=f"C{i}",
                     label=name + (f" (nan from epoch {nonfinite[0]})" if nonfinite else ""))
    axes[1].plot(epochs[1:], logs["accuracy"], "o-", color=f"C{i}", label=name)
  axes[0].set_title("training loss (epoch 0: at init, on the statistics batch)")
  axes[1].set_title("training accuracy")
  for ax in axes:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="vanishing_gradients")
