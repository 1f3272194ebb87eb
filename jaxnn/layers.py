"""Layers as frozen configs with pure `init` / `apply`.

A layer holds no arrays. `init(key, input_shape)` returns `(params, output_shape)` with params a plain
dict (empty for layers without weights); `apply(params, x, *, training, key)` is a pure function of its
arguments. Shapes exclude the batch axis. Configs are hashable, so a model can be a static jit argument.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks
from jaxnn import activations
from jaxnn import constraints
from jaxnn import initializers
from jaxnn import regularizers
from jaxnn.errors import JaxnnError

Array = jax.Array
Params = dict[str, Any]
Shape = tuple[int, ...]


def _positive_int(layer: str, arg: str, value: Any) -> int:
  """`value` as a Python int (a numpy int is converted, so configs stay JSON-clean), or raises."""
  if not _checks.is_int(value) or value <= 0:
    raise JaxnnError(f"{layer}: {arg} must be a positive int, got {value!r}")
  return int(value)


class Layer:
  """Base class: a layer without parameters, penalties or constraints."""

  stochastic = False  # Whether `apply(training=True)` needs a key.
  # Sequence masks (Keras' masking): whether the layer accepts inputs that carry a step mask (it passes the
  # mask on or consumes it; a layer that does not drops it, with a warning from Sequential, as Keras does),
  # and whether its `apply` takes that mask as `step_mask=` (the recurrent layers, GlobalAveragePooling1D).
  supports_masking: ClassVar[bool] = False
  uses_step_mask: ClassVar[bool] = False
  # Whether `apply` returns several arrays (a recurrent layer with return_state): such a layer is called on its
  # own, not stacked in a Sequential.
  multiple_outputs = False

  @property
  def kind(self) -> str:
    """Snake-case layer type, used for parameter names (`dense_0`, `conv2d_0`, `simple_rnn_0`)."""
    name = type(self).__name__
    out = []
    for i, c in enumerate(name):
      # A capital starts a word after a lowercase letter, or when it ends an acronym ("RNNCell" -> rnn_cell);
      # acronyms and digits stay attached ("Conv2D" -> conv2d, "LSTM" -> lstm).
      after_lower = i > 0 and name[i - 1].islower()
      ends_acronym = 0 < i < len(name) - 1 and name[i - 1].isupper() and name[i + 1].islower()
      out.append("_" + c.lower() if c.isupper() and (after_lower or ends_acronym) else c.lower())
    return "".join(out)

  def init(self, key: Array, input_shape: Shape) -> tuple[Params, Shape]:
    del key
    return {}, self.output_shape(input_shape)

  def output_shape(self, input_shape: Shape) -> Shape:
    return tuple(input_shape)

  def apply(self, params: Params, x: Array, *, training: bool = False, key: Array | None = None) -> Array:
    raise NotImplementedError

  def init_state(self, input_shape: Shape) -> dict[str, Any]:
    """Non-trained state (e.g. BatchNormalization's running statistics); {} for most layers."""
    del input_shape
    return {}

  def apply_stateful(self, params: Params, state: dict[str, Any], x: Array, *, training: bool = False,
                     key: Array | None = None, mask: Array | None = None,
                     step_mask: Array | None = None) -> tuple[Array, dict[str, Any]]:
    """Forward pass that also returns the layer's updated state; stateless layers return it unchanged.

    `mask` (batch,) marks the real examples of a padded batch; layers whose output mixes examples
    (BatchNormalization's statistics) leave the padding out. `step_mask` (the input's shape without its
    feature axis, bool) marks the real steps of padded sequences, for the layers that use one.
    """
    del mask
    if self.uses_step_mask and step_mask is not None:
      return self.apply(params, x, training=training, key=key, step_mask=step_mask), state
    return self.apply(params, x, training=training, key=key), state

  def output_masked(self, input_masked: bool) -> bool:
    """Whether this layer's output carries a step mask, given whether its input does (static: the same for
    every batch). Default: a mask passes through a layer that supports masking."""
    return input_masked and self.supports_masking

  def compute_step_mask(self, x: Array, step_mask: Array | None) -> Array | None:
    """The step mask of this layer's output for input `x` with `step_mask` (None where `output_masked` is
    False)."""
    del x
    return step_mask if self.output_masked(step_mask is not None) else None

  def check_inputs(self, x: Any, arg: str) -> None:
    """Host-side check of a model's raw inputs when this layer is the first (Embedding: integer ids in range);
    raises JaxnnError naming `arg`. Default: none beyond the model's own."""
    del x, arg

  def regularization(self, params: Params) -> Array:
    """Weight penalty added to the training loss (kernel and bias regularizers)."""
    del params
    return jnp.zeros((), jnp.float32)

  def activity_penalty(self, outputs: Array) -> Array:
    """Penalty on this layer's outputs, per example (Keras divides by the batch size)."""
    del outputs
    return jnp.zeros((), jnp.float32)

  def constrain(self, params: Params) -> Params:
    """Projection applied to the params after each optimizer update."""
    return params

  def penalized(self, params: Params, name: str) -> list[Array]:
    """The arrays weight `name`'s regularizer sees: the weight itself (Dense with LoRA: its trainable factors
    in place of the frozen kernel, as Keras does)."""
    return [params[name]]

  def constraints_keep_nonfinite(self) -> bool:
    """True when `constrain` is known to keep a NaN or infinite entry non-finite (`constraints.keeps_nonfinite`;
    `fit`'s NaN guard relies on it). Here: when `constrain` is this identity. A subclass that overrides
    `constrain` answers False unless it overrides this too."""
    return type(self).constrain is Layer.constrain

  def trainable(self, params: Params) -> dict[str, bool]:
    """Which of this layer's params the optimizer may change."""
    return {k: True for k in params}

  def config(self) -> dict[str, Any]:
    """Readable config for summaries and results.json."""
    out = {}
    for f in dataclasses.fields(self):  # type: ignore[arg-type]
      value = getattr(self, f.name)
      if value is None or value == f.default:
        continue
      out[f.name] = _serialize(f.name, value)
    return out


# Config fields resolved by name, recognized by their suffix (`kernel_initializer`, `recurrent_activation` ...).
_NAMED_FIELDS = (("activation", activations), ("_initializer", initializers), ("_regularizer", regularizers),
                 ("_constraint", constraints))


def _serialize(field: str, value: Any) -> Any:
  """Readable form of a config value; names are resolved so defaults show (`l2` -> {"name": "l2", "l2": 0.01})."""
  for suffix, module in _NAMED_FIELDS:
    if field.endswith(suffix):
      return module.serialize(module.get(value))
  if isinstance(value, tuple):
    return list(value)
  return value


def check_names(layer: Layer) -> None:
  """Resolves every activation / initializer / regularizer / constraint field of a layer config.

  Called from `__post_init__` so that a typo fails at construction, listing the valid names. A dict form
  ({"name": "max_norm", "max_value": 1.0}) is replaced by the object it describes, so the config stays
  hashable (models are static arguments of compiled functions).
  """
  for f in dataclasses.fields(layer):  # type: ignore[arg-type]
    for suffix, module in _NAMED_FIELDS:
      if f.name.endswith(suffix):
        value = getattr(layer, f.name)
        resolved = module.get(value)
        if isinstance(value, Mapping):
          object.__setattr__(layer, f.name, resolved)


class WeightPenalties:
  """Keras' per-weight regularizers and constraints plus the activity regularizer, for layer configs.

  `_WEIGHTS` maps a param name to the prefix of its config fields: {"kernel": "kernel"} reads
  `kernel_regularizer` and `kernel_constraint`; a layer without a given param (no bias) skips it. Mix in
  before `Layer`: `class Dense(WeightPenalties, Layer)`.
  """

  _WEIGHTS: ClassVar[Mapping[str, str]] = {"kernel": "kernel", "bias": "bias"}

  def regularization(self, params: Params) -> Array:
    total = jnp.zeros((), jnp.float32)
    for name, prefix in self._WEIGHTS.items():
      reg = regularizers.get(getattr(self, f"{prefix}_regularizer"))
      if reg is not None and name in params:
        for array in self.penalized(params, name):
          total = total + reg(array)
    return total

  def activity_penalty(self, outputs: Array) -> Array:
    reg = regularizers.get(getattr(self, "activity_regularizer", None))
    if reg is None:
      return jnp.zeros((), jnp.float32)
    return reg(outputs) / outputs.shape[0]

  def constrain(self, params: Params) -> Params:
    params = dict(params)
    trainable = self.trainable(params)  # type: ignore[attr-defined]
    for name, prefix in self._WEIGHTS.items():
      con = constraints.get(getattr(self, f"{prefix}_constraint"))
      # A frozen array (a LoRA base kernel) is never updated, so it is never projected either.
      if con is not None and name in params and trainable[name]:
        params[name] = con(params[name])
    return params

  def constraints_keep_nonfinite(self) -> bool:
    if type(self).constrain is not WeightPenalties.constrain:
      return False
    return all(constraints.keeps_nonfinite(constraints.get(getattr(self, f"{prefix}_constraint")))
               for prefix in self._WEIGHTS.values())


class LowRankAdaptation:
  """LoRA on one weight, `_LORA_WEIGHT`, for layer configs with `lora_rank` and `lora_alpha` fields: with a
  rank, the weight is frozen (no gradient is even computed) and `weight + (lora_alpha / lora_rank) * lora_a @
  lora_b` is used in its place (`lora_alpha` defaulting to the rank), and the weight's regularizer penalizes
  the trainable factors, as in Keras. Mix in before `WeightPenalties`."""

  _LORA_WEIGHT: ClassVar[str] = "kernel"

  def _check_lora(self, kind: str, where: str) -> None:
    """lora_rank a positive int (kept as a Python int), and the weight's constraint refused beside it."""
    if self.lora_rank is None:  # type: ignore[attr-defined]
      return
    object.__setattr__(self, "lora_rank", _positive_int(kind, "lora_rank", self.lora_rank))  # type: ignore
    field = f"{self._LORA_WEIGHT}_constraint"
    if getattr(self, field) is not None:
      raise JaxnnError(f"{where}: {field} cannot be combined with lora_rank (the base weight is frozen and the LoRA "
                       f"factors are not constrained; Keras refuses it too), got {field}={getattr(self, field)!r}")

  def merged(self, params: Params) -> Array:
    """The effective weight: the base, plus the scaled LoRA update when enabled."""
    rank, alpha = self.lora_rank, self.lora_alpha  # type: ignore[attr-defined]
    if rank is None:
      return params[self._LORA_WEIGHT]
    base = jax.lax.stop_gradient(params[self._LORA_WEIGHT])
    return base + ((rank if alpha is None else alpha) / rank) * (params["lora_a"] @ params["lora_b"])

  def penalized(self, params: Params, name: str) -> list[Array]:
    if name == self._LORA_WEIGHT and self.lora_rank is not None:  # type: ignore[attr-defined]
      return [params["lora_a"], params["lora_b"]]
    return [params[name]]

  def trainable(self, params: Params) -> dict[str, bool]:
    return {k: not (k == self._LORA_WEIGHT and self.lora_rank is not None) for k in params}  # type: ignore


@dataclasses.dataclass(frozen=True)
class Dense(LowRankAdaptation, WeightPenalties, Layer):
  """Densely connected layer: `activation(x @ kernel + bias)`, Keras arguments.

  With `lora_rank`, the base kernel is frozen and a trainable low-rank update is learned:
  `kernel + (lora_alpha / lora_rank) * lora_a @ lora_b`, with `lora_a` He-uniform and `lora_b` zeros
  (so training starts from the base layer), `lora_alpha` defaulting to the rank, as in Keras. As in Keras,
  `kernel_regularizer` then penalizes the trainable factors `lora_a` and `lora_b` (not the frozen kernel),
  and a `kernel_constraint` is refused: nothing would apply it.
  """

  units: int
  activation: Any = None
  use_bias: bool = True
  kernel_initializer: Any = "glorot_uniform"
  bias_initializer: Any = "zeros"
  kernel_regularizer: Any = None
  bias_regularizer: Any = None
  activity_regularizer: Any = None
  kernel_constraint: Any = None
  bias_constraint: Any = None
  lora_rank: int | None = None
  lora_alpha: float | None = None

  supports_masking: ClassVar[bool] = True  # per step on sequences: the mask passes on, as in Keras

  def __post_init__(self):
    object.__setattr__(self, "units", _positive_int("Dense", "units", self.units))
    self._check_lora("Dense", f"Dense({self.units})")
    check_names(self)

  def output_shape(self, input_shape: Shape) -> Shape:
    if len(input_shape) < 1:
      raise JaxnnError(f"Dense({self.units}): expected inputs with a feature axis, got shape {input_shape}")
    return (*input_shape[:-1], self.units)

  def init(self, key: Array, input_shape: Shape) -> tuple[Params, Shape]:
    out_shape = self.output_shape(input_shape)
    fan_in = input_shape[-1]
    k_kernel, k_bias, k_lora = jax.random.split(key, 3)
    params = {"kernel": initializers.get(self.kernel_initializer)(k_kernel, (fan_in, self.units), jnp.float32)}
    if self.use_bias:
      params["bias"] = initializers.get(self.bias_initializer)(k_bias, (self.units,), jnp.float32)
    if self.lora_rank is not None:
      params["lora_a"] = initializers.get("he_uniform")(k_lora, (fan_in, self.lora_rank), jnp.float32)
      params["lora_b"] = jnp.zeros((self.lora_rank, self.units), jnp.float32)
    return params, out_shape

  def kernel(self, params: Params) -> Array:
    """The effective kernel (base plus the scaled LoRA update when enabled)."""
    return self.merged(params)

  def apply(self, params, x, *, training=False, key=None):
    del training, key
    kernel = self.kernel(params)
    if x.shape[-1] != kernel.shape[0]:
      raise JaxnnError(
          f"Dense({self.units}): expected inputs with last axis {kernel.shape[0]}, got shape {tuple(x.shape)}")
    y = x @ kernel
    if self.use_bias:
      y = y + params["bias"]
    return activations.get(self.activation)(y)


@dataclasses.dataclass(frozen=True)
class Dropout(Layer):
  """Sets a fraction `rate` of inputs to zero while training, scaling the rest by 1 / (1 - rate).

  `rate` is the fraction *dropped* (Keras' meaning). Identity at inference.
  """

  rate: float
  stochastic = True
  supports_masking: ClassVar[bool] = True

  def __post_init__(self):
    if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0.0 <= self.rate < 1.0:
      raise JaxnnError(f"Dropout: rate must be a float in [0, 1), got {self.rate!r}")

  def apply(self, params, x, *, training=False, key=None, rate=None):
    """`rate`, if given, replaces the configured rate: a traced value, so a sweep over it compiles once."""
    del params
    if not training or (rate is None and self.rate == 0.0):
      return x
    if key is None:
      raise JaxnnError("Dropout: training=True needs a PRNG key (pass key=... to apply)")
    rate = self.rate if rate is None else rate
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
  """Flattens every axis but the batch axis."""

  def output_shape(self, input_shape):
    return (math.prod(input_shape),)

  def apply(self, params, x, *, training=False, key=None):
    del params, training, key
    return x.reshape(x.shape[0], -1)


@dataclasses.dataclass(frozen=True)
class Activation(Layer):
  """Applies an activation function by name."""

  activation: Any

  supports_masking: ClassVar[bool] = True

  def __post_init__(self):
    activations.get(self.activation)

  def apply(self, params, x, *, training=False, key=None):
    del params, training, key
    return activations.get(self.activation)(x)



# ------------------------------------------------------------------------------------------ sequences
@dataclasses.dataclass(frozen=True)
class Embedding(LowRankAdaptation, WeightPenalties, Layer):
  """Integer ids -> dense vectors: row `id` of a trainable (input_dim, output_dim) table, Keras arguments.

  Inputs are ids in [0, input_dim), per example of shape (T,) (or any shape: the output appends an axis of
  `output_dim`). Whole numbers stored as floats are accepted (`fit` converts inputs to float32, exact for ids
  below 2**24) and cast to int32, as Keras does. `fit`, `evaluate` and `predict` check the ids on the host
  when this is the model's first layer; inside a caller's jit an id out of range gives a NaN row (jnp.take's
  fill), which the NaN guard reports. With `mask_zero`, id 0 is padding: the output carries a step mask
  (`id != 0`) that the recurrent layers and GlobalAveragePooling1D use to skip the padded steps, so
  `input_dim` counts the padding id too (vocabulary size + 1), as in Keras.

  With `lora_rank`, as Dense's: the table is frozen and `embeddings + (lora_alpha / lora_rank) * lora_a @
  lora_b` is looked up, `lora_a` (input_dim, rank) He-uniform and `lora_b` (rank, output_dim) zeros, so training
  starts from the base table (the same table as without LoRA for the same key); `embeddings_regularizer` then
  penalizes the factors and an `embeddings_constraint` is refused, as in Keras.
  """

  input_dim: int
  output_dim: int
  embeddings_initializer: Any = "uniform"
  embeddings_regularizer: Any = None
  activity_regularizer: Any = None
  embeddings_constraint: Any = None
  mask_zero: bool = False
  lora_rank: int | None = None
  lora_alpha: float | None = None

  _WEIGHTS: ClassVar[Mapping[str, str]] = {"embeddings": "embeddings"}
  _LORA_WEIGHT: ClassVar[str] = "embeddings"

  def __post_init__(self):
    object.__setattr__(self, "input_dim", _positive_int("Embedding", "input_dim", self.input_dim))
    object.__setattr__(self, "output_dim", _positive_int("Embedding", "output_dim", self.output_dim))
    if self.input_dim > 2**24:
      raise JaxnnError(f"{self._where}: input_dim above 2**24 is not supported: fit converts inputs to float32, "
                       f"which holds whole numbers exactly only up to 2**24")
    if not isinstance(self.mask_zero, bool):
      raise JaxnnError(f"{self._where}: mask_zero must be a bool, got {self.mask_zero!r}")
    if self.mask_zero and self.input_dim < 2:
      raise JaxnnError(f"{self._where}: mask_zero=True makes id 0 padding, so input_dim must count at least one "
                       f"real id besides it (>= 2), got {self.input_dim}")
    self._check_lora("Embedding", self._where)
    check_names(self)

  @property
  def _where(self) -> str:
    return f"Embedding({self.input_dim}, {self.output_dim})"

  def output_shape(self, input_shape):
    return (*input_shape, self.output_dim)

  def init(self, key, input_shape):
    params = {"embeddings": initializers.get(self.embeddings_initializer)(
        key, (self.input_dim, self.output_dim), jnp.float32)}
    if self.lora_rank is not None:
      params["lora_a"] = initializers.get("he_uniform")(jax.random.fold_in(key, 1), (self.input_dim, self.lora_rank),
                                                        jnp.float32)
      params["lora_b"] = jnp.zeros((self.lora_rank, self.output_dim), jnp.float32)
    return params, self.output_shape(input_shape)

  def embeddings(self, params: Params) -> Array:
    """The effective table (the base plus the scaled LoRA update when enabled)."""
    return self.merged(params)

  @staticmethod
  def _ids(x: Array) -> Array:
    return x if jnp.issubdtype(x.dtype, jnp.integer) else x.astype(jnp.int32)

  def apply(self, params, x, *, training=False, key=None):
    del training, key
    return jnp.take(self.embeddings(params), self._ids(x), axis=0)

  def output_masked(self, input_masked):
    del input_masked  # Keras' Embedding makes its own mask or none
    return self.mask_zero

  def compute_step_mask(self, x, step_mask):
    del step_mask
    return self._ids(x) != 0 if self.mask_zero else None

  def check_inputs(self, x, arg):
    values = np.asarray(x)
    if values.dtype.kind not in "iuf":
      raise JaxnnError(f"{arg}: {self._where} expects integer ids, got dtype {values.dtype}")
    bad = ~((values >= 0) & (values < self.input_dim) & (values == np.floor(values)))
    if bad.any():
      where = tuple(int(i) for i in np.argwhere(bad)[0])
      raise JaxnnError(f"{arg}: {self._where} expects integer ids in [0, {self.input_dim}), found "
                       f"{values[where].item()!r} at index {where}")


@dataclasses.dataclass(frozen=True)
class Masking(Layer):
  """Marks the steps whose features all equal `mask_value` as padding, as Keras' Masking does.

  Inputs (T, F) per example. The output is the input with those steps set to 0, and it carries the step
  mask (`any(x != mask_value)` over features) that the recurrent layers and GlobalAveragePooling1D use to
  skip them.
  """

  mask_value: float = 0.0

  supports_masking: ClassVar[bool] = True

  def __post_init__(self):
    if isinstance(self.mask_value, bool) or not isinstance(self.mask_value, (int, float)):
      raise JaxnnError(f"Masking: mask_value must be a number, got {self.mask_value!r}")
    object.__setattr__(self, "mask_value", float(self.mask_value))

  def output_shape(self, input_shape):
    if len(input_shape) < 2:
      raise JaxnnError(f"Masking: expected inputs (T, F) (steps, features), got shape {tuple(input_shape)}")
    return tuple(input_shape)

  def _steps(self, x: Array) -> Array:
    return jnp.any(x != self.mask_value, axis=-1)

  def apply(self, params, x, *, training=False, key=None):
    del params, training, key
    return x * self._steps(x)[..., None].astype(x.dtype)

  def output_masked(self, input_masked):
    del input_masked
    return True

  def compute_step_mask(self, x, step_mask):
    del step_mask  # a fresh mask from the values, as in Keras
    return self._steps(x)
