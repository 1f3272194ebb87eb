"""Padded sequences and masks: what padding does to a recurrent model, and what `mask_zero=True` changes.

Sequences of different lengths are padded with id 0 to one length before they can share a batch. A
recurrent layer that is not told where the padding is reads it like any other step. The task (generated here,
since the course's text datasets are not available offline): a sequence of 2-40 token ids in 1..19; the
label is 1 when its last token is larger than its first. An Embedding(20, 16) + LSTM(32) + sigmoid unit is
trained four ways: padding "pre" (Keras' default) or "post", with and without `Embedding(mask_zero=True)`;
run i of each setting starts from the same weights and sees the same batches (3 runs, seeds 0-2). Each model
is then tested on the test sequences padded to the training length (40) and to three times it (120).

- Without a mask the model learns to read through the padding, but only the amounts it was trained on: padded
  to 120, its predictions change ("post": the answer must be carried through 80 more padding steps after the
  last real token; "pre": the extra padding only shifts the state the real steps start from).
- With a mask, padded steps leave the state unchanged: the predictions do not depend on the padding at all.
  Self-checks (the run fails if they do not hold): each masked model gives the same predictions (within
  1e-6; measured 0.0) for the test sequences padded to 40 or 120, and for the same weights padded "pre" or
  "post". Masking buys that invariance, not accuracy: here the masked models learned more slowly. The two
  masked settings compute the same forward pass but not the same runs: the weight gradients sum the steps in
  another order, and 12 epochs of Adam grow the last-bit differences.

Command:
  python -m experiments.masking
Measured (fresh clone, 2 CPU cores, 6,000 training / 2,000 test sequences, 12 epochs; mean (min-max) of 3
runs; changed_long: the fraction of test predictions that flip when padded to 120; 70 s):
  setting      test_acc             test_acc_len120      changed_long         max_dp_long  train_s
  pre          0.981 (0.971-0.990)  0.982 (0.973-0.992)  0.005 (0.004-0.006)  0.96         15.2
  pre_masked   0.913 (0.881-0.973)  0.913 (0.881-0.973)  0.000 (0.000-0.000)  0            16.0
  post         0.974 (0.953-0.997)  0.945 (0.856-0.999)  0.057 (0.002-0.148)  0.88         13.3
  post_masked  0.938 (0.882-0.980)  0.938 (0.882-0.980)  0.000 (0.000-0.000)  0            17.5

Writes runs/masking/ (or --out): results.json, curves.png (the first run's test accuracy per epoch),
padding.png (test accuracy at both padded lengths).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import data
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense, Embedding
from jaxnn.models import Sequential
from jaxnn.recurrent import GRU, LSTM, SimpleRNN

CELLS = {"lstm": LSTM, "gru": GRU, "simple_rnn": SimpleRNN}
SETTINGS = {"pre": ("pre", False), "pre_masked": ("pre", True), "post": ("post", False),
            "post_masked": ("post", True)}
# Masked predictions must not depend on the padding: the same float32 operations on the real steps, so any
# difference is a bug, not rounding (measured 0.0); the bound leaves room for a different reduction order.
INVARIANCE_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Config:
  n_train: int = 6000
  n_test: int = 2000
  vocab: int = 20  # ids 1..vocab-1 are tokens, 0 is padding
  min_length: int = 2
  max_length: int = 40  # the training padding length
  long_factor: int = 3  # the test sequences are also padded to long_factor * max_length
  cell: str = "lstm"
  units: int = 32
  embedding_dim: int = 16
  epochs: int = 12
  batch_size: int = 64
  learning_rate: float = 3e-3
  settings: tuple[str, ...] = tuple(SETTINGS)
  runs: int = 3  # seeds seed .. seed + runs - 1 per setting: one run's accuracy moves a lot with its seed
  seed: int = 0
  out: str = "runs/masking"
  verbose: int = 0
  resume: bool = False
  checkpoint_every: int | None = None


def make_sequences(n: int, config: Config, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
  """n token sequences of random lengths and their labels (last token > first; ties redrawn), (n, 1) float32."""
  sequences = []
  for length in rng.integers(config.min_length, config.max_length + 1, n):
    seq = rng.integers(1, config.vocab, length)
    while seq[-1] == seq[0]:
      seq[-1] = rng.integers(1, config.vocab)
    sequences.append(seq)
  labels = np.array([[float(s[-1] > s[0])] for s in sequences], np.float32)
  return sequences, labels


def build_model(config: Config, masked: bool) -> Sequential:
  return Sequential([Embedding(config.vocab, config.embedding_dim, mask_zero=masked),
                     CELLS[config.cell](config.units), Dense(1, activation="sigmoid")],
                    name=f"{config.cell}_{'masked' if masked else 'unmasked'}")


def parse_args(argv: Sequence[str] | None) -> Config:
  return parse_sequence_args("masking", __doc__, Config, argv, why=" (a first and a last token)")


def parse_sequence_args(name: str, doc: str | None, config_cls: type, argv: Sequence[str] | None, *,
                        why: str = "") -> Any:
  """The flags of the padded-sequence lessons (this one and `experiments.tagging`), whose configs share the
  fields of `Config`; `why` says why --max-length must be at least `min_length`."""
  p = common.parser(name, doc)
  p.add_argument("--n-train", type=cli.positive_int, default=config_cls.n_train, help="training sequences")
  p.add_argument("--n-test", type=cli.positive_int, default=config_cls.n_test, help="test sequences")
  p.add_argument("--max-length", type=cli.positive_int, default=config_cls.max_length,
                 help="longest sequence, and the training padding length")
  p.add_argument("--long-factor", type=cli.positive_int, default=config_cls.long_factor,
                 help="the test sequences are also padded to this times --max-length")
  p.add_argument("--cell", default=config_cls.cell, choices=list(CELLS))
  p.add_argument("--units", type=cli.positive_int, default=config_cls.units)
  p.add_argument("--epochs", type=cli.positive_int, default=config_cls.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=config_cls.batch_size)
  p.add_argument("--learning-rate", type=cli.positive_float, default=config_cls.learning_rate, help="Adam's")
  p.add_argument("--settings", nargs="+", default=list(config_cls.settings), choices=list(SETTINGS))
  p.add_argument("--runs", type=cli.positive_int, default=config_cls.runs,
                 help="runs per setting, seeds --seed, --seed + 1, ... (default: %(default)s)")
  a = p.parse_args(argv)
  if a.max_length < config_cls.min_length:
    p.error(f"argument --max-length: expected at least {config_cls.min_length}{why}, got {a.max_length}")
  return config_cls(n_train=a.n_train, n_test=a.n_test, max_length=a.max_length, long_factor=a.long_factor,
                cell=a.cell, units=a.units, epochs=a.epochs, batch_size=a.batch_size,
                learning_rate=a.learning_rate, settings=tuple(dict.fromkeys(a.settings)), runs=a.runs, seed=a.seed, out=a.out,
                verbose=a.verbose, resume=a.resume, checkpoint_every=a.checkpoint_every)


def check_invariant(name: str, what: str, a: np.ndarray, b: np.ndarray) -> float:
  """max |a - b|; raises if above INVARIANCE_TOLERANCE (a masked model that depends on its padding)."""
  diff = float(np.max(np.abs(a - b)))
  if not diff <= INVARIANCE_TOLERANCE:
    raise JaxnnError(f"masking: self-check failed: {name}'s predictions change by {diff:.3g} {what} "
                     f"(tolerance {INVARIANCE_TOLERANCE})")
  return diff


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  rng = np.random.default_rng(config.seed)
  train_seqs, y_train = make_sequences(config.n_train, config, rng)
  test_seqs, y_test = make_sequences(config.n_test, config, rng)
  long_length = config.long_factor * config.max_length
  tx = optimizers.get(optimizers.OptimizerConfig("adam", learning_rate=config.learning_rate))
  models = {masked: build_model(config, masked) for masked in (False, True)}

  results, histories = {}, {}
  for name in config.settings:
    padding, masked = SETTINGS[name]
    model = models[masked]
    x_train = data.pad_sequences(train_seqs, config.max_length, padding=padding)
    x_test = data.pad_sequences(test_seqs, config.max_length, padding=padding)
    x_test_long = data.pad_sequences(test_seqs, long_length, padding=padding)
    x_other = data.pad_sequences(test_seqs, config.max_length, padding="post" if padding == "pre" else "pre")
    runs = []
    for run in range(config.runs):
      # Run i of every setting starts from the same weights and sees the same batches: the settings differ
      # only in the padding and the mask.
      key = jax.random.key(config.seed + run)
      t0 = time.perf_counter()
      state, history = training.fit(
          model, models[False].init(jax.random.fold_in(key, 0), (config.max_length,)), x_train, y_train,
          loss="binary_crossentropy", optimizer=tx, metrics=["accuracy"], epochs=config.epochs,
          batch_size=config.batch_size, validation_data=(x_test, y_test), key=jax.random.fold_in(key, 1),
          verbose=config.verbose, checkpoint=common.checkpointing(config, f"{name}_run{run}", config.epochs))
      train_seconds = time.perf_counter() - t0
      p_test = training.predict(model, state.params, x_test)
      p_long = training.predict(model, state.params, x_test_long)
      r: dict[str, Any] = {
          "seed": config.seed + run, "train_seconds": train_seconds,
          "train_accuracy": training.evaluate(model, state.params, x_train, y_train, loss="binary_crossentropy",
                                              metrics=["accuracy"])["accuracy"],
          "test_accuracy": float(np.mean((p_test > 0.5) == (y_test > 0.5))),
          "test_accuracy_long": float(np.mean((p_long > 0.5) == (y_test > 0.5))),
          "changed_long": float(np.mean((p_test > 0.5) != (p_long > 0.5))),
          "max_dp_long": float(np.max(np.abs(p_test - p_long))),
          "history": history.history,
      }
      if masked:
        check_invariant(name, f"between padding to {config.max_length} and to {long_length}", p_test, p_long)
        r["max_dp_other_side"] = check_invariant(name, "between padding 'pre' and 'post'", p_test,
                                                 training.predict(model, state.params, x_other))
      runs.append(r)
    histories[name] = runs[0]["history"]
    results[name] = {"padding": padding, "masked": masked, "runs": runs,
                     **run_stats(runs, ("test_accuracy", "test_accuracy_long", "changed_long", "max_dp_long"))}

  files = [plot_curves(histories, os.path.join(config.out, "curves.png")),
           plot_padding(results, config, os.path.join(config.out, "padding.png"))]
  summary = {"task": "last token > first token; ids 1..vocab-1, 0 = padding", "config": dataclasses.asdict(config),
             "long_length": long_length, "optimizer": "adam", "jax_backend": jax.default_backend(),
             "settings": results, "plots": [os.path.basename(f) for f in files]}

  rows = [(n, spread(r, "test_accuracy"), spread(r, "test_accuracy_long"), spread(r, "changed_long"),
           f"{r['max_dp_long_max']:.2g}", sum(run["train_seconds"] for run in r["runs"]))
          for n, r in results.items()]
  return common.finish(config.out, summary, rows, header=(
      "setting", "test_acc", f"test_acc_len{long_length}", "changed_long", "max_dp_long", "train_s"))


def run_stats(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
  """`<key>_mean`, `<key>_min` and `<key>_max` of each key over a setting's runs."""
  return {f"{k}_{stat}": float(fn([r[k] for r in runs]))
          for k in keys for stat, fn in (("mean", np.mean), ("min", np.min), ("max", np.max))}


