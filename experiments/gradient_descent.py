"""Gradient descent for logistic regression four ways, ending at the same weights: by hand, jax.grad, optax, fit.

The lesson's insurance example: will a person buy insurance, from their age and whether they can afford it?
The lesson's CSV is not available, so the data is generated (and says so in results.json): n = 100 people,
age ~ U(18, 65) years, affordability ~ Bernoulli(0.6), and
  bought ~ Bernoulli(sigmoid(5.0 * age / 100 + 1.5 * affordability - 3.0))   (numpy seed 0),
age scaled by 1/100 as in the lesson. The model is y_hat = sigmoid(w1 * age + w2 * affordability + bias),
trained on the log loss with full-batch gradient descent from w1 = w2 = 1, bias = 0:
  (a) by hand, with the derivatives of the log loss written out:
        dL/dw_j = mean((y_hat - y) * x_j),   dL/dbias = mean(y_hat - y);
  (b) the same loop with the gradient from jax.grad of jaxnn's binary_crossentropy;
  (c) optax.sgd steps on the same gradient;
  (d) jaxnn's fit: Sequential([Dense(1, activation="sigmoid")]), binary_crossentropy, sgd,
      batch_size = n, shuffle off, starting from the same weights (passed in as the params dict).
All four must end at the same weights (max abs difference < 1e-4, or the run raises).

Command:
  python -m experiments.gradient_descent
Result (measured on 2 shared CPU cores, 10-16 s): after 2,000 epochs at learning rate 1.0 all four give
w1 = 6.170, w2 = 1.432, bias = -3.562 (log loss 0.5758, training accuracy 0.69, gradient norm 1e-4: the
minimum), max abs difference between methods 1.4e-6 (loss curves: 1.8e-7); the gradient at the start,
formula vs jax.grad, differs by 2e-8. The fitted weights differ from the true ones by sampling noise (100
people). Predictions: a 25-year-old who cannot afford it buys with probability 0.12, a 60-year-old who can
with 0.83 (true model: 0.15 and 0.82).

Writes runs/gradient_descent/ (or --out): results.json, loss.png, predictions.png.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from experiments import common
from jaxnn import cli
from jaxnn import losses as losses_lib
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.layers import Dense
from jaxnn.models import Sequential

TRUE_WEIGHTS = {"w_age": 5.0, "w_affordability": 1.5, "bias": -3.0}  # age in years / 100
INITIAL = {"w1": 1.0, "w2": 1.0, "bias": 0.0}  # the lesson's starting point
PEOPLE = ((25, 0), (25, 1), (40, 0), (40, 1), (60, 0), (60, 1))  # (age, affordability) to predict
TOLERANCE = 1e-4
METHODS = ("by_hand", "jax_grad", "optax_sgd", "jaxnn_fit")


@dataclasses.dataclass(frozen=True)
class Config:
  n: int = 100
  epochs: int = 2000
  learning_rate: float = 1.0
  seed: int = 0
  out: str = "runs/gradient_descent"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("gradient_descent", __doc__)
  p.add_argument("--n", type=cli.positive_int, default=Config.n, help="people in the generated dataset")
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--learning-rate", type=cli.positive_float, default=Config.learning_rate)
  a = p.parse_args(argv)
  return Config(n=a.n, epochs=a.epochs, learning_rate=a.learning_rate, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def insurance_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(age in years, x = [age / 100, affordability] float32, bought 0 / 1 float32) from the documented model."""
  rng = np.random.default_rng(seed)
  age = rng.integers(18, 66, n)
  affordability = (rng.uniform(size=n) < 0.6).astype(np.int64)
  logit = TRUE_WEIGHTS["w_age"] * age / 100 + TRUE_WEIGHTS["w_affordability"] * affordability + TRUE_WEIGHTS["bias"]
  bought = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
  x = np.stack([age / 100, affordability], 1).astype(np.float32)
  return age, x, bought


