"""Weight initialization: symmetry, scale, and the Glorot / He / LeCun variances, on a deeper MLP.

One architecture, 784 -> 5 x Dense(256, tanh) -> Dense(10, softmax), starts from each kernel initializer
(biases zero) and is trained the same way (SGD, momentum 0.9, lr 0.01, 10 epochs on 2,000 digits):
  zeros           every hidden unit computes 0 and receives a zero gradient: nothing but the output bias
                  ever moves;
  constant_0.01   every unit of a layer computes the same value and gets the same gradient: the weights
                  move, yet the units stay exactly equal, so each layer acts as a single unit;
  normal_0.01     too small: activations and gradients shrink layer by layer (nothing learns in 10 epochs);
  normal_0.1      about He's scale for 256 inputs: trains;
  normal_1.0      too large: tanh saturates at +-1 and the gradients grow toward the input;
  glorot_uniform, he_normal, lecun_normal: variance 2 / (fan_in + fan_out), 2 / fan_in, 1 / fan_in.
At init, on 1,000 training digits: each layer's activation mean / std, the norm of dL/dkernel and of
dL/d(layer outputs). Symmetry is measured as the largest difference between two hidden units' incoming
weights; self-check: units that start equal must end exactly equal (the run fails otherwise).

Command:
  python -m experiments.initialization
Measured (embedded sample, fresh clone; 35 s on 2 CPU cores shared with another training; L1 = first hidden
layer, test acc on 1,000 digits):
  initializer     act_std_L1  act_std_L5  grad_L1   grad_out  unit_spread_end  loss    test_acc
  zeros           0           0           0         0         0                2.300   0.116
  constant_0.01   0.136       2.6e-05     7.2e-12   0.571     0                2.415   0.113
  normal_0.01     0.093       6.3e-05     1.1e-04   1.2e-04   0.069            2.300   0.116
  normal_0.1      0.602       0.628       1.68      1.35      0.68             0.018   0.908
  normal_1.0      0.954       0.974       64.8      0.465     7.2              2.413   0.113
  glorot_uniform  0.357       0.260       1.01      0.472     0.24             0.112   0.896
  he_normal       0.397       0.535       2.25      1.09      0.40             0.034   0.910
  lecun_normal    0.303       0.237       0.771     0.416     0.29             0.135   0.885

Writes runs/initialization/ (or --out): results.json, init_statistics.png (activation std and gradient
norm per layer at init), training_curves.png.
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
from matplotlib.ticker import MaxNLocator
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import initializers
from jaxnn import losses
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential

# Name in the results -> a kernel initializer (a name, or an instance where it takes arguments).
INITIALIZERS = {
    "zeros": "zeros",
    "constant_0.01": initializers.Constant(0.01),
    "normal_0.01": initializers.RandomNormal(stddev=0.01),
    "normal_0.1": initializers.RandomNormal(stddev=0.1),
    "normal_1.0": initializers.RandomNormal(stddev=1.0),
    "glorot_uniform": "glorot_uniform",
    "he_normal": "he_normal",
    "lecun_normal": "lecun_normal",
}
LOSS = "sparse_categorical_crossentropy"


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int = 2000
  n_test: int = 1000
  activation: str = "tanh"
  depth: int = 5  # hidden layers
  width: int = 256
  initializers: tuple[str, ...] = tuple(INITIALIZERS)
  epochs: int = 10
  batch_size: int = 64
  learning_rate: float = 0.01
  momentum: float = 0.9
  stats_batch: int = 1000  # training digits the statistics at init are measured on
  seed: int = 0
  out: str = "runs/initialization"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


def build_model(config: Config, kernel_initializer: Any) -> Sequential:
  layers = [Dense(config.width, activation=config.activation, kernel_initializer=kernel_initializer)
            for _ in range(config.depth)]
  layers.append(Dense(10, activation="softmax", kernel_initializer=kernel_initializer))
  return Sequential(layers, name=f"mlp_{config.depth}x{config.width}_{config.activation}")


@functools.partial(jax.jit, static_argnames=("model", "loss"))
def layer_statistics(params: dict, x: jax.Array, y: jax.Array, *, model: Sequential,
                     loss: losses.Loss) -> dict[str, jax.Array]:
  """Per Dense layer on one batch: its outputs' mean and std, and the L2 norms of dL/dkernel and dL/doutputs.

  The gradient with respect to a layer's outputs (the backpropagated error signal) is read off a zero
  "probe" added to those outputs: d loss / d probe = d loss / d outputs.
  """
  dense = [i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]

  def objective(params, probes):
    h, outputs = x, []
    for i, (name, layer) in enumerate(zip(model.layer_names, model.layers)):
      h = layer.apply(params.get(name, {}), h)
      if i in dense:
        h = h + probes[len(outputs)]
        outputs.append(h)
    return loss(y, h), outputs

  shapes = [s for i, s in enumerate(model.output_shapes(x.shape[1:])) if i in dense]
  probes = [jnp.zeros((x.shape[0], *s), x.dtype) for s in shapes]
  (value, outputs), (grads, probe_grads) = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(
      params, probes)
  names = [model.layer_names[i] for i in dense]
  return {
      "loss": value,
      "activation_mean": jnp.stack([jnp.mean(h) for h in outputs]),
      "activation_std": jnp.stack([jnp.std(h) for h in outputs]),
      "kernel_grad_norm": jnp.stack([jnp.linalg.norm(grads[n]["kernel"]) for n in names]),
      "output_grad_norm": jnp.stack([jnp.linalg.norm(g) for g in probe_grads]),
  }


def unit_spread(params: dict, model: Sequential) -> float:
  """Largest difference between two hidden units' incoming weights (kernel columns) over the hidden layers."""
  spread = 0.0
  for name in model.layer_names[:-1]:
    kernel = np.asarray(params[name]["kernel"])
    spread = max(spread, float(np.max(np.abs(kernel - kernel[:, :1]))))
  return spread