def spread(r: dict[str, Any], k: str) -> str:
  """A table cell: the mean of key k over the runs, and its min-max."""
  return f"{r[k + '_mean']:.3f} ({r[k + '_min']:.3f}-{r[k + '_max']:.3f})"


def plot_curves(histories: dict[str, dict[str, list[float]]], path: str, *,
                ylabel: str = "test accuracy (padded to the training length)",
                title: str = "first run of each setting") -> str:
  """The first run's test accuracy per epoch (`val_accuracy`), one line per setting."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for i, (name, h) in enumerate(histories.items()):
    ax.plot(np.arange(1, len(h["val_accuracy"]) + 1), h["val_accuracy"], marker="o", color=f"C{i}", label=name)
  ax.set_xlabel("epoch")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  return plots.save(fig, path)


def plot_padding(results: dict[str, dict[str, Any]], config: Config, path: str) -> str:
  names = list(results)
  at = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for offset, k, label in ((-0.2, "test_accuracy", f"padded to {config.max_length}"),
                           (0.2, "test_accuracy_long", f"padded to {config.long_factor * config.max_length}")):
    mean = np.array([results[n][f"{k}_mean"] for n in names])
    low = mean - np.array([results[n][f"{k}_min"] for n in names])
    high = np.array([results[n][f"{k}_max"] for n in names]) - mean
    ax.bar(at + offset, mean, 0.4, yerr=[low, high], capsize=3, label=label)
  ax.axhline(0.5, color="0.5", linestyle="--", linewidth=1)
  ax.set_xticks(at, names)
  ax.set_ylabel(f"test accuracy (mean, min-max of {config.runs} runs)")
  ax.set_ylim(0, 1)
  ax.legend(loc="lower left")
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="masking")
