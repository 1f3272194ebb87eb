"""Metrics as additive sufficient statistics, so that they can be summed inside a compiled `lax.scan`.

A `Metric` is `update(y_true, y_pred, sample_weight) -> statistics` (sums over one batch) and
`compute(statistics) -> value`. Statistics of batches add leaf by leaf: `compute` of the summed updates of
two halves equals the metric on the whole. `sample_weight` (B,) may be a 0 / 1 padding mask; per-step
weights (B, T) (sequence outputs: `fit` passes the outputs' step mask there) weigh each step.

- Mean metrics (accuracies, mse, crossentropy, ...) keep `{"total", "count"}` and divide by the summed
  weight, as Keras' `Mean` metrics do (losses divide by the number of examples instead).
- precision / recall / f1_score keep a weighted confusion matrix (rows true, columns predicted).
Divisions by zero give 0, not nan.

Input shapes are checked as in `jaxnn.losses`: mismatches raise `JaxnnError`, never broadcast.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxnn import _checks
from jaxnn import losses
from jaxnn.errors import JaxnnError

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PyTree = Any

AVERAGES = ("auto", "macro", "micro", "weighted", None)


@dataclasses.dataclass(frozen=True)
class _Bound:
  """A function with static keyword options, hashed and compared by value (equal metrics share jit caches)."""

  fn: Callable[..., Any]
  kwargs: tuple[tuple[str, Any], ...] = ()

  def __call__(self, *args: Any) -> Any:
    return self.fn(*args, **dict(self.kwargs))


@dataclasses.dataclass(frozen=True)
class Metric:
  """A metric defined by additive statistics; hashable, so it can be a static `jit` argument.

  Attributes:
    name: the name it is reported under (the identifier given to `get`).
    update: `update(y_true, y_pred, sample_weight=None) -> statistics`, a pytree of batch sums.
    compute: `compute(statistics) -> value`, applied to statistics summed over batches.
    weighted: whether `fit` and `evaluate` pass it the sample weights (and class weights), as Keras does
      for `weighted_metrics`; they set it for the metrics given as `weighted_metrics`. Otherwise a metric
      counts every (unmasked) example alike, as Keras' `metrics` do.
  """

  name: str
  update: Callable[..., PyTree]
  compute: Callable[[PyTree], Array]
  weighted: bool = False


def evaluate(metric: Metric, y_true: ArrayLike, y_pred: ArrayLike,
             sample_weight: ArrayLike | None = None) -> Array:
  """The metric's value on one set of examples: `compute(update(y_true, y_pred, sample_weight))`."""
  return metric.compute(metric.update(y_true, y_pred, sample_weight))


# --------------------------------------------------------------------------------------------- helpers
def _scores(name: str, y_pred: ArrayLike, min_ndim: int = 1) -> Array:
  """y_pred as a numeric array of at least `min_ndim` axes."""
  y_pred = jnp.asarray(y_pred)
  if not jnp.issubdtype(y_pred.dtype, jnp.number):
    raise JaxnnError(f"{name}: y_pred must be numeric, found dtype {y_pred.dtype}")
  if y_pred.ndim < min_ndim:
    what = "(batch, ..., classes)" if min_ndim > 1 else "a batch axis"
    raise JaxnnError(f"{name}: y_pred must have shape {what}, found {y_pred.shape}")
  return y_pred


def _weights(sample_weight: ArrayLike | None, shape: tuple[int, ...]) -> Array:
  """Float32 weights per example `(B,)` or per step (`shape[:k]`, e.g. `(B, T)` for sequence outputs); all
  ones of shape (B,) for None."""
  if sample_weight is None:
    return jnp.ones(shape[:1], jnp.float32)
  sample_weight = jnp.asarray(sample_weight)
  if sample_weight.ndim == 0 or sample_weight.shape != shape[:sample_weight.ndim]:
    what = "one value per example" if len(shape) == 1 else "one value per example or per step"
    raise JaxnnError(f"sample_weight: expected shape {losses._weight_shapes(shape)}, {what}, "  # pylint: disable=protected-access
                     f"found {sample_weight.shape}")
  return sample_weight.astype(jnp.float32)