def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("initialization", __doc__)
  common.add_data_args(p, n_train=Config.n_train, n_test=Config.n_test)
  p.add_argument("--activation", default=Config.activation, help="hidden activation (tanh, relu, sigmoid, ...)")
  p.add_argument("--depth", type=cli.positive_int, default=Config.depth, help="hidden layers")
  p.add_argument("--width", type=cli.positive_int, default=Config.width, help="units per hidden layer")
  p.add_argument("--initializers", nargs="+", default=list(Config.initializers), choices=list(INITIALIZERS),
                 help="which initializers to compare")
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=Config.batch_size)
  p.add_argument("--learning-rate", type=cli.positive_float, default=Config.learning_rate, help="SGD learning rate")
  p.add_argument("--momentum", type=float, default=Config.momentum, help="SGD momentum")
  p.add_argument("--stats-batch", type=cli.positive_int, default=Config.stats_batch,
                 help="training digits the statistics at init are measured on")
  a = p.parse_args(argv)
  return Config(dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train, n_test=a.n_test,
                activation=a.activation, depth=a.depth, width=a.width, initializers=tuple(a.initializers),
                epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.learning_rate, momentum=a.momentum,
                stats_batch=a.stats_batch, seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  optimizer = optimizers.OptimizerConfig(name="sgd", learning_rate=config.learning_rate,
                                         kwargs={"momentum": config.momentum})
  tx = optimizers.get(optimizer)
  trained_model = build_model(config, "glorot_uniform")  # fails early on a bad activation name
  ds, x_train, x_test = common.load_flat(types.SimpleNamespace(**dataclasses.asdict(config)))
  y_train, y_test = ds.y_train, ds.y_test
  print(ds.describe())
  loss = losses.get(LOSS)
  x_stats, y_stats = jnp.asarray(x_train[:config.stats_batch]), jnp.asarray(y_train[:config.stats_batch])

  results, histories, stats = {}, {}, {}
  for name in config.initializers:
    model = build_model(config, INITIALIZERS[name])
    # Every run starts from the same key: the runs differ only in the initializer.
    params = model.init(jax.random.key(config.seed), x_train.shape[1:])
    # The initializer only matters to `init`: measuring and training every run with one model object
    # (same layers, same activation) and one optax object lets them share compiled programs; a new
    # model or optimizer object per run would recompile the epoch for each initializer.
    at_init = jax.device_get(layer_statistics(params, x_stats, y_stats, model=trained_model, loss=loss))
    state, history = training.fit(
        trained_model, params, x_train, y_train, loss=LOSS, optimizer=tx, metrics=["accuracy"],
        epochs=config.epochs, batch_size=config.batch_size, validation_data=(x_test, y_test),
        key=jax.random.fold_in(jax.random.key(config.seed), 1), verbose=config.verbose,
        checkpoint=common.checkpointing(config, name, config.epochs))
    h = history.history
    results[name] = {
        "kernel_initializer": initializers.serialize(initializers.get(INITIALIZERS[name])),
        "at_init": {k: np.asarray(v).tolist() for k, v in at_init.items()},
        "unit_spread_at_init": unit_spread(params, model),
        "unit_spread_after_training": unit_spread(state.params, model),
        "kernel_change": float(max(np.max(np.abs(np.asarray(state.params[n]["kernel"]) -
                                                 np.asarray(params[n]["kernel"])))
                                   for n in model.layer_names)),
        # The validation curves are measured on the test digits.
        "final_loss": h["loss"][-1], "final_accuracy": h["accuracy"][-1],
        "final_test_loss": h["val_loss"][-1], "final_test_accuracy": h["val_accuracy"][-1],
        "history": h,
    }
    histories[name] = h
    stats[name] = at_init

  for name, r in results.items():
    # Not a numerical tolerance: identical units compute identical values and get bit-identical updates.
    if r["unit_spread_at_init"] == 0.0 and r["unit_spread_after_training"] != 0.0:
      raise JaxnnError(f"self-check failed: {name}: hidden units that started equal drifted "
                       f"apart by {r['unit_spread_after_training']:.3g}")

  out = config.out
  files = [plot_statistics(stats, config, os.path.join(out, "init_statistics.png")),
           plot_training(histories, os.path.join(out, "training_curves.png"))]
  summary = {
      "dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
      "n_train": int(len(x_train)), "n_test": int(len(x_test)), "config": dataclasses.asdict(config),
      "model": trained_model.config(), "optimizer": optimizers.serialize(optimizer),
      "jax_backend": jax.default_backend(), "initializers": results,
      "plots": [os.path.basename(f) for f in files],
  }
  rows = []
  for name, r in results.items():
    a = r["at_init"]
    rows.append((name, f"{a['activation_std'][0]:.3g}", f"{a['activation_std'][-2]:.3g}",
                 f"{a['kernel_grad_norm'][0]:.3g}", f"{a['kernel_grad_norm'][-1]:.3g}",
                 f"{r['unit_spread_after_training']:.3g}", r["final_loss"], r["final_test_accuracy"]))
  print()
  return common.finish(out, summary, rows, header=(
      "initializer", "act_std_L1", "act_std_last_hidden", "grad_L1", "grad_out", "unit_spread_end", "loss",
      "test_acc"))


def plot_statistics(stats: dict[str, dict[str, np.ndarray]], config: Config, path: str) -> str:
  """Activation std per hidden layer and kernel-gradient norm per layer at init, one line per initializer."""
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  for i, (name, s) in enumerate(stats.items()):
    hidden = np.arange(1, config.depth + 1)
    # A floor keeps exact zeros (zeros init) on the log axis.
    axes[0].semilogy(hidden, np.maximum(s["activation_std"][:-1], 1e-12), "o-", color=f"C{i}", label=name)
    layers = np.arange(1, config.depth + 2)
    axes[1].semilogy(layers, np.maximum(s["kernel_grad_norm"], 1e-12), "o-", color=f"C{i}", label=name)
  axes[0].set_title(f"std of {config.activation} activations at init (0 drawn at 1e-12)")
  axes[0].set_xlabel("hidden layer")
  axes[1].set_title("||dL/dkernel|| at init (last = output layer)")
  axes[1].set_xlabel("layer")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  axes[1].legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, path)


def plot_training(histories: dict[str, dict[str, list[float]]], path: str) -> str:
  """Training loss and test accuracy per epoch, one line per initializer."""
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  for i, (name, h) in enumerate(histories.items()):
    epochs = np.arange(1, len(h["loss"]) + 1)
    axes[0].plot(epochs, h["loss"], "o-", color=f"C{i}", label=name)
    axes[1].plot(epochs, h["val_accuracy"], "o-", color=f"C{i}", label=name)
  axes[0].set_title("training loss")
  axes[1].set_title("test accuracy")
  for ax in axes:
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="initialization")
