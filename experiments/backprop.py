"""Backpropagation by hand: the chain rule for a two-layer network, checked against jax.grad.

The network is x -> Dense(hidden, sigmoid) -> Dense(10, out), with two output heads:
  softmax_crossentropy: softmax output and crossentropy, where dL/dz2 collapses to (p - t) / B;
  sigmoid_mse: sigmoid output and mean squared error against one-hot targets (the course's network).
The forward pass, the backward pass (chain rule, layer by layer) and the update w <- w - lr * dL/dw are
written out in jnp; both heads start from the same weights. Self-checks (the run fails if one does not hold):
  1. in float64, the hand gradients equal jax.grad of the same hand-written loss and jax.grad of jaxnn's
     `model.apply` + `losses.get(...)` on the same params dict, at the initial and at the trained weights;
  2. 300 full-batch steps of the hand-written update equal, step for step, gradient descent with jax.grad
     of jaxnn's loss and optax's SGD (float64), and `training.fit` with full batches, no shuffling and
     SGD follows the same curve to float32 precision.

Command:
  python -m experiments.backprop
Measured (embedded sample: 1,000 training / 1,000 test digits; hidden 32; 11 s on 2 shared CPU cores):
  head                  grad rel. diff (hand loss / jaxnn loss)  train f64  fit f32 (rel)  loss           test acc
  softmax_crossentropy  4.7e-16 / 3.2e-16                        8.9e-16    4.4e-07        2.66 -> 0.083  0.880
  sigmoid_mse           3.6e-16 / 3.6e-16                        2.1e-17    2.7e-07        0.30 -> 0.011  0.874
(grad: hand gradients vs jax.grad, largest difference over the largest entry; train f64: largest loss
difference over the 300 steps, hand-written vs jax.grad; fit f32: training.fit vs the float64 curve.)

Writes runs/backprop/ (or --out): results.json, loss_curves.png.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import data
from jaxnn import losses
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential

Params = dict[str, dict[str, jax.Array]]

# Head -> (output activation, jaxnn loss name, whether the library loss takes one-hot targets).
HEADS = {
    "softmax_crossentropy": ("softmax", "sparse_categorical_crossentropy", False),
    "sigmoid_mse": ("sigmoid", "mean_squared_error", True),
}
# Largest relative differences the self-checks accept: gradients (to the largest entry) and loss curves,
# in float64, and for float32 training against the float64 curve.
GRAD_TOL = 1e-10
TRAIN_TOL = {"float64": 1e-9, "float32": 1e-4}


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int = 1000  # first n training digits, trained on with full-batch gradient descent
  n_test: int = 1000
  hidden: int = 32
  steps: int = 300
  learning_rates: tuple[tuple[str, float], ...] = (("softmax_crossentropy", 1.0), ("sigmoid_mse", 16.0))
  heads: tuple[str, ...] = tuple(HEADS)
  grad_batch: int = 256  # examples in the gradient check
  seed: int = 0
  out: str = "runs/backprop"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


# --------------------------------------------------------------------------------------------- by hand
def sigmoid(z: jax.Array) -> jax.Array:
  return 1.0 / (1.0 + jnp.exp(-z))


def forward(params: Params, x: jax.Array, head: str) -> tuple[jax.Array, jax.Array]:
  """Forward pass; returns the hidden activations h (the backward pass needs them) and the outputs p."""
  w1, b1 = params["dense_0"]["kernel"], params["dense_0"]["bias"]
  w2, b2 = params["dense_1"]["kernel"], params["dense_1"]["bias"]
  h = sigmoid(x @ w1 + b1)
  z2 = h @ w2 + b2
  if head == "softmax_crossentropy":
    e = jnp.exp(z2 - jnp.max(z2, axis=-1, keepdims=True))  # shifting by the max keeps exp finite
    return h, e / jnp.sum(e, axis=-1, keepdims=True)
  return h, sigmoid(z2)


def hand_loss(params: Params, x: jax.Array, t: jax.Array, head: str) -> jax.Array:
  """The loss, batch mean: crossentropy -sum t log p, or the squared error averaged over the outputs."""
  _, p = forward(params, x, head)
  if head == "softmax_crossentropy":
    return -jnp.mean(jnp.sum(t * jnp.log(p), axis=-1))
  return jnp.mean(jnp.mean((p - t) ** 2, axis=-1))


def hand_grads(params: Params, x: jax.Array, t: jax.Array, head: str) -> Params:
  """Backward pass: dL/dparams by the chain rule, from the output layer back to the input layer."""
  batch, classes = t.shape
  h, p = forward(params, x, head)
  if head == "softmax_crossentropy":
    # dL/dz2 = dL/dp * dp/dz2; softmax's Jacobian times -t/p collapses to p - t.
    delta2 = (p - t) / batch
  else:
    # dL/dp = 2 (p - t) / (B K), then sigmoid'(z2) = p (1 - p).
    delta2 = 2.0 * (p - t) / (batch * classes) * p * (1.0 - p)
  grad_w2 = h.T @ delta2  # z2 = h @ w2 + b2
  grad_b2 = jnp.sum(delta2, axis=0)
  # Back through w2 to h, then through the hidden sigmoid: sigmoid'(z1) = h (1 - h).
  delta1 = (delta2 @ params["dense_1"]["kernel"].T) * h * (1.0 - h)
  grad_w1 = x.T @ delta1
  grad_b1 = jnp.sum(delta1, axis=0)
  return {"dense_0": {"kernel": grad_w1, "bias": grad_b1}, "dense_1": {"kernel": grad_w2, "bias": grad_b2}}


@functools.partial(jax.jit, static_argnames=("head", "steps"))
def hand_training(params: Params, x: jax.Array, t: jax.Array, learning_rate: float, *, head: str,
                  steps: int) -> tuple[Params, jax.Array]:
  """`steps` full-batch updates w <- w - lr * dL/dw; returns the params and the loss before each step."""

  def step(p, _):
    loss = hand_loss(p, x, t, head)
    grads = hand_grads(p, x, t, head)
    return jax.tree_util.tree_map(lambda w, g: w - learning_rate * g, p, grads), loss

  return jax.lax.scan(step, params, None, length=steps)


# --------------------------------------------------------------------------------------------- by the library
def build_model(hidden: int, head: str) -> Sequential:
  return Sequential([Dense(hidden, activation="sigmoid"), Dense(10, activation=HEADS[head][0])], name=head)


def library_loss(model: Sequential, head: str):
  """jaxnn's loss of the model's outputs, as a function of (params, x, targets)."""
  loss = losses.get(HEADS[head][1])
  return lambda params, x, y: loss(y, model.apply(params, x))


@functools.partial(jax.jit, static_argnames=("learning_rate", "model", "head", "steps"))
def grad_training(params: Params, x: jax.Array, y: jax.Array, *, learning_rate: float, model: Sequential,
                  head: str, steps: int) -> tuple[Params, jax.Array]:
  """The same descent with jax.grad of jaxnn's loss and optax's SGD (through jaxnn.optimizers).

  The learning rate is static: the optimizer config holds it as a plain number.
  """
  objective = library_loss(model, head)
  tx = optimizers.make(optimizers.OptimizerConfig(name="sgd", learning_rate=learning_rate))

  def step(carry, _):
    p, opt_state = carry
    loss, grads = jax.value_and_grad(objective)(p, x, y)
    updates, opt_state = tx.update(grads, opt_state, p)
    return (jax.tree_util.tree_map(jnp.add, p, updates), opt_state), loss

  (params, _), losses_ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return params, losses_


def tree_difference(a: Params, b: Params) -> dict[str, float]:
  """Largest absolute difference, and the largest one relative to each array's largest entry."""
  a, b = jax.device_get((a, b))  # numpy: no small device program compiled per comparison
  abs_diff = [float(np.max(np.abs(u - v))) for u, v in zip(jax.tree_util.tree_leaves(a),
                                                             jax.tree_util.tree_leaves(b))]
  scale = [float(np.max(np.abs(v))) for v in jax.tree_util.tree_leaves(b)]
  return {"max_abs": max(abs_diff), "max_rel": max(d / s if s else d for d, s in zip(abs_diff, scale))}


