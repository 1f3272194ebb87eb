"""Convolution, pooling, reshaping and normalization (batch, layer, RMS) layers, channels-last (NWC / NHWC).

Same design as `jaxnn.layers`: frozen configs with Keras' arguments and pure `init` / `apply`; shapes exclude
the batch axis and are checked at init. Convolutions are `jax.lax.conv_general_dilated` or slices and a
matmul (below); pooling is `jax.lax.reduce_window`, or a reshape for non-overlapping windows (strides equal
to pool_size: its gradient is elementwise, where reduce_window's max gradient took 75 ms of a 180 ms CNN
step on XLA:CPU). Output lengths follow Keras: "valid" gives floor((n - d(k - 1) - 1) / s) + 1,
"same" gives ceil(n / s) (padding split as TensorFlow does: the extra cell after).

Why convolutions have an `implementation`: on XLA:CPU, `conv_general_dilated` inside a `lax.scan` body (where
`fit` runs every step of an epoch) took 540 ms per step for a 3x3 32 -> 64 conv on 128 13x13 images,
against 19 ms at top level; the same conv as strided slices ("patches") and one matmul took 16 ms in the scan.
"auto" uses patches on CPU and `conv_general_dilated` elsewhere; both compute the same function.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxnn import _checks
from jaxnn import activations
from jaxnn import initializers
from jaxnn.errors import JaxnnError
from jaxnn.layers import Layer, WeightPenalties, _positive_int, check_names

Array = jax.Array
Params = dict[str, Any]
Shape = tuple[int, ...]

_PADDINGS = ("valid", "same")
_IMPLEMENTATIONS = ("auto", "patches", "lax")
_SPATIAL = {1: "(W, C)", 2: "(H, W, C)"}
_AXES = {1: "W", 2: "H, W"}
_DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _as_tuple(where: str, arg: str, value: Any, rank: int) -> tuple[int, ...]:
  """An int or a length-`rank` sequence of positive ints, as a tuple."""
  values = (value,) * rank if _checks.is_int(value) else value
  try:
    values = tuple(values)
  except TypeError:
    values = ()
  if len(values) != rank or any(not _checks.is_int(v) or v <= 0 for v in values):
    raise JaxnnError(f"{where}: {arg} must be a positive int or {rank} positive ints, got {value!r}")
  return tuple(int(v) for v in values)


def _check_padding(where: str, padding: Any) -> None:
  if padding not in _PADDINGS:
    raise JaxnnError(f"{where}: padding must be one of {list(_PADDINGS)}, got {padding!r}")


def _window_shape(where: str, input_shape: Shape, rank: int, window: Shape, strides: Shape, dilation: Shape,
                  padding: str, what: str) -> Shape:
  """Spatial output sizes of a sliding window over `input_shape` (spatial axes then channels), checked."""
  if len(input_shape) != rank + 1:
    raise JaxnnError(f"{where}: expected inputs {_SPATIAL[rank]}, got shape {tuple(input_shape)}")
  sizes = input_shape[:rank]
  spans = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
  if padding == "valid" and any(span > n for span, n in zip(spans, sizes)):
    raise JaxnnError(f"{where}: {what} {window} spans {spans}, larger than the input's {sizes} with padding "
                     f"\"valid\" (input shape {tuple(input_shape)})")
  if padding == "same":
    return tuple(-(-n // s) for n, s in zip(sizes, strides))
  return tuple((n - span) // s + 1 for n, span, s in zip(sizes, spans, strides))


def _same_padding(sizes: Shape, window: Shape, strides: Shape, dilation: Shape) -> list[tuple[int, int]]:
  """TensorFlow's "same" padding per spatial axis: total so that out = ceil(n / s), the odd cell after."""
  pads = []
  for n, k, s, d in zip(sizes, window, strides, dilation):
    total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
    pads.append((total // 2, total - total // 2))
  return pads


def _conv_patches(x: Array, kernel: Array, strides: Shape, dilation: Shape, padding: str) -> Array:
  """Convolution as im2col: one strided slice per kernel offset, concatenated, times the flat kernel."""
  rank = kernel.ndim - 2
  window = kernel.shape[:rank]
  if padding == "same":
    x = jnp.pad(x, [(0, 0), *_same_padding(x.shape[1:-1], window, strides, dilation), (0, 0)])
  out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(x.shape[1:-1], window, strides, dilation)]
  columns = []
  for offset in itertools.product(*(range(k) for k in window)):
    start = [o * d for o, d in zip(offset, dilation)]
    limit = [b + s * (m - 1) + 1 for b, s, m in zip(start, strides, out)]
    columns.append(jax.lax.slice(x, (0, *start, 0), (x.shape[0], *limit, x.shape[-1]), (1, *strides, 1)))
  # Offset-major, channel-minor: the order of kernel.reshape(-1, filters) for a (*window, C, filters) kernel.
  patches = jnp.concatenate(columns, axis=-1)
  return patches @ kernel.reshape(-1, kernel.shape[-1])


# ------------------------------------------------------------------------------------------- convolution
@dataclasses.dataclass(frozen=True)
class _Conv(WeightPenalties, Layer):
  """N-D convolution: `activation(conv(x, kernel) + bias)`, kernel of shape (*kernel_size, C_in, filters)."""

  filters: int
  kernel_size: Any
  strides: Any = 1
  padding: str = "valid"
  dilation_rate: Any = 1
  activation: Any = None
  use_bias: bool = True
  kernel_initializer: Any = "glorot_uniform"
  bias_initializer: Any = "zeros"
  kernel_regularizer: Any = None
  bias_regularizer: Any = None
  activity_regularizer: Any = None
  kernel_constraint: Any = None
  bias_constraint: Any = None
  implementation: str = "auto"  # "patches" (im2col + matmul), "lax" (conv_general_dilated); see the module doc

  _RANK: ClassVar[int] = 0

  def __post_init__(self):
    where = f"{type(self).__name__}({self.filters!r}, {self.kernel_size!r})"
    object.__setattr__(self, "filters", _positive_int(where, "filters", self.filters))
    # Normalize ints to tuples once, so equal configs hash equal and apply needs no branching.
    for arg in ("kernel_size", "strides", "dilation_rate"):
      object.__setattr__(self, arg, _as_tuple(where, arg, getattr(self, arg), self._RANK))
    _check_padding(where, self.padding)
    if self.implementation not in _IMPLEMENTATIONS:
      raise JaxnnError(f"{where}: implementation must be one of {list(_IMPLEMENTATIONS)}, got "
                       f"{self.implementation!r}")
    check_names(self)

  @property
  def _where(self) -> str:
    size = self.kernel_size[0] if self._RANK == 1 else self.kernel_size
    return f"{type(self).__name__}({self.filters}, {size})"

  def config(self):
    # Ints were normalized to tuples: leave out the ones that still mean the default.
    return {k: v for k, v in super().config().items()
            if not (k in ("strides", "dilation_rate") and set(v) == {1})}

  def output_shape(self, input_shape: Shape) -> Shape:
    spatial = _window_shape(self._where, input_shape, self._RANK, self.kernel_size, self.strides,
                            self.dilation_rate, self.padding, "kernel")
    return (*spatial, self.filters)

  def init(self, key: Array, input_shape: Shape) -> tuple[Params, Shape]:
    out_shape = self.output_shape(input_shape)
    k_kernel, k_bias = jax.random.split(key)
    shape = (*self.kernel_size, input_shape[-1], self.filters)
    params = {"kernel": initializers.get(self.kernel_initializer)(k_kernel, shape, jnp.float32)}
    if self.use_bias:
      params["bias"] = initializers.get(self.bias_initializer)(k_bias, (self.filters,), jnp.float32)
    return params, out_shape

  def apply(self, params, x, *, training=False, key=None):
    del training, key
    kernel = params["kernel"]
    if x.ndim != self._RANK + 2 or x.shape[-1] != kernel.shape[-2]:
      raise JaxnnError(f"{self._where}: expected inputs (batch, {_AXES[self._RANK]}, {kernel.shape[-2]}), "
                       f"got shape {tuple(x.shape)}")
    kernel = kernel.astype(x.dtype)
    implementation = self.implementation
    if implementation == "auto":
      implementation = "patches" if jax.default_backend() == "cpu" else "lax"
    if implementation == "patches":
      y = _conv_patches(x, kernel, self.strides, self.dilation_rate, self.padding)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, window_strides=self.strides, padding=self.padding.upper(),
                                       rhs_dilation=self.dilation_rate, dimension_numbers=_DIMS[self._RANK])
    if self.use_bias:
      y = y + params["bias"]
    return activations.get(self.activation)(y)


