"""Keras-named losses on top of `optax.losses`: per-example functions, one reduction, a hashable `Loss`.

Every loss function takes `(y_true, y_pred)` plus keyword-only options and returns per-example values:
the class / feature (last) axis is reduced as Keras does, so `(B, C)` inputs give `(B,)`. Rank-1 inputs
to element-wise losses (`(B,)` targets and predictions) are already per-example and are not reduced.
Inputs of rank 3 or more keep their extra axes (`(B, T, C)` gives `(B, T)`); `weighted_mean` averages
them, or with per-step weights or a per-step mask (sequence outputs) weighs them step by step. Reduction and weighting happen in one place, `weighted_mean`, which `Loss.__call__` uses.

Deliberate difference from Keras: shapes are never squeezed, expanded or broadcast. Keras quietly turns
`(B,)` targets against `(B, 1)` predictions into a match (and `(B, 1)` sparse labels into `(B,)`); here
any mismatch raises `JaxnnError` naming both shapes, because a silent broadcast of `(B,)` against
`(B, 1)` gives a `(B, B)` loss that trains on nonsense. The checks read static shapes, so they also run
under `jax.jit`.

Probabilities (`from_logits=False`) follow Keras: clipped to `[EPSILON, 1 - EPSILON]` (categorical ones
renormalized by their sum first), so predictions at exactly 0 or 1 give finite losses and gradients.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn.errors import JaxnnError

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

EPSILON = 1e-7  # Keras' backend.epsilon(): the probability clip and the guard in mape / msle / poisson.


# --------------------------------------------------------------------------------------------- checks
def _concrete(x: Array) -> np.ndarray | None:
  """The value of `x` on the host, or None while tracing (range checks then happen per call)."""
  return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def _float_pred(name: str, y_pred: ArrayLike) -> Array:
  """y_pred as a floating-point array with a batch axis."""
  y_pred = jnp.asarray(y_pred)
  if not jnp.issubdtype(y_pred.dtype, jnp.floating):
    raise JaxnnError(f"{name}: y_pred must be floating-point, found dtype {y_pred.dtype}")
  if y_pred.ndim == 0:
    raise JaxnnError(f"{name}: y_pred must have a batch axis, found a scalar")
  return y_pred


def _same_shape(name: str, y_true: ArrayLike, y_pred: ArrayLike, min_ndim: int = 1,
                hint: str = "") -> tuple[Array, Array]:
  """(y_true, y_pred) of one shape, y_true cast to y_pred's float dtype; raises instead of broadcasting."""
  y_pred = _float_pred(name, y_pred)
  y_true = jnp.asarray(y_true)
  _check_same_shape(name, y_true, y_pred, min_ndim, hint)
  return y_true.astype(y_pred.dtype), y_pred


def _check_same_shape(name: str, y_true: Array, y_pred: Array, min_ndim: int = 1, hint: str = "") -> None:
  """Raises unless y_true is numeric and has y_pred's shape, of at least `min_ndim` axes."""
  if y_true.shape != y_pred.shape:
    raise JaxnnError(f"{name}: y_true must have the shape of y_pred {y_pred.shape} (no broadcasting), "
                     f"found {y_true.shape}{hint}")
  if y_pred.ndim < min_ndim:
    raise JaxnnError(f"{name}: y_pred must have shape (batch, ..., classes) with at least {min_ndim} "
                     f"axes, found {y_pred.shape}")
  if not (jnp.issubdtype(y_true.dtype, jnp.number) or y_true.dtype == jnp.bool_):
    raise JaxnnError(f"{name}: y_true must be numeric, found dtype {y_true.dtype}")


def _categorical(name: str, y_true: ArrayLike, y_pred: ArrayLike) -> tuple[Array, Array]:
  """Checks one-hot / distribution targets against (batch, ..., classes) predictions."""
  y_true, y_pred_arr = jnp.asarray(y_true), jnp.asarray(y_pred)
  hint = ""
  if y_true.shape == y_pred_arr.shape[:-1]:
    hint = "; for integer class labels use sparse_categorical_crossentropy"
  return _same_shape(name, y_true, y_pred_arr, min_ndim=2, hint=hint)


