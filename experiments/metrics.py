"""Metrics beyond accuracy: precision, recall, F1, the confusion matrix and log loss, and when accuracy misleads.

Part 1, ten classes: a small MLP (784 -> Dense(128, relu) -> Dense(10, softmax), adam, 10 epochs on the
8,000 training digits); per-class precision / recall / F1 (`jaxnn.metrics` with average=None), their macro
and weighted averages, the confusion matrix and the log loss (crossentropy) on the 2,000 test digits.
Part 2, "is it a 5?": about 9 % of the digits are 5s, so a classifier that always answers "no" is 91 %
accurate, yet its recall and F1 for the 5s are 0. Compared with a trained binary model
(784 -> Dense(64, relu) -> Dense(1, sigmoid), binary crossentropy), the same model trained with
class_weight balancing the two classes (recall up, precision down), and precision / recall / F1 of the
trained model as its decision threshold moves.
Self-checks (the run fails if one does not hold): the confusion matrices equal a numpy count of the
(true, predicted) pairs; per-class precision, recall and F1 equal diag / column sums, diag / row sums
and 2 diag / (row + column sums) computed in numpy from the confusion matrix; the log losses equal a
numpy crossentropy; the accuracy equals the trace of the confusion matrix over its sum. Measured:
accuracies, confusion matrices and per-class values identical (difference 0), log losses within 1.1e-7.

Command:
  python -m experiments.metrics
Measured (embedded sample, fresh clone; 16 s on 2 CPU cores shared with another training; P / R / F1: macro
for 10 classes, the 5s for is_5):
  model             accuracy  log_loss  precision  recall  f1
  10 classes: MLP   0.947     0.185     0.947      0.946   0.946
  is_5: majority    0.914     0.294     0.000      0.000   0.000
  is_5: trained     0.990     0.037     0.987      0.896   0.939
  is_5: balanced    0.988     0.036     0.926      0.936   0.931

Writes runs/metrics/ (or --out): results.json, confusion_matrix.png, per_class.png, is_5_confusion.png,
is_5_threshold.png.
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Any, Sequence

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from jaxnn import cli
from jaxnn import losses
from jaxnn import metrics as metrics_lib
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential

TOL = 1e-5  # library vs numpy: the same float32 counts, so only rounding of the divisions differs
THRESHOLDS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2).tolist())


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str | None = None
  data_dir: str | None = None
  n_train: int | None = None  # None: every training digit
  n_test: int | None = None
  hidden: int = 128
  hidden_binary: int = 64
  epochs: int = 10
  batch_size: int = 64
  positive: int = 5  # the digit of the binary task
  seed: int = 0
  out: str = "runs/metrics"
  verbose: int = 0
  resume: bool = False  # --resume: continue each fit from its newest checkpoint
  checkpoint_every: int | None = None  # None: about 10 checkpoints per fit


# --------------------------------------------------------------------------------------------- numpy checks
def numpy_confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """Counts of (true, predicted) pairs."""
  cm = np.zeros((num_classes, num_classes))
  np.add.at(cm, (y_true, y_pred), 1)
  return cm


def numpy_prf(cm: np.ndarray) -> dict[str, np.ndarray]:
  """Per-class precision, recall and F1 from a confusion matrix (rows true, columns predicted)."""
  tp, predicted, actual = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
  with np.errstate(divide="ignore", invalid="ignore"):
    return {"precision": np.where(predicted > 0, tp / predicted, 0.0),
            "recall": np.where(actual > 0, tp / actual, 0.0),
            "f1": np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)}


def check(what: str, library: Any, reference: Any) -> float:
  """Largest |library - numpy|; raises past TOL."""
  diff = float(np.max(np.abs(np.asarray(library, np.float64) - np.asarray(reference, np.float64))))
  if not diff <= TOL:
    raise JaxnnError(f"self-check failed: {what} differs from numpy by {diff:.3g} (> {TOL:g})")
  return diff


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[dict[str, Any], dict[str, float]]:
  """jaxnn's metrics of `y_pred`, each checked against numpy; returns (metrics, largest differences).

  `y_pred` holds class scores (N, C), or the positive class's probabilities (N,) for a binary task.
  """
  binary = y_pred.ndim == 1
  predicted = (y_pred > 0.5).astype(np.int32) if binary else y_pred.argmax(-1)
  labels = y_true.astype(np.int32)
  cm = np.asarray(metrics_lib.confusion_matrix(labels, predicted, num_classes))
  diffs = {"confusion_matrix": check("confusion matrix", cm, numpy_confusion(labels, predicted, num_classes))}
  # Binary inputs: average=None gives classes 0 and 1; the default ("auto") is the positive class.
  target = y_true.astype(np.float32) if binary else labels
  accuracy = metrics_lib.get("binary_accuracy" if binary else "sparse_categorical_accuracy")
  out: dict[str, Any] = {"confusion_matrix": cm.tolist(),
                         "accuracy": float(metrics_lib.evaluate(accuracy, target, y_pred))}
  diffs["accuracy"] = check("accuracy", out["accuracy"], np.trace(cm) / np.sum(cm))
  reference = numpy_prf(cm)
  for kind, fn in (("precision", metrics_lib.precision), ("recall", metrics_lib.recall),
                   ("f1", metrics_lib.f1_score)):
    per_class = np.asarray(fn(target, y_pred, average=None))
    diffs[f"{kind}_per_class"] = check(f"per-class {kind}", per_class, reference[kind])
    out[f"{kind}_per_class"] = per_class.tolist()
    if binary:
      out[kind] = float(fn(target, y_pred))
    else:
      out[f"{kind}_macro"] = float(fn(target, y_pred, average="macro"))
      out[f"{kind}_weighted"] = float(fn(target, y_pred, average="weighted"))
  # Log loss: jaxnn's crossentropy (probabilities clipped to [1e-7, 1 - 1e-7], as Keras) vs numpy.
  eps = losses.EPSILON
  if binary:
    out["log_loss"] = float(losses.get("log_loss")(target, y_pred))
    p = np.clip(y_pred.astype(np.float64), eps, 1 - eps)
    ref = -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
  else:
    out["log_loss"] = float(losses.get("sparse_categorical_crossentropy")(labels, y_pred))
    p = y_pred.astype(np.float64) / y_pred.sum(-1, keepdims=True)
    ref = -np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], eps, 1 - eps)))
  diffs["log_loss"] = check("log loss", out["log_loss"], ref)
  return out, diffs


# --------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> Config:
  p = common.parser("metrics", __doc__)
  common.add_data_args(p)
  p.add_argument("--hidden", type=cli.positive_int, default=Config.hidden, help="units of the 10-class MLP")
  p.add_argument("--hidden-binary", type=cli.positive_int, default=Config.hidden_binary,
                 help="units of the binary MLP")
  p.add_argument("--epochs", type=cli.positive_int, default=Config.epochs)
  p.add_argument("--batch-size", type=cli.positive_int, default=Config.batch_size)
  p.add_argument("--positive", type=int, default=Config.positive, help="the digit of the binary task")
  a = p.parse_args(argv)
  return Config(dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train, n_test=a.n_test, hidden=a.hidden,
                hidden_binary=a.hidden_binary, epochs=a.epochs, batch_size=a.batch_size, positive=a.positive,
                seed=a.seed, out=a.out, verbose=a.verbose,
                resume=a.resume, checkpoint_every=a.checkpoint_every)


def main(argv: Sequence[str] | None = None) -> dict:
  config = parse_args(argv)
  ds, x_train, x_test = common.load_flat(types.SimpleNamespace(**dataclasses.asdict(config)))
  y_train, y_test = ds.y_train, ds.y_test
  num_classes = ds.num_classes
  if not 0 <= config.positive < num_classes:
    raise JaxnnError(f"--positive must be a class in [0, {num_classes}), got {config.positive}")
  print(ds.describe())
  key = jax.random.key(config.seed)
  batch_size = min(config.batch_size, len(x_train))
  tx = optimizers.get("adam")  # one optax object: the two binary runs share their compiled epoch

  # Part 1: ten classes.
  model = Sequential([Dense(config.hidden, activation="relu"), Dense(num_classes, activation="softmax")],
                     name="mlp_10_classes")
  state, _ = training.fit(model, model.init(jax.random.fold_in(key, 0), x_train.shape[1:]), x_train, y_train,
                          loss="sparse_categorical_crossentropy", optimizer=tx, metrics=["accuracy"],
                          epochs=config.epochs, batch_size=batch_size, key=jax.random.fold_in(key, 1),
                          verbose=config.verbose, checkpoint=common.checkpointing(config, "ten_classes", config.epochs))
  probs = training.predict(model, state.params, x_test)
  multi, multi_diffs = scores(y_test, probs, num_classes)

  # Part 2: "is it a <positive>?" on the same digits.
  t_train = (y_train == config.positive).astype(np.float32)
  t_test = (y_test == config.positive).astype(np.float32)
  rate = float(t_train.mean())
  binary = {}
  # The majority classifier: always the training prior as the probability, so always "no" at 0.5.
  binary["majority"] = scores(t_test, np.full(len(t_test), rate, np.float32), 2)
  model_b = Sequential([Dense(config.hidden_binary, activation="relu"), Dense(1, activation="sigmoid")],
                       name="mlp_binary")
  params_b = model_b.init(jax.random.fold_in(key, 2), x_train.shape[1:])
  # Balanced class weights: each class carries half of the total weight.
  balanced = {0: 0.5 / (1 - rate), 1: 0.5 / rate} if 0 < rate < 1 else None
  binary_probs = {}
  for name, class_weight in (("trained", None), ("trained_balanced", balanced)):
    state_b, _ = training.fit(model_b, params_b, x_train, t_train[:, None], loss="binary_crossentropy",
                              optimizer=tx, metrics=["accuracy"], epochs=config.epochs, batch_size=batch_size,
                              class_weight=class_weight, key=jax.random.fold_in(key, 3), verbose=config.verbose,
                              checkpoint=common.checkpointing(config, f"is_5_{name}", config.epochs))
    binary_probs[name] = training.predict(model_b, state_b.params, x_test)[:, 0]
    binary[name] = scores(t_test, binary_probs[name], 2)
  sweep = {kind: [float(fn(t_test, binary_probs["trained"], threshold=t)) for t in THRESHOLDS]
           for kind, fn in (("precision", metrics_lib.precision), ("recall", metrics_lib.recall),
                            ("f1", metrics_lib.f1_score))}

  self_check = {"ten_classes": multi_diffs, **{f"is_{config.positive}_{k}": d for k, (_, d) in binary.items()}}
  out = config.out
  pos = f"is_{config.positive}"
  files = [
      plots.confusion_matrix(np.asarray(multi["confusion_matrix"]), os.path.join(out, "confusion_matrix.png"),
                             title=f"10-class MLP on {len(y_test)} test digits"),
      plot_per_class(multi, os.path.join(out, "per_class.png")),
      plots.confusion_matrix(np.asarray(binary["trained"][0]["confusion_matrix"]),
                             os.path.join(out, f"{pos}_confusion.png"), class_names=("no", "yes"),
                             title=f"is it a {config.positive}? trained MLP"),
      plot_threshold(sweep, binary, config.positive, os.path.join(out, f"{pos}_threshold.png")),
  ]
  summary = {
      "dataset": common.dataset_name(config.dataset, config.data_dir), "source": ds.source,
      "n_train": int(len(x_train)), "n_test": int(len(x_test)), "config": dataclasses.asdict(config),
      "jax_backend": jax.default_backend(),
      "ten_classes": {"model": model.config(), **multi},
      pos: {"positive_rate_train": rate, "positive_rate_test": float(t_test.mean()),
            "class_weight": {str(k): v for k, v in (balanced or {}).items()},
            **{k: m for k, (m, _) in binary.items()},
            "threshold_sweep": {"thresholds": list(THRESHOLDS), **sweep}},
      "self_check_max_abs_diff": self_check,
      "self_check_max": max(v for d in self_check.values() for v in d.values()),
      "plots": [os.path.basename(f) for f in files],
  }
  print("\nper class (10-class MLP, test digits):")
  print(cli.table([(c, multi["precision_per_class"][c], multi["recall_per_class"][c], multi["f1_per_class"][c],
                    int(np.sum(multi["confusion_matrix"][c]))) for c in range(num_classes)],
                  header=("class", "precision", "recall", "f1", "support")))
  rows = [("10 classes: MLP", multi["accuracy"], multi["log_loss"], multi["precision_macro"],
           multi["recall_macro"], multi["f1_macro"])]
  for name, (m, _) in binary.items():
    rows.append((f"{pos}: {name}", m["accuracy"], m["log_loss"], m["precision"], m["recall"], m["f1"]))
  print()
  return common.finish(out, summary, rows, header=(
      "model (P/R/F1: macro for 10 classes, positive class for binary)", "accuracy", "log_loss", "precision",
      "recall", "f1"))


def plot_per_class(multi: dict[str, Any], path: str) -> str:
  """Precision, recall and F1 per class as grouped bars."""
  classes = np.arange(len(multi["precision_per_class"]))
  fig, ax = plt.subplots(figsize=(9, 3.8))
  for i, kind in enumerate(("precision", "recall", "f1")):
    ax.bar(classes + (i - 1) * 0.27, multi[f"{kind}_per_class"], width=0.27, label=kind)
  low = min(min(multi[f"{k}_per_class"]) for k in ("precision", "recall", "f1"))
  ax.set_ylim(max(0.0, low - 0.05), 1.0)
  ax.set_xticks(classes)
  ax.set_xlabel("class")
  ax.set_title(f"per-class metrics (accuracy {multi['accuracy']:.3f})")
  ax.grid(alpha=0.3, axis="y")
  ax.legend(loc="lower right")
  fig.tight_layout()
  return plots.save(fig, path)


def plot_threshold(sweep: dict[str, list[float]], binary: dict[str, tuple[dict, dict]], positive: int,
                   path: str) -> str:
  """Left: accuracy vs recall / F1 per classifier. Right: the trained model's P / R / F1 vs threshold."""
  fig, axes = plt.subplots(1, 2, figsize=(12, 4))
  names = list(binary)
  x = np.arange(len(names))
  colors = {"accuracy": "C0", "precision": "C1", "recall": "C2", "f1": "C3"}
  for i, (kind, color) in enumerate(colors.items()):
    bars = axes[0].bar(x + (i - 1.5) * 0.2, [binary[n][0][kind] for n in names], width=0.2, label=kind,
                       color=color)
    axes[0].bar_label(bars, fmt="%.2f", fontsize=7)  # the majority classifier's zeros show as "0.00"
  axes[0].set_xticks(x, names)
  axes[0].set_ylim(0, 1.15)
  axes[0].set_title(f"is it a {positive}? accuracy hides the majority classifier")
  axes[0].grid(alpha=0.3, axis="y")
  axes[0].legend(fontsize=8, loc="upper center", ncol=4)
  for kind, values in sweep.items():
    axes[1].plot(THRESHOLDS, values, "o-", label=kind, color=colors[kind])
  axes[1].set_xlabel("decision threshold")
  axes[1].set_title("trained model: precision / recall trade-off")
  axes[1].grid(alpha=0.3)
  axes[1].legend(fontsize=8)
  fig.tight_layout()
  return plots.save(fig, path)


if __name__ == "__main__":
  cli.run(main, prog="metrics")
