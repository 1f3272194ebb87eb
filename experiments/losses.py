"""Loss functions by hand: MAE, MSE and log loss from their formulas, checked against jaxnn's Keras-named losses.

The lesson computes the losses on a small y_true / y_predicted pair, here
  y_true      = [0,   0,   1,   1,   0,   1,   0,   1,   1,   1  ]
  y_predicted = [0.3, 0.7, 1.0, 0.0, 0.5, 0.9, 0.1, 0.6, 0.2, 1.0]
with predictions of exactly 0 and 1 on purpose: log(0) makes the unclipped log loss infinite (and
0 * log(0) makes it nan), so the predictions are first clipped to [eps, 1 - eps] with eps = 1e-7 (Keras'
epsilon, `jaxnn.losses.EPSILON`). The formulas, in jnp:
  MAE = mean(|y - p|),  MSE = mean((y - p)^2),  log loss = -mean(y log p + (1 - y) log(1 - p)).
Each must equal `losses.get("mean_absolute_error" | "mean_squared_error" | "binary_crossentropy")` to
1e-6 (the run raises otherwise). Sparse and categorical crossentropy must agree on one-hot labels.

Why log loss and not MSE for logistic regression: for p = sigmoid(w x + b) the log loss is convex in
(w, b) (its Hessian is mean(p (1 - p) [x, 1][x, 1]^T), positive semi-definite), while MSE through the
sigmoid is not: it is bounded (0 <= MSE <= 1) and a convex function bounded on a whole line is constant
there, so along any line where it varies it must bend down somewhere. The run measures it on a small 1-D
dataset (drawn from y ~ Bernoulli(sigmoid(2 x + 0.5)), x ~ U(-2, 2), n = 20, seed 0): the smallest Hessian
eigenvalue over a (w, b) grid, and the second derivative along the line b = 0. The log loss there is jaxnn's
binary_crossentropy with from_logits=True: from probabilities, float32 cannot resolve 1 - p once the sigmoid
saturates, and its second derivatives come out as noise (negative ones included).

Command:
  python -m experiments.losses
Result (measured on 2 shared CPU cores, 8-13 s): MAE 0.3900, MSE 0.2650, log loss 2.0703, each equal to
jaxnn's (difference 0.0); the unclipped log loss is nan; sparse and categorical crossentropy (from
probabilities and from logits) agree to 0.0. MSE's Hessian has a negative eigenvalue at 97 % of the grid
(w, b in [-6, 6], minimum -0.162 at w = -1.2, b = -0.3) and its second derivative along b = 0 runs from
-0.158 to +0.246; the log loss's smallest eigenvalue on the grid is +0.0008, and jax.hessian matches its
formula to 4e-8.

Writes runs/losses/ (or --out): results.json, loss_surface.png, loss_along_line.png, per_example_loss.png.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import data
from jaxnn import losses as losses_lib
from jaxnn import plots

Y_TRUE = (0, 0, 1, 1, 0, 1, 0, 1, 1, 1)
Y_PREDICTED = (0.3, 0.7, 1.0, 0.0, 0.5, 0.9, 0.1, 0.6, 0.2, 1.0)
TRUE_W, TRUE_B = 2.0, 0.5  # the 1-D logistic model the surface's data is drawn from
TOLERANCE = 1e-5  # hand vs library, float32 on both sides


@dataclasses.dataclass(frozen=True)
class Config:
  n_points: int = 20  # the 1-D logistic dataset
  grid: int = 81  # grid points per axis over (w, b) in [-span, span]^2
  span: float = 6.0
  classes: int = 5  # the sparse-vs-categorical example: examples x classes
  examples: int = 8
  seed: int = 0
  out: str = "runs/losses"
  verbose: int = 0
  resume: bool = False  # --resume: accepted by every experiment; this lesson has no fit to resume
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("losses", __doc__)
  p.add_argument("--n-points", type=cli.positive_int, default=Config.n_points, help="size of the 1-D dataset")
  # 2 points per axis are only the corners, where MSE's negative curvature is not seen (measured: --grid 2 fails
  # the self-check, 3 passes).
  p.add_argument("--grid", type=cli.int_at_least(3), default=Config.grid, help="grid points per axis over (w, b)")
  p.add_argument("--span", type=cli.positive_float, default=Config.span, help="the grid covers [-span, span]^2")
  a = p.parse_args(argv)
  return Config(n_points=a.n_points, grid=a.grid, span=a.span, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


# --------------------------------------------------------------------------------------------- by hand
def mae_by_hand(y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
  """Mean absolute error from its formula."""
  return jnp.mean(jnp.abs(y_true - y_pred))


def mse_by_hand(y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
  """Mean squared error from its formula."""
  return jnp.mean(jnp.square(y_true - y_pred))


def log_loss_by_hand(y_true: jax.Array, y_pred: jax.Array, eps: float | None = losses_lib.EPSILON) -> jax.Array:
  """Binary crossentropy from its formula; eps=None skips the clipping (and meets log(0))."""
  p = y_pred if eps is None else jnp.clip(y_pred, eps, 1.0 - eps)
  return -jnp.mean(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))


PAIRS = {"mean_absolute_error": mae_by_hand, "mean_squared_error": mse_by_hand,
         "binary_crossentropy": log_loss_by_hand}


@jax.jit
def _course_values(y_true: jax.Array, y_pred: jax.Array) -> dict[str, Any]:
  """Every value of the lesson's example in one compiled call (op-by-op dispatch is slow on a busy CPU)."""
  values = {name: (by_hand(y_true, y_pred), losses_lib.get(name)(y_true, y_pred)) for name, by_hand in PAIRS.items()}
  values["unclipped"] = log_loss_by_hand(y_true, y_pred, eps=None)
  values["unclipped_terms"] = -(y_true * jnp.log(y_pred) + (1 - y_true) * jnp.log(1 - y_pred))
  return values