def _safe_div(num: Array, den: Array) -> Array:
  """num / den, and 0 where den is 0."""
  nonzero = den != 0
  return jnp.where(nonzero, num / jnp.where(nonzero, den, 1), 0.0)


def _sparse(name: str, y_true: ArrayLike, y_pred: Array) -> Array:
  """Checked integer labels for a sparse metric (pointing one-hot labels to its non-sparse twin)."""
  return losses._sparse_labels(name, y_true, y_pred,  # pylint: disable=protected-access
                               one_hot_alternative=name.replace("sparse_", "", 1))


def _same_shape(name: str, y_true: ArrayLike, y_pred: Array, min_ndim: int = 1) -> Array:
  """y_true checked to have y_pred's shape (pointing integer labels to the sparse twin)."""
  y_true = jnp.asarray(y_true)
  hint = ""
  if min_ndim > 1 and y_true.shape == y_pred.shape[:-1]:
    hint = f"; for integer class labels use sparse_{name}"
  losses._check_same_shape(name, y_true, y_pred, min_ndim, hint)  # pylint: disable=protected-access
  return y_true


def _mean_last(x: Array) -> Array:
  """Mean over the last axis, except for rank-1 inputs, whose only axis is the batch."""
  return x if x.ndim == 1 else jnp.mean(x, axis=-1)


# --------------------------------------------------------------------------------------------- accuracies
def sparse_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """1.0 where `argmax(y_pred)` equals the integer label `y_true` (shape `y_pred.shape[:-1]`), else 0.0."""
  y_pred = _scores("sparse_categorical_accuracy", y_pred, min_ndim=2)
  y_true = _sparse("sparse_categorical_accuracy", y_true, y_pred)
  return (jnp.argmax(y_pred, axis=-1) == y_true).astype(jnp.float32)


def categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """1.0 where `argmax(y_pred)` equals `argmax(y_true)` (one-hot, y_pred's shape), else 0.0."""
  y_pred = _scores("categorical_accuracy", y_pred, min_ndim=2)
  y_true = _same_shape("categorical_accuracy", y_true, y_pred, min_ndim=2)
  return (jnp.argmax(y_pred, axis=-1) == jnp.argmax(y_true, axis=-1)).astype(jnp.float32)


def binary_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, threshold: float = 0.5) -> Array:
  """Fraction of entries where `(y_pred > threshold)` equals `y_true`, averaged over the last axis.

  `(B,)` inputs give one value per example, and so do `(B, 1)` or multi-label `(B, K)` inputs.
  """
  y_pred = _scores("binary_accuracy", y_pred)
  y_true = _same_shape("binary_accuracy", y_true, y_pred).astype(jnp.float32)
  return _mean_last((y_true == (y_pred > threshold).astype(jnp.float32)).astype(jnp.float32))


def _check_k(name: str, k: Any) -> None:
  """Raises unless k is an int >= 1."""
  if not _checks.is_int(k) or k < 1:
    raise JaxnnError(f"{name}: k must be an int >= 1, found {k!r}")


def _in_top_k(labels: Array, scores: Array, k: int) -> Array:
  """1.0 where fewer than k classes score strictly higher than the label's class (ties count as in)."""
  num_classes = scores.shape[-1]
  valid = (labels >= 0) & (labels < num_classes)
  label_score = jnp.take_along_axis(scores, jnp.where(valid, labels, 0)[..., None], axis=-1)
  label_score = jnp.where(jnp.isnan(label_score), -jnp.inf, label_score)  # nan is no high score
  higher = jnp.sum(scores > label_score, axis=-1)
  return (valid & (higher < k)).astype(jnp.float32)


