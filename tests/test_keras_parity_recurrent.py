"""jaxnn's recurrent layers against Keras 3 itself, with the same weights, where Keras is installed.

test_recurrent.py checks the layers' own contracts; this checks that a Keras SimpleRNN / LSTM / GRU /
Bidirectional built with the same arguments and given jaxnn's params (`set_weights`, unchanged: jaxnn keeps
Keras' weight order and gate layout) computes the same outputs, and that the initial params have Keras'
shapes and deterministic parts (the LSTM forget-gate bias).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402

keras = pytest.importorskip("keras")

B, T, F, U = 3, 6, 4, 5
X = np.random.default_rng(0).normal(0, 1, (B, T, F)).astype(np.float32)

# (id, layer name shared by jaxnn and keras.layers, kwargs shared by both).
LAYER_CASES = [
    ("simple_rnn", "SimpleRNN", {}),
    ("simple_rnn-seq", "SimpleRNN", {"return_sequences": True}),
    ("simple_rnn-backwards", "SimpleRNN", {"go_backwards": True}),
    ("simple_rnn-backwards-seq", "SimpleRNN", {"go_backwards": True, "return_sequences": True}),
    ("simple_rnn-no_bias", "SimpleRNN", {"use_bias": False}),
    ("simple_rnn-relu", "SimpleRNN", {"activation": "relu", "return_sequences": True}),
    ("simple_rnn-unroll", "SimpleRNN", {"unroll": True, "return_sequences": True}),
    ("lstm", "LSTM", {}),
    ("lstm-seq", "LSTM", {"return_sequences": True}),
    ("lstm-backwards", "LSTM", {"go_backwards": True}),
    ("lstm-backwards-seq", "LSTM", {"go_backwards": True, "return_sequences": True}),
    ("lstm-no_bias", "LSTM", {"use_bias": False, "return_sequences": True}),
    ("lstm-no_forget_bias", "LSTM", {"unit_forget_bias": False}),
    ("lstm-relu-hard_sigmoid", "LSTM",
     {"activation": "relu", "recurrent_activation": "hard_sigmoid", "return_sequences": True}),
    ("lstm-softsign-sigmoid", "LSTM", {"activation": "softsign", "recurrent_activation": "sigmoid"}),
    ("lstm-unroll", "LSTM", {"unroll": True}),
    ("gru", "GRU", {}),
    ("gru-seq", "GRU", {"return_sequences": True}),
    ("gru-backwards", "GRU", {"go_backwards": True}),
    ("gru-backwards-seq", "GRU", {"go_backwards": True, "return_sequences": True}),
    ("gru-no_bias", "GRU", {"use_bias": False, "return_sequences": True}),
    ("gru-relu-hard_sigmoid", "GRU",
     {"activation": "relu", "recurrent_activation": "hard_sigmoid", "return_sequences": True}),
    ("gru-reset_before", "GRU", {"reset_after": False}),
    ("gru-reset_before-seq", "GRU", {"reset_after": False, "return_sequences": True}),
    ("gru-reset_before-backwards", "GRU", {"reset_after": False, "go_backwards": True}),
    ("gru-reset_before-no_bias", "GRU", {"reset_after": False, "use_bias": False}),
    ("gru-reset_before-softsign", "GRU",
     {"reset_after": False, "activation": "softsign", "recurrent_activation": "hard_sigmoid"}),
    ("gru-unroll", "GRU", {"unroll": True, "return_sequences": True}),
]

# (id, inner layer name, inner kwargs, merge_mode).
BIDIRECTIONAL_CASES = [
    (f"{name.lower()}-{mode}{'-seq' if seq else ''}", name, {"return_sequences": seq}, mode)
    for name in ("LSTM", "GRU") for mode in ("concat", "sum", "ave", "mul") for seq in (False, True)
] + [
    ("simple_rnn-concat", "SimpleRNN", {}, "concat"),
    ("simple_rnn-concat-seq", "SimpleRNN", {"return_sequences": True}, "concat"),
    ("gru-reset_before-concat-seq", "GRU", {"reset_after": False, "return_sequences": True}, "concat"),
    ("lstm-no_bias-concat-seq", "LSTM", {"use_bias": False, "return_sequences": True}, "concat"),
    # The wrapped layer runs backwards and jaxnn's copy forwards. Keras' default copy always has
    # go_backwards=True and then refuses the pair, so these cases give Keras the forward copy explicitly.
    ("lstm-backwards-concat", "LSTM", {"go_backwards": True}, "concat"),
    ("gru-backwards-concat-seq", "GRU", {"go_backwards": True, "return_sequences": True}, "concat"),
]


def _ids(cases):
  return [c[0] for c in cases]


def _weights(params):
  """A recurrent layer's params in Keras' weight order: kernel, recurrent_kernel[, bias]."""
  return [np.asarray(params[k]) for k in ("kernel", "recurrent_kernel", "bias") if k in params]


def _bidirectional_weights(params):
  return _weights(params["forward"]) + _weights(params["backward"])


def _randomized(params, seed):
  """Params with noise added, so zero-initialised biases and every gate block take part in the comparison."""
  leaves, tree = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(tree, [np.asarray(p) + rng.normal(0, 0.4, p.shape).astype(np.float32)
                                   for p in leaves])


def _jaxnn_and_keras(name, kwargs, merge_mode=None):
  """The jaxnn layer and the Keras layer with the same arguments, the Keras one built for inputs like X."""
  ours = getattr(jaxnn, name)(U, **kwargs)
  theirs = getattr(keras.layers, name)(U, **kwargs)
  if merge_mode is not None:
    ours = jaxnn.Bidirectional(ours, merge_mode=merge_mode)
    backward = None
    if kwargs.get("go_backwards"):
      backward = getattr(keras.layers, name)(U, **{**kwargs, "go_backwards": False})
    theirs = keras.layers.Bidirectional(theirs, merge_mode=merge_mode, backward_layer=backward)
  theirs.build(X.shape)
  return ours, theirs


def _compare(ours, theirs, params, to_keras):
  theirs.set_weights(to_keras(params))
  # Guard against a silent no-op: the Keras layer now holds exactly jaxnn's arrays.
  for w, p in zip([w.value for w in theirs.weights], to_keras(params), strict=True):
    np.testing.assert_array_equal(np.asarray(w), p)
  got = np.asarray(ours.apply(params, X))
  want = np.asarray(theirs(X))
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, kwargs", [c[1:] for c in LAYER_CASES], ids=_ids(LAYER_CASES))
def test_outputs_match_keras(name, kwargs):
  ours, theirs = _jaxnn_and_keras(name, kwargs)
  params, _ = ours.init(jax.random.key(0), X.shape[1:])
  _compare(ours, theirs, _randomized(params, 1), _weights)


@pytest.mark.parametrize("name, kwargs, merge_mode", [c[1:] for c in BIDIRECTIONAL_CASES],
                         ids=_ids(BIDIRECTIONAL_CASES))
def test_bidirectional_outputs_match_keras(name, kwargs, merge_mode):
  ours, theirs = _jaxnn_and_keras(name, kwargs, merge_mode)
  params, _ = ours.init(jax.random.key(0), X.shape[1:])
  _compare(ours, theirs, _randomized(params, 2), _bidirectional_weights)


DROPOUT_CASES = [
    (f"{name.lower()}-{'-'.join(f'{k}={v}' for k, v in rates.items())}{suffix}", name, {**rates, **extra})
    for name in ("SimpleRNN", "LSTM", "GRU")
    for rates in ({"dropout": 0.3}, {"recurrent_dropout": 0.4}, {"dropout": 0.3, "recurrent_dropout": 0.4})
    for suffix, extra in (("", {}), ("-seq", {"return_sequences": True}))
] + [
    ("gru-reset_before-both", "GRU", {"reset_after": False, "dropout": 0.3, "recurrent_dropout": 0.4,
                                      "return_sequences": True}),
    ("lstm-backwards-both", "LSTM", {"go_backwards": True, "dropout": 0.3, "recurrent_dropout": 0.4}),
]


@pytest.mark.parametrize("name, kwargs", [c[1:] for c in DROPOUT_CASES], ids=_ids(DROPOUT_CASES))
def test_dropout_in_training_matches_keras_given_the_same_masks(name, kwargs):
  """Keras' cell is handed jaxnn's masks (its mask getters patched): the same numbers, so the masks enter
  the same places (per gate with recurrent_dropout, shared by the gates with dropout alone)."""
  ours, theirs = _jaxnn_and_keras(name, kwargs)
  params = _randomized(ours.init(jax.random.key(0), X.shape[1:])[0], 4)
  theirs.set_weights(_weights(params))
  key = jax.random.key(5)
  inputs, hidden = ours._dropout_masks(key, B, F, jnp.float32)

  def as_keras(masks):  # Keras: a list of per-gate masks in its per-gate implementation, else one array
    if masks is None:
      return None
    return list(masks) if ours.recurrent_dropout > 0 and name != "SimpleRNN" else masks[0]

  theirs.cell.get_dropout_mask = lambda step_input: as_keras(inputs)
  theirs.cell.get_recurrent_dropout_mask = lambda step_input: as_keras(hidden)
  got = np.asarray(ours.apply(params, X, training=True, key=key))
  np.testing.assert_allclose(got, np.asarray(theirs(X, training=True)), rtol=1e-5, atol=1e-5)
  # The masks did something: training differs from inference, which ignores them as Keras does.
  inference = np.asarray(ours.apply(params, X))
  assert np.abs(got - inference).max() > 1e-3
  np.testing.assert_allclose(inference, np.asarray(theirs(X, training=False)), rtol=1e-5, atol=1e-5)


def test_dropout_masks_are_fixed_over_time_drawn_per_call_and_scaled():
  layer = jaxnn.LSTM(U, dropout=0.5, recurrent_dropout=0.25)
  inputs, hidden = layer._dropout_masks(jax.random.key(0), 64, F, jnp.float32)
  assert inputs.shape == (4, 64, F) and hidden.shape == (4, 64, U)
  assert set(np.unique(np.asarray(inputs)).tolist()) == {0.0, 2.0}
  assert set(np.unique(np.asarray(hidden)).tolist()) == {0.0, float(np.float32(1.0) / np.float32(0.75))}
  assert 0.4 < float(np.mean(np.asarray(inputs) == 0)) < 0.6
  assert not np.array_equal(np.asarray(inputs[0]), np.asarray(inputs[1]))  # a mask per gate
  # dropout alone: one input mask shared by the gates, no recurrent mask
  inputs, hidden = jaxnn.GRU(U, dropout=0.5)._dropout_masks(jax.random.key(0), 8, F, jnp.float32)
  assert inputs.shape == (1, 8, F) and hidden is None
  # other keys, other masks
  params, _ = layer.init(jax.random.key(0), X.shape[1:])
  a, b = (np.asarray(layer.apply(params, X, training=True, key=jax.random.key(k))) for k in (1, 2))
  assert not np.allclose(a, b)


def test_sequential_of_one_lstm_matches_keras():
  """The public model path: params under `lstm_0`, the same numbers as a keras.Sequential."""
  model = jaxnn.Sequential([jaxnn.LSTM(U, return_sequences=True)])
  params = _randomized(model.init(jax.random.key(0), X.shape[1:]), 3)
  theirs = keras.Sequential([keras.Input(X.shape[1:]), keras.layers.LSTM(U, return_sequences=True)])
  theirs.set_weights(_weights(params["lstm_0"]))
  np.testing.assert_allclose(np.asarray(model.apply(params, X)), np.asarray(theirs(X)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, kwargs", [c[1:] for c in LAYER_CASES], ids=_ids(LAYER_CASES))
def test_initial_param_shapes_match_keras(name, kwargs):
  ours, theirs = _jaxnn_and_keras(name, kwargs)
  params, out_shape = ours.init(jax.random.key(0), X.shape[1:])
  assert [w.shape for w in _weights(params)] == [tuple(w.shape) for w in theirs.weights]
  assert len(_weights(params)) == len(params)  # no param that Keras lacks
  assert (B, *out_shape) == tuple(theirs.compute_output_shape(X.shape))


@pytest.mark.parametrize("name, kwargs, merge_mode", [c[1:] for c in BIDIRECTIONAL_CASES],
                         ids=_ids(BIDIRECTIONAL_CASES))
def test_bidirectional_initial_param_shapes_match_keras(name, kwargs, merge_mode):
  ours, theirs = _jaxnn_and_keras(name, kwargs, merge_mode)
  params, out_shape = ours.init(jax.random.key(0), X.shape[1:])
  assert [w.shape for w in _bidirectional_weights(params)] == [tuple(w.shape) for w in theirs.weights]
  assert (B, *out_shape) == tuple(theirs.compute_output_shape(X.shape))


BIAS_CASES = [
    ("lstm-forget_bias", "LSTM", {}, {}),
    ("lstm-no_forget_bias", "LSTM", {"unit_forget_bias": False}, {}),
    ("lstm-forget_bias-constant", "LSTM", {}, {"value": 0.5}),
    ("lstm-no_forget_bias-constant", "LSTM", {"unit_forget_bias": False}, {"value": 0.5}),
    ("gru", "GRU", {}, {}),
    ("gru-constant", "GRU", {}, {"value": 0.5}),
    ("gru-reset_before-constant", "GRU", {"reset_after": False}, {"value": 0.5}),
    ("simple_rnn-constant", "SimpleRNN", {}, {"value": 0.5}),
]


@pytest.mark.parametrize("name, kwargs, constant", [c[1:] for c in BIAS_CASES], ids=_ids(BIAS_CASES))
def test_initial_bias_matches_keras(name, kwargs, constant):
  """Deterministic bias initialisers give Keras' exact bias: with unit_forget_bias, ones in the f block only."""
  ours_init, keras_init = {}, {}
  if constant:
    ours_init = {"bias_initializer": {"name": "constant", **constant}}
    keras_init = {"bias_initializer": keras.initializers.Constant(**constant)}
  ours = getattr(jaxnn, name)(U, **kwargs, **ours_init)
  theirs = getattr(keras.layers, name)(U, **kwargs, **keras_init)
  theirs.build(X.shape)
  params, _ = ours.init(jax.random.key(0), X.shape[1:])
  want = np.asarray(theirs.cell.bias)
  np.testing.assert_array_equal(np.asarray(params["bias"]), want)
  if name == "LSTM":  # not vacuous: Keras' forget block is ones exactly when unit_forget_bias is set
    forget = 1.0 if kwargs.get("unit_forget_bias", True) else constant.get("value", 0.0)
    np.testing.assert_array_equal(want[U:2 * U], np.full(U, forget, np.float32))