def _sparse_labels(name: str, y_true: ArrayLike, y_pred: Array, ignore_class: int | None = None,
                   one_hot_alternative: str = "categorical_crossentropy") -> Array:
  """Checks integer labels of shape y_pred.shape[:-1], and their range when they are concrete."""
  y_true = jnp.asarray(y_true)
  if y_pred.ndim < 2:
    raise JaxnnError(f"{name}: y_pred must have shape (batch, ..., classes), found {y_pred.shape}")
  if not jnp.issubdtype(y_true.dtype, jnp.integer):
    raise JaxnnError(f"{name}: y_true must hold integer class labels, found dtype {y_true.dtype} "
                     f"(use {one_hot_alternative} for one-hot labels)")
  if y_true.shape != y_pred.shape[:-1]:
    hint = ""
    if y_true.shape == y_pred.shape:
      hint = f" (one-hot labels? use {one_hot_alternative})"
    elif y_true.shape == y_pred.shape[:-1] + (1,):
      hint = " (drop the trailing axis of size 1)"
    raise JaxnnError(f"{name}: y_true must have shape {y_pred.shape[:-1]} (y_pred's without the class "
                     f"axis), found {y_true.shape}{hint}")
  values = _concrete(y_true)
  if values is not None:
    num_classes = y_pred.shape[-1]
    bad = (values < 0) | (values >= num_classes)
    if ignore_class is not None:
      bad &= values != ignore_class
    if bad.any():
      raise JaxnnError(f"{name}: y_true labels must be in [0, {num_classes}), found {values[bad][0]}")
  return y_true


def _check_bool(name: str, arg: str, value: Any) -> None:
  """Raises unless value is a Python (static) bool."""
  if not isinstance(value, (bool, np.bool_)):
    raise JaxnnError(f"{name}: {arg} must be a bool (a static option), found {value!r}")


def _check_unit_interval(name: str, arg: str, value: Any) -> None:
  """Raises if a concrete number lies outside [0, 1] (traced values pass unchecked)."""
  if isinstance(value, numbers.Real) and not 0.0 <= value <= 1.0:
    raise JaxnnError(f"{name}: {arg} must be in [0, 1], found {value!r}")


def _mean_last(x: Array) -> Array:
  """Mean over the last axis, except for rank-1 inputs, whose only axis is the batch."""
  return x if x.ndim == 1 else jnp.mean(x, axis=-1)


# --------------------------------------------------------------------------------------------- crossentropy
def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, *, from_logits: bool = False,
                                    ignore_class: int | None = None) -> Array:
  """Crossentropy between integer labels and class scores.

  Args:
    y_true: integer labels, shape `y_pred.shape[:-1]`.
    y_pred: probabilities (or logits with `from_logits=True`), shape `(B, ..., C)`.
    from_logits: whether `y_pred` holds logits.
    ignore_class: a label whose entries get loss 0 (e.g. padding tokens); it still counts in
      `weighted_mean`'s denominator, unlike Keras, which divides by the unignored count. Pass a `mask` to
      `weighted_mean` to drop whole examples.

  Returns:
    Per-example losses, shape `y_pred.shape[:-1]`. Out-of-range labels raise when the labels are
    concrete and give nan under `jit`.
  """
  name = "sparse_categorical_crossentropy"
  _check_bool(name, "from_logits", from_logits)
  if ignore_class is not None and (isinstance(ignore_class, bool) or
                                   not isinstance(ignore_class, numbers.Integral)):
    raise JaxnnError(f"{name}: ignore_class must be an int or None, found {ignore_class!r}")
  y_pred = _float_pred(name, y_pred)
  y_true = _sparse_labels(name, y_true, y_pred, ignore_class)
  num_classes = y_pred.shape[-1]
  in_range = (y_true >= 0) & (y_true < num_classes)
  safe = jnp.where(in_range, y_true, 0)  # take_along_axis wraps negative labels silently
  if from_logits:
    loss = optax.losses.softmax_cross_entropy_with_integer_labels(y_pred, safe)
  else:
    log_p = jnp.log(_clip_distribution(y_pred))
    loss = -jnp.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
  if ignore_class is not None:
    ignored = y_true == ignore_class
    in_range |= ignored
    loss = jnp.where(ignored, 0.0, loss)
  return jnp.where(in_range, loss, jnp.nan)