def cast(tree: Any, dtype: Any) -> Any:
  return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), tree)


@functools.partial(jax.jit, static_argnames=("model", "head"))
def three_gradients(params: Params, x: jax.Array, t: jax.Array, y_lib: jax.Array, *, model: Sequential,
                    head: str) -> tuple[Params, Params, Params, jax.Array, jax.Array]:
  """Hand gradients, jax.grad of the hand loss, jax.grad of jaxnn's loss, and both losses."""
  hand_value, of_hand_loss = jax.value_and_grad(hand_loss)(params, x, t, head)
  library_value, of_library = jax.value_and_grad(library_loss(model, head))(params, x, y_lib)
  return hand_grads(params, x, t, head), of_hand_loss, of_library, hand_value, library_value


def gradient_check(model: Sequential, head: str, params: Params, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
  """Hand gradients vs jax.grad of the hand loss and of jaxnn's loss, at `params`, in float64."""
  params, x = cast(params, "float64"), jnp.asarray(x, "float64")
  t = jnp.asarray(data.one_hot(y, 10), "float64")
  y_lib = t if HEADS[head][2] else jnp.asarray(y)
  hand, of_hand_loss, of_library, hand_value, library_value = three_gradients(
      params, x, t, y_lib, model=model, head=head)
  result = {
      "vs_jax_grad_of_hand_loss": tree_difference(hand, of_hand_loss),
      "vs_jax_grad_of_jaxnn_loss": tree_difference(hand, of_library),
      "loss_hand": float(hand_value),
      "loss_jaxnn": float(library_value),
      "dtype": str(hand["dense_0"]["kernel"].dtype),
  }
  worst = max(result["vs_jax_grad_of_hand_loss"]["max_rel"], result["vs_jax_grad_of_jaxnn_loss"]["max_rel"])
  if result["dtype"] != "float64" or not worst <= GRAD_TOL:
    raise JaxnnError(f"self-check failed: {head} hand gradients differ from jax.grad "
                     f"(relative {worst:.3g} > {GRAD_TOL:g}; dtype {result['dtype']})")
  return result


def check_close(what: str, a: np.ndarray, b: np.ndarray, dtype: str) -> dict[str, float]:
  """Max abs / relative difference of two loss curves; raises past TRAIN_TOL[dtype]."""
  abs_diff = float(np.max(np.abs(a - b)))
  rel = float(np.max(np.abs(a - b) / np.abs(b)))
  if not rel <= TRAIN_TOL[dtype]:
    raise JaxnnError(f"self-check failed: {what}: loss curves differ by {rel:.3g} relative "
                     f"(> {TRAIN_TOL[dtype]:g})")
  return {"max_abs": abs_diff, "max_rel": rel}


# --------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("backprop", __doc__)
  common.add_data_args(p, n_train=Config.n_train, n_test=Config.n_test)
  p.add_argument("--hidden", type=cli.positive_int, default=Config.hidden, help="hidden units")
  p.add_argument("--steps", type=cli.positive_int, default=Config.steps, help="full-batch training steps")
  p.add_argument("--lr-ce", type=cli.positive_float, default=dict(Config.learning_rates)["softmax_crossentropy"],
                 help="learning rate of the softmax / crossentropy head")
  p.add_argument("--lr-mse", type=cli.positive_float, default=dict(Config.learning_rates)["sigmoid_mse"],
                 help="learning rate of the sigmoid / mse head")
  p.add_argument("--heads", nargs="+", default=list(Config.heads), choices=list(HEADS), help="output heads to run")
  p.add_argument("--grad-batch", type=cli.positive_int, default=Config.grad_batch,
                 help="examples in the gradient check")
  a = p.parse_args(argv)
  return Config(dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train, n_test=a.n_test, hidden=a.hidden,
                steps=a.steps, learning_rates=(("softmax_crossentropy", a.lr_ce), ("sigmoid_mse", a.lr_mse)),
                heads=tuple(a.heads), grad_batch=a.grad_batch, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  ds, x_train, x_test = common.load_flat(types.SimpleNamespace(**dataclasses.asdict(config)))
  y_train, y_test = ds.y_train, ds.y_test
  if ds.num_classes != 10:
    raise JaxnnError(f"expected a dataset with 10 classes, found {ds.num_classes}")
  print(ds.describe())
  t_train = data.one_hot(y_train, 10)
  x_check, y_check = x_train[:config.grad_batch], y_train[:config.grad_batch]

  results, curves = {}, {}
  # Both heads start from the same weights: their params differ only in the output activation, not in shape.
  params = build_model(config.hidden, "softmax_crossentropy").init(jax.random.key(config.seed), x_train.shape[1:])
  for head in config.heads:
    lr = dict(config.learning_rates)[head]
    model = build_model(config.hidden, head)
    y_lib = t_train if HEADS[head][2] else y_train
    loss_name = HEADS[head][1]

    with jax.enable_x64(True):
      # 1. Gradients at the initial params.
      checks = {"float64": gradient_check(model, head, params, x_check, y_check)}

      # 2a. Training in float64: hand-written update vs jax.grad + optax SGD, step for step.
      p64, x64, t64 = cast(params, "float64"), jnp.asarray(x_train, "float64"), jnp.asarray(t_train, "float64")
      hand64, hand_curve64 = hand_training(p64, x64, t64, lr, head=head, steps=config.steps)
      y64 = t64 if HEADS[head][2] else jnp.asarray(y_train)
      grad64, grad_curve64 = grad_training(p64, x64, y64, learning_rate=lr, model=model, head=head,
                                           steps=config.steps)
      hand_curve64, grad_curve64 = np.asarray(hand_curve64), np.asarray(grad_curve64)
      train64 = {"loss": check_close(f"{head} float64 hand vs jax.grad", hand_curve64, grad_curve64, "float64"),
                 "params": tree_difference(hand64, grad64)}
      # 1b. And at the trained params, where the outputs are far from uniform.
      checks["float64_after_training"] = gradient_check(model, head, hand64, x_check, y_check)

    # 2b. jaxnn's fit (float32, full batches, SGD, no shuffling) follows the hand-written descent to float32
    # precision.
    state, history = training.fit(
        model, params, x_train, y_lib, loss=loss_name,
        optimizer=optimizers.OptimizerConfig(name="sgd", learning_rate=lr), epochs=config.steps,
        batch_size=len(x_train), shuffle=False, verbose=config.verbose,
        checkpoint=common.checkpointing(config, head, config.steps))
    fit_curve = np.asarray(history["loss"])
    train32 = {"loss": check_close(f"{head} float32 fit vs float64 hand", fit_curve, hand_curve64, "float32"),
               "params": tree_difference(state.params, hand64)}

    y_test_lib = data.one_hot(y_test, 10) if HEADS[head][2] else y_test
    test = training.evaluate(model, cast(hand64, "float32"), x_test, y_test_lib, loss=loss_name,
                             metrics=["accuracy"])
    results[head] = {
        "model": model.config(), "learning_rate": lr, "steps": config.steps,
        "gradient_check": checks,
        "training_float64_hand_vs_jax_grad": train64,
        "training_float32_fit_vs_hand": train32,
        "loss_first": float(hand_curve64[0]), "loss_last": float(hand_curve64[-1]),
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "loss_curve_hand_float64": hand_curve64.tolist(),
        "loss_curve_jax_grad_float64": grad_curve64.tolist(),
        "loss_curve_fit_float32": fit_curve.tolist(),
    }
    curves[head] = (hand_curve64, grad_curve64, fit_curve)

  files = [plot_curves(curves, os.path.join(config.out, "loss_curves.png"))]
  summary = {
      "dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
      "n_train": int(len(x_train)), "n_test": int(len(x_test)), "config": dataclasses.asdict(config),
      "jax_backend": jax.default_backend(), "heads": results,
      "max_grad_rel_diff_float64": max(r["gradient_check"][k][c]["max_rel"] for r in results.values()
                                       for k in ("float64", "float64_after_training")
                                       for c in ("vs_jax_grad_of_hand_loss", "vs_jax_grad_of_jaxnn_loss")),
      "plots": [os.path.basename(f) for f in files],
  }
  rows = [(head, f"{r['gradient_check']['float64']['vs_jax_grad_of_hand_loss']['max_rel']:.1e}",
           f"{r['gradient_check']['float64']['vs_jax_grad_of_jaxnn_loss']['max_rel']:.1e}",
           f"{r['training_float64_hand_vs_jax_grad']['loss']['max_abs']:.1e}",
           f"{r['training_float32_fit_vs_hand']['loss']['max_rel']:.1e}",
           r["loss_first"], r["loss_last"], r["test_accuracy"]) for head, r in results.items()]
  print()
  return common.finish(config.out, summary, rows, header=(
      "head", "grad_vs_hand_loss", "grad_vs_jaxnn_loss", "train_diff_f64", "fit_rel_diff_f32", "loss_0",
      "loss_end", "test_acc"))


def plot_curves(curves: dict[str, tuple[np.ndarray, ...]], path: str) -> str:
  """Per head: the four loss curves on top of each other, and their differences (log scale)."""
  fig, axes = plt.subplots(2, len(curves), figsize=(5.5 * len(curves), 7), squeeze=False)
  for j, (head, (hand64, grad64, fit32)) in enumerate(curves.items()):
    steps = np.arange(len(hand64))
    ax = axes[0, j]
    ax.plot(steps, hand64, label="hand-written backprop (float64)", linewidth=3, alpha=0.5)
    ax.plot(steps, grad64, "--", label="jax.grad + optax SGD (float64)")
    ax.plot(steps, fit32, ":", label="training.fit, SGD (float32)")
    ax.set_title(f"{head}: training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax = axes[1, j]
    # A floor keeps identical steps (difference exactly 0) on the log axis.
    ax.semilogy(steps, np.maximum(np.abs(hand64 - grad64) / hand64, 1e-18), ".", markersize=3,
                label="jax.grad (float64)")
    ax.semilogy(steps, np.maximum(np.abs(fit32 - hand64) / hand64, 1e-18), ".", markersize=3,
                label="training.fit (float32)")
    ax.set_title(f"{head}: relative difference from the hand-written loss (0 drawn at 1e-18)", fontsize=9)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="backprop")
