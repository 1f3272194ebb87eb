"""Recurrent layers: SimpleRNN, LSTM, GRU (Keras 3 arguments and gate layout) and the Bidirectional wrapper.

Inputs are (T, F) per example, (batch, T, F) batched. The input projection `x @ kernel + bias` is one matmul
over every time step; only the recurrent part runs in `jax.lax.scan` over time. Outputs are the last hidden
state (units,), or every step's (T, units) with `return_sequences`. Params: `kernel` (F, G * units),
`recurrent_kernel` (units, G * units) and `bias`, the G gate blocks in Keras' order (LSTM: i, f, c, o;
GRU: z, r, h), so weights carry over from Keras unchanged.

`dropout` / `recurrent_dropout` drop a fraction of the inputs / of the previous hidden state where they enter
the gates, while training, with masks drawn once per call and kept over every time step (Gal & Ghahramani
2016), as Keras 3 does: with `recurrent_dropout`, each gate block gets its own input and recurrent mask;
with `dropout` alone, one input mask serves every gate (the one-matmul projection stays one matmul).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks
from jaxnn import activations
from jaxnn import initializers
from jaxnn.errors import JaxnnError
from jaxnn.layers import Layer, WeightPenalties, _positive_int, check_names

Array = jax.Array
Params = dict[str, Any]
Shape = tuple[int, ...]
Carry = Any


def _state_list(initial_state: Any) -> list[Any]:
  """Keras' `initial_state` as a list of arrays: one array alone, or a list / tuple of them."""
  return [initial_state] if hasattr(initial_state, "shape") else list(initial_state)