def log_loss(y: jax.Array, y_hat: jax.Array) -> jax.Array:
  """jaxnn's binary crossentropy (clipped at Keras' epsilon) of (n,) targets and probabilities."""
  return losses_lib.get("binary_crossentropy")(y, y_hat)


# --------------------------------------------------------------------------------------------- (a) - (c)
def by_hand(x: jax.Array, y: jax.Array, lr: float, epochs: int) -> tuple[dict[str, jax.Array], jax.Array]:
  """(a) The lesson's loop: predictions, then each weight moved against its derivative formula."""
  age, affordability = x[:, 0], x[:, 1]

  def epoch(carry, _):
    w1, w2, bias = carry
    y_hat = jax.nn.sigmoid(w1 * age + w2 * affordability + bias)
    loss = log_loss(y, y_hat)
    w1_d = jnp.mean((y_hat - y) * age)
    w2_d = jnp.mean((y_hat - y) * affordability)
    bias_d = jnp.mean(y_hat - y)
    return (w1 - lr * w1_d, w2 - lr * w2_d, bias - lr * bias_d), loss

  start = tuple(jnp.float32(INITIAL[k]) for k in ("w1", "w2", "bias"))
  (w1, w2, bias), history = jax.lax.scan(epoch, start, length=epochs)
  return {"w1": w1, "w2": w2, "bias": bias}, history


