"""Sequential composition of layers, and its summary."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dropout
from jaxnn.layers import Layer

Array = jax.Array
Params = dict[str, Any]
Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Sequential:
  """A stack of layers applied in order, as a frozen (hashable) config with pure init / apply.

  Params are a plain dict keyed by layer name (`dense_0`, `dense_1`, `dropout_0` ...: the layer type and
  its index among layers of that type); layers without weights have no entry.

  Example:
    >>> model = Sequential([Dense(128, activation="relu"), Dropout(0.2), Dense(10, activation="softmax")])
    >>> params = model.init(jax.random.key(0), (784,))
    >>> probs = model.apply(params, x_BxD)
  """

  layers: tuple[Layer, ...]
  name: str = "sequential"

  def __init__(self, layers: Sequence[Layer], name: str = "sequential"):
    layers = tuple(layers)
    if not layers:
      raise JaxnnError("Sequential: expected at least one layer, got none")
    for i, layer in enumerate(layers):
      if not isinstance(layer, Layer):
        raise JaxnnError(f"Sequential: layer {i} must be a jaxnn layer, got {type(layer).__name__}")
      if layer.multiple_outputs:
        raise JaxnnError(f"Sequential: layer {i} ({type(layer).__name__}) returns several arrays (return_state=True); "
                         f"call its apply(params, x) directly (Keras' Sequential cannot stack it either)")
    object.__setattr__(self, "layers", layers)
    object.__setattr__(self, "name", name)
    self._mask_flow()  # warns, at construction, where a step mask would be dropped

  def _mask_flow(self) -> bool:
    """Follows step masks (from Embedding(mask_zero=True) or Masking) through the layers; returns whether the
    model's output carries one. Static: masks come from the configs, not from the data. A layer that does
    not support masking drops the mask, with a warning (Keras does the same)."""
    masked = False
    for name, layer in zip(self.layer_names, self.layers):
      if masked and not layer.supports_masking:
        warnings.warn(f"{self.name}: layer {name} ({type(layer).__name__}) does not support masking; the step "
                      f"mask of the layers before it ends there", stacklevel=3)
      masked = layer.output_masked(masked)
    return masked

  @property
  def output_masked(self) -> bool:
    """Whether the model's outputs carry a step mask (a sequence output after Embedding(mask_zero=True) or
    Masking, through layers that pass it on)."""
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return self._mask_flow()

  @property
  def layer_names(self) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    names = []
    for layer in self.layers:
      index = counts.get(layer.kind, 0)
      counts[layer.kind] = index + 1
      names.append(f"{layer.kind}_{index}")
    return tuple(names)

  @property
  def stochastic(self) -> bool:
    """Whether training needs a PRNG key (dropout, ...)."""
    return any(layer.stochastic for layer in self.layers)

  def output_shapes(self, input_shape: Shape) -> list[Shape]:
    """Each layer's output shape (batch axis excluded) for inputs of `input_shape`."""
    shape = _check_shape(input_shape)
    shapes = []
    for layer in self.layers:
      shape = layer.output_shape(shape)
      shapes.append(shape)
    return shapes

  def init(self, key: Array, input_shape: Sequence[int]) -> Params:
    """Initial params for inputs of `input_shape` (batch axis excluded), as one compiled program."""
    shape = _check_shape(input_shape)
    _checks.check_key(key)
    if isinstance(key, jax.core.Tracer):  # inside a caller's jit or vmap: part of the caller's program
      return _init_jit(self, shape, key)
    return _init_program(self, shape, jax.typeof(key))(key)

  def _init(self, shape: Shape, key: Array) -> Params:
    params = {}
    for i, (name, layer) in enumerate(zip(self.layer_names, self.layers)):
      layer_params, shape = layer.init(jax.random.fold_in(key, i), shape)
      if layer_params:
        params[name] = layer_params
    return params

  def init_state(self, input_shape: Sequence[int]) -> dict[str, Any]:
    """Non-trained state keyed by layer name (BatchNormalization's running statistics); {} if none."""
    shape = _check_shape(input_shape)
    state = {}
    for name, layer in zip(self.layer_names, self.layers):
      layer_state = layer.init_state(shape)
      if layer_state:
        state[name] = layer_state
      shape = layer.output_shape(shape)
    return state

  def forward(self, params: Params, x: Array, *, state: dict[str, Any] | None = None, training: bool = False,
              key: Array | None = None, dropout_rate: Array | None = None,
              mask: Array | None = None) -> tuple[Array, dict[str, Any]]:
    """Forward pass returning `(outputs, aux)`.

    `aux["activity_penalty"]` is the activity regularizers' penalty (0 without them) and `aux["state"]` the
    updated model state (running statistics change only when training). `dropout_rate`, if given, replaces
    every Dropout layer's rate (a traced value: `jaxnn.sweep.fit_many` sweeps it without recompiling).
    `mask` (batch,) marks the real rows of a padded batch: BatchNormalization's statistics ignore the rest.
    Step masks (from Embedding(mask_zero=True) or Masking) go from layer to layer as in Keras;
    `aux["step_mask"]` is the output's (None when it carries none).
    """
    if training and key is None and self.stochastic:
      raise JaxnnError(f"{self.name}: training=True with dropout needs a PRNG key (pass key=...)")
    _check_forward_args(params, x)
    state = {} if state is None else state
    new_state = {}
    penalty = jnp.zeros((), jnp.float32)
    step_mask = None
    for i, (name, layer) in enumerate(zip(self.layer_names, self.layers)):
      layer_key = None if key is None else jax.random.fold_in(key, i)
      layer_state = state.get(name, {})
      if not layer.supports_masking:
        step_mask = None
      y_mask = layer.compute_step_mask(x, step_mask)
      if dropout_rate is not None and isinstance(layer, Dropout):
        x = layer.apply(params.get(name, {}), x, training=training, key=layer_key, rate=dropout_rate)
      else:
        # step_mask only when there is one: a layer written before masks existed keeps working.
        masks = {} if step_mask is None else {"step_mask": step_mask}
        x, layer_state = layer.apply_stateful(params.get(name, {}), layer_state, x, training=training,
                                              key=layer_key, mask=mask, **masks)
      step_mask = y_mask
      if layer_state:
        new_state[name] = layer_state
      penalty = penalty + layer.activity_penalty(x)
    return x, {"activity_penalty": penalty, "state": new_state, "step_mask": step_mask}

  def apply(self, params: Params, x: Array, *, training: bool = False, key: Array | None = None,
            state: dict[str, Any] | None = None) -> Array:
    """Forward pass: the model's outputs for a batch `x` (pass `state` for models with running statistics)."""
    return self.forward(params, x, state=state, training=training, key=key)[0]

  def regularization(self, params: Params) -> Array:
    """Sum of every layer's weight penalty."""
    total = jnp.zeros((), jnp.float32)
    for name, layer in zip(self.layer_names, self.layers):
      if name in params:
        total = total + layer.regularization(params[name])
    return total

  def kernel_sum_of_squares(self, params: Params) -> Array:
    """Sum of squares of every layer's `kernel` (a LoRA Dense: its factors): the penalty
    `kernel_regularizer=L2(1.0)` on each layer adds."""
    total = jnp.zeros((), jnp.float32)
    for name, layer in zip(self.layer_names, self.layers):
      layer_params = params.get(name, {})
      if "kernel" in layer_params:
        for array in layer.penalized(layer_params, "kernel"):
          total = total + jnp.sum(jnp.square(array))
    return total

  def constrain(self, params: Params) -> Params:
    """Applies every layer's constraints (after an optimizer update)."""
    return {name: layer.constrain(params[name])
            for name, layer in zip(self.layer_names, self.layers) if name in params}

  def constraints_keep_nonfinite(self) -> bool:
    """True when every layer's `constrain` is known to keep a NaN or infinite entry non-finite: no
    constraints or built-in ones only, and no `constrain` of a layer's own (`Layer.constraints_keep_nonfinite`).
    `fit`'s NaN guard marks non-finite gradients in the params only then (`numerics.mark_nonfinite`)."""
    return all(layer.constraints_keep_nonfinite() for layer in self.layers)

  def trainable_mask(self, params: Params) -> dict[str, dict[str, bool]]:
    """Pytree of bools, same structure as params: False for frozen arrays (a LoRA base kernel)."""
    return {name: layer.trainable(params[name])
            for name, layer in zip(self.layer_names, self.layers) if name in params}

  def summary(self, input_shape: Sequence[int], params: Params | None = None) -> str:
    """Keras-style table: layer, output shape, parameter count (trainable and frozen)."""
    if params is None:
      params = jax.eval_shape(lambda: self.init(jax.random.key(0), input_shape))
    rows = [("Layer (type)", "Output Shape", "Param #")]
    total = trainable = 0
    for name, layer, shape in zip(self.layer_names, self.layers, self.output_shapes(input_shape)):
      layer_params = params.get(name, {})
      mask = layer.trainable(layer_params)
      count = sum(math.prod(v.shape) for v in layer_params.values())
      trainable += sum(math.prod(v.shape) for k, v in layer_params.items() if mask[k])
      total += count
      rows.append((f"{name} ({type(layer).__name__})", str((None, *shape)), f"{count:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    rule = "-" * (sum(widths) + 4)
    lines = [f'Model: "{self.name}"', rule]
    for j, row in enumerate(rows):
      lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}")
      if j == 0:
        lines.append(rule)
    lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(lines)

  def count_params(self, params: Params) -> int:
    return sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(params))

  def config(self) -> dict[str, Any]:
    """Readable description of the architecture for results.json."""
    return {"name": self.name,
            "layers": [{"name": n, "type": type(l).__name__, **l.config()}
                       for n, l in zip(self.layer_names, self.layers)]}