def top_k_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, k: int = 5) -> Array:
  """1.0 where `argmax(y_true)` (one-hot) is among the k highest scores of `y_pred`, else 0.0."""
  _check_k("top_k_categorical_accuracy", k)
  y_pred = _scores("top_k_categorical_accuracy", y_pred, min_ndim=2)
  y_true = _same_shape("top_k_categorical_accuracy", y_true, y_pred, min_ndim=2)
  return _in_top_k(jnp.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, k: int = 5) -> Array:
  """1.0 where the integer label `y_true` is among the k highest scores of `y_pred`, else 0.0."""
  _check_k("sparse_top_k_categorical_accuracy", k)
  y_pred = _scores("sparse_top_k_categorical_accuracy", y_pred, min_ndim=2)
  y_true = _sparse("sparse_top_k_categorical_accuracy", y_true, y_pred)
  return _in_top_k(y_true, y_pred, k)


def _accuracy_by_shape(y_true: ArrayLike, y_pred: ArrayLike, *, threshold: float = 0.5) -> Array:
  """Keras' shape rule for "accuracy": one output column is binary, labels of lower rank are sparse."""
  y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
  if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
    return binary_accuracy(y_true, y_pred, threshold=threshold)
  if y_true.ndim == y_pred.ndim - 1:
    return sparse_categorical_accuracy(y_true, y_pred)
  return categorical_accuracy(y_true, y_pred)


def _top_k_by_shape(y_true: ArrayLike, y_pred: ArrayLike, *, k: int = 5) -> Array:
  """Sparse top-k for labels of lower rank than y_pred, one-hot top-k otherwise."""
  if jnp.ndim(y_true) == jnp.ndim(y_pred) - 1:
    return sparse_top_k_categorical_accuracy(y_true, y_pred, k=k)
  return top_k_categorical_accuracy(y_true, y_pred, k=k)


def _cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """The cosine similarity itself: Keras' metric has the opposite sign of its loss."""
  return -losses.cosine_similarity(y_true, y_pred)


# --------------------------------------------------------------------------------------------- mean metrics
def _mean_update(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None, *,
                 fn: Callable[..., Array], options: tuple[tuple[str, Any], ...]) -> dict[str, Array]:
  """Weighted sum of the per-example values of `fn` and the sum of the weights."""
  values = jnp.asarray(fn(y_true, y_pred, **dict(options)), jnp.float32)
  if values.ndim == 0:
    raise JaxnnError(f"{getattr(fn, '__name__', 'metric')}: expected per-example values with a batch "
                     "axis, found a scalar")
  weight = _weights(sample_weight, values.shape)
  # Averaged over the axes the weights do not reach, then weighted entry by entry (Keras' Mean metrics).
  if values.ndim > weight.ndim:
    values = jnp.mean(values, axis=tuple(range(weight.ndim, values.ndim)))
  # `where`, not a product: padded rows may hold garbage (nan) that 0 * nan would let through.
  return {"total": jnp.sum(jnp.where(weight != 0, values * weight, 0.0)), "count": jnp.sum(weight)}


def _mean_compute(stats: dict[str, Array], *, root: bool = False) -> Array:
  """total / count (0 when nothing was counted); its square root for rmse."""
  mean = _safe_div(jnp.asarray(stats["total"]), jnp.asarray(stats["count"]))
  return jnp.sqrt(mean) if root else mean


def _mean_metric(name: str, fn: Callable[..., Array], options: dict[str, Any], root: bool = False) -> Metric:
  """The weighted mean of a per-example function (its square root with `root`) as a Metric."""
  fn_name = getattr(fn, "__name__", name).lstrip("_")
  what = name if fn_name == name else f"{name} ({fn_name})"  # say what "accuracy" resolved to
  pairs = losses._options(what, fn, options)  # pylint: disable=protected-access
  compute = _Bound(_mean_compute, (("root", True),) if root else ())
  return Metric(name=name, update=_Bound(_mean_update, (("fn", fn), ("options", pairs))), compute=compute)


