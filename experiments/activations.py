"""Activation functions: their shapes, ranges and derivatives, and the same MNIST MLP trained with each.

Part 1, the functions. Every element-wise activation jaxnn has (`activations.names()` less softmax and
log_softmax, which normalize across units; softmax of [x, 0] is checked to equal sigmoid(x)) is evaluated on
x in [-6, 6] with its derivative from jax.grad (vmapped). Checked, the run raising otherwise: sigmoid stays in
(0, 1), tanh in (-1, 1), ReLU equals max(0, x), step is 0 or 1, each other function in its known range; and
the derivatives from jax.grad equal their closed forms (sigmoid' = s (1 - s), tanh' = 1 - tanh^2, ReLU' = 1
for x > 0 else 0, softplus' = sigmoid, ELU', SiLU', leaky ReLU') within 1e-5.

Part 2, training. The same 784-128-10 MLP (softmax output, adam, batch 128, same initial weights) is trained
with each hidden activation; test accuracy is logged after every epoch (watched only, never used to choose
anything), hence "epochs to 90 % test accuracy". The step function cannot
be trained by gradient descent: its derivative is 0 everywhere (at x = 0 too, in jax), so no gradient reaches
the hidden layer. It is trained anyway to show it: the hidden kernel ends exactly where it started, and only
the output layer learns, on fixed random binary features. `linear` (no non-linearity: the network collapses
to a linear classifier) is the other baseline.

Command:
  python -m experiments.activations
Result (measured on a fresh clone, 2 CPU cores shared with another training, embedded 8,000 / 2,000 MNIST
sample, 10 epochs: 39 s; most of it compiling one program per activation):
  test accuracy: relu 0.9430, gelu 0.9415, silu 0.9365, tanh 0.9355, leaky_relu 0.9335, elu 0.9285,
  softplus 0.9240, selu 0.9205, sigmoid 0.9200, linear 0.9135, step 0.7895;
  epochs to 90 % test accuracy: 2 for relu, selu, gelu, silu; 3 for tanh, leaky_relu, elu, softplus,
  linear; 5 for sigmoid; not reached by step, whose hidden kernel moved by exactly 0.0.
  All range checks pass; jax.grad vs closed forms differ by at most 3e-7; softmax([x, 0])[0] vs
  sigmoid(x) by 6e-8.

Writes runs/activations/ (or --out): results.json, activations.png, training.png.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import activations as activations_lib
from jaxnn import cli
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.layers import Dense
from jaxnn.models import Sequential

TRAINED = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "linear", "step")
VECTOR_VALUED = ("softmax", "log_softmax")  # normalize across units: no element-wise graph
TARGET = 0.90  # validation accuracy the "epochs to reach" column counts to
TOLERANCE = 1e-5
INF = float("inf")
# Known ranges (low, high, low_closed, high_closed); bounded-below functions' minima to 4 decimals.
RANGES = {
    "sigmoid": (0.0, 1.0, False, False), "tanh": (-1.0, 1.0, False, False), "softsign": (-1.0, 1.0, False, False),
    "relu": (0.0, INF, True, False), "relu6": (0.0, 6.0, True, True), "step": (0.0, 1.0, True, True),
    "hard_sigmoid": (0.0, 1.0, True, True), "softplus": (0.0, INF, False, False),
    "exponential": (0.0, INF, False, False), "elu": (-1.0, INF, False, False),
    "selu": (-1.7581, INF, False, False), "log_sigmoid": (-INF, 0.0, False, False),
    "gelu": (-0.1700, INF, True, False), "silu": (-0.2785, INF, True, False), "mish": (-0.3089, INF, True, False),
    "hard_silu": (-0.375, INF, True, False), "leaky_relu": (-INF, INF, False, False),
    "linear": (-INF, INF, False, False),
}


def _closed_form_derivatives(x: jax.Array) -> dict[str, jax.Array]:
  """Derivatives written from the textbook formulas, to check jax.grad against."""
  s = jax.nn.sigmoid(x)
  return {
      "sigmoid": s * (1 - s), "tanh": 1 - jnp.tanh(x) ** 2, "relu": (x > 0).astype(x.dtype),
      "step": jnp.zeros_like(x), "softplus": s, "elu": jnp.where(x > 0, 1.0, jnp.exp(x)),
      "silu": s * (1 + x * (1 - s)), "leaky_relu": jnp.where(x > 0, 1.0, 0.2), "linear": jnp.ones_like(x),
  }


@dataclasses.dataclass(frozen=True)
class Config:
  activations: tuple[str, ...] = TRAINED
  hidden: int = 128
  epochs: int = 10
  batch_size: int = 128
  learning_rate: float = 0.001
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int | None = None
  n_test: int | None = None
  seed: int = 0
  out: str = "runs/activations"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("activations", __doc__)
  common.add_data_args(p)
  p.add_argument("--activations", nargs="+", default=list(TRAINED), help="hidden activations to train with")
  p.add_argument("--hidden", type=cli.positive_int, default=Config.hidden)
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=Config.batch_size)
  p.add_argument("--learning-rate", type=cli.positive_float, default=Config.learning_rate, help="adam's learning rate")
  a = p.parse_args(argv)
  for name in a.activations:
    activations_lib.get(name)  # an unknown name fails now, with the list of valid ones
  return Config(activations=tuple(a.activations), hidden=a.hidden, epochs=a.epochs, batch_size=a.batch_size,
                learning_rate=a.learning_rate, dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train,
                n_test=a.n_test, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


# --------------------------------------------------------------------------------------------- part 1
def elementwise_names() -> list[str]:
  """Activations with an element-wise graph: all of jaxnn's but softmax and log_softmax."""
  return [n for n in activations_lib.names() if n not in VECTOR_VALUED]


