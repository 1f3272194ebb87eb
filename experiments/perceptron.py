"""The perceptron: one step neuron and its learning rule learn AND and OR, never XOR; a 2-layer MLP does.

The lesson's neuron is y_hat = step(w1 x1 + w2 x2 + b) (jaxnn's `Dense(1, activation="step")`), trained one
example at a time by the perceptron rule, written out here because it is the point of the lesson:
  w <- w + lr * (y - y_hat) * x,    b <- b + lr * (y - y_hat).
It changes the weights only on a mistake. The step function has zero gradient everywhere (recorded below),
so gradient descent could not train this neuron: the rule is not a gradient step.

Why XOR is out of reach: a perceptron says 1 exactly on one side of the line w . x + b = 0. For XOR it would
need b < 0 (0,0 -> 0), w1 + b >= 0 and w2 + b >= 0 (0,1 and 1,0 -> 1), and w1 + w2 + b < 0 (1,1 -> 0).
Adding the middle two gives w1 + w2 + b >= -b > 0, a contradiction: no line separates XOR. The run shows it
too: the rule's end-of-epoch weights repeat (it cycles forever, never at 4/4), and a grid search over
(w1, w2, b) never does better than 3/4. A hidden layer bends the boundary: a 4-tanh-unit MLP gets 4/4.

With zero initial weights the learning rate only scales every weight (w / lr is an integer vector for 0/1
inputs), so lr = 1 loses nothing and keeps the arithmetic exact, which makes the cycle check exact.

Command:
  python -m experiments.perceptron
Result (measured on 2 shared CPU cores, 8-12 s): AND learned in 5 epochs (w = (2, 1), b = -3), OR in 3
(w = (1, 1), b = -1). XOR: never more than 2/4 correct at any point of 100 epochs; from epoch 2 on every epoch
makes 4 mistakes and returns to w = (-1, 0), b = 0 (a cycle of period 1); the grid's best line gets 3/4
(none of its 68,921 candidates 4/4). The MLP (2-4-1, tanh, adam lr 0.1, 300 epochs) classifies XOR 4/4
(outputs 0.00005, 0.9994, 0.9983, 0.0016).

Writes runs/perceptron/ (or --out): results.json, decision_boundaries.png, perceptron_training.png.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import activations
from jaxnn import cli
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.layers import Dense
from jaxnn.models import Sequential

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
GATES = {"AND": (0, 0, 0, 1), "OR": (0, 1, 1, 1), "XOR": (0, 1, 1, 0)}
NEURON = Sequential([Dense(1, activation="step")], name="perceptron")

XOR_ARGUMENT = (
    "A perceptron outputs 1 on one side of the line w.x + b = 0. XOR needs b < 0 (00 -> 0), w1 + b >= 0 and "
    "w2 + b >= 0 (01, 10 -> 1), w1 + w2 + b < 0 (11 -> 0). The middle two add to w1 + w2 + 2b >= 0, so "
    "w1 + w2 + b >= -b > 0: a contradiction. No line separates XOR.")


@dataclasses.dataclass(frozen=True)
class Config:
  learning_rate: float = 1.0  # perceptron rule; with zero init it only scales the weights
  max_epochs: int = 100  # epochs of the rule; AND / OR stop at their first epoch without a mistake
  grid_points: int = 41  # per axis, for the XOR brute-force search over (w1, w2, b) in [-2, 2]^3
  mlp_hidden: int = 4
  mlp_activation: str = "tanh"
  mlp_epochs: int = 300
  mlp_learning_rate: float = 0.1
  seed: int = 0
  out: str = "runs/perceptron"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("perceptron", __doc__)
  p.add_argument("--learning-rate", type=cli.positive_float, default=Config.learning_rate,
                 help="perceptron rule's rate")
  p.add_argument("--max-epochs", type=cli.positive_int, default=Config.max_epochs,
                 help="epochs of the perceptron rule (XOR runs them all)")
  p.add_argument("--grid-points", type=cli.positive_int, default=Config.grid_points,
                 help="grid points per axis of the XOR weight search")
  p.add_argument("--mlp-hidden", type=cli.positive_int, default=Config.mlp_hidden)
  p.add_argument("--mlp-activation", default=Config.mlp_activation, choices=("tanh", "sigmoid", "relu"))
  p.add_argument("--mlp-epochs", type=cli.positive_int, default=Config.mlp_epochs)
  p.add_argument("--mlp-learning-rate", type=cli.positive_float, default=Config.mlp_learning_rate)
  a = p.parse_args(argv)
  return Config(learning_rate=a.learning_rate, max_epochs=a.max_epochs, grid_points=a.grid_points,
                mlp_hidden=a.mlp_hidden, mlp_activation=a.mlp_activation, mlp_epochs=a.mlp_epochs,
                mlp_learning_rate=a.mlp_learning_rate, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def neuron_params(w: np.ndarray, b: float) -> dict[str, Any]:
  """The rule's (w, b) as the params of jaxnn's `Dense(1, activation="step")`."""
  return {"dense_0": {"kernel": np.asarray(w, np.float32).reshape(2, 1),
                      "bias": np.asarray([b], np.float32)}}


_forward = jax.jit(NEURON.apply)


def predict(w: np.ndarray, b: float, x: np.ndarray = INPUTS) -> np.ndarray:
  """The neuron's 0 / 1 outputs for the rows of x (jaxnn's forward pass)."""
  return np.asarray(_forward(neuron_params(w, b), x))[:, 0]


def train_perceptron(y: Sequence[int], lr: float, max_epochs: int, *, stop_when_learned: bool) -> dict[str, Any]:
  """The perceptron rule, one example at a time in a fixed order; records every epoch.

  Stops at the first epoch without a mistake, or, unless `stop_when_learned` is off, keeps going to
  `max_epochs`. Also finds the first repeat of an end-of-epoch state: the rule is deterministic, so from
  there on it cycles through the same states forever.
  """
  y = np.asarray(y, np.float32)
  w, b = np.zeros(2, np.float32), np.float32(0.0)
  history, seen, cycle = [], {}, None
  best_correct = int((predict(w, b) == y).sum())
  learned_epoch = None
  for epoch in range(1, max_epochs + 1):
    mistakes, trace = 0, []
    for x_i, y_i in zip(INPUTS, y):
      error = y_i - predict(w, b, x_i[None])[0]
      if error != 0:
        mistakes += 1
        w = w + np.float32(lr * error) * x_i
        b = b + np.float32(lr * error)
        best_correct = max(best_correct, int((predict(w, b) == y).sum()))
      trace.append([*w.tolist(), float(b)])
    correct = int((predict(w, b) == y).sum())
    history.append({"epoch": epoch, "mistakes": mistakes, "correct": correct, "w": w.tolist(), "b": float(b),
                    "after_each_example": trace})
    if correct == 4 and learned_epoch is None:
      learned_epoch = epoch
    if mistakes == 0 and stop_when_learned:
      break
    # w / lr is an integer vector (zero start, 0/1 inputs, errors of +-1): an exact key for the state.
    state = tuple(int(v) for v in np.rint(np.append(w, b) / lr))
    if cycle is None and state in seen:
      cycle = {"first_repeat_epoch": epoch, "repeats_epoch": seen[state], "period": epoch - seen[state],
               "correct_in_cycle": [h["correct"] for h in history[seen[state]:epoch]],
               "w_b_after_each_example": [t for h in history[seen[state]:epoch] for t in h["after_each_example"]]}
    seen.setdefault(state, epoch)
  return {"learned": learned_epoch is not None, "epochs_to_learn": learned_epoch, "epochs_run": len(history),
          "w": w.tolist(), "b": float(b), "outputs": predict(w, b).astype(int).tolist(),
          "correct": int((predict(w, b) == y).sum()), "best_correct_ever": best_correct,
          "max_correct_at_epoch_end": max(h["correct"] for h in history), "cycle": cycle, "history": history}


def grid_search(y: Sequence[int], points: int) -> dict[str, Any]:
  """Best number of correct outputs of step(w . x + b) over a grid of (w1, w2, b) in [-2, 2]^3."""
  axis = np.linspace(-2.0, 2.0, points, dtype=np.float32)
  w1, w2, b = (g.reshape(-1) for g in np.meshgrid(axis, axis, axis, indexing="ij"))
  z = INPUTS[:, :1] * w1 + INPUTS[:, 1:] * w2 + b  # (4, points^3)
  correct = (np.asarray(activations.get("step")(z)) == np.asarray(y, np.float32)[:, None]).sum(0)
  i = int(correct.argmax())
  return {"points_per_axis": points, "range": [-2.0, 2.0], "candidates": int(correct.size),
          "max_correct": int(correct[i]), "best": {"w": [float(w1[i]), float(w2[i])], "b": float(b[i])},
          "candidates_with_4": int((correct == 4).sum())}


def train_mlp(config: Config) -> tuple[Sequential, Any, dict[str, Any]]:
  """A 2-layer MLP on XOR with jaxnn's fit (full batch of the 4 points)."""
  model = Sequential([Dense(config.mlp_hidden, activation=config.mlp_activation),
                      Dense(1, activation="sigmoid")], name=f"mlp_2_{config.mlp_hidden}_1")
  params = model.init(jax.random.key(config.seed), (2,))
  y = np.asarray(GATES["XOR"], np.float32)[:, None]
  state, history = training.fit(
      model, params, INPUTS, y, loss="binary_crossentropy",
      optimizer=optimizers.OptimizerConfig("adam", learning_rate=config.mlp_learning_rate),
      metrics=["accuracy"], epochs=config.mlp_epochs, batch_size=4, verbose=config.verbose,
      checkpoint=common.checkpointing(config, "xor_mlp", config.mlp_epochs))
  probs = training.predict(model, state.params, INPUTS)[:, 0]
  classes = training.predict_classes(model, state.params, INPUTS)
  return model, state.params, {
      "model": model.config(), "epochs": config.mlp_epochs, "final_loss": history["loss"][-1],
      "probabilities": probs.tolist(), "outputs": classes.tolist(),
      "correct": int((classes == np.asarray(GATES["XOR"])).sum()), "loss_history": history["loss"]}