@dataclasses.dataclass(frozen=True)
class _Recurrent(WeightPenalties, Layer):
  """Shared config and time loop; subclasses define the gates (`_GATES`) and one step of the cell."""

  units: int
  activation: Any = "tanh"
  use_bias: bool = True
  return_sequences: bool = False
  go_backwards: bool = False
  unroll: bool | int = False
  kernel_initializer: Any = "glorot_uniform"
  recurrent_initializer: Any = "orthogonal"
  bias_initializer: Any = "zeros"
  kernel_regularizer: Any = None
  recurrent_regularizer: Any = None
  bias_regularizer: Any = None
  activity_regularizer: Any = None
  kernel_constraint: Any = None
  recurrent_constraint: Any = None
  bias_constraint: Any = None
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  return_state: bool = False
  zero_output_for_mask: bool = False

  _GATES: ClassVar[int] = 1
  _STATES: ClassVar[int] = 1  # arrays in the state: h (LSTM: h and c)
  _WEIGHTS: ClassVar[dict[str, str]] = {"kernel": "kernel", "recurrent_kernel": "recurrent", "bias": "bias"}
  supports_masking: ClassVar[bool] = True
  uses_step_mask: ClassVar[bool] = True

  def __post_init__(self):
    object.__setattr__(self, "units", _positive_int(type(self).__name__, "units", self.units))
    for arg in ("return_sequences", "go_backwards", "return_state", "zero_output_for_mask"):
      if not isinstance(getattr(self, arg), (bool, np.bool_)):
        raise JaxnnError(f"{self._where}: {arg} must be a bool, got {getattr(self, arg)!r}")
      object.__setattr__(self, arg, bool(getattr(self, arg)))
    for arg in ("dropout", "recurrent_dropout"):
      _checks.check_fraction(getattr(self, arg), arg, self._where)
      object.__setattr__(self, arg, float(getattr(self, arg)))
    check_names(self)

  @property
  def stochastic(self) -> bool:  # type: ignore[override]
    """Whether training draws dropout masks (and so needs a key)."""
    return self.dropout > 0.0 or self.recurrent_dropout > 0.0

  @property
  def _where(self) -> str:
    return f"{type(self).__name__}({self.units})"

  @property
  def multiple_outputs(self) -> bool:  # type: ignore[override]
    """With `return_state`, `apply` returns (output, *final states): not a layer of a Sequential stack."""
    return self.return_state

  def _carry_from(self, initial_state: Any, batch: int, dtype: Any) -> Carry:
    """The scan's starting carry from Keras' `initial_state`: a list of `_STATES` arrays (batch, units) (h;
    LSTM: h, c), or one array for a single-state layer; zeros when None."""
    if initial_state is None:
      return self._initial_carry(batch, dtype)
    states = _state_list(initial_state)
    if len(states) != self._STATES:
      raise JaxnnError(f"{self._where}: initial_state must hold {self._STATES} array(s) "
                       f"{'(h, c)' if self._STATES == 2 else '(h)'}, got {len(states)}")
    for i, state in enumerate(states):
      if tuple(jnp.shape(state)) != (batch, self.units):
        raise JaxnnError(f"{self._where}: initial_state[{i}] must have shape {(batch, self.units)} (batch, units), "
                         f"got {tuple(jnp.shape(state))}")
    states = [jnp.asarray(state, dtype) for state in states]
    return tuple(states) if self._STATES > 1 else states[0]

  def output_shape(self, input_shape: Shape) -> Shape:
    if len(input_shape) != 2:
      raise JaxnnError(f"{self._where}: expected inputs (T, F), got shape {tuple(input_shape)}")
    return (input_shape[0], self.units) if self.return_sequences else (self.units,)

  def output_masked(self, input_masked: bool) -> bool:
    return input_masked and self.return_sequences  # the last state alone has no steps left to mask

  def _init_bias(self, key: Array) -> Array:
    return initializers.get(self.bias_initializer)(key, (self._GATES * self.units,), jnp.float32)

  def init(self, key: Array, input_shape: Shape) -> tuple[Params, Shape]:
    out_shape = self.output_shape(input_shape)
    k_kernel, k_recurrent, k_bias = jax.random.split(key, 3)
    width = self._GATES * self.units
    params = {
        "kernel": initializers.get(self.kernel_initializer)(k_kernel, (input_shape[-1], width), jnp.float32),
        "recurrent_kernel": initializers.get(self.recurrent_initializer)(k_recurrent, (self.units, width),
                                                                         jnp.float32),
    }
    if self.use_bias:
      params["bias"] = self._init_bias(k_bias)
    return params, out_shape

  def _input_bias(self, params: Params) -> Array | float:
    return params["bias"] if self.use_bias else 0.0

  def _initial_carry(self, batch: int, dtype: Any) -> Carry:
    return jnp.zeros((batch, self.units), dtype)

  def _step(self, params: Params, carry: Carry, xw: Array, masks: Array | None) -> tuple[Carry, Array]:
    """One time step: (carry, projected input (batch, G * units), recurrent-dropout masks or None) ->
    (carry, hidden state (batch, units))."""
    raise NotImplementedError

  def _dropout_masks(self, key: Array, batch: int, features: int, dtype: Any) -> tuple[Array | None, Array | None]:
    """Keras 3's masks for one call: inputs (n, batch, features) and hidden state (G, batch, units), each
    entry 0 or 1 / (1 - rate); n is G with `recurrent_dropout`, else 1. None where the rate is 0."""
    k_in, k_rec = jax.random.split(key)
    gates = self._GATES if self.recurrent_dropout > 0.0 else 1

    def mask(k, rate, shape):
      return jax.random.bernoulli(k, 1.0 - rate, shape).astype(dtype) / (1.0 - rate)

    inputs = mask(k_in, self.dropout, (gates, batch, features)) if self.dropout > 0.0 else None
    hidden = (mask(k_rec, self.recurrent_dropout, (self._GATES, batch, self.units))
              if self.recurrent_dropout > 0.0 else None)
    return inputs, hidden

  @staticmethod
  def _gate_matmul(a: Array, kernel: Array, masks: Array | None) -> Array:
    """`a @ kernel` (a: (..., n), kernel: (n, G' * m)); with masks (G', ...) broadcasting against `a`, gate
    block g of the result is `(a * masks[g]) @ kernel`'s block g (dropout before each gate's own matmul)."""
    if masks is None:
      return a @ kernel
    gates, n = masks.shape[0], kernel.shape[0]
    if gates == 1:
      return (a * masks[0]) @ kernel
    out = jnp.einsum("g...n,ngm->...gm", a * masks, kernel.reshape(n, gates, -1))
    return out.reshape(*out.shape[:-2], -1)

  def apply(self, params, x, *, training=False, key=None, step_mask=None, initial_state=None):
    """Outputs for inputs x (batch, T, F). `step_mask` (batch, T), True for real steps: a masked step
    leaves the state as it was and repeats the previous output (zeros with `zero_output_for_mask`, as in
    Keras), so padding anywhere in a sequence is skipped. `initial_state`: the starting state as Keras takes
    it ([h], LSTM [h, c]; zeros by default). With `return_state`, returns `(output, h)` (LSTM
    `(output, h, c)`): the final state, e.g. to start a decoder from an encoder's."""
    if x.ndim != 3 or x.shape[-1] != params["kernel"].shape[0]:
      raise JaxnnError(f"{self._where}: expected inputs (batch, T, {params['kernel'].shape[0]}), got shape "
                       f"{tuple(x.shape)}")
    if step_mask is not None and tuple(step_mask.shape) != tuple(x.shape[:2]):
      raise JaxnnError(f"{self._where}: expected step_mask of shape {tuple(x.shape[:2])} (batch, T), got "
                       f"{tuple(step_mask.shape)}")
    input_masks = hidden_masks = None
    if training and self.stochastic:
      if key is None:
        raise JaxnnError(f"{self._where}: training=True with dropout needs a PRNG key (pass key=... to apply)")
      input_masks, hidden_masks = self._dropout_masks(key, x.shape[0], x.shape[-1], x.dtype)
    # Project every step's input at once (one large matmul) and scan time-major over the projections.
    masks = None if input_masks is None else input_masks[:, :, None, :]  # the same mask at every step
    xw_TxBxG = jnp.swapaxes(self._gate_matmul(x, params["kernel"], masks) + self._input_bias(params), 0, 1)
    steps_TxB = None if step_mask is None else jnp.swapaxes(step_mask.astype(bool), 0, 1)
    if self.go_backwards:
      xw_TxBxG = jnp.flip(xw_TxBxG, 0)
      steps_TxB = None if steps_TxB is None else jnp.flip(steps_TxB, 0)

    def step(carry, inputs):
      xw_BxG, real_B = inputs
      new, h_BxU = self._step(params, carry, xw_BxG, hidden_masks)
      if real_B is not None:  # a padded step keeps the old state, and outputs the old hidden state (or zeros)
        new = jax.tree_util.tree_map(lambda n, o: jnp.where(real_B[:, None], n, o), new, carry)
        if self.zero_output_for_mask:
          h_BxU = jnp.where(real_B[:, None], h_BxU, 0.0)
        else:
          h_BxU = new[0] if isinstance(new, tuple) else new
      return new, (h_BxU if self.return_sequences else None)

    carry, hs_TxBxU = jax.lax.scan(step, self._carry_from(initial_state, x.shape[0], xw_TxBxG.dtype),
                                   (xw_TxBxG, steps_TxB), unroll=self.unroll)
    states = carry if isinstance(carry, tuple) else (carry,)
    # go_backwards: the sequence in processing (reversed) order, as Keras returns it.
    out = jnp.swapaxes(hs_TxBxU, 0, 1) if self.return_sequences else states[0]
    return (out, *states) if self.return_state else out