@dataclasses.dataclass(frozen=True)
class Conv1D(_Conv):
  """1-D convolution over (W, C) inputs (a sequence of feature vectors), Keras arguments."""

  _RANK: ClassVar[int] = 1


@dataclasses.dataclass(frozen=True)
class Conv2D(_Conv):
  """2-D convolution over (H, W, C) images, Keras arguments.

  Example:
    >>> Conv2D(32, (3, 3), padding="same", activation="relu").init(key, (28, 28, 1))[1]
    (28, 28, 32)
  """

  _RANK: ClassVar[int] = 2


# ------------------------------------------------------------------------------------------- pooling
@dataclasses.dataclass(frozen=True)
class _Pool(Layer):
  """Max or average over windows of `pool_size`, moved by `strides` (default: `pool_size`)."""

  pool_size: Any = 2
  strides: Any = None
  padding: str = "valid"

  _RANK: ClassVar[int] = 0
  _MAX: ClassVar[bool] = True

  def __post_init__(self):
    where = type(self).__name__
    object.__setattr__(self, "pool_size", _as_tuple(where, "pool_size", self.pool_size, self._RANK))
    strides = self.pool_size if self.strides is None else self.strides
    object.__setattr__(self, "strides", _as_tuple(where, "strides", strides, self._RANK))
    _check_padding(where, self.padding)

  @property
  def _where(self) -> str:
    return f"{type(self).__name__}({self.pool_size[0] if self._RANK == 1 else self.pool_size})"

  def config(self):
    out = super().config()
    if self.strides == self.pool_size:
      out.pop("strides", None)
    return {k: v for k, v in out.items() if not (k == "pool_size" and set(v) == {2})}

  def output_shape(self, input_shape):
    spatial = _window_shape(self._where, input_shape, self._RANK, self.pool_size, self.strides,
                            (1,) * self._RANK, self.padding, "pool")
    return (*spatial, input_shape[-1])

  def _reduce(self, x: Array, is_max: bool) -> Array:
    """Max or sum over every window; padded cells count as -inf or 0."""
    if self.strides != self.pool_size:
      init, op = (-jnp.inf, jax.lax.max) if is_max else (0.0, jax.lax.add)
      return jax.lax.reduce_window(x, init, op, (1, *self.pool_size, 1), (1, *self.strides, 1),
                                   self.padding.upper())
    # Non-overlapping windows: a reshape and a reduction (see the module docstring for why).
    sizes = x.shape[1:-1]
    if self.padding == "same":
      pads = _same_padding(sizes, self.pool_size, self.strides, (1,) * self._RANK)
      x = jnp.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-jnp.inf if is_max else 0.0)
    else:
      x = x[(slice(None), *(slice(0, n - n % k) for n, k in zip(sizes, self.pool_size)))]
    split = [d for n, k in zip(x.shape[1:-1], self.pool_size) for d in (n // k, k)]
    axes = tuple(range(2, 2 * self._RANK + 1, 2))
    return (jnp.max if is_max else jnp.sum)(x.reshape(x.shape[0], *split, x.shape[-1]), axis=axes)

  def apply(self, params, x, *, training=False, key=None):
    del params, training, key
    if x.ndim != self._RANK + 2:
      raise JaxnnError(f"{self._where}: expected inputs {_SPATIAL[self._RANK]} after the batch axis, "
                       f"got shape {tuple(x.shape)}")
    if self._MAX:
      return self._reduce(x, True)
    total = self._reduce(x, False)
    if self.padding == "valid":
      return total / math.prod(self.pool_size)
    # "same" averages over the window's cells inside the input only (padding is not counted as zeros).
    return total / self._reduce(jnp.ones((1, *x.shape[1:-1], 1), x.dtype), False)


@dataclasses.dataclass(frozen=True)
class MaxPooling1D(_Pool):
  """Maximum over windows of a (W, C) sequence."""

  _RANK: ClassVar[int] = 1


@dataclasses.dataclass(frozen=True)
class MaxPooling2D(_Pool):
  """Maximum over windows of an (H, W, C) image; `pool_size` defaults to (2, 2)."""

  _RANK: ClassVar[int] = 2


@dataclasses.dataclass(frozen=True)
class AveragePooling1D(_Pool):
  """Mean over windows of a (W, C) sequence."""

  _RANK: ClassVar[int] = 1
  _MAX: ClassVar[bool] = False


@dataclasses.dataclass(frozen=True)
class AveragePooling2D(_Pool):
  """Mean over windows of an (H, W, C) image; with "same", padded cells are not counted."""

  _RANK: ClassVar[int] = 2
  _MAX: ClassVar[bool] = False


@dataclasses.dataclass(frozen=True)
class _GlobalPool(Layer):
  """Max or mean over every spatial axis: (..., C) -> (C,), or (1, ..., 1, C) with `keepdims`."""

  keepdims: bool = False

  _RANK: ClassVar[int] = 0
  _MAX: ClassVar[bool] = True

  def output_shape(self, input_shape):
    if len(input_shape) != self._RANK + 1:
      raise JaxnnError(f"{type(self).__name__}: expected inputs {_SPATIAL[self._RANK]}, got shape "
                       f"{tuple(input_shape)}")
    return (*(1,) * self._RANK, input_shape[-1]) if self.keepdims else (input_shape[-1],)

  def apply(self, params, x, *, training=False, key=None):
    del params, training, key
    axes = tuple(range(1, self._RANK + 1))
    reduce = jnp.max if self._MAX else jnp.mean
    return reduce(x, axis=axes, keepdims=self.keepdims)


@dataclasses.dataclass(frozen=True)
class GlobalMaxPooling1D(_GlobalPool):
  _RANK: ClassVar[int] = 1


@dataclasses.dataclass(frozen=True)
class GlobalMaxPooling2D(_GlobalPool):
  _RANK: ClassVar[int] = 2


@dataclasses.dataclass(frozen=True)
class GlobalAveragePooling1D(_GlobalPool):
  """Mean over the steps; with a step mask (Embedding(mask_zero=True), Masking), over the real steps only
  (a sequence with none gives zeros, where Keras divides 0 by 0)."""

  _RANK: ClassVar[int] = 1
  _MAX: ClassVar[bool] = False
  supports_masking: ClassVar[bool] = True
  uses_step_mask: ClassVar[bool] = True

  def output_masked(self, input_masked):
    del input_masked
    return False

  def apply(self, params, x, *, training=False, key=None, step_mask=None):
    if step_mask is None:
      return super().apply(params, x, training=training, key=key)
    if tuple(step_mask.shape) != tuple(x.shape[:2]):
      raise JaxnnError(f"GlobalAveragePooling1D: expected step_mask of shape {tuple(x.shape[:2])} (batch, T), "
                       f"got {tuple(step_mask.shape)}")
    w = step_mask.astype(x.dtype)[..., None]
    count = jnp.maximum(jnp.sum(w, axis=1, keepdims=self.keepdims), 1.0)
    return jnp.sum(w * x, axis=1, keepdims=self.keepdims) / count


@dataclasses.dataclass(frozen=True)
class GlobalAveragePooling2D(_GlobalPool):
  _RANK: ClassVar[int] = 2
  _MAX: ClassVar[bool] = False


# ------------------------------------------------------------------------------------------- reshape
@dataclasses.dataclass(frozen=True)
class Reshape(Layer):
  """Reshapes each example to `target_shape` (batch axis excluded); one entry may be -1 (inferred)."""

  target_shape: tuple[int, ...]

  def __post_init__(self):
    try:
      target = tuple(self.target_shape)
    except TypeError:
      target = ()
    if (not target or any(not _checks.is_int(d) or (d <= 0 and d != -1) for d in target)
        or target.count(-1) > 1):
      raise JaxnnError(f"Reshape: target_shape must be positive ints with at most one -1, got "
                       f"{self.target_shape!r}")
    object.__setattr__(self, "target_shape", tuple(int(d) for d in target))

  def output_shape(self, input_shape):
    size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
    if -1 in self.target_shape and size % known == 0:
      return tuple(size // known if d == -1 else d for d in self.target_shape)
    if -1 not in self.target_shape and size == known:
      return self.target_shape
    raise JaxnnError(f"Reshape({self.target_shape}): cannot reshape inputs of shape {tuple(input_shape)} "
                     f"({size} values) to {self.target_shape}")

  def apply(self, params, x, *, training=False, key=None):
    del params, training, key
    return x.reshape(x.shape[0], *self.output_shape(x.shape[1:]))


# ------------------------------------------------------------------------------------------- batch norm
def _gamma_beta(layer: Any, key: Array, shape: Shape) -> Params:
  """A normalization layer's `gamma` (with `scale`) and `beta` (with `center`) of `shape`, from its
  initializers (BatchNormalization, LayerNormalization)."""
  k_gamma, k_beta = jax.random.split(key)
  params = {}
  if layer.scale:
    params["gamma"] = initializers.get(layer.gamma_initializer)(k_gamma, shape, jnp.float32)
  if layer.center:
    params["beta"] = initializers.get(layer.beta_initializer)(k_beta, shape, jnp.float32)
  return params


def _scale_shift(layer: Any, params: Params, y: Array, shape: Sequence[int]) -> Array:
  """`y * gamma + beta` (each where the layer has it), the params reshaped to `shape` to broadcast."""
  if layer.scale:
    y = y * params["gamma"].reshape(shape)
  if layer.center:
    y = y + params["beta"].reshape(shape)
  return y


def _check_epsilon(layer: str, epsilon: Any) -> None:
  if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0.0:
    raise JaxnnError(f"{layer}: epsilon must be a positive number, got {epsilon!r}")


@dataclasses.dataclass(frozen=True)
class BatchNormalization(WeightPenalties, Layer):
  """Normalizes each feature of `axis` (Keras semantics), with running statistics in the model state.

  Training: `y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta` with the batch's mean and (biased)
  variance over every other axis, and the state moves as `moving = momentum * moving + (1 - momentum) * batch`.
  Inference: the moving mean and variance instead; the state is returned unchanged. `gamma` / `beta` are
  params (absent with `scale=False` / `center=False`); `axis` counts the batch axis, as in Keras.
  """

  axis: int = -1
  momentum: float = 0.99
  epsilon: float = 1e-3
  center: bool = True
  scale: bool = True
  beta_initializer: Any = "zeros"
  gamma_initializer: Any = "ones"
  moving_mean_initializer: Any = "zeros"
  moving_variance_initializer: Any = "ones"
  beta_regularizer: Any = None
  gamma_regularizer: Any = None
  beta_constraint: Any = None
  gamma_constraint: Any = None

  _WEIGHTS: ClassVar[dict[str, str]] = {"gamma": "gamma", "beta": "beta"}
  supports_masking: ClassVar[bool] = True  # a step mask passes on, and padded steps stay out of the statistics

  def __post_init__(self):
    if not _checks.is_int(self.axis) or self.axis == 0:
      raise JaxnnError(f"BatchNormalization: axis must be a non-zero int (0 is the batch axis), got {self.axis!r}")
    object.__setattr__(self, "axis", int(self.axis))
    if not 0.0 <= self.momentum <= 1.0:
      raise JaxnnError(f"BatchNormalization: momentum must be in [0, 1], got {self.momentum!r}")
    if not self.epsilon > 0.0:
      raise JaxnnError(f"BatchNormalization: epsilon must be positive, got {self.epsilon!r}")
    check_names(self)

  def _features(self, input_shape: Shape) -> int:
    """Size of the normalized axis for per-example `input_shape`; checks that `axis` exists."""
    rank = len(input_shape) + 1
    if not -rank <= self.axis < rank or self.axis % rank == 0:
      raise JaxnnError(f"BatchNormalization: axis {self.axis} is out of range for inputs of shape "
                       f"{tuple(input_shape)} (axis counts the batch axis: rank {rank})")
    return input_shape[self.axis % rank - 1]

  def init(self, key, input_shape):
    return _gamma_beta(self, key, (self._features(input_shape),)), tuple(input_shape)

  def init_state(self, input_shape):
    n = self._features(input_shape)
    # init_state takes no key: the moving-statistics initializers are constants (zeros / ones) in practice.
    key = jax.random.key(0)
    return {"moving_mean": initializers.get(self.moving_mean_initializer)(key, (n,), jnp.float32),
            "moving_variance": initializers.get(self.moving_variance_initializer)(key, (n,), jnp.float32)}

  def _feature_shape(self, x: Array) -> list[int]:
    """Shape that broadcasts a per-feature vector against x."""
    shape = [1] * x.ndim
    shape[self.axis % x.ndim] = x.shape[self.axis]
    return shape

  def _normalize(self, params: Params, x: Array, mean: Array, var: Array) -> Array:
    shape = self._feature_shape(x)
    y = (x - mean.reshape(shape)) * jax.lax.rsqrt(var.reshape(shape) + self.epsilon)
    return _scale_shift(self, params, y, shape)

  def _moments(self, x: Array, mask: Array | None = None) -> tuple[Array, Array]:
    axes = tuple(i for i in range(x.ndim) if i != self.axis % x.ndim)
    if mask is None:
      mean = jnp.mean(x, axis=axes)
      var = jnp.mean(jnp.square(x - mean.reshape(self._feature_shape(x))), axis=axes)  # two-pass: no cancellation
      return mean, var
    # A padded batch (fit's last partial batch, mask (batch,)) or padded steps (a step mask, (batch, T)):
    # statistics over the real entries only.
    w = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)).astype(x.dtype), x.shape)
    count = jnp.maximum(jnp.sum(w, axis=axes), 1.0)
    mean = jnp.sum(w * x, axis=axes) / count
    var = jnp.sum(w * jnp.square(x - mean.reshape(self._feature_shape(x))), axis=axes) / count
    return mean, var

  def apply(self, params, x, *, training=False, key=None):
    del key
    if not training:
      raise JaxnnError("BatchNormalization: inference needs the running statistics; call "
                       "apply_stateful(params, state, x) (Sequential.apply(..., state=...) does)")
    return self._normalize(params, x, *self._moments(x))

  def apply_stateful(self, params, state, x, *, training=False, key=None, mask=None, step_mask=None):
    del key
    if step_mask is not None:  # padded steps: left out of the statistics, as Keras does
      step_mask = step_mask.astype(x.dtype)
      mask = step_mask if mask is None else mask.reshape((-1,) + (1,) * (step_mask.ndim - 1)) * step_mask
    if "moving_mean" not in state:
      raise JaxnnError("BatchNormalization: the model state holds no running statistics for this layer; pass "
                       "state=model.init_state(input_shape) (or the TrainState)")
    if not training:
      return self._normalize(params, x, state["moving_mean"], state["moving_variance"]), state
    mean, var = self._moments(x, mask)
    m = self.momentum
    new_state = {"moving_mean": m * state["moving_mean"] + (1.0 - m) * jax.lax.stop_gradient(mean),
                 "moving_variance": m * state["moving_variance"] + (1.0 - m) * jax.lax.stop_gradient(var)}
    return self._normalize(params, x, mean, var), new_state


