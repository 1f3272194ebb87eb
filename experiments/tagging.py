"""A loss over padded steps: tagging every token of padded sequences, with and without the mask.

A tagger gives one output per step (a recurrent layer with return_sequences, then Dense), so padding is not
only read by the model, it is also scored: without a mask the padded steps get targets (0 here) and count in
the loss and the accuracy like real ones. With `Embedding(mask_zero=True)` the outputs carry the step mask and
`fit` / `evaluate` leave the padded steps out of the loss and the metrics, as Keras does.

The task (generated here, since the course's text datasets are not available offline): sequences of 2-40 token
ids in 1..19; each token is tagged 1 when the token after it (drawn uniformly, never shown) is larger. No model
can know the next token, so the best possible tagger guesses from the current one ("larger" for ids 1-9): its
accuracy on the test tokens, about 75 %, and its expected crossentropy are computed and reported as a ceiling
and a floor. An Embedding(20, 16) + LSTM(32, return_sequences=True) + Dense(1, sigmoid) is trained four ways:
padding "pre" or "post", with and without the mask; run i of each setting starts from the same weights and sees
the same batches (3 runs, seeds 0-2). Each model is tested on the test sequences padded to the training length
(40) and to three times it (120), and scored two ways: the accuracy and loss `evaluate` reports, and those over
the real tokens only (from `predict`).

- Without a mask the reported accuracy counts the padding (47 % of the steps at 40, 82 % at 120), where the
  target 0 is trivially right: it reads above the ceiling that no model can pass, and rises with the padding's
  length alone; the reported loss falls below the floor.
- With a mask the reported accuracy and loss are those over the real tokens, at any padding length. Self-checks
  (the run fails if they do not hold): for each masked model, `evaluate`'s accuracy equals the real-token
  accuracy computed here (within 1e-6), its loss the mean binary crossentropy over the real tokens computed
  here (relative 1e-4), and its real-token predictions are the same (within 1e-6) padded to 40 or to 120.
- What the models learn is the same: every setting's real-token accuracy is at the ceiling. The mask fixes
  what is measured (and what the loss weighs), not the model.

Command:
  python -m experiments.tagging
Measured (2 CPU cores, 6,000 training / 2,000 test sequences, 3 epochs; mean (min-max) of 3 runs; losses are
means of the runs; ceiling: accuracy 0.748, loss 0.4971; 35 s):
  setting      reported_acc         real_acc             reported_len120      real_len120          reported_loss  real_loss
  pre          0.865 (0.864-0.865)  0.747 (0.745-0.748)  0.955 (0.955-0.955)  0.747 (0.745-0.748)  0.2690         0.5026
  pre_masked   0.748 (0.748-0.748)  0.748 (0.748-0.748)  0.748 (0.748-0.748)  0.748 (0.748-0.748)  0.5009         0.5009
  post         0.865 (0.865-0.866)  0.748 (0.748-0.748)  0.955 (0.955-0.955)  0.748 (0.748-0.748)  0.2685         0.5017
  post_masked  0.748 (0.748-0.748)  0.748 (0.748-0.748)  0.748 (0.748-0.748)  0.748 (0.748-0.748)  0.5009         0.5009

Writes runs/tagging/ (or --out): results.json, curves.png (the first run's test accuracy per epoch, reported
and over real tokens), accuracy.png (reported vs real-token accuracy, padded to 40 and 120).
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
from experiments import masking
from jaxnn import cli
from jaxnn import data
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense, Embedding
from jaxnn.models import Sequential

# The padded-sequence lessons share their settings, cells, flags and tables (`experiments.masking`).
CELLS = masking.CELLS
SETTINGS = masking.SETTINGS
LOSS = "binary_crossentropy"
# evaluate's masked accuracy and the one computed here count the same steps: any difference is a bug.
ACCURACY_TOLERANCE = 1e-6
# The loss summed in another order (evaluate's batches vs numpy's float64 mean).
LOSS_RTOL = 1e-4
# Masked predictions must not depend on the padding: the same float32 operations on the real steps.
INVARIANCE_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Config(masking.Config):
  """The masking lesson's fields (vocabulary, lengths, model, training, runs); fewer epochs, its own folder."""

  epochs: int = 3  # the task is learned in one epoch
  out: str = "runs/tagging"