@jax.jit
def _curves(x: jax.Array) -> dict[str, Any]:
  """Every activation and its jax.grad derivative on x, in one compiled call."""
  out = {}
  for name in elementwise_names():
    fn = activations_lib.get(name)
    out[name] = (fn(x), jax.vmap(jax.grad(fn))(x))
  out["softmax_pair"] = activations_lib.get("softmax")(jnp.stack([x, jnp.zeros_like(x)], -1))[:, 0]
  out["closed_form"] = _closed_form_derivatives(x)
  return out


def _in_range(values: np.ndarray, low: float, high: float, low_closed: bool, high_closed: bool) -> bool:
  """Whether every value lies in the interval (closed or open at each end)."""
  above = low == -INF or bool(np.all(values >= low if low_closed else values > low))
  below = high == INF or bool(np.all(values <= high if high_closed else values < high))
  return above and below


def check_functions() -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
  """Ranges, exact definitions and derivatives; raises if any check fails."""
  # An even number of points keeps x = 0 (where ReLU's derivative is a convention) off the grid.
  x = np.linspace(-6.0, 6.0, 1200, dtype=np.float32)
  curves = jax.device_get(_curves(jnp.asarray(x)))
  table, failures = {}, []
  for name in elementwise_names():
    f, df = (np.asarray(a) for a in curves[name])
    entry = {"min": float(f.min()), "max": float(f.max()), "grad_min": float(df.min()), "grad_max": float(df.max())}
    if name in RANGES:
      low, high, low_closed, high_closed = RANGES[name]
      entry["range"] = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
      entry["in_range"] = _in_range(f, low, high, low_closed, high_closed)
      if not entry["in_range"]:
        failures.append(f"{name} leaves {entry['range']}: [{f.min()}, {f.max()}]")
    if name in curves["closed_form"]:
      entry["grad_vs_closed_form_max_abs_diff"] = float(np.abs(df - curves["closed_form"][name]).max())
      if not entry["grad_vs_closed_form_max_abs_diff"] <= TOLERANCE:
        failures.append(f"{name}: jax.grad differs from the closed form by {entry['grad_vs_closed_form_max_abs_diff']}")
    table[name] = entry
  exact = {
      "relu_equals_max_0_x": bool(np.array_equal(curves["relu"][0], np.maximum(0.0, x))),
      "step_is_0_or_1": bool(np.isin(curves["step"][0], (0.0, 1.0)).all()),
      "step_equals_x_ge_0": bool(np.array_equal(curves["step"][0], (x >= 0).astype(np.float32))),
      "step_gradient_all_zero": bool(np.all(curves["step"][1] == 0.0)),
      "step_gradient_at_0": float(jax.grad(activations_lib.get("step"))(0.0)),
      "leaky_relu_equals_formula": bool(np.allclose(curves["leaky_relu"][0], np.where(x >= 0, x, 0.2 * x))),
      "softmax_of_x_0_vs_sigmoid_max_abs_diff": float(np.abs(curves["softmax_pair"] - curves["sigmoid"][0]).max()),
  }
  bad = [k for k, v in exact.items() if v is False]
  if exact["softmax_of_x_0_vs_sigmoid_max_abs_diff"] > TOLERANCE or exact["step_gradient_at_0"] != 0.0:
    bad.append("softmax / step gradient at 0")
  if failures or bad:
    raise AssertionError(f"self-check failed: {failures + bad}")
  return table, exact, (x, curves)