# ------------------------------------------------------------------------------------ per-example norms
def _norm_axes(layer: str, axis: Any, input_shape: Shape) -> tuple[int, ...]:
  """`axis` (an int or a tuple / list of ints, counting the batch axis, as in Keras) as sorted non-negative
  axes of batched inputs of per-example shape `input_shape`; raises if one is 0 or out of range."""
  rank = len(input_shape) + 1
  axes = []
  for a in ((axis,) if isinstance(axis, int) else axis):
    if not -rank <= a < rank or a % rank == 0:
      raise JaxnnError(f"{layer}: axis {a} is out of range for inputs of shape {tuple(input_shape)} (axis counts "
                       f"the batch axis, which is not normalized: rank {rank})")
    axes.append(a % rank)
  if len(set(axes)) != len(axes):
    raise JaxnnError(f"{layer}: axis {list(axis)} names an axis twice")
  return tuple(sorted(axes))


def _axis_arg(layer: str, axis: Any) -> int | tuple[int, ...]:
  """Keras' `axis` argument: an int stays an int, a list / tuple of ints becomes a tuple (configs stay
  hashable); anything else raises."""
  if _checks.is_int(axis):
    return int(axis)
  if not isinstance(axis, (list, tuple)) or not axis or not all(_checks.is_int(a) for a in axis):
    raise JaxnnError(f"{layer}: axis must be an int or a list of ints, got {axis!r}")
  return tuple(int(a) for a in axis)