def _clip_distribution(p: Array) -> Array:
  """Keras' treatment of predicted class probabilities: renormalize by the sum, then clip."""
  p = p / jnp.sum(p, axis=-1, keepdims=True)
  return jnp.clip(p, EPSILON, 1.0 - EPSILON)


def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, *, from_logits: bool = False,
                             label_smoothing: float = 0.0) -> Array:
  """Crossentropy between one-hot (or soft) targets and class scores.

  Args:
    y_true: one-hot or probability targets, the shape of `y_pred`.
    y_pred: probabilities (or logits with `from_logits=True`), shape `(B, ..., C)`.
    from_logits: whether `y_pred` holds logits.
    label_smoothing: in [0, 1]; targets become `y * (1 - ls) + ls / C`.

  Returns:
    Per-example losses, shape `y_pred.shape[:-1]`.
  """
  name = "categorical_crossentropy"
  _check_bool(name, "from_logits", from_logits)
  _check_unit_interval(name, "label_smoothing", label_smoothing)
  y_true, y_pred = _categorical(name, y_true, y_pred)
  y_true = optax.losses.smooth_labels(y_true, label_smoothing)
  if from_logits:
    return optax.losses.softmax_cross_entropy(y_pred, y_true)
  # optax's softmax_cross_entropy would renormalize the clipped probabilities once more, so the clipped
  # Keras form is written out instead.
  return -jnp.sum(y_true * jnp.log(_clip_distribution(y_pred)), axis=-1)


def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, *, from_logits: bool = False,
                        label_smoothing: float = 0.0) -> Array:
  """Crossentropy of independent binary outcomes, averaged over the last axis.

  Args:
    y_true: targets in [0, 1], the shape of `y_pred`.
    y_pred: probabilities (or logits with `from_logits=True`), shape `(B,)` or `(B, ..., K)`.
    from_logits: whether `y_pred` holds logits.
    label_smoothing: in [0, 1]; targets become `y * (1 - ls) + 0.5 * ls`.

  Returns:
    Per-example losses, shape `(B,)` for `(B,)` or `(B, K)` inputs.
  """
  name = "binary_crossentropy"
  _check_bool(name, "from_logits", from_logits)
  _check_unit_interval(name, "label_smoothing", label_smoothing)
  y_true, y_pred = _same_shape(name, y_true, y_pred)
  y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
  if from_logits:
    return _mean_last(optax.losses.sigmoid_binary_cross_entropy(y_pred, y_true))
  p = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
  return _mean_last(-(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p)))


# --------------------------------------------------------------------------------------------- regression
def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `(y_pred - y_true) ** 2`; shapes must match."""
  y_true, y_pred = _same_shape("mean_squared_error", y_true, y_pred)
  return _mean_last(optax.losses.squared_error(y_pred, y_true))


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `|y_pred - y_true|`; shapes must match."""
  y_true, y_pred = _same_shape("mean_absolute_error", y_true, y_pred)
  return _mean_last(jnp.abs(y_pred - y_true))


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """`100 * mean(|y_true - y_pred| / max(|y_true|, EPSILON))` over the last axis."""
  y_true, y_pred = _same_shape("mean_absolute_percentage_error", y_true, y_pred)
  return 100.0 * _mean_last(jnp.abs(y_true - y_pred) / jnp.maximum(jnp.abs(y_true), EPSILON))