# --------------------------------------------------------------------------------------------- part 2
def train_all(config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
  """The same MLP, from the same initial weights, fit once per hidden activation."""
  ds, x_train, x_test = common.load_flat(config)
  key = jax.random.key(config.seed)
  runs, histories = {}, {}
  for name in config.activations:
    model = Sequential([Dense(config.hidden, activation=name), Dense(ds.num_classes, activation="softmax")],
                       name=f"mlp_{name}")
    # Same key for every activation: the initial weights do not depend on it, so every run starts alike.
    params = model.init(jax.random.fold_in(key, 0), x_train.shape[1:])
    initial_hidden = np.asarray(params["dense_0"]["kernel"]).copy()
    start = time.perf_counter()
    state, history = training.fit(
        model, params, x_train, ds.y_train, loss="sparse_categorical_crossentropy",
        optimizer=optimizers.OptimizerConfig("adam", learning_rate=config.learning_rate), metrics=["accuracy"],
        epochs=config.epochs, batch_size=min(config.batch_size, len(x_train)),
        validation_data=(x_test, ds.y_test), key=jax.random.fold_in(key, 1), verbose=config.verbose,
        checkpoint=common.checkpointing(config, name, config.epochs))
    seconds = time.perf_counter() - start
    test = history["val_accuracy"]  # the test set, watched after every epoch (never used to choose anything)
    reached = next((i + 1 for i, a in enumerate(test) if a >= TARGET), None)
    runs[name] = {
        "test_accuracy": test[-1], "test_loss": history["val_loss"][-1], "epochs_to_90_test": reached,
        "seconds": seconds, "compile_seconds": history.compile_seconds,
        "hidden_kernel_max_abs_change": float(np.abs(np.asarray(state.params["dense_0"]["kernel"]) -
                                                     initial_hidden).max()),
        "history": history.history,
    }
    histories[name] = history.history
  data_info = {"dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
               "n_train": int(len(x_train)), "n_test": int(len(x_test))}
  return runs, data_info


# --------------------------------------------------------------------------------------------- plots
def plot_functions(x: np.ndarray, curves: dict[str, Any], table: dict[str, Any], path: str) -> str:
  """One panel per activation: f and its jax.grad derivative, titled with its range."""
  names = elementwise_names()
  cols = 5
  rows = -(-(len(names) + 1) // cols)
  # Spacing set by hand: a layout engine over 20 panels costs about a second of drawing.
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows))
  fig.subplots_adjust(hspace=0.45, wspace=0.25, top=0.92)
  for ax, name in zip(axes.flat, names):
    f, df = curves[name]
    ax.plot(x, f, color="C0", label="f(x)")
    ax.plot(x, df, color="C1", ls="--", label="f'(x) (jax.grad)")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    if name == "exponential":
      ax.set_ylim(-0.5, 10)
    ax.set_title(f"{name}  {table[name].get('range', '')}", fontsize=9)
    ax.grid(alpha=0.3)
  extra = axes.flat[len(names)]
  extra.plot(x, curves["softmax_pair"], color="C2", lw=3, label="softmax([x, 0])[0]")
  extra.plot(x, curves["sigmoid"][0], color="k", ls=":", label="sigmoid(x)")
  extra.set_title("softmax of two units is a sigmoid", fontsize=9)
  extra.legend(fontsize=7)
  for ax in list(axes.flat)[len(names) + 1:]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7)
  fig.suptitle("jaxnn activations (solid) and their derivatives from jax.grad (dashed)")
  return plots.save(fig, path)