# --------------------------------------------------------------------------------------------- confusion
def confusion_matrix(y_true: ArrayLike, y_pred_classes: ArrayLike, num_classes: int,
                     sample_weight: ArrayLike | None = None) -> Array:
  """Weighted counts of (true class, predicted class) pairs.

  Args:
    y_true: integer labels, shape `(B,)` (or `(B, ...)`).
    y_pred_classes: integer predicted classes, the shape of `y_true`.
    num_classes: the number of classes C (static).
    sample_weight: per-example weights `(B,)`, or per-entry ones of a leading part of y_true's shape; default 1.

  Returns:
    A float32 `(C, C)` matrix, rows true classes, columns predicted classes. Out-of-range labels raise
    when concrete and are left out under `jit`.
  """
  name = "confusion_matrix"
  if not _checks.is_int(num_classes) or num_classes < 1:
    raise JaxnnError(f"{name}: num_classes must be an int >= 1, found {num_classes!r}")
  y_true, y_pred_classes = jnp.asarray(y_true), jnp.asarray(y_pred_classes)
  for arg, value in (("y_true", y_true), ("y_pred_classes", y_pred_classes)):
    if not jnp.issubdtype(value.dtype, jnp.integer):
      raise JaxnnError(f"{name}: {arg} must hold integer classes, found dtype {value.dtype}")
    concrete = losses._concrete(value)  # pylint: disable=protected-access
    if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() >= num_classes):
      bad = concrete.min() if concrete.min() < 0 else concrete.max()
      raise JaxnnError(f"{name}: {arg} classes must be in [0, {num_classes}), found {bad}")
  if y_true.shape != y_pred_classes.shape or y_true.ndim == 0:
    raise JaxnnError(f"{name}: y_pred_classes must have the shape of y_true {y_true.shape} with a batch "
                     f"axis, found {y_pred_classes.shape}")
  weight = _weights(sample_weight, y_true.shape)
  weight = jnp.broadcast_to(weight.reshape(weight.shape + (1,) * (y_true.ndim - weight.ndim)), y_true.shape)
  true_1h = jax.nn.one_hot(y_true.reshape(-1), num_classes) * weight.reshape(-1, 1)
  pred_1h = jax.nn.one_hot(y_pred_classes.reshape(-1), num_classes)
  # HIGHEST: a default-precision float32 matmul may run in TF32 on GPUs and round the weights.
  return jnp.einsum("ni,nj->ij", true_1h, pred_1h, precision=jax.lax.Precision.HIGHEST)


def _confusion_update(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None, *,
                      name: str, threshold: float = 0.5) -> dict[str, Array]:
  """The batch's confusion matrix; binary inputs, (B,) or (B, 1), are 2 classes keyed apart."""
  y_pred = _scores(name, y_pred)
  y_true = jnp.asarray(y_true)
  if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
    if y_true.shape != y_pred.shape:
      raise JaxnnError(f"{name}: y_true must have the shape of the binary y_pred {y_pred.shape} "
                       f"(no broadcasting), found {y_true.shape}")
    positive, predicted = (y_true > 0.5).astype(jnp.int32), (y_pred > threshold).astype(jnp.int32)
    return {"binary_confusion": confusion_matrix(positive, predicted, 2, sample_weight)}
  if y_true.shape == y_pred.shape:
    labels = jnp.argmax(y_true, axis=-1)
  elif y_true.shape == y_pred.shape[:-1]:
    if not jnp.issubdtype(y_true.dtype, jnp.integer):
      raise JaxnnError(f"{name}: y_true of shape {y_true.shape} must hold integer class labels, found "
                       f"dtype {y_true.dtype} (one-hot labels must have y_pred's shape {y_pred.shape})")
    labels = y_true
  else:
    raise JaxnnError(f"{name}: y_true must be integer labels of shape {y_pred.shape[:-1]} or one-hot "
                     f"rows of shape {y_pred.shape}, found {y_true.shape}")
  return {"confusion": confusion_matrix(labels, jnp.argmax(y_pred, axis=-1), y_pred.shape[-1],
                                        sample_weight)}