@dataclasses.dataclass(frozen=True)
class SimpleRNN(_Recurrent):
  """Fully connected recurrence: `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`."""

  def _step(self, params, carry, xw, masks):
    h = activations.get(self.activation)(xw + self._gate_matmul(carry, params["recurrent_kernel"], masks))
    return h, h


@dataclasses.dataclass(frozen=True)
class LSTM(_Recurrent):
  """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras' formulation.

  Gates i, f, o = recurrent_activation(.), candidate g = activation(.), each of `x_t @ kernel +
  h_{t-1} @ recurrent_kernel + bias`; `c_t = f * c_{t-1} + i * g` and `h_t = o * activation(c_t)`.
  `unit_forget_bias` starts the forget gate's bias at 1 (Jozefowicz et al. 2015) so memory is kept early on.
  """

  recurrent_activation: Any = "sigmoid"
  unit_forget_bias: bool = True

  _GATES: ClassVar[int] = 4
  _STATES: ClassVar[int] = 2

  def _init_bias(self, key):
    bias = super()._init_bias(key)
    if self.unit_forget_bias:
      bias = bias.at[self.units:2 * self.units].set(1.0)
    return bias

  def _initial_carry(self, batch, dtype):
    zeros = jnp.zeros((batch, self.units), dtype)
    return zeros, zeros  # (h, c): apply returns carry[0]

  def _step(self, params, carry, xw, masks):
    h, c = carry
    z = xw + self._gate_matmul(h, params["recurrent_kernel"], masks)
    i, f, g, o = jnp.split(z, 4, axis=-1)
    act, gate = activations.get(self.activation), activations.get(self.recurrent_activation)
    c = gate(f) * c + gate(i) * act(g)
    h = gate(o) * act(c)
    return (h, c), h