def mean_squared_logarithmic_error(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `(log(1 + max(y_pred, EPSILON)) - log(1 + max(y_true, EPSILON))) ** 2`."""
  y_true, y_pred = _same_shape("mean_squared_logarithmic_error", y_true, y_pred)
  log_pred = jnp.log1p(jnp.maximum(y_pred, EPSILON))
  log_true = jnp.log1p(jnp.maximum(y_true, EPSILON))
  return _mean_last(optax.losses.squared_error(log_pred, log_true))


def huber(y_true: ArrayLike, y_pred: ArrayLike, *, delta: float = 1.0) -> Array:
  """Huber loss (quadratic within `delta`, linear outside), averaged over the last axis."""
  if isinstance(delta, numbers.Real) and not delta > 0:
    raise JaxnnError(f"huber: delta must be > 0, found {delta!r}")
  y_true, y_pred = _same_shape("huber", y_true, y_pred)
  return _mean_last(optax.losses.huber_loss(y_pred, y_true, delta=delta))


def log_cosh(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `log(cosh(y_pred - y_true))`."""
  y_true, y_pred = _same_shape("log_cosh", y_true, y_pred)
  return _mean_last(optax.losses.log_cosh(y_pred, y_true))


def poisson(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `y_pred - y_true * log(y_pred + EPSILON)` (y_pred a rate)."""
  y_true, y_pred = _same_shape("poisson", y_true, y_pred)
  return _mean_last(y_pred - y_true * jnp.log(y_pred + EPSILON))


def kl_divergence(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """`sum(y_true * log(y_true / y_pred))` over the class axis, both clipped to [EPSILON, 1] as Keras."""
  y_true, y_pred = _categorical("kl_divergence", y_true, y_pred)
  y_true = jnp.clip(y_true, EPSILON, 1.0)
  return optax.losses.kl_divergence(jnp.log(jnp.clip(y_pred, EPSILON, 1.0)), y_true)


def cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Minus the cosine similarity over the last axis (Keras' sign: minimizing aligns the vectors)."""
  y_true, y_pred = _same_shape("cosine_similarity", y_true, y_pred, min_ndim=2)
  # Keras bounds the squared norm below by EPSILON, so zero vectors give 0 rather than nan.
  return -optax.losses.cosine_similarity(y_pred, y_true, epsilon=EPSILON)


# --------------------------------------------------------------------------------------------- hinge
def _hinge_targets(y_true: Array) -> Array:
  """Keras' convention: targets that are all 0 / 1 are read as -1 / 1 (decided per call, jit-safe)."""
  is_binary = jnp.all((y_true == 0) | (y_true == 1))
  return jnp.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `max(0, 1 - y_true * y_pred)`; y_true in {-1, 1} or {0, 1}."""
  y_true, y_pred = _same_shape("hinge", y_true, y_pred)
  return _mean_last(optax.losses.hinge_loss(y_pred, _hinge_targets(y_true)))


def squared_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Mean over the last axis of `max(0, 1 - y_true * y_pred) ** 2`; y_true in {-1, 1} or {0, 1}."""
  y_true, y_pred = _same_shape("squared_hinge", y_true, y_pred)
  return _mean_last(jnp.square(optax.losses.hinge_loss(y_pred, _hinge_targets(y_true))))


def categorical_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
  """Keras' `max(0, 1 + max((1 - y_true) * y_pred) - sum(y_true * y_pred))` over the class axis."""
  # optax's multiclass_hinge_loss takes the max over the other classes' scores only; Keras' product form
  # also lets the true class's zeroed score into the max, which changes results for negative scores.
  y_true, y_pred = _categorical("categorical_hinge", y_true, y_pred)
  positive = jnp.sum(y_true * y_pred, axis=-1)
  negative = jnp.max((1.0 - y_true) * y_pred, axis=-1)
  return jnp.maximum(negative - positive + 1.0, 0.0)


# --------------------------------------------------------------------------------------------- reduction
def _weight_shapes(shape: tuple[int, ...]) -> str:
  """The weight / mask shapes `weighted_mean` accepts for values of `shape`: (B,) up to the values' own."""
  return " or ".join(str(shape[:k]) for k in range(1, len(shape) + 1))


def _leading(arg: str, value: ArrayLike | None, shape: tuple[int, ...], dtype: Any) -> Array | None:
  """Per-example `(B,)` or per-element `shape[:k]` weights, as `dtype` (None stays None)."""
  if value is None:
    return None
  value = jnp.asarray(value)
  if value.ndim == 0 or value.shape != shape[:value.ndim]:
    what = "one value per example" if len(shape) == 1 else "one value per example or per step"
    raise JaxnnError(f"{arg}: expected shape {_weight_shapes(shape)}, {what}, found {value.shape}")
  return value.astype(dtype)


def _expand(value: Array, ndim: int) -> Array:
  """value with trailing axes of size 1 up to `ndim` axes, to broadcast against per-element values."""
  return value.reshape(value.shape + (1,) * (ndim - value.ndim))


def weighted_mean(values: ArrayLike, sample_weight: ArrayLike | None = None,
                  mask: ArrayLike | None = None) -> Array:
  """Keras' "sum_over_batch_size" reduction: `sum(values * sample_weight * mask) / max(sum(mask), 1)`.

  Dividing by the number of unmasked entries (not by the sum of weights) keeps a weight's meaning
  independent of the other examples in the batch, and lets a padded last batch be masked out.

  Per-step values, `(B, T)` say (a loss over sequence outputs), take per-example or per-step weights and
  masks. A per-step mask (Keras' mask on the outputs: `Embedding(mask_zero=True)`, `Masking`) divides by
  the number of unmasked steps, as Keras does; with per-example ones each example's values are averaged
  over its steps first. Masked entries count for nothing, whatever they hold (nan included).

  Args:
    values: per-example values, shape `(B,)`, or per-step values `(B, T, ...)`.
    sample_weight: weights of shape `(B,)` (per example) or `values.shape[:k]` (per step); default 1.
    mask: 1 for real entries, 0 for padding, of shape `(B,)` or `values.shape[:k]` (bool or float);
      default all 1.

  Returns:
    A scalar.
  """
  values = jnp.asarray(values)
  if values.ndim == 0:
    raise JaxnnError("values: expected per-example values with a batch axis, found a scalar")
  weight = _leading("sample_weight", sample_weight, values.shape, values.dtype)
  mask = _leading("mask", mask, values.shape, values.dtype)
  # Values are averaged over the axes no weight or mask reaches; the rest are weighted element by element.
  rank = max([1] + [v.ndim for v in (weight, mask) if v is not None])
  if values.ndim > rank:
    values = jnp.mean(values, axis=tuple(range(rank, values.ndim)))
  weight = jnp.ones((), values.dtype) if weight is None else _expand(weight, rank)
  if mask is None:
    count = values.size
  else:
    mask = jnp.broadcast_to(_expand(mask, rank), values.shape)
    count = jnp.sum(mask)
    weight = weight * mask
  # `where`, not a product: padded rows may hold garbage (nan) that 0 * nan would let through.
  weight = jnp.broadcast_to(weight, values.shape)
  total = jnp.sum(jnp.where(weight != 0, values * weight, 0.0))
  return total / jnp.maximum(count, 1.0)


def class_weight_to_sample_weight(y_true: ArrayLike, class_weight: Mapping[int, float] | ArrayLike,
                                  num_classes: int) -> Array:
  """Per-example weights from per-class weights, as Keras' `fit(class_weight=...)`.

  Args:
    y_true: integer labels `(B,)`, one-hot rows `(B, C)` (argmax), or binary 0 / 1 targets `(B,)` or
      `(B, 1)` (rounded).
    class_weight: `{class: weight}` (unlisted classes weigh 1.0), or an array of `num_classes` weights.
    num_classes: the number of model outputs; 1 (a single sigmoid unit) means the two classes 0 and 1.

  Returns:
    Float32 weights, shape `(B,)`.
  """
  if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
    raise JaxnnError(f"num_classes: expected an int >= 1, found {num_classes!r}")
  n = max(int(num_classes), 2)
  if isinstance(class_weight, Mapping):
    table = np.ones((n,), np.float32)
    for cls, weight in class_weight.items():
      if isinstance(cls, bool) or not isinstance(cls, numbers.Integral) or not 0 <= cls < n:
        raise JaxnnError(f"class_weight: keys must be class indices in [0, {n}), found {cls!r}")
      if not isinstance(weight, numbers.Real) or not weight >= 0:
        raise JaxnnError(f"class_weight: weights must be numbers >= 0, found {weight!r} for class {cls}")
      table[int(cls)] = weight
  else:
    table = np.asarray(class_weight, np.float32)
    if table.shape != (n,):
      raise JaxnnError(f"class_weight: expected a dict or an array of shape ({n},), "
                       f"found shape {table.shape}")
  y = jnp.asarray(y_true)
  if y.ndim == 2 and y.shape[-1] > 1:
    if y.shape[-1] != n:
      raise JaxnnError(f"y_true: one-hot rows must have {n} columns (num_classes), found {y.shape[-1]}")
    y = jnp.argmax(y, axis=-1)
  elif y.ndim == 2 and y.shape[-1] == 1:
    y = y[:, 0]
  elif y.ndim != 1:
    raise JaxnnError(f"y_true: expected labels (B,), one-hot (B, C) or binary (B, 1), found shape {y.shape}")
  if not jnp.issubdtype(y.dtype, jnp.integer):
    y = jnp.round(y).astype(jnp.int32)
  values = _concrete(y)
  if values is not None and values.size and (values.min() < 0 or values.max() >= n):
    bad = values.min() if values.min() < 0 else values.max()
    raise JaxnnError(f"y_true: class labels must be in [0, {n}), found {bad}")
  return jnp.take(jnp.asarray(table), y, mode="fill", fill_value=jnp.nan)


# --------------------------------------------------------------------------------------------- Loss
def _options(name: str, fn: Callable[..., Any], kwargs: Any) -> tuple[tuple[str, Any], ...]:
  """kwargs as sorted, hashable (key, value) pairs, checked against fn's keyword options. numpy scalars
  become the Python scalars of the same value (`k=np.int64(3)` is stored, shown and compared as `k=3`)."""
  pairs = tuple(sorted((key, value.item() if isinstance(value, np.generic) else value)
                       for key, value in dict(kwargs).items()))
  try:
    hash(pairs)
  except TypeError:
    raise JaxnnError(f"{name}: options must be hashable static values, found {dict(pairs)}") from None
  try:
    params = inspect.signature(fn).parameters.values()
  except (TypeError, ValueError):  # builtins and some C callables have no signature to check against
    return pairs
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
    return pairs
  accepted = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
  unknown = [key for key, _ in pairs if key not in accepted]
  if unknown:
    raise JaxnnError(f"{name}: unknown option(s) {unknown}; accepted: {accepted or 'none'}")
  return pairs


@dataclasses.dataclass(frozen=True)
class Loss:
  """A per-example loss with its static options; hashable, so it can be a static `jit` argument.

  Attributes:
    name: the loss's name.
    fn: the per-example function `fn(y_true, y_pred, **kwargs)`.
    kwargs: static keyword options, stored as sorted (key, value) pairs (a dict is accepted).
  """

  name: str
  fn: Callable[..., Array]
  kwargs: tuple[tuple[str, Any], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "kwargs", _options(self.name, self.fn, self.kwargs))

  @property
  def label_format(self) -> str:
    """"sparse", "one_hot", "binary" or "regression" (custom functions): the targets this loss expects."""
    return _LABEL_FORMATS.get(self.fn, "regression")

  def per_example(self, y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Per-example losses, shape `(B,)` (see the module docstring for other ranks)."""
    return self.fn(y_true, y_pred, **dict(self.kwargs))

  def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
               mask: ArrayLike | None = None) -> Array:
    """The scalar loss: `weighted_mean(per_example(y_true, y_pred), sample_weight, mask)`."""
    return weighted_mean(self.per_example(y_true, y_pred), sample_weight, mask)


_LOSSES: dict[str, Callable[..., Array]] = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "huber": huber,
    "log_cosh": log_cosh,
    "kl_divergence": kl_divergence,
    "poisson": poisson,
    "cosine_similarity": cosine_similarity,
}

_ALIASES: dict[str, str] = {
    # Keras' short names.
    "mse": "mean_squared_error", "MSE": "mean_squared_error",
    "mae": "mean_absolute_error", "MAE": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error", "MAPE": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error", "MSLE": "mean_squared_logarithmic_error",
    "kld": "kl_divergence", "KLD": "kl_divergence", "kullback_leibler_divergence": "kl_divergence",
    "log_loss": "binary_crossentropy", "logcosh": "log_cosh", "huber_loss": "huber",
    # Keras' class names.
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "BinaryCrossentropy": "binary_crossentropy",
    "MeanSquaredError": "mean_squared_error",
    "MeanAbsoluteError": "mean_absolute_error",
    "MeanAbsolutePercentageError": "mean_absolute_percentage_error",
    "MeanSquaredLogarithmicError": "mean_squared_logarithmic_error",
    "Hinge": "hinge", "SquaredHinge": "squared_hinge", "CategoricalHinge": "categorical_hinge",
    "Huber": "huber", "LogCosh": "log_cosh", "KLDivergence": "kl_divergence", "Poisson": "poisson",
    "CosineSimilarity": "cosine_similarity",
}

_LABEL_FORMATS: dict[Callable[..., Array], str] = {
    sparse_categorical_crossentropy: "sparse",
    categorical_crossentropy: "one_hot",
    categorical_hinge: "one_hot",
    kl_divergence: "one_hot",
    binary_crossentropy: "binary",
    hinge: "binary",
    squared_hinge: "binary",
}

log_loss = binary_crossentropy
mse = mean_squared_error
mae = mean_absolute_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
kld = kl_divergence


def names() -> list[str]:
  """Every name `get` accepts: snake_case names, Keras' aliases and Keras' class names."""
  return sorted([*_LOSSES, *_ALIASES], key=lambda name: (name[0].isupper(), name))


def get(identifier: str | Loss | Callable[..., Array], **kwargs: Any) -> Loss:
  """Resolves a loss.

  Args:
    identifier: a name (see `names()`, e.g. "sparse_categorical_crossentropy", "mse",
      "BinaryCrossentropy"), a `Loss` (returned as is, with `kwargs` merged into its options), or a
      per-example function `fn(y_true, y_pred, **kwargs) -> (B,)` (named after `fn.__name__`).
    **kwargs: static options, e.g. `from_logits=True`, `label_smoothing=0.1`, `delta=2.0`.

  Returns:
    A `Loss`, named by the snake_case name for named losses.
  """
  if isinstance(identifier, Loss):
    if not kwargs:
      return identifier
    return dataclasses.replace(identifier, kwargs={**dict(identifier.kwargs), **kwargs})
  if isinstance(identifier, str):
    if identifier not in _LOSSES and identifier not in _ALIASES:
      raise JaxnnError(f"loss: unknown name {identifier!r}; valid names: {', '.join(names())}")
    name = _ALIASES.get(identifier, identifier)
    return Loss(name=name, fn=_LOSSES[name], kwargs=kwargs)
  if callable(identifier):
    name = getattr(identifier, "__name__", type(identifier).__name__)
    return Loss(name=name, fn=identifier, kwargs=kwargs)
  raise JaxnnError(f"loss: expected a name, a Loss or a callable, found {type(identifier).__name__}")