def plot_boundaries(perceptrons: dict[str, dict[str, Any]], mlp: tuple[Sequential, Any], path: str) -> str:
  """Predicted class over the unit square for AND, OR, XOR (perceptron) and XOR (MLP)."""
  axis = np.linspace(-0.5, 1.5, 201, dtype=np.float32)
  gx, gy = np.meshgrid(axis, axis)
  grid = np.stack([gx.ravel(), gy.ravel()], 1)
  panels = [(f"{g}: perceptron", GATES[g], predict(np.array(r["w"]), r["b"], grid), r) for g, r in perceptrons.items()]
  model, params = mlp
  mlp_probs = training.predict(model, params, grid)[:, 0]
  panels.append(("XOR: 2-layer MLP", GATES["XOR"], mlp_probs, None))
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3), constrained_layout=True)
  for ax, (title, y, z, r) in zip(axes, panels):
    ax.contourf(gx, gy, z.reshape(gx.shape), levels=[-0.01, 0.5, 1.01], colors=["#f3c6c6", "#c6d8f3"])
    if r is None:
      ax.contour(gx, gy, z.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.5)
    elif any(r["w"]):
      w1, w2 = r["w"]
      if w2 != 0:
        ax.plot(axis, -(w1 * axis + r["b"]) / w2, "k-", lw=1.5)
      else:
        ax.axvline(-r["b"] / w1, color="k", lw=1.5)
    for (x1, x2), t in zip(INPUTS, y):
      ax.scatter(x1, x2, s=160, c="C0" if t else "C3", marker="o" if t else "X", edgecolors="k", zorder=3)
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(-0.5, 1.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
  fig.suptitle("decision regions (blue: output 1, red: output 0); markers: targets (o = 1, x = 0)")
  return plots.save(fig, path)


def plot_training(perceptrons: dict[str, dict[str, Any]], mlp_loss: Sequence[float], path: str) -> str:
  """Correct outputs per epoch of the rule (XOR never reaches 4), and the MLP's loss."""
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
  for i, (gate, r) in enumerate(perceptrons.items()):
    epochs = [h["epoch"] for h in r["history"]]
    ax1.plot(epochs, [h["correct"] for h in r["history"]], "o-", color=f"C{i}", ms=3, label=gate)
  ax1.axhline(4, color="gray", ls=":", lw=1)
  ax1.set_ylim(-0.2, 4.4)
  ax1.set_xscale("log")
  ax1.set_xlabel("epoch")
  ax1.set_ylabel("correct of 4 (end of epoch)")
  ax1.set_title("perceptron rule")
  ax1.legend()
  ax2.plot(range(1, len(mlp_loss) + 1), mlp_loss, color="C2")
  ax2.set_yscale("log")
  ax2.set_xlabel("epoch")
  ax2.set_ylabel("binary crossentropy")
  ax2.set_title("2-layer MLP on XOR (fit)")
  return plots.save(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  # The forward pass is jaxnn's Dense + step; check it against the sum written out.
  w_check, b_check = np.array([0.7, -1.3], np.float32), np.float32(0.4)
  by_hand = (INPUTS @ w_check + b_check >= 0).astype(np.float32)
  forward_diff = float(np.abs(predict(w_check, b_check) - by_hand).max())
  step_grad = jax.vmap(jax.grad(activations.get("step")))(jnp.array([-2.0, -0.5, 0.5, 2.0]))
  if forward_diff != 0.0 or np.any(np.asarray(step_grad) != 0.0):
    raise AssertionError(f"self-check failed: forward diff {forward_diff}, step gradient {step_grad}")

  perceptrons = {gate: train_perceptron(y, config.learning_rate, config.max_epochs,
                                        stop_when_learned=gate != "XOR")
                 for gate, y in GATES.items()}
  xor = perceptrons["XOR"]
  search = {gate: grid_search(y, config.grid_points) for gate, y in GATES.items()}
  model, params, mlp = train_mlp(config)

  out = config.out
  files = [plot_boundaries(perceptrons, (model, params), os.path.join(out, "decision_boundaries.png")),
           plot_training(perceptrons, mlp["loss_history"], os.path.join(out, "perceptron_training.png"))]
  results = {
      "config": dataclasses.asdict(config), "inputs": INPUTS.astype(int).tolist(),
      "targets": {g: list(y) for g, y in GATES.items()},
      "rule": "w <- w + lr * (y - y_hat) * x; b <- b + lr * (y - y_hat); y_hat = step(w . x + b)",
      "perceptron": perceptrons,
      "xor_no_line_argument": XOR_ARGUMENT, "grid_search": search,
      "xor_never_learned": (not xor["learned"]) and xor["best_correct_ever"] < 4,
      "xor_cycles": xor["cycle"] is not None,
      "checks": {"forward_vs_hand_max_abs_diff": forward_diff,
                 "step_gradient_at": {"x": [-2.0, -0.5, 0.5, 2.0], "grad": np.asarray(step_grad).tolist()}},
      "mlp_xor": mlp, "plots": [os.path.basename(f) for f in files],
  }
  rows = []
  for gate, r in perceptrons.items():
    if r["learned"]:
      note = f"learned at epoch {r['epochs_to_learn']}"
    else:
      cycle = (f"weights cycle (period {r['cycle']['period']}) from epoch {r['cycle']['repeats_epoch']}"
               if r["cycle"] else "no cycle found")
      note = f"best {r['best_correct_ever']}/4 in {r['epochs_run']} epochs; {cycle}"
    rows.append((gate, "perceptron rule", f"{r['correct']}/4", f"{search[gate]['max_correct']}/4", note))
  rows.append(("XOR", f"MLP 2-{config.mlp_hidden}-1 {config.mlp_activation}", f"{mlp['correct']}/4", "-",
               f"fit {config.mlp_epochs} epochs, loss {mlp['final_loss']:.4f}"))
  return common.finish(out, results, rows, header=("problem", "model", "correct", "grid best", "note"))


if __name__ == "__main__":
  cli.run(main, prog="perceptron")
