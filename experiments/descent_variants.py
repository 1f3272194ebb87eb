"""Batch, stochastic and mini-batch gradient descent: one knob, `fit`'s batch_size, drives all three.

batch_size = n is batch gradient descent (one step per epoch on the exact gradient), 1 is stochastic (n noisy
steps per epoch), k is mini-batch. Everything else is fixed: the model, the initial weights, plain sgd and its
learning rate, the epochs. Two problems:

1. House prices, the lesson's way. Its homeprices CSV is not available, so 40 houses are generated:
     area ~ U(800, 4000) sq ft (rounded to 10), bedrooms = clip(round(area / 800 + N(0, 0.7)), 1, 5),
     price = 0.04 * area + 5 * bedrooms - 5 + N(0, 5)   (lakh rupees; numpy seed 0),
   both inputs and the price min-max scaled to [0, 1] as the lesson does; model Dense(1) (linear regression),
   mean squared error. Batch sizes 40 / 1 / 5.
2. MNIST (the embedded 8,000-digit sample): 784-32-10 MLP, sparse categorical crossentropy. Batch sizes
   n / 1 / 32.

Reported per variant: steps per epoch and seconds per epoch (fit's timing, compiled epochs, a validation
pass included), the loss per epoch and against wall-clock seconds. `fit` logs the mean loss of the batches
seen during an epoch; to compare the variants at the same point the runs log the loss of the current
weights at each epoch's end through `validation_data` (the training set for the houses, the test set for
MNIST).

The noise of SGD is measured per step on the house problem: `training.train_step` runs in a jitted
`lax.scan` (the same step `fit` scans), with the full training set's loss recorded after every step. Two
numbers: the fraction of steps that make the full loss go up, and the path ratio sum |dL| / (L_0 - L_end),
1 for a monotone descent, larger the more it zigzags. On MNIST a full-data loss after each of 8,000 SGD steps
per epoch would cost more than the training, so MNIST shows per-epoch curves only. Self-check: the scan with
batch_size = n ends at the weights `fit` ends at. At 40 rows an epoch costs about 0.1 ms whatever the batch
size (call overhead, not arithmetic), so the houses' per-second panel mostly shows that; MNIST's shows cost.

Command:
  python -m experiments.descent_variants
Result (measured on a fresh clone, 2 CPU cores shared with another training, 15 s): houses after 100 epochs at lr 0.05, full-data MSE
(scaled) batch 0.0387, stochastic 0.0010, mini-batch 0.0025; the full loss goes up at 0 % / 52 % / 22 % of
the steps (path ratio 1.00 / 1.28 / 1.01): stochastic gets furthest per epoch and then jitters at its noise
floor. MNIST after 15 epochs at lr 0.01: test loss batch 2.25, stochastic 0.20, mini-batch 0.33, test
accuracy 0.188 / 0.951 / 0.908, at 10 / 235 / 33 ms per epoch (1 / 8,000 / 250 steps). Batch gradient descent
would need a far larger learning rate or hundreds of epochs: one step per epoch. Scan vs fit (batch): max
abs weight difference 6e-8.

Writes runs/descent_variants/ (or --out): results.json, house_prices.png, mnist.png.
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

from experiments import common
from jaxnn import cli
from jaxnn import losses as losses_lib
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.layers import Dense
from jaxnn.models import Sequential

HOUSE_MODEL = "price = 0.04 * area + 5 * bedrooms - 5 + N(0, 5)"
HOUSES_TO_PRICE = ((2600, 4), (1500, 3), (1000, 2))
VARIANTS = ("batch", "stochastic", "mini_batch")


@dataclasses.dataclass(frozen=True)
class Config:
  houses: int = 40
  house_epochs: int = 100
  house_learning_rate: float = 0.05
  house_mini_batch: int = 5
  mnist_epochs: int = 15
  mnist_learning_rate: float = 0.01
  mnist_mini_batch: int = 32
  mnist_hidden: int = 32
  skip_mnist: bool = False
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int | None = None
  n_test: int | None = None
  seed: int = 0
  out: str = "runs/descent_variants"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("descent_variants", __doc__)
  common.add_data_args(p)
  p.add_argument("--houses", type=cli.positive_int, default=Config.houses, help="houses in the generated data")
  p.add_argument("--house-epochs", type=cli.positive_int, default=Config.house_epochs)
  p.add_argument("--house-learning-rate", type=cli.positive_float, default=Config.house_learning_rate)
  p.add_argument("--house-mini-batch", type=cli.positive_int, default=Config.house_mini_batch)
  p.add_argument("--mnist-epochs", type=cli.positive_int, default=Config.mnist_epochs)
  p.add_argument("--mnist-learning-rate", type=cli.positive_float, default=Config.mnist_learning_rate)
  p.add_argument("--mnist-mini-batch", type=cli.positive_int, default=Config.mnist_mini_batch)
  p.add_argument("--mnist-hidden", type=cli.positive_int, default=Config.mnist_hidden)
  p.add_argument("--skip-mnist", action="store_true", help="only the house-price problem")
  a = p.parse_args(argv)
  return Config(houses=a.houses, house_epochs=a.house_epochs, house_learning_rate=a.house_learning_rate,
                house_mini_batch=min(a.house_mini_batch, a.houses), mnist_epochs=a.mnist_epochs,
                mnist_learning_rate=a.mnist_learning_rate, mnist_mini_batch=a.mnist_mini_batch,
                mnist_hidden=a.mnist_hidden, skip_mnist=a.skip_mnist, dataset=a.dataset, data_dir=a.data_dir,
                n_train=a.n_train, n_test=a.n_test, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


# --------------------------------------------------------------------------------------------- data
def house_data(n: int, seed: int) -> dict[str, np.ndarray]:
  """Houses from the documented linear model; raw columns plus min-max scaled x (n, 2) and y (n, 1)."""
  rng = np.random.default_rng(seed)
  area = np.round(rng.uniform(800, 4000, n), -1)
  bedrooms = np.clip(np.round(area / 800 + rng.normal(0, 0.7, n)), 1, 5)
  price = 0.04 * area + 5 * bedrooms - 5 + rng.normal(0, 5, n)
  raw_x = np.stack([area, bedrooms], 1)
  x_min, x_max = raw_x.min(0), raw_x.max(0)
  y_min, y_max = price.min(), price.max()
  return {"area": area, "bedrooms": bedrooms, "price": price, "x_min": x_min, "x_max": x_max,
          "y_min": y_min, "y_max": y_max,
          "x": ((raw_x - x_min) / (x_max - x_min)).astype(np.float32),
          "y": ((price - y_min) / (y_max - y_min)).astype(np.float32)[:, None]}


# --------------------------------------------------------------------------------------------- per-step view
def _steps(state: training.TrainState, x: jax.Array, y: jax.Array, key: jax.Array, model: Sequential,
           loss: losses_lib.Loss, batch_size: int, epochs: int) -> tuple[training.TrainState, jax.Array, jax.Array]:
  """Runs `training.train_step` over shuffled batches; returns the batch loss and the full loss per step."""
  n = x.shape[0]

  def epoch_batches(e):
    # A short last batch is padded and masked out, as fit does, so every step has one shape.
    return training.batch_indices(n, batch_size, jax.random.permutation(jax.random.fold_in(key, e), n))

  idx, mask = jax.vmap(epoch_batches)(jnp.arange(epochs))
  idx, mask = idx.reshape(-1, batch_size), mask.reshape(-1, batch_size)
  step = functools.partial(training.train_step, model=model, loss=loss)

  def body(st, batch):
    idx_b, mask_b = batch
    mask_b = mask_b.astype(jnp.float32)
    st, stats = step(st, x[idx_b], y[idx_b], jnp.ones_like(mask_b), mask_b)
    full = loss(y, model.apply(st.params, x))
    return st, (stats["loss"]["sum"] / stats["loss"]["count"], full)

  start = loss(y, model.apply(state.params, x))
  state, (batch_losses, full) = jax.lax.scan(body, state, (idx, mask))
  return state, batch_losses, jnp.concatenate([start[None], full])


@functools.partial(jax.jit, static_argnames=("model", "loss", "batch_sizes", "epochs"))
def per_step_losses(state: training.TrainState, x: jax.Array, y: jax.Array, key: jax.Array, *,
                    model: Sequential, loss: losses_lib.Loss, batch_sizes: tuple[int, ...],
                    epochs: int) -> tuple[tuple[training.TrainState, jax.Array, jax.Array], ...]:
  """`_steps` from the same state for each batch size, as one program (an XLA compile costs seconds)."""
  return tuple(_steps(state, x, y, key, model, loss, b, epochs) for b in batch_sizes)


def noise_summary(full: np.ndarray, batch_losses: np.ndarray, steps_per_epoch: int) -> dict[str, float]:
  """How jagged the full-data loss trajectory is, and how noisy the batch losses are in the last epoch."""
  deltas = np.diff(full.astype(np.float64))
  descent = float(full[0] - full[-1])
  return {"uphill_fraction": float((deltas > 0).mean()),
          "path_ratio": float(np.abs(deltas).sum() / descent) if descent > 0 else float("inf"),
          "batch_loss_std_last_epoch": float(np.std(batch_losses[-steps_per_epoch:])),
          "full_loss_start": float(full[0]), "full_loss_end": float(full[-1])}


# --------------------------------------------------------------------------------------------- runs
def run_variants(model: Sequential, params: Any, x: np.ndarray, y: np.ndarray, *, loss: str, batch_sizes: dict,
                 learning_rate: float, epochs: int, validation_data: tuple, key: jax.Array, verbose: int,
                 config: Any, tag: str,
                 metrics: Sequence[str] = ()) -> dict[str, tuple[training.TrainState, training.History]]:
  """fit once per variant, same everything but batch_size (checkpoints under <out>/checkpoints/<tag>_<variant>)."""
  runs = {}
  for name, batch_size in batch_sizes.items():
    runs[name] = training.fit(
        model, params, x, y, loss=loss, optimizer=optimizers.OptimizerConfig("sgd", learning_rate=learning_rate),
        metrics=metrics, epochs=epochs, batch_size=batch_size, validation_data=validation_data, key=key,
        verbose=verbose, checkpoint=common.checkpointing(config, f"{tag}_{name}", epochs))
  return runs


def summarize(runs: dict[str, tuple[training.TrainState, training.History]]) -> dict[str, dict[str, Any]]:
  """Cost per epoch (steps, median seconds: the first epoch carries one-time warm-up) and the history."""
  out = {}
  for name, (_, history) in runs.items():
    seconds = np.asarray(history["seconds"])
    out[name] = {"batch_size": history.params["batch_size"], "steps_per_epoch": history.params["steps"],
                 "seconds_per_epoch": float(np.median(seconds)), "compile_seconds": history.compile_seconds,
                 "total_seconds": float(seconds.sum()), "history": history.history}
  return out


def houses(config: Config, key: jax.Array) -> tuple[dict[str, Any], dict[str, Any]]:
  """The three variants on the generated houses: fit, the per-step view, its self-check, a few prices."""
  data = house_data(config.houses, config.seed)
  x, y = data["x"], data["y"]
  model = Sequential([Dense(1)], name="linear_regression")
  params = model.init(key, (2,))
  sizes = {"batch": len(x), "stochastic": 1, "mini_batch": config.house_mini_batch}
  runs = run_variants(model, params, x, y, loss="mean_squared_error", batch_sizes=sizes,
                      learning_rate=config.house_learning_rate, epochs=config.house_epochs,
                      validation_data=(x, y), key=key, verbose=config.verbose, config=config, tag="houses")
  summary = summarize(runs)

  loss = losses_lib.get("mean_squared_error")
  sgd = optimizers.OptimizerConfig("sgd", learning_rate=config.house_learning_rate)
  state = training.create_train_state(model, params, sgd, key=key)
  per_step = per_step_losses(state, x, y, jax.random.fold_in(key, 7), model=model, loss=loss,
                             batch_sizes=tuple(sizes.values()), epochs=config.house_epochs)
  steps = {}
  for name, (state, batch_losses, full) in zip(sizes, per_step):
    steps[name] = {"state": state, "batch": np.asarray(batch_losses), "full": np.asarray(full)}
    summary[name]["noise"] = noise_summary(steps[name]["full"], steps[name]["batch"],
                                           summary[name]["steps_per_epoch"])
    summary[name]["per_step_full_loss"] = steps[name]["full"].tolist()
  # The per-step scan is the same step fit runs: with batch_size = n (order does not matter) they must agree.
  fit_params, scan_params = runs["batch"][0].params, steps["batch"]["state"].params
  scan_vs_fit = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(fit_params),
                                                                jax.tree_util.tree_leaves(scan_params)))
  if scan_vs_fit > 1e-5:
    raise AssertionError(f"self-check failed: per-step scan and fit (batch) differ by {scan_vs_fit}")

  # Prices of a few houses, scaled in and out the lesson's way.
  raw = np.array(HOUSES_TO_PRICE, np.float64)
  scaled = ((raw - data["x_min"]) / (data["x_max"] - data["x_min"])).astype(np.float32)
  predictions = []
  for (area, bedrooms), row in zip(HOUSES_TO_PRICE, scaled):
    entry = {"area": area, "bedrooms": bedrooms, "true_model_price": 0.04 * area + 5 * bedrooms - 5}
    for name, (state, _) in runs.items():
      p = float(training.predict(model, state.params, row[None])[0, 0])
      entry[name] = p * (data["y_max"] - data["y_min"]) + data["y_min"]
    predictions.append(entry)
  result = {"data": {"source": "generated (the lesson's homeprices CSV is not available)", "model": HOUSE_MODEL,
                     "area": "U(800, 4000) sq ft, rounded to 10",
                     "bedrooms": "clip(round(area / 800 + N(0, 0.7)), 1, 5)", "seed": config.seed,
                     "n": config.houses, "scaling": "min-max to [0, 1], inputs and price"},
            "learning_rate": config.house_learning_rate, "epochs": config.house_epochs, "variants": summary,
            "scan_vs_fit_batch_max_abs_diff": scan_vs_fit, "predictions_lakh": predictions}
  return result, steps


def mnist(config: Config, key: jax.Array) -> dict[str, Any]:
  """The three variants on MNIST digits, the test set evaluated after every epoch."""
  ds, x_train, x_test = common.load_flat(config)
  model = Sequential([Dense(config.mnist_hidden, activation="relu"), Dense(ds.num_classes, activation="softmax")],
                     name=f"mlp_784_{config.mnist_hidden}_{ds.num_classes}")
  params = model.init(key, x_train.shape[1:])
  sizes = {"batch": len(x_train), "stochastic": 1, "mini_batch": min(config.mnist_mini_batch, len(x_train))}
  runs = run_variants(model, params, x_train, ds.y_train, loss="sparse_categorical_crossentropy", batch_sizes=sizes,
                      learning_rate=config.mnist_learning_rate, epochs=config.mnist_epochs,
                      validation_data=(x_test, ds.y_test), key=key, verbose=config.verbose, metrics=["accuracy"],
                      config=config, tag="mnist")
  summary = summarize(runs)
  for name in summary:
    summary[name]["test_loss"] = summary[name]["history"]["val_loss"][-1]
    summary[name]["test_accuracy"] = summary[name]["history"]["val_accuracy"][-1]
  return {"dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
          "n_train": len(x_train), "n_test": len(x_test), "model": model.config(),
          "learning_rate": config.mnist_learning_rate, "epochs": config.mnist_epochs, "variants": summary}


# --------------------------------------------------------------------------------------------- plots
def _curves(axes, variants: dict[str, Any], key: str, ylabel: str) -> None:
  """Loss against epochs (axes[0]) and against cumulative wall-clock seconds (axes[1])."""
  for i, (name, v) in enumerate(variants.items()):
    values = v["history"][key]
    label = f"{name} (batch {v['batch_size']}, {v['steps_per_epoch']} steps/epoch)"
    axes[0].plot(range(1, len(values) + 1), values, color=f"C{i}", label=label)
    axes[1].plot(np.cumsum(v["history"]["seconds"]), values, color=f"C{i}", label=name)
  axes[0].set_xlabel("epoch")
  axes[1].set_xlabel("wall-clock seconds (compiled epochs; compile time excluded)")
  for ax in axes[:2]:
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot_houses(result: dict[str, Any], steps: dict[str, Any], path: str) -> str:
  """Houses: loss per epoch, per second, and the full loss after every step."""
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), constrained_layout=True)
  variants = result["variants"]
  _curves(axes, variants, "val_loss", "full-data MSE at epoch end (scaled)")
  axes[0].set_title("loss per epoch")
  axes[1].set_title("loss per second")
  for i, (name, s) in enumerate(steps.items()):
    per_epoch = variants[name]["steps_per_epoch"]
    noise = variants[name]["noise"]
    axes[2].plot(np.arange(len(s["full"])) / per_epoch, s["full"], color=f"C{i}", lw=0.8,
                 label=f"{name}: up at {100 * noise['uphill_fraction']:.0f}% of steps, "
                       f"path ratio {noise['path_ratio']:.1f}")
  axes[2].set_yscale("log")
  axes[2].set_xlabel("epoch (every step drawn)")
  axes[2].set_ylabel("full-data MSE after each step")
  axes[2].set_title("the noise of SGD: each step judged on all the data")
  axes[2].grid(alpha=0.3)
  axes[2].legend(fontsize=7)
  fig.suptitle(f"house prices ({result['data']['n']} generated houses), sgd lr {result['learning_rate']}")
  return plots.save(fig, path)


def plot_mnist(result: dict[str, Any], path: str) -> str:
  """MNIST: test loss per epoch, per second, and the cost of an epoch."""
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), constrained_layout=True)
  variants = result["variants"]
  _curves(axes, variants, "val_loss", "test loss at epoch end")
  axes[0].set_title("loss per epoch")
  axes[1].set_title("loss per second")
  names = list(variants)
  seconds = [variants[n]["seconds_per_epoch"] for n in names]
  bars = axes[2].bar(names, seconds, color=[f"C{i}" for i in range(len(names))])
  for bar, n in zip(bars, names):
    count = variants[n]["steps_per_epoch"]
    axes[2].annotate(f"{count} step{'s' if count > 1 else ''}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                     ha="center", va="bottom", fontsize=8)
  axes[2].set_ylabel("seconds per epoch (median)")
  axes[2].set_title("cost of an epoch")
  fig.suptitle(f"MNIST ({result['n_train']} training digits), MLP 784-{result['model']['layers'][0]['units']}-10, "
               f"sgd lr {result['learning_rate']}")
  return plots.save(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  key = jax.random.key(config.seed)
  house, steps = houses(config, jax.random.fold_in(key, 0))
  print(cli.table([(p["area"], p["bedrooms"], p["true_model_price"], *(p[v] for v in VARIANTS))
                   for p in house["predictions_lakh"]],
                  header=("area", "bedrooms", "true model", *(f"{v} (lakh)" for v in VARIANTS))))
  print()
  out = config.out
  files = [plot_houses(house, steps, os.path.join(out, "house_prices.png"))]
  results = {"config": dataclasses.asdict(config), "jax_backend": jax.default_backend(), "houses": house}
  rows = []
  for name, v in house["variants"].items():
    rows.append(("houses", name, v["batch_size"], v["steps_per_epoch"], 1000 * v["seconds_per_epoch"],
                 v["history"]["val_loss"][-1], "-", f"{100 * v['noise']['uphill_fraction']:.0f}% / "
                 f"{v['noise']['path_ratio']:.2f}"))
  if not config.skip_mnist:
    results["mnist"] = mnist(config, jax.random.fold_in(key, 1))
    files.append(plot_mnist(results["mnist"], os.path.join(out, "mnist.png")))
    for name, v in results["mnist"]["variants"].items():
      rows.append(("mnist", name, v["batch_size"], v["steps_per_epoch"], 1000 * v["seconds_per_epoch"], v["test_loss"],
                   v["test_accuracy"], "-"))
  results["plots"] = [os.path.basename(f) for f in files]
  return common.finish(out, results, rows, header=("problem", "variant", "batch", "steps/epoch", "ms/epoch",
                                                   "final loss", "test acc", "uphill / path ratio"))


if __name__ == "__main__":
  cli.run(main, prog="descent_variants")