@dataclasses.dataclass(frozen=True)
class GRU(_Recurrent):
  """Gated recurrent unit (Cho et al. 2014), Keras 3's formulation (default `reset_after=True`).

  `z, r = recurrent_activation(.)`, `h_t = z * h_{t-1} + (1 - z) * activation(x_h + r * (h_{t-1} @ R_h + b_h))`
  with reset_after (bias of shape (2, 3 * units): input bias, recurrent bias), or
  `activation(x_h + (r * h_{t-1}) @ R_h)` without it (bias (3 * units,)).
  """

  recurrent_activation: Any = "sigmoid"
  reset_after: bool = True

  _GATES: ClassVar[int] = 3

  def _init_bias(self, key):
    if not self.reset_after:
      return super()._init_bias(key)
    return initializers.get(self.bias_initializer)(key, (2, 3 * self.units), jnp.float32)

  def _input_bias(self, params):
    if not self.use_bias:
      return 0.0
    return params["bias"][0] if self.reset_after else params["bias"]

  def _step(self, params, carry, xw, masks):
    h, kernel, u = carry, params["recurrent_kernel"], self.units
    act, gate = activations.get(self.activation), activations.get(self.recurrent_activation)
    x_z, x_r, x_h = jnp.split(xw, 3, axis=-1)
    if self.reset_after:
      hr = self._gate_matmul(h, kernel, masks)
      if self.use_bias:
        hr = hr + params["bias"][1]
      h_z, h_r, h_h = jnp.split(hr, 3, axis=-1)
      z, r = gate(x_z + h_z), gate(x_r + h_r)
      candidate = act(x_h + r * h_h)
    else:
      h_z, h_r = jnp.split(self._gate_matmul(h, kernel[:, :2 * u], None if masks is None else masks[:2]), 2,
                           axis=-1)
      z, r = gate(x_z + h_z), gate(x_r + h_r)
      h_h = h if masks is None else h * masks[2]
      candidate = act(x_h + (r * h_h) @ kernel[:, 2 * u:])
    h = z * h + (1.0 - z) * candidate  # the unmasked state, as in Keras
    return h, h


_MERGE_MODES = ("concat", "sum", "ave", "mul")