def make_sequences(n: int, config: Config, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """n token sequences of random lengths and their tags: 1 where the next token (drawn, never shown) is larger."""
  sequences, tags = [], []
  for length in rng.integers(config.min_length, config.max_length + 1, n):
    seq = rng.integers(1, config.vocab, length + 1)
    sequences.append(seq[:-1])
    tags.append((seq[1:] > seq[:-1]).astype(np.int32))
  return sequences, tags


def bayes_scores(sequences: list[np.ndarray], tags: list[np.ndarray], vocab: int) -> tuple[float, float]:
  """(accuracy, mean binary crossentropy) of the best possible tagger on these tokens.

  The next token is uniform over 1..vocab-1 whatever came before, so token x is followed by a larger one with
  probability p(x) = (vocab - 1 - x) / (vocab - 1): the best guess is "larger" where p(x) > 1/2, and the best
  expected crossentropy is the entropy of p(x). No model does better in expectation.
  """
  x, y = np.concatenate(sequences), np.concatenate(tags)
  p = (vocab - 1 - x) / (vocab - 1)
  q = np.clip(p, 1e-7, 1 - 1e-7)
  return float(np.mean((p > 0.5) == (y == 1))), float(np.mean(-(p * np.log(q) + (1 - p) * np.log(1 - q))))


def pad(sequences: list[np.ndarray], tags: list[np.ndarray], length: int, padding: str
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Ids (n, length), float targets (n, length, 1) with 0 at the padding, and the real-token mask."""
  x = data.pad_sequences(sequences, length, padding=padding)
  y = data.pad_sequences(tags, length, padding=padding).astype(np.float32)[..., None]
  return x, y, x != 0


def build_model(config: Config, masked: bool) -> Sequential:
  return Sequential([Embedding(config.vocab, config.embedding_dim, mask_zero=masked),
                     CELLS[config.cell](config.units, return_sequences=True), Dense(1, activation="sigmoid")],
                    name=f"{config.cell}_tagger_{'masked' if masked else 'unmasked'}")


def parse_args(argv: Sequence[str] | None) -> Config:
  return masking.parse_sequence_args("tagging", __doc__, Config, argv)


def real_token_scores(p: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
  """(accuracy, mean binary crossentropy) over the real tokens, from predictions p (n, T, 1), in float64."""
  p, y = p[..., 0][mask].astype(np.float64), y[..., 0][mask]
  q = np.clip(p, 1e-7, 1 - 1e-7)  # Keras' clip, as jaxnn's binary_crossentropy
  return float(np.mean((p > 0.5) == (y > 0.5))), float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))


def check(name: str, what: str, got: float, want: float, *, atol: float = 0.0, rtol: float = 0.0) -> float:
  """|got - want|; raises if above atol + rtol * |want| (a self-check of the masked loss and metrics)."""
  diff = abs(got - want)
  if not diff <= atol + rtol * abs(want):
    raise JaxnnError(f"tagging: self-check failed: {name}'s {what}: {got!r} against {want!r} computed here "
                     f"(tolerance {atol + rtol * abs(want):.3g})")
  return diff


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  rng = np.random.default_rng(config.seed)
  train_seqs, train_tags = make_sequences(config.n_train, config, rng)
  test_seqs, test_tags = make_sequences(config.n_test, config, rng)
  long_length = config.long_factor * config.max_length
  ceiling, floor = bayes_scores(test_seqs, test_tags, config.vocab)
  tx = optimizers.get(optimizers.OptimizerConfig("adam", learning_rate=config.learning_rate))
  models = {masked: build_model(config, masked) for masked in (False, True)}

  results, histories = {}, {}
  for name in config.settings:
    padding, masked = SETTINGS[name]
    model = models[masked]
    x_train, y_train, _ = pad(train_seqs, train_tags, config.max_length, padding)
    x_test, y_test, m_test = pad(test_seqs, test_tags, config.max_length, padding)
    x_long, y_long, m_long = pad(test_seqs, test_tags, long_length, padding)
    runs = []
    for run in range(config.runs):
      key = jax.random.key(config.seed + run)
      t0 = time.perf_counter()
      state, history = training.fit(
          model, models[False].init(jax.random.fold_in(key, 0), (config.max_length,)), x_train, y_train,
          loss=LOSS, optimizer=tx, metrics=["accuracy"], epochs=config.epochs, batch_size=config.batch_size,
          validation_data=(x_test, y_test), key=jax.random.fold_in(key, 1), verbose=config.verbose,
          checkpoint=common.checkpointing(config, f"{name}_run{run}", config.epochs))
      train_seconds = time.perf_counter() - t0
      # One batch: evaluate's loss is then the mean over the whole test set's counted steps.
      reported = training.evaluate(model, state.params, x_test, y_test, loss=LOSS, metrics=["accuracy"],
                                   batch_size=len(x_test))
      reported_long = training.evaluate(model, state.params, x_long, y_long, loss=LOSS, metrics=["accuracy"],
                                        batch_size=len(x_long))
      p_test = training.predict(model, state.params, x_test)
      p_long = training.predict(model, state.params, x_long)
      real_acc, real_loss = real_token_scores(p_test, y_test, m_test)
      real_acc_long, _ = real_token_scores(p_long, y_long, m_long)
      r: dict[str, Any] = {
          "seed": config.seed + run, "train_seconds": train_seconds,
          "reported_accuracy": reported["accuracy"], "reported_loss": reported["loss"],
          "real_accuracy": real_acc, "real_loss": real_loss,
          "reported_accuracy_long": reported_long["accuracy"], "real_accuracy_long": real_acc_long,
          "history": history.history,
      }
      if masked:
        r["accuracy_diff"] = check(name, "reported accuracy", reported["accuracy"], real_acc,
                                   atol=ACCURACY_TOLERANCE)
        r["loss_diff"] = check(name, "reported loss", reported["loss"], real_loss, rtol=LOSS_RTOL)
        # The real tokens' predictions, padded to 40 and to 120 (the same tokens in the same order).
        r["max_dp_long"] = check(name, f"real-token predictions padded to {config.max_length} vs {long_length}",
                                 float(np.max(np.abs(p_test[m_test] - p_long[m_long]))), 0.0,
                                 atol=INVARIANCE_TOLERANCE)
      runs.append(r)
    histories[name] = runs[0]["history"]
    keys = ("reported_accuracy", "real_accuracy", "reported_accuracy_long", "real_accuracy_long")
    results[name] = {"padding": padding, "masked": masked, "padding_share": float(1 - m_test.mean()),
                     "padding_share_long": float(1 - m_long.mean()), "runs": runs, **masking.run_stats(runs, keys)}

  files = [masking.plot_curves(histories, os.path.join(config.out, "curves.png"),
                               ylabel="test accuracy as fit reports it",
                               title="first run of each setting (unmasked: padding steps count)"),
           plot_accuracy(results, config, ceiling, os.path.join(config.out, "accuracy.png"))]
  summary = {"task": "tag 1 where the next token (not shown) is larger; ids 1..vocab-1, 0 = padding",
             "config": dataclasses.asdict(config), "long_length": long_length, "loss": LOSS,
             "bayes_accuracy": ceiling, "bayes_loss": floor,
             "optimizer": "adam", "jax_backend": jax.default_backend(), "settings": results,
             "plots": [os.path.basename(f) for f in files]}

  spread = masking.spread
  rows = [(n, spread(r, "reported_accuracy"), spread(r, "real_accuracy"), spread(r, "reported_accuracy_long"),
           spread(r, "real_accuracy_long"), f"{np.mean([run['reported_loss'] for run in r['runs']]):.4f}",
           f"{np.mean([run['real_loss'] for run in r['runs']]):.4f}", sum(run["train_seconds"] for run in r["runs"]))
          for n, r in results.items()]
  print(f"best possible on these test tokens (Bayes): accuracy {ceiling:.3f}, loss {floor:.4f} (expected)")
  return common.finish(config.out, summary, rows, header=(
      "setting", "reported_acc", "real_acc", f"reported_len{long_length}", f"real_len{long_length}", "reported_loss",
      "real_loss", "train_s"))


def plot_accuracy(results: dict[str, dict[str, Any]], config: Config, ceiling: float, path: str) -> str:
  names = list(results)
  at = np.arange(len(names))
  long_length = config.long_factor * config.max_length
  fig, ax = plt.subplots(figsize=(7.2, 4))
  bars = (("reported_accuracy", f"reported, padded to {config.max_length}"),
          ("real_accuracy", f"real tokens, padded to {config.max_length}"),
          ("reported_accuracy_long", f"reported, padded to {long_length}"),
          ("real_accuracy_long", f"real tokens, padded to {long_length}"))
  for j, (k, label) in enumerate(bars):
    mean = np.array([results[n][f"{k}_mean"] for n in names])
    low = mean - np.array([results[n][f"{k}_min"] for n in names])
    high = np.array([results[n][f"{k}_max"] for n in names]) - mean
    ax.bar(at + (j - 1.5) * 0.2, mean, 0.2, yerr=[low, high], capsize=2, label=label)
  ax.axhline(ceiling, color="0.3", linestyle="--", linewidth=1, label="best possible on real tokens")
  ax.set_xticks(at, names)
  ax.set_ylabel(f"test accuracy (mean, min-max of {config.runs} runs)")
  ax.set_ylim(0.5, 1)
  ax.legend(loc="lower left", fontsize=8)
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="tagging")