def _objective(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
  """The log loss of the logistic model with weights {w1, w2, bias}."""
  return log_loss(y, jax.nn.sigmoid(x @ jnp.stack([params["w1"], params["w2"]]) + params["bias"]))


def with_jax_grad(x: jax.Array, y: jax.Array, lr: float, epochs: int) -> tuple[dict[str, jax.Array], jax.Array]:
  """(b) The same loop, the derivatives from jax.grad of the log loss."""
  def epoch(params, _):
    loss, grads = jax.value_and_grad(_objective)(params, x, y)
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

  return jax.lax.scan(epoch, {k: jnp.float32(v) for k, v in INITIAL.items()}, length=epochs)


def with_optax(x: jax.Array, y: jax.Array, lr: float, epochs: int) -> tuple[dict[str, jax.Array], jax.Array]:
  """(c) optax.sgd: the update rule comes from the library, the gradient from jax.grad."""
  tx = optax.sgd(lr)

  def epoch(carry, _):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(_objective)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  params = {k: jnp.float32(v) for k, v in INITIAL.items()}
  (params, _), history = jax.lax.scan(epoch, (params, tx.init(params)), length=epochs)
  return params, history


@functools.partial(jax.jit, static_argnums=(2, 3))
def three_loops(x: jax.Array, y: jax.Array, lr: float, epochs: int) -> dict[str, Any]:
  """(a), (b) and (c) as one program: an XLA compile costs seconds on 2 busy cores."""
  return {"by_hand": by_hand(x, y, lr, epochs), "jax_grad": with_jax_grad(x, y, lr, epochs),
          "optax_sgd": with_optax(x, y, lr, epochs)}


def with_fit(x: np.ndarray, y: np.ndarray, config: Config, verbose: int) -> tuple[Any, Sequential, Any]:
  """(d) jaxnn's fit, one full-batch step per epoch, from the same initial weights."""
  model = Sequential([Dense(1, activation="sigmoid")], name="logistic_regression")
  params = {"dense_0": {"kernel": np.array([[INITIAL["w1"]], [INITIAL["w2"]]], np.float32),
                        "bias": np.array([INITIAL["bias"]], np.float32)}}
  state, history = training.fit(
      model, params, x, y[:, None], loss="binary_crossentropy",
      optimizer=optimizers.OptimizerConfig("sgd", learning_rate=config.learning_rate), metrics=["accuracy"],
      epochs=config.epochs, batch_size=len(x), shuffle=False, verbose=verbose,
      checkpoint=common.checkpointing(config, "fit", config.epochs))
  return state, model, history


# --------------------------------------------------------------------------------------------- plots
def plot_loss(histories: dict[str, np.ndarray], path: str) -> str:
  """The four loss curves on one plot, and how far each strays from the hand-written loop."""
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
  styles = {"by_hand": ("-", 4), "jax_grad": ("--", 3), "optax_sgd": ("-.", 2), "jaxnn_fit": (":", 2)}
  reference = histories["by_hand"]
  for name, hist in histories.items():
    ls, lw = styles[name]
    epochs = np.arange(1, len(hist) + 1)
    ax1.plot(epochs, hist, ls=ls, lw=lw, label=name)
    if name != "by_hand":
      # The running maximum: the raw difference flickers between 0 and one float32 ulp of the loss.
      worst = np.maximum.accumulate(np.abs(hist - reference))
      ax2.plot(epochs, np.maximum(worst, 1e-9), ls=ls, lw=lw, label=f"{name} vs by_hand")
  ax1.set_xscale("log")
  ax1.set_xlabel("epoch (one full-batch step)")
  ax1.set_ylabel("log loss")
  ax1.set_title("the four methods draw one curve")
  ax2.set_yscale("log")
  ax2.set_xscale("log")
  ax2.set_xlabel("epoch")
  ax2.set_ylabel("max |loss difference| so far (floor 1e-9)")
  ax2.set_title("difference from the hand-written loop: float32 rounding")
  for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
    ax.legend()
  return plots.save(fig, path)


def plot_predictions(age: np.ndarray, x: np.ndarray, y: np.ndarray, weights: dict[str, float], path: str) -> str:
  """The people, the learned and the true P(bought) against age, per affordability."""
  ages = np.linspace(15, 70, 200)
  fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
  rng = np.random.default_rng(1)
  for afford, color in ((0, "C3"), (1, "C0")):
    rows = x[:, 1] == afford
    jitter = rng.uniform(-0.02, 0.02, rows.sum())
    ax.scatter(age[rows], y[rows] + jitter, s=14, color=color, alpha=0.6,
               label=f"people, affordability={afford}")
    learned = 1 / (1 + np.exp(-(weights["w1"] * ages / 100 + weights["w2"] * afford + weights["bias"])))
    true = 1 / (1 + np.exp(-(TRUE_WEIGHTS["w_age"] * ages / 100 + TRUE_WEIGHTS["w_affordability"] * afford
                             + TRUE_WEIGHTS["bias"])))
    ax.plot(ages, learned, color=color, lw=2, label=f"learned P(bought | affordability={afford})")
    ax.plot(ages, true, color=color, lw=1, ls="--", label=f"true model, affordability={afford}")
  ax.axhline(0.5, color="gray", lw=0.8)
  ax.set_xlabel("age (years)")
  ax.set_ylabel("bought insurance")
  ax.set_title("logistic regression on the generated insurance data")
  ax.legend(fontsize=7, loc="upper left")
  return plots.save(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  age, x, y = insurance_data(config.n, config.seed)
  x_d, y_d = jnp.asarray(x), jnp.asarray(y)

  # The derivative formulas against jax.grad at the starting point.
  start = {k: jnp.float32(v) for k, v in INITIAL.items()}
  y_hat = jax.nn.sigmoid(x_d @ jnp.stack([start["w1"], start["w2"]]) + start["bias"])
  formula = jnp.stack([jnp.mean((y_hat - y_d) * x_d[:, 0]), jnp.mean((y_hat - y_d) * x_d[:, 1]), jnp.mean(y_hat - y_d)])
  autodiff = jax.grad(_objective)(start, x_d, y_d)
  gradient_diff = float(jnp.abs(formula - jnp.stack([autodiff["w1"], autodiff["w2"], autodiff["bias"]])).max())

  weights, histories = {}, {}
  for name, (params, history) in three_loops(x_d, y_d, config.learning_rate, config.epochs).items():
    weights[name] = {k: float(v) for k, v in params.items()}
    histories[name] = np.asarray(history)
  state, model, history = with_fit(x, y, config, config.verbose)
  kernel, bias = np.asarray(state.params["dense_0"]["kernel"])[:, 0], np.asarray(state.params["dense_0"]["bias"])
  weights["jaxnn_fit"] = {"w1": float(kernel[0]), "w2": float(kernel[1]), "bias": float(bias[0])}
  histories["jaxnn_fit"] = np.asarray(history["loss"], np.float32)

  table = np.array([[weights[m][k] for k in ("w1", "w2", "bias")] for m in METHODS])
  max_diff = float(np.abs(table - table[0]).max())
  loss_diff = float(max(np.abs(histories[m] - histories["by_hand"]).max() for m in METHODS))
  if not (max_diff < TOLERANCE and gradient_diff < 1e-5):
    raise AssertionError(f"self-check failed: methods differ by {max_diff} (tolerance {TOLERANCE}), "
                         f"gradient formula vs jax.grad by {gradient_diff}")

  people = np.array([[a / 100, f] for a, f in PEOPLE], np.float32)
  predicted = training.predict(model, state.params, people)[:, 0]
  true_logit = people @ np.array([TRUE_WEIGHTS["w_age"], TRUE_WEIGHTS["w_affordability"]]) + TRUE_WEIGHTS["bias"]
  predictions = [{"age": a, "affordability": f, "p_bought": float(p), "p_true_model": float(1 / (1 + np.exp(-t))),
                  "prediction": int(p > 0.5)} for (a, f), p, t in zip(PEOPLE, predicted, true_logit)]
  # Did gradient descent reach the minimum of the log loss (the maximum-likelihood weights)?
  final_grad = jax.grad(_objective)({k: jnp.float32(v) for k, v in weights["by_hand"].items()}, x_d, y_d)
  final_grad_norm = float(jnp.sqrt(sum(g ** 2 for g in final_grad.values())))
  final = training.evaluate(model, state.params, x, y[:, None], loss="binary_crossentropy", metrics=["accuracy"])

  out = config.out
  files = [plot_loss(histories, os.path.join(out, "loss.png")),
           plot_predictions(age, x, y, weights["jaxnn_fit"], os.path.join(out, "predictions.png"))]
  results = {
      "config": dataclasses.asdict(config),
      "data": {"source": "generated (the lesson's insurance CSV is not available)",
               "model": "bought ~ Bernoulli(sigmoid(w_age * age / 100 + w_affordability * affordability + bias))",
               "true_weights": TRUE_WEIGHTS, "seed": config.seed, "n": config.n,
               "age": "integers uniform in [18, 65]", "affordability": "Bernoulli(0.6)",
               "bought_fraction": float(y.mean())},
      "initial_weights": INITIAL, "weights": weights, "max_abs_diff_between_methods": max_diff,
      "max_abs_diff_loss_history": loss_diff, "gradient_formula_vs_jax_grad_max_abs_diff": gradient_diff,
      "tolerance": TOLERANCE, "methods_agree": True, "final_gradient_norm": final_grad_norm,
      "final_loss": final["loss"], "final_accuracy": final["accuracy"],
      "predictions": predictions, "loss_history": {k: v.tolist() for k, v in histories.items()},
      "plots": [os.path.basename(f) for f in files],
  }
  print(cli.table([(p["age"], p["affordability"], p["p_bought"], p["p_true_model"], p["prediction"])
                   for p in predictions], header=("age", "affordability", "P(bought), fit", "P, true model",
                                                  "buys?")))
  print()
  rows = [(m, weights[m]["w1"], weights[m]["w2"], weights[m]["bias"], float(histories[m][-1]),
           f"{float(np.abs(table[i] - table[0]).max()):.1e}") for i, m in enumerate(METHODS)]
  rows.append(("true model", TRUE_WEIGHTS["w_age"], TRUE_WEIGHTS["w_affordability"], TRUE_WEIGHTS["bias"], "-", "-"))
  return common.finish(out, results, rows, header=("method", "w1 (age/100)", "w2 (afford)", "bias",
                                                   "last loss", "max |diff| vs hand"))


if __name__ == "__main__":
  cli.run(main, prog="gradient_descent")