def course_example() -> dict[str, Any]:
  """The three losses by hand and from jaxnn on the lesson's arrays."""
  values = jax.device_get(_course_values(jnp.asarray(Y_TRUE, jnp.float32), jnp.asarray(Y_PREDICTED, jnp.float32)))
  out = {}
  for name in PAIRS:
    hand, library = float(values[name][0]), float(values[name][1])
    out[name] = {"by_hand": hand, "jaxnn": library, "abs_diff": abs(hand - library)}
  # nan / inf are not valid JSON numbers: written as strings.
  out["binary_crossentropy"]["unclipped"] = str(float(values["unclipped"]))
  out["binary_crossentropy"]["unclipped_terms"] = [str(float(t)) for t in values["unclipped_terms"]]
  return out


@jax.jit
def _crossentropies(logits: jax.Array, labels: jax.Array, one_hot: jax.Array) -> dict[str, jax.Array]:
  """The same crossentropy five ways: sparse, categorical, by hand, and both from logits."""
  probs = jax.nn.softmax(logits)
  sparse, categorical = "sparse_categorical_crossentropy", "categorical_crossentropy"
  return {
      "sparse": losses_lib.get(sparse)(labels, probs),
      "categorical": losses_lib.get(categorical)(one_hot, probs),
      "by_hand": -jnp.mean(jnp.log(probs[jnp.arange(labels.shape[0]), labels])),
      "sparse_from_logits": losses_lib.get(sparse, from_logits=True)(labels, logits),
      "categorical_from_logits": losses_lib.get(categorical, from_logits=True)(one_hot, logits),
  }


def sparse_vs_categorical(config: Config) -> dict[str, Any]:
  """Sparse crossentropy on integer labels equals categorical crossentropy on their one-hot rows."""
  rng = np.random.default_rng(config.seed)
  logits = rng.normal(0.0, 2.0, (config.examples, config.classes)).astype(np.float32)
  labels = rng.integers(0, config.classes, config.examples).astype(np.int32)
  values = {k: float(v) for k, v in _crossentropies(logits, labels, data.one_hot(labels, config.classes)).items()}
  spread = max(values.values()) - min(values.values())
  return {"labels": labels.tolist(), "values": values, "max_abs_diff": spread}


# --------------------------------------------------------------------------------------------- surface
def logistic_data(config: Config) -> tuple[np.ndarray, np.ndarray]:
  """x ~ U(-2, 2), y ~ Bernoulli(sigmoid(TRUE_W x + TRUE_B)), from the seed."""
  rng = np.random.default_rng(config.seed)
  x = rng.uniform(-2.0, 2.0, config.n_points).astype(np.float32)
  y = (rng.uniform(size=config.n_points) < 1.0 / (1.0 + np.exp(-(TRUE_W * x + TRUE_B)))).astype(np.float32)
  return x, y


def surface_losses(x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[jax.Array], jax.Array]]:
  """theta = (w, b) -> jaxnn's loss of the model p = sigmoid(w x + b), for log loss and MSE.

  The log loss takes the logits (`from_logits=True`): from probabilities, float32 rounds 1 - p to a
  multiple of 6e-8 once the sigmoid saturates (|w x + b| > ~15), and the second derivatives there are noise.
  """
  log_loss = losses_lib.get("binary_crossentropy", from_logits=True)
  mse = losses_lib.get("mean_squared_error")
  return {"log_loss": lambda theta: log_loss(y, theta[0] * x + theta[1]),
          "mse": lambda theta: mse(y, jax.nn.sigmoid(theta[0] * x + theta[1]))}


