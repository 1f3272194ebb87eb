"""Recurrent layers' initial_state, return_state and zero_output_for_mask: their contracts, and Keras 3's
outputs and states with the same weights, with and without a step mask."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402
from jaxnn import JaxnnError  # noqa: E402

B, T, F, U = 3, 5, 4, 6
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, T, F)).astype(np.float32)
# Post-, no and pre-padding, so that masked steps come last, nowhere and first.
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], bool)
STATES = {"SimpleRNN": 1, "GRU": 1, "LSTM": 2}
INIT = [RNG.normal(size=(B, U)).astype(np.float32) for _ in range(4)]


def layer_and_params(name, **kwargs):
  layer = getattr(jaxnn, name)(U, **kwargs)
  params, _ = layer.init(jax.random.key(7), (T, F))
  return layer, params


@pytest.mark.parametrize("name", list(STATES))
def test_return_state_is_the_final_carry(name):
  layer, params = layer_and_params(name, return_state=True)
  out, *states = layer.apply(params, jnp.asarray(X))
  assert len(states) == STATES[name]
  np.testing.assert_array_equal(out, states[0])  # the last output is h
  seq_layer = getattr(jaxnn, name)(U, return_sequences=True, return_state=True)
  seq, *seq_states = seq_layer.apply(params, jnp.asarray(X))
  np.testing.assert_allclose(seq[:, -1], seq_states[0], rtol=1e-6, atol=1e-7)
  for a, b in zip(states, seq_states):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(STATES))
def test_initial_state_continues_a_sequence(name):
  # Running the first 3 steps, then the last 2 from the returned state, equals running all 5 at once.
  layer, params = layer_and_params(name, return_state=True)
  whole, *_ = layer.apply(params, jnp.asarray(X))
  _, *states = layer.apply(params, jnp.asarray(X[:, :3]))
  rest, *_ = layer.apply(params, jnp.asarray(X[:, 3:]), initial_state=states)
  np.testing.assert_allclose(rest, whole, rtol=1e-5, atol=1e-6)
  zeros = [np.zeros((B, U), np.float32)] * STATES[name]
  np.testing.assert_array_equal(layer.apply(params, jnp.asarray(X), initial_state=zeros)[0], whole)


@pytest.mark.parametrize("name", list(STATES))
def test_zero_output_for_mask(name):
  layer, params = layer_and_params(name, return_sequences=True, zero_output_for_mask=True)
  out = np.asarray(layer.apply(params, jnp.asarray(X), step_mask=jnp.asarray(MASK)))
  assert np.all(out[~MASK] == 0.0) and np.all(np.any(out[MASK] != 0.0, axis=-1))
  repeat = getattr(jaxnn, name)(U, return_sequences=True)
  kept = np.asarray(repeat.apply(params, jnp.asarray(X), step_mask=jnp.asarray(MASK)))
  np.testing.assert_allclose(out[MASK], kept[MASK], rtol=1e-6, atol=1e-7)  # two programs: rounding may differ
  np.testing.assert_array_equal(kept[0, 3], kept[0, 2])  # without it, a masked step repeats the last output


def test_bidirectional_states_and_initial_state():
  layer = jaxnn.Bidirectional(jaxnn.LSTM(U, return_state=True))
  params, _ = layer.init(jax.random.key(1), (T, F))
  out, h_f, c_f, h_b, c_b = layer.apply(params, jnp.asarray(X), initial_state=INIT)
  np.testing.assert_array_equal(out, jnp.concatenate([h_f, h_b], -1))
  forward = jaxnn.LSTM(U, return_state=True).apply(params["forward"], jnp.asarray(X), initial_state=INIT[:2])
  np.testing.assert_array_equal(forward[1], h_f)
  np.testing.assert_array_equal(forward[2], c_f)
  with pytest.raises(JaxnnError, match=r"initial_state must hold 4 arrays \(the forward layer's 2, then the backward"):
    layer.apply(params, jnp.asarray(X), initial_state=INIT[:2])


@pytest.mark.parametrize("kwargs, message", [
    ({"initial_state": INIT[:1]}, r"LSTM\(6\): initial_state must hold 2 array\(s\) \(h, c\), got 1"),
    ({"initial_state": [INIT[0][:2], INIT[1]]}, r"initial_state\[0\] must have shape \(3, 6\) \(batch, units\), got \(2, 6\)"),
    ({"step_mask": jnp.asarray(MASK[:, :4])}, r"expected step_mask of shape \(3, 5\) \(batch, T\), got \(3, 4\)"),
])
def test_bad_state_arguments(kwargs, message):
  layer, params = layer_and_params("LSTM")
  with pytest.raises(JaxnnError, match=message):
    layer.apply(params, jnp.asarray(X), **kwargs)


@pytest.mark.parametrize("arg", ["return_state", "return_sequences", "go_backwards", "zero_output_for_mask"])
def test_flags_must_be_bools(arg):
  with pytest.raises(JaxnnError, match=rf"GRU\(6\): {arg} must be a bool, got 'yes'"):
    jaxnn.GRU(U, **{arg: "yes"})
  assert getattr(jaxnn.GRU(U, **{arg: np.bool_(True)}), arg) is True


@pytest.mark.parametrize("layer", [jaxnn.LSTM(U, return_state=True),
                                   jaxnn.Bidirectional(jaxnn.GRU(U, return_state=True))])
def test_sequential_refuses_return_state(layer):
  with pytest.raises(JaxnnError, match=r"returns several arrays \(return_state=True\); call its apply"):
    jaxnn.Sequential([layer, jaxnn.Dense(2)])


# --------------------------------------------------------------------------------------------- Keras 3
def _keras():
  return pytest.importorskip("keras")


def _assert_all_close(ours, theirs):
  assert len(ours) == len(theirs)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("name", list(STATES))
def test_states_match_keras(name, return_sequences, go_backwards, masked):
  keras = _keras()
  kwargs = dict(return_sequences=return_sequences, go_backwards=go_backwards, return_state=True)
  layer, params = layer_and_params(name, **kwargs)
  theirs = getattr(keras.layers, name)(U, **kwargs)
  theirs.build((B, T, F))
  theirs.set_weights([np.asarray(params[k]) for k in ("kernel", "recurrent_kernel", "bias")])
  init = INIT[:STATES[name]]
  mask = MASK if masked else None
  ours = layer.apply(params, jnp.asarray(X), initial_state=init,
                     step_mask=None if mask is None else jnp.asarray(mask))
  _assert_all_close(ours, theirs(X, initial_state=init, mask=mask))


@pytest.mark.parametrize("name", list(STATES))
def test_zero_output_for_mask_matches_keras(name):
  keras = _keras()
  layer, params = layer_and_params(name, return_sequences=True, zero_output_for_mask=True)
  theirs = getattr(keras.layers, name)(U, return_sequences=True, zero_output_for_mask=True)
  theirs.build((B, T, F))
  theirs.set_weights([np.asarray(params[k]) for k in ("kernel", "recurrent_kernel", "bias")])
  _assert_all_close([layer.apply(params, jnp.asarray(X), step_mask=jnp.asarray(MASK))], [theirs(X, mask=MASK)])


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_bidirectional_states_match_keras(name, return_sequences, merge_mode):
  # Keras' Bidirectional forces zero_output_for_mask = return_sequences on both directions; jaxnn does too.
  keras = _keras()
  kwargs = dict(return_sequences=return_sequences, return_state=True)
  layer = jaxnn.Bidirectional(getattr(jaxnn, name)(U, **kwargs), merge_mode=merge_mode)
  params, _ = layer.init(jax.random.key(3), (T, F))
  theirs = keras.layers.Bidirectional(getattr(keras.layers, name)(U, **kwargs), merge_mode=merge_mode)
  theirs.build((B, T, F))
  theirs.set_weights([np.asarray(params[d][k]) for d in ("forward", "backward")
                      for k in ("kernel", "recurrent_kernel", "bias")])
  init = INIT[:2 * STATES[name]]
  ours = layer.apply(params, jnp.asarray(X), initial_state=init, step_mask=jnp.asarray(MASK))
  _assert_all_close(ours, theirs(X, initial_state=init, mask=MASK))