def _prf_compute(stats: dict[str, Array], *, kind: str, average: str | None) -> Array:
  """Precision, recall or F1 from a confusion matrix, averaged as asked."""
  binary = "binary_confusion" in stats
  cm = jnp.asarray(stats["binary_confusion" if binary else "confusion"])
  tp, predicted, actual = jnp.diag(cm), jnp.sum(cm, axis=0), jnp.sum(cm, axis=1)
  if kind == "precision":
    num, den = tp, predicted
  elif kind == "recall":
    num, den = tp, actual
  else:  # 2PR / (P + R) = 2TP / (2TP + FP + FN), with no 0 / 0 when TP = 0
    num, den = 2 * tp, predicted + actual
  if average == "auto" and binary:
    return _safe_div(num[1], den[1])  # the positive class, as Keras' Precision / Recall report
  if average == "micro":
    return _safe_div(jnp.sum(num), jnp.sum(den))
  per_class = _safe_div(num, den)
  if average is None:
    return per_class
  if average == "weighted":
    return _safe_div(jnp.sum(per_class * actual), jnp.sum(actual))
  return jnp.mean(per_class)  # "macro", and "auto" for more than two classes


def _prf_metric(name: str, kind: str, average: str | None = "auto", threshold: float = 0.5) -> Metric:
  """Precision, recall or F1 ("f1") as a Metric over a confusion matrix."""
  if average not in AVERAGES:
    raise JaxnnError(f"{name}: average must be one of {list(AVERAGES)}, found {average!r}")
  if not isinstance(threshold, numbers.Real):
    raise JaxnnError(f"{name}: threshold must be a number, found {threshold!r}")
  return Metric(name=name, update=_Bound(_confusion_update, (("name", name), ("threshold", threshold))),
                compute=_Bound(_prf_compute, (("average", average), ("kind", kind))))


def _prf_doc(fn: Callable[..., Array]) -> Callable[..., Array]:
  """Appends the Args / Returns that precision, recall and f1_score share to fn's docstring."""
  fn.__doc__ = f"""{fn.__doc__}

  Args:
    y_true: integer labels `(B,)` or one-hot rows `(B, C)`; binary 0 / 1 targets of y_pred's shape.
    y_pred: class scores `(B, C)` (the argmax is the prediction), or probabilities `(B,)` / `(B, 1)`
      of the positive class (positive where `> threshold`).
    sample_weight: per-example weights `(B,)`; default 1.
    average: "auto" (the positive class for binary inputs, "macro" otherwise), "macro" (unweighted
      mean over the classes), "micro" (from summed counts), "weighted" (mean weighted by each class's
      true count), or None (per-class values, shape `(C,)`; binary inputs are classes 0 and 1).
    threshold: the decision threshold for binary inputs.

  Returns:
    The value (0 wherever a denominator is 0).
  """
  return fn


@_prf_doc
def precision(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None, *,
              average: str | None = "auto", threshold: float = 0.5) -> Array:
  """Precision, TP / (TP + FP), from the weighted confusion matrix."""
  return evaluate(_prf_metric("precision", "precision", average, threshold), y_true, y_pred, sample_weight)


@_prf_doc
def recall(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None, *,
           average: str | None = "auto", threshold: float = 0.5) -> Array:
  """Recall, TP / (TP + FN), from the weighted confusion matrix."""
  return evaluate(_prf_metric("recall", "recall", average, threshold), y_true, y_pred, sample_weight)


@_prf_doc
def f1_score(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None, *,
             average: str | None = "auto", threshold: float = 0.5) -> Array:
  """F1, the harmonic mean of precision and recall, 2 TP / (2 TP + FP + FN), per class."""
  return evaluate(_prf_metric("f1_score", "f1", average, threshold), y_true, y_pred, sample_weight)


# --------------------------------------------------------------------------------------------- registry
_ACCURACIES: dict[str, Callable[..., Array]] = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "SparseCategoricalAccuracy": sparse_categorical_accuracy,
    "CategoricalAccuracy": categorical_accuracy,
    "BinaryAccuracy": binary_accuracy,
    "TopKCategoricalAccuracy": top_k_categorical_accuracy,
    "SparseTopKCategoricalAccuracy": sparse_top_k_categorical_accuracy,
}
_PRF = {"precision": "precision", "Precision": "precision", "recall": "recall", "Recall": "recall",
        "f1_score": "f1", "f1": "f1", "F1Score": "f1"}
_RMSE = ("root_mean_squared_error", "rmse", "RootMeanSquaredError")
_TOP_N = re.compile(r"top_([1-9][0-9]*)_accuracy")