def _curvature_arrays(fn: Callable[[jax.Array], jax.Array], thetas: jax.Array,
                      w_line: jax.Array) -> tuple[jax.Array, ...]:
  """Loss and smallest Hessian eigenvalue at each theta; loss and d^2/dw^2 along b = 0."""
  values = jax.vmap(fn)(thetas)
  min_eig = jax.vmap(lambda t: jnp.linalg.eigvalsh(jax.hessian(fn)(t))[0])(thetas)
  on_line = lambda w: fn(jnp.stack([w, jnp.zeros_like(w)]))
  return values, min_eig, jax.vmap(on_line)(w_line), jax.vmap(jax.grad(jax.grad(on_line)))(w_line)


CHECK_POINTS = ((0.0, 0.0), (2.0, 0.5), (-3.0, 1.0), (4.0, -2.0))  # (w, b) where the Hessian formula is checked


def curvature(config: Config, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray], float]:
  """Losses and smallest Hessian eigenvalues over the (w, b) grid, second derivatives along b = 0, and
  the largest difference between jax.hessian of the log loss and its formula mean(p (1 - p) [x, 1][x, 1]^T)."""
  axis = np.linspace(-config.span, config.span, config.grid, dtype=np.float32)
  ww, bb = np.meshgrid(axis, axis)  # rows: b, columns: w
  thetas = np.stack([ww.ravel(), bb.ravel()], 1)
  fns = surface_losses(x, y)

  @jax.jit  # one program for everything: an XLA compile costs seconds on 2 busy cores
  def analyse(thetas, w_line, points):
    grids = {name: _curvature_arrays(fn, thetas, w_line) for name, fn in fns.items()}
    return grids, jax.vmap(jax.hessian(fns["log_loss"]))(points)

  grids, hessians = jax.device_get(analyse(thetas, axis, np.asarray(CHECK_POINTS, np.float32)))
  features = np.stack([x, np.ones_like(x)], 1).astype(np.float64)
  p = 1 / (1 + np.exp(-(features @ np.asarray(CHECK_POINTS).T)))  # (n, points)
  formula = np.einsum("nk,ni,nj->kij", p * (1 - p), features, features) / len(x)
  hessian_diff = float(np.abs(hessians - formula).max())

  summary, arrays = {}, {"w": axis, "b": axis}
  for name, (values, min_eig, along, second) in grids.items():
    i = int(min_eig.argmin())
    summary[name] = {
        "min_hessian_eigenvalue": float(min_eig[i]), "at": {"w": float(thetas[i, 0]), "b": float(thetas[i, 1])},
        "fraction_of_grid_with_negative_eigenvalue": float((min_eig < -1e-6).mean()),
        "line_b0_second_derivative_min": float(second.min()), "line_b0_second_derivative_max": float(second.max()),
        "line_b0_mixed_sign": bool(second.min() < -1e-6 and second.max() > 1e-6),
        "min_loss_on_grid": float(values.min()),
    }
    arrays[name] = values.reshape(ww.shape)
    arrays[f"{name}_min_eig"] = min_eig.reshape(ww.shape)
    arrays[f"{name}_line"] = along
    arrays[f"{name}_second"] = second
  return summary, arrays, hessian_diff


# --------------------------------------------------------------------------------------------- plots
def plot_surface(arrays: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, path: str) -> str:
  """Contours of both losses over (w, b), the non-convex region hatched."""
  ww, bb = np.meshgrid(arrays["w"], arrays["b"])
  fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
  for ax, name, title in ((axes[0], "log_loss", "log loss (binary crossentropy)"),
                          (axes[1], "mse", "MSE through the sigmoid")):
    cs = ax.contourf(ww, bb, arrays[name], levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax)
    negative = arrays[f"{name}_min_eig"] < -1e-6
    if negative.any():
      ax.contourf(ww, bb, negative.astype(float), levels=[0.5, 1.5], colors="none", hatches=["//"])
      ax.contour(ww, bb, negative.astype(float), levels=[0.5], colors="w", linewidths=1)
    ax.axhline(0.0, color="r", ls="--", lw=1)
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title(f"{title}\nhatched: Hessian has a negative eigenvalue (non-convex)")
  fig.suptitle(f"p = sigmoid(w x + b) on {len(x)} points ({int(y.sum())} positive); red: the line b = 0")
  return plots.save(fig, path)