def plot_training(runs: dict[str, Any], path: str) -> str:
  """Test accuracy per epoch for each activation, and the final test accuracies ranked."""
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
  for i, (name, r) in enumerate(runs.items()):
    test = r["history"]["val_accuracy"]
    ax1.plot(range(1, len(test) + 1), test, color=f"C{i % 10}", ls="-" if i < 10 else "--", marker=".", label=name)
  ax1.axhline(TARGET, color="k", ls=":", lw=1)
  # The step network starts far below the rest; zoom on the others and say where it went.
  trainable = [min(r["history"]["val_accuracy"]) for n, r in runs.items() if n != "step"]
  low = max(0.0, min(0.8, min(trainable) - 0.02)) if trainable else 0.0
  below = [f"{n} ({min(r['history']['val_accuracy']):.2f} to {r['test_accuracy']:.2f})"
           for n, r in runs.items() if min(r["history"]["val_accuracy"]) < low]
  if below:
    ax1.text(0.02, 0.02, "below the axis: " + ", ".join(below), transform=ax1.transAxes, fontsize=8)
  ax1.set_ylim(low, 1.0)
  ax1.set_xlabel("epoch")
  ax1.set_ylabel("test accuracy")
  ax1.set_title(f"test accuracy after each epoch (dotted: {TARGET:.0%})")
  ax1.grid(alpha=0.3)
  ax1.legend(fontsize=7, ncol=2)
  order = sorted(runs, key=lambda n: runs[n]["test_accuracy"])
  ax2.barh(order, [runs[n]["test_accuracy"] for n in order], color="C0")
  for j, n in enumerate(order):
    ax2.annotate(f"{runs[n]['test_accuracy']:.3f}", (runs[n]["test_accuracy"], j), va="center", fontsize=8)
  ax2.set_xlim(max(0.0, min(runs[n]["test_accuracy"] for n in order) - 0.1), 1.0)
  ax2.set_xlabel("test accuracy")
  ax2.set_title("same MLP, hidden activation varied")
  return plots.save(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  table, exact, (x, curves) = check_functions()
  runs, data_info = train_all(config)
  if "step" in runs and runs["step"]["hidden_kernel_max_abs_change"] != 0.0:
    raise AssertionError("self-check failed: the hidden layer of the step network moved, but its gradient is 0")

  out = config.out
  files = [plot_functions(x, curves, table, os.path.join(out, "activations.png")),
           plot_training(runs, os.path.join(out, "training.png"))]
  grad_diffs = [v["grad_vs_closed_form_max_abs_diff"] for v in table.values()
                if "grad_vs_closed_form_max_abs_diff" in v]
  results = {
      "config": dataclasses.asdict(config), **data_info, "jax_backend": jax.default_backend(),
      "functions": table, "exact_checks": exact, "max_grad_vs_closed_form_abs_diff": max(grad_diffs),
      "vector_valued": list(VECTOR_VALUED),
      "step_note": ("step's derivative is 0 everywhere, so gradient descent cannot train a step layer: "
                    "trained anyway, its hidden kernel ends exactly where it started and only the output "
                    "layer learns (a linear read-out of fixed random binary features)."),
      "target_test_accuracy": TARGET, "training": runs, "plots": [os.path.basename(f) for f in files],
  }
  rows = [(name, r["test_accuracy"], r["test_loss"],
           r["epochs_to_90_test"] if r["epochs_to_90_test"] is not None else "not reached",
           r["seconds"], f"{r['hidden_kernel_max_abs_change']:.3g}") for name, r in runs.items()]
  return common.finish(out, results, rows, header=("activation", "test_acc", "test_loss", "epochs_to_90%_test",
                                                   "train_s", "hidden_kernel_change"))


if __name__ == "__main__":
  cli.run(main, prog="activations")