# Accuracy that follows the loss's targets (Keras resolves "accuracy" from the targets' shapes).
_BY_LABEL_FORMAT = {
    "accuracy": {"sparse": sparse_categorical_accuracy, "one_hot": categorical_accuracy,
                 "binary": binary_accuracy},
    "top_k": {"sparse": sparse_top_k_categorical_accuracy, "one_hot": top_k_categorical_accuracy},
}


def names() -> list[str]:
  """Every name `get` accepts; also "top_<k>_accuracy" for any k >= 1 (e.g. "top_5_accuracy")."""
  all_names = {"accuracy", "acc", "top_k_accuracy", *_ACCURACIES, *_PRF, *_RMSE, *losses.names()}
  return sorted(all_names, key=lambda name: (name[0].isupper(), name))


def get(identifier: str | Metric | Callable[..., Array], *,
        loss: losses.Loss | str | None = None, **options: Any) -> Metric:
  """Resolves a metric.

  "accuracy" / "acc" follow the loss's `label_format` (sparse -> sparse_categorical_accuracy, one_hot
  -> categorical_accuracy, binary -> binary_accuracy); with no loss or a regression / custom loss they
  use Keras' shape rule at update time (one output column: binary; labels of lower rank than y_pred:
  sparse; otherwise categorical). "top_k_accuracy" (option k, default 5) and "top_<k>_accuracy" pick
  the sparse or one-hot top-k the same way. Loss names ("mse", "binary_crossentropy", ...) give the
  weighted mean of that loss; "cosine_similarity" reports +cos as Keras' metric does.

  Args:
    identifier: a name (see `names()`), a `Metric` (returned as is), or a per-example function
      `fn(y_true, y_pred, **options) -> (B,)`, averaged with the sample weights.
    loss: the loss being trained (a `Loss` or a loss name), used to resolve "accuracy".
    **options: static options: `threshold`, `k`, `average` ("auto", "macro", "micro", "weighted",
      None) for precision / recall / f1_score, or the loss's options (e.g. `from_logits=True`).

  Returns:
    A `Metric` named `identifier` (or `fn.__name__`).
  """
  if isinstance(identifier, Metric):
    if options:
      raise JaxnnError(f"metric {identifier.name}: options {sorted(options)} cannot be applied to a Metric")
    return identifier
  if not isinstance(identifier, str):
    if callable(identifier):
      return _mean_metric(getattr(identifier, "__name__", type(identifier).__name__), identifier, options)
    raise JaxnnError(f"metric: expected a name, a Metric or a callable, found {type(identifier).__name__}")
  name = identifier
  label_format = None if loss is None else losses.get(loss).label_format
  top_n = _TOP_N.fullmatch(name)
  if name in ("accuracy", "acc"):
    fn = _BY_LABEL_FORMAT["accuracy"].get(label_format, _accuracy_by_shape)
    return _mean_metric(name, fn, options)
  if name == "top_k_accuracy" or top_n:
    if top_n:
      if "k" in options:
        raise JaxnnError(f"{name}: k is given by the name; use top_k_accuracy to pass k={options['k']}")
      options = {**options, "k": int(top_n.group(1))}
    return _mean_metric(name, _BY_LABEL_FORMAT["top_k"].get(label_format, _top_k_by_shape), options)
  if name in _ACCURACIES:
    return _mean_metric(name, _ACCURACIES[name], options)
  if name in _PRF:
    unknown = sorted(set(options) - {"average", "threshold"})
    if unknown:
      raise JaxnnError(f"{name}: unknown option(s) {unknown}; accepted: ['average', 'threshold']")
    return _prf_metric(name, _PRF[name], **options)
  if name in _RMSE:
    return _mean_metric(name, losses.mean_squared_error, options, root=True)
  if name in losses.names():
    fn = losses.get(name).fn
    return _mean_metric(name, _cosine_similarity if fn is losses.cosine_similarity else fn, options)
  raise JaxnnError(f"metric: unknown name {name!r}; valid names: {', '.join(names())}, top_<k>_accuracy")