def plot_line(arrays: dict[str, np.ndarray], path: str) -> str:
  """Both losses along b = 0, and their second derivatives there."""
  w = arrays["w"]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
  for i, (name, label) in enumerate((("log_loss", "log loss"), ("mse", "MSE"))):
    ax1.plot(w, arrays[f"{name}_line"], color=f"C{i}", label=label)
    ax2.plot(w, arrays[f"{name}_second"], color=f"C{i}", label=label)
  ax2.axhline(0.0, color="k", lw=0.8)
  ax1.set_xlabel("w (b = 0)")
  ax1.set_ylabel("loss")
  ax1.set_title("loss along the line b = 0")
  ax2.set_xlabel("w (b = 0)")
  ax2.set_ylabel("d^2 loss / dw^2")
  ax2.set_title("second derivative: MSE's changes sign, log loss's stays >= 0")
  for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
    ax.legend()
  return plots.save(fig, path)


def plot_per_example(path: str) -> str:
  """Loss of one example with y = 1 as its predicted probability goes from wrong to right."""
  p = np.linspace(0.001, 1.0, 500, dtype=np.float32)
  curves = jax.jit(lambda p: {name: losses_lib.get(name).per_example(jnp.ones_like(p), p) for name in PAIRS})(p)
  fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
  for name, label in (("binary_crossentropy", "log loss  -log p"), ("mean_squared_error", "MSE  (1 - p)^2"),
                      ("mean_absolute_error", "MAE  |1 - p|")):
    ax.plot(p, curves[name], label=label)
  ax.set_ylim(0, 5)
  ax.set_xlabel("predicted probability p (true label 1)")
  ax.set_ylabel("loss of the example")
  ax.set_title("a confident mistake costs little under MSE, a lot under log loss")
  ax.grid(alpha=0.3)
  ax.legend()
  return plots.save(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  example = course_example()
  categorical = sparse_vs_categorical(config)
  x, y = logistic_data(config)
  convexity, arrays, hessian_diff = curvature(config, x, y)

  checks = {f"{name}_abs_diff": v["abs_diff"] for name, v in example.items()}
  checks["sparse_vs_categorical_max_abs_diff"] = categorical["max_abs_diff"]
  checks["log_loss_hessian_vs_formula_max_abs_diff"] = hessian_diff
  failed = {k: v for k, v in checks.items() if not v <= TOLERANCE}
  if failed:
    raise AssertionError(f"self-check failed (hand vs library): {failed}")
  # The headline, measured: MSE through a sigmoid bends down somewhere; log loss never does.
  log_loss_convex = convexity["log_loss"]["min_hessian_eigenvalue"] >= -1e-5
  mse_nonconvex = convexity["mse"]["min_hessian_eigenvalue"] < -1e-3 and convexity["mse"]["line_b0_mixed_sign"]
  if not (log_loss_convex and mse_nonconvex):
    raise AssertionError(f"convexity check failed: {convexity}")

  out = config.out
  files = [plot_surface(arrays, x, y, os.path.join(out, "loss_surface.png")),
           plot_line(arrays, os.path.join(out, "loss_along_line.png")),
           plot_per_example(os.path.join(out, "per_example_loss.png"))]
  results = {
      "config": dataclasses.asdict(config), "y_true": list(Y_TRUE), "y_predicted": list(Y_PREDICTED),
      "epsilon": losses_lib.EPSILON, "course_example": example, "sparse_vs_categorical": categorical,
      "surface_data": {"model": f"y ~ Bernoulli(sigmoid({TRUE_W} x + {TRUE_B})), x ~ U(-2, 2)",
                       "seed": config.seed, "x": x.tolist(), "y": y.astype(int).tolist()},
      "convexity": convexity, "log_loss_convex": bool(log_loss_convex), "mse_nonconvex": bool(mse_nonconvex),
      "checks": checks, "plots": [os.path.basename(f) for f in files],
  }
  rows = [(name, v["by_hand"], v["jaxnn"], f"{v['abs_diff']:.1e}") for name, v in example.items()]
  rows.append(("sparse vs categorical CE", categorical["values"]["sparse"], categorical["values"]["categorical"],
               f"{categorical['max_abs_diff']:.1e}"))
  for name in ("log_loss", "mse"):
    c = convexity[name]
    rows.append((f"{name}: min Hessian eigenvalue", c["min_hessian_eigenvalue"],
                 f"{100 * c['fraction_of_grid_with_negative_eigenvalue']:.0f}% of grid < 0",
                 "mixed sign on b=0" if c["line_b0_mixed_sign"] else ">= 0 on b=0"))
  return common.finish(out, results, rows, header=("quantity", "by hand / value", "jaxnn / note", "diff / line"))


if __name__ == "__main__":
  cli.run(main, prog="losses")