@dataclasses.dataclass(frozen=True)
class LayerNormalization(WeightPenalties, Layer):
  """Normalizes each example over `axis` (the features, by default), Keras' arguments and defaults.

  `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, the mean and (biased) variance over `axis` of each
  example alone: no batch statistics and no model state, so training and inference compute the same thing.
  `gamma` / `beta` have the shape of the normalized axes (absent with `scale=False` / `center=False`).
  A step mask passes through (each step is normalized on its own when `axis` is the feature axis).
  """

  axis: Any = -1
  epsilon: float = 1e-3
  center: bool = True
  scale: bool = True
  beta_initializer: Any = "zeros"
  gamma_initializer: Any = "ones"
  beta_regularizer: Any = None
  gamma_regularizer: Any = None
  beta_constraint: Any = None
  gamma_constraint: Any = None

  _WEIGHTS: ClassVar[dict[str, str]] = {"gamma": "gamma", "beta": "beta"}
  supports_masking: ClassVar[bool] = True

  def __post_init__(self):
    object.__setattr__(self, "axis", _axis_arg("LayerNormalization", self.axis))
    _check_epsilon("LayerNormalization", self.epsilon)
    check_names(self)

  def init(self, key, input_shape):
    axes = _norm_axes("LayerNormalization", self.axis, input_shape)
    return _gamma_beta(self, key, tuple(input_shape[a - 1] for a in axes)), tuple(input_shape)

  def output_shape(self, input_shape):
    _norm_axes("LayerNormalization", self.axis, input_shape)
    return tuple(input_shape)

  def apply(self, params, x, *, training=False, key=None):
    del training, key
    axes = _norm_axes("LayerNormalization", self.axis, x.shape[1:])
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # two-pass: no cancellation
    return _scale_shift(self, params, (x - mean) * jax.lax.rsqrt(var + self.epsilon), shape)


@dataclasses.dataclass(frozen=True)
class RMSNormalization(Layer):
  """Root-mean-square normalization (Zhang & Sennrich 2019), as Keras' RMSNormalization: `y = scale * x /
  sqrt(mean(x**2) + epsilon)` over `axis` of each example; `scale` (ones at init) has the shape of the
  normalized axes. No centering, no model state."""

  axis: Any = -1
  epsilon: float = 1e-6

  supports_masking: ClassVar[bool] = True

  def __post_init__(self):
    object.__setattr__(self, "axis", _axis_arg("RMSNormalization", self.axis))
    _check_epsilon("RMSNormalization", self.epsilon)

  def init(self, key, input_shape):
    del key
    axes = _norm_axes("RMSNormalization", self.axis, input_shape)
    return {"scale": jnp.ones(tuple(input_shape[a - 1] for a in axes), jnp.float32)}, tuple(input_shape)

  def output_shape(self, input_shape):
    _norm_axes("RMSNormalization", self.axis, input_shape)
    return tuple(input_shape)

  def apply(self, params, x, *, training=False, key=None):
    del training, key
    axes = _norm_axes("RMSNormalization", self.axis, x.shape[1:])
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True) + self.epsilon)
    return y * params["scale"].reshape(shape)