# XLA options for programs that run once (a model's initial params, fit_many's K initial states): LLVM's
# full optimization of their threefry draws took 1.0-1.7 s per model on a 2-core CPU, level 1 0.4-0.7 s. They
# run in milliseconds either way, and level 1 gives the same bits (tests/test_models.py; level 0 does not:
# it forms no fused multiply-adds).
ONE_SHOT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
# Jitted so that initializing a model is one compile rather than one per random draw.
_init_jit = jax.jit(Sequential._init, static_argnums=(0, 1))


@functools.lru_cache(maxsize=64)
def _init_program(model: Sequential, shape: Shape, key_type: Any) -> Any:
  """`model._init` compiled with ONE_SHOT_COMPILER_OPTIONS for keys of `key_type` (a `jax.typeof`).

  Compiled ahead of time rather than by a jit with `compiler_options`: such a jit may not be staged into a
  caller's trace, while a compiled program runs on a concrete key even there (e.g. a key closed over).
  """
  key = jax.ShapeDtypeStruct(key_type.shape, key_type.dtype)
  return _init_jit.lower(model, shape, key).compile(compiler_options=ONE_SHOT_COMPILER_OPTIONS)


def _check_forward_args(params: Any, x: Any) -> None:
  """Params as a dict and real-valued inputs (static checks: they also hold while tracing)."""
  if not isinstance(params, Mapping):
    raise JaxnnError(f"params: expected the dict from model.init, got {type(params).__name__}")
  dtype = getattr(x, "dtype", None)
  _checks.check_numeric_dtype(np.dtype(dtype) if dtype is not None else _checks.as_array(x, "x").dtype, "x")


def _check_shape(input_shape: Sequence[int]) -> Shape:
  # Each size must already be an int: int(5.5) would quietly build a model for 5 features.
  ok = isinstance(input_shape, Sequence) and not isinstance(input_shape, str) and len(input_shape) > 0 and all(
      _checks.is_int(d) and d > 0 for d in input_shape)
  if not ok:
    raise JaxnnError(f"input_shape: expected a tuple of positive ints (batch axis excluded), got {input_shape!r}")
  return tuple(int(d) for d in input_shape)