@dataclasses.dataclass(frozen=True)
class Bidirectional(Layer):
  """Runs a recurrent layer forward and a copy of it backward over time, and merges the two outputs.

  Params are `{"forward": ..., "backward": ...}` (independent weights). With `return_sequences`, the
  backward outputs are flipped back so that step t of both directions lines up before merging.
  """

  layer: _Recurrent
  merge_mode: str = "concat"

  supports_masking: ClassVar[bool] = True
  uses_step_mask: ClassVar[bool] = True

  def __post_init__(self):
    if not isinstance(self.layer, _Recurrent):
      raise JaxnnError(f"Bidirectional: expected a recurrent layer (SimpleRNN, LSTM, GRU), got "
                       f"{type(self.layer).__name__}")
    if self.merge_mode not in _MERGE_MODES:
      raise JaxnnError(f"Bidirectional: merge_mode must be one of {list(_MERGE_MODES)}, got {self.merge_mode!r}")
    # The activity penalty is computed on the merged output: it equals the sum of both directions' penalties
    # only when the outputs are concatenated (L1 / L2 sum over elements).
    if self.layer.activity_regularizer is not None and self.merge_mode != "concat":
      raise JaxnnError("Bidirectional: a wrapped layer's activity_regularizer needs merge_mode='concat'")

  @property
  def forward_layer(self) -> _Recurrent:
    # As Keras' Bidirectional: with return_sequences, masked steps output zeros in both directions.
    return dataclasses.replace(self.layer, zero_output_for_mask=self.layer.return_sequences)

  @property
  def backward_layer(self) -> _Recurrent:
    return dataclasses.replace(self.forward_layer, go_backwards=not self.layer.go_backwards)

  def output_shape(self, input_shape):
    shape = self.layer.output_shape(input_shape)
    return (*shape[:-1], 2 * shape[-1]) if self.merge_mode == "concat" else shape

  def output_masked(self, input_masked):
    return self.layer.output_masked(input_masked)

  def init(self, key, input_shape):
    k_forward, k_backward = jax.random.split(key)
    forward, _ = self.layer.init(k_forward, input_shape)
    backward, _ = self.backward_layer.init(k_backward, input_shape)
    return {"forward": forward, "backward": backward}, self.output_shape(input_shape)

  @property
  def stochastic(self) -> bool:  # type: ignore[override]
    return self.layer.stochastic

  @property
  def multiple_outputs(self) -> bool:  # type: ignore[override]
    return self.layer.return_state

  def apply(self, params, x, *, training=False, key=None, step_mask=None, initial_state=None):
    """The merged outputs; `initial_state` is the forward layer's states then the backward layer's, as in
    Keras; with the wrapped layer's `return_state`: `(merged, *forward states, *backward states)`."""
    k_f = k_b = None
    if key is not None:  # each direction draws its own dropout masks
      k_f, k_b = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    init_f = init_b = None
    if initial_state is not None:
      n = self.layer._STATES
      states = _state_list(initial_state)
      if len(states) != 2 * n:
        raise JaxnnError(f"Bidirectional({self.layer._where}): initial_state must hold {2 * n} arrays (the forward "
                         f"layer's {n}, then the backward layer's), got {len(states)}")
      init_f, init_b = states[:n], states[n:]
    y_f = self.forward_layer.apply(params["forward"], x, training=training, key=k_f, step_mask=step_mask,
                                   initial_state=init_f)
    y_b = self.backward_layer.apply(params["backward"], x, training=training, key=k_b, step_mask=step_mask,
                                    initial_state=init_b)
    states_f = states_b = ()
    if self.layer.return_state:
      (y_f, *states_f), (y_b, *states_b) = y_f, y_b
    if self.layer.return_sequences:
      y_b = jnp.flip(y_b, axis=1)
    if self.merge_mode == "concat":
      y = jnp.concatenate([y_f, y_b], axis=-1)
    elif self.merge_mode == "sum":
      y = y_f + y_b
    elif self.merge_mode == "ave":
      y = 0.5 * (y_f + y_b)
    else:
      y = y_f * y_b
    return (y, *states_f, *states_b) if self.layer.return_state else y

  def regularization(self, params):
    return self.layer.regularization(params["forward"]) + self.backward_layer.regularization(params["backward"])

  def activity_penalty(self, outputs):
    return self.layer.activity_penalty(outputs)

  def constrain(self, params):
    return {"forward": self.layer.constrain(params["forward"]),
            "backward": self.backward_layer.constrain(params["backward"])}

  def constraints_keep_nonfinite(self):
    return type(self).constrain is Bidirectional.constrain and self.layer.constraints_keep_nonfinite()

  def trainable(self, params):
    return {"forward": self.layer.trainable(params["forward"]),
            "backward": self.backward_layer.trainable(params["backward"])}

  def config(self):
    out = {"layer": {"type": type(self.layer).__name__, **self.layer.config()}}
    if self.merge_mode != "concat":
      out["merge_mode"] = self.merge_mode
    return out
