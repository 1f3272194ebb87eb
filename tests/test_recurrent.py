"""SimpleRNN / LSTM / GRU / Bidirectional: values against numpy loops, shapes, initializers, gradients, errors."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from jaxnn import optimizers
from jaxnn import regularizers
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential
from jaxnn.recurrent import GRU, LSTM, Bidirectional, SimpleRNN

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)
B, T, F, U = 2, 5, 3, 4


def sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


# ------------------------------------------------------------------------------------------ numpy references
def np_simple_rnn(x, p):
  h, hs = np.zeros((x.shape[0], U)), []
  for t in range(x.shape[1]):
    h = np.tanh(x[:, t] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"])
    hs.append(h)
  return np.stack(hs, axis=1)


def np_lstm(x, p):
  h, c, hs = np.zeros((x.shape[0], U)), np.zeros((x.shape[0], U)), []
  for t in range(x.shape[1]):
    z = x[:, t] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
    i, f, g, o = z[:, :U], z[:, U:2 * U], z[:, 2 * U:3 * U], z[:, 3 * U:]
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    hs.append(h)
  return np.stack(hs, axis=1)


def np_gru(x, p, reset_after):
  w, r = p["kernel"], p["recurrent_kernel"]
  b_in, b_rec = (p["bias"][0], p["bias"][1]) if reset_after else (p["bias"], np.zeros(3 * U))
  h, hs = np.zeros((x.shape[0], U)), []
  for t in range(x.shape[1]):
    xz, xr, xh = np.split(x[:, t] @ w + b_in, 3, axis=1)
    z = sigmoid(xz + h @ r[:, :U] + b_rec[:U])
    rr = sigmoid(xr + h @ r[:, U:2 * U] + b_rec[U:2 * U])
    if reset_after:  # Keras 3 default: the reset gate multiplies the recurrent projection
      cand = np.tanh(xh + rr * (h @ r[:, 2 * U:] + b_rec[2 * U:]))
    else:
      cand = np.tanh(xh + (rr * h) @ r[:, 2 * U:])
    h = z * h + (1.0 - z) * cand
    hs.append(h)
  return np.stack(hs, axis=1)


def random_params(layer, scale=0.5):
  """Init, then replace every array by random values (so zero biases do not hide mistakes)."""
  params, _ = layer.init(KEY, (T, F))
  return {k: jnp.asarray(RNG.normal(scale=scale, size=v.shape), jnp.float32) for k, v in params.items()}


CASES = [
    (SimpleRNN, {}, np_simple_rnn),
    (LSTM, {}, np_lstm),
    (GRU, {}, lambda x, p: np_gru(x, p, True)),
    (GRU, {"reset_after": False}, lambda x, p: np_gru(x, p, False)),
]


# ------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("cls, kwargs, reference", CASES)
def test_outputs_match_numpy_loops(cls, kwargs, reference):
  x = RNG.normal(size=(B, T, F)).astype(np.float32)
  seq_layer = cls(U, return_sequences=True, **kwargs)
  params = random_params(seq_layer)
  expected = reference(x.astype(np.float64), {k: np.asarray(v, np.float64) for k, v in params.items()})
  np.testing.assert_allclose(seq_layer.apply(params, jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(cls(U, **kwargs).apply(params, jnp.asarray(x)), expected[:, -1], rtol=1e-5, atol=1e-6)
  # go_backwards reads the sequence from its end: the reference on the reversed input.
  backwards = cls(U, return_sequences=True, go_backwards=True, **kwargs).apply(params, jnp.asarray(x))
  np.testing.assert_allclose(backwards, reference(x[:, ::-1].astype(np.float64),
                                                  {k: np.asarray(v, np.float64) for k, v in params.items()}),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs, reference", CASES)
def test_gradients_match_finite_differences(cls, kwargs, reference):
  del reference
  layer = cls(3, return_sequences=True, recurrent_regularizer="l2", **kwargs)
  params, _ = layer.init(KEY, (3, 2))
  with jax.enable_x64(True):
    params64 = {k: jnp.asarray(RNG.normal(scale=0.5, size=v.shape)) for k, v in params.items()}
    x64 = jnp.asarray(RNG.normal(size=(2, 3, 2)))
    f = lambda p, x: jnp.sum(layer.apply(p, x) ** 2) + layer.regularization(p)
    jax.test_util.check_grads(f, (params64, x64), order=1, modes=["rev"])


# ------------------------------------------------------------------------------------------ shapes and init
def test_param_shapes_initializers_and_names():
  lstm, _ = LSTM(U).init(KEY, (T, F))
  assert lstm["kernel"].shape == (F, 4 * U) and lstm["recurrent_kernel"].shape == (U, 4 * U)
  # unit_forget_bias: the forget gate's block (second of i, f, c, o) starts at 1, the rest at 0.
  np.testing.assert_array_equal(lstm["bias"], np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])
  np.testing.assert_array_equal(LSTM(U, unit_forget_bias=False).init(KEY, (T, F))[0]["bias"], np.zeros(4 * U))
  # Orthogonal recurrent kernel: rows orthonormal.
  r = np.asarray(lstm["recurrent_kernel"])
  np.testing.assert_allclose(r @ r.T, np.eye(U), atol=1e-5)
  gru, _ = GRU(U).init(KEY, (T, F))
  assert gru["bias"].shape == (2, 3 * U)  # reset_after: input and recurrent biases
  assert GRU(U, reset_after=False).init(KEY, (T, F))[0]["bias"].shape == (3 * U,)
  assert set(SimpleRNN(U, use_bias=False).init(KEY, (T, F))[0]) == {"kernel", "recurrent_kernel"}
  assert LSTM(U).output_shape((T, F)) == (U,) and LSTM(U, return_sequences=True).output_shape((T, F)) == (T, U)
  model = Sequential([SimpleRNN(U, return_sequences=True), LSTM(U, return_sequences=True), GRU(U),
                      Dense(2)])
  assert model.layer_names == ("simple_rnn_0", "lstm_0", "gru_0", "dense_0")
  assert model.apply(model.init(KEY, (T, F)), jnp.ones((B, T, F))).shape == (B, 2)


def test_penalties_include_the_recurrent_kernel_and_constraints_apply():
  layer = SimpleRNN(2, kernel_regularizer=regularizers.L2(1.0), recurrent_regularizer=regularizers.L1(0.5),
                    recurrent_constraint="non_neg")
  params = {"kernel": jnp.ones((3, 2)), "recurrent_kernel": jnp.array([[1.0, -2.0], [0.0, 1.0]]),
            "bias": jnp.zeros(2)}
  assert float(layer.regularization(params)) == pytest.approx(6.0 + 0.5 * 4.0)
  np.testing.assert_array_equal(layer.constrain(params)["recurrent_kernel"], [[1.0, 0.0], [0.0, 1.0]])


# ------------------------------------------------------------------------------------------ bidirectional
def test_bidirectional_concat_shape_and_values():
  layer = Bidirectional(LSTM(U, return_sequences=True))
  params, out_shape = layer.init(KEY, (T, F))
  assert out_shape == (T, 2 * U) and set(params) == {"forward", "backward"}
  params = {d: random_params(LSTM(U)) for d in ("forward", "backward")}
  x = RNG.normal(size=(B, T, F)).astype(np.float32)
  as64 = lambda p: {k: np.asarray(v, np.float64) for k, v in p.items()}
  forward = np_lstm(x.astype(np.float64), as64(params["forward"]))
  # The backward LSTM reads x from its end; its outputs are flipped back so step t lines up with step t.
  backward = np_lstm(x[:, ::-1].astype(np.float64), as64(params["backward"]))[:, ::-1]
  out = layer.apply(params, jnp.asarray(x))
  np.testing.assert_allclose(out, np.concatenate([forward, backward], axis=-1), rtol=1e-5, atol=1e-6)
  last = Bidirectional(LSTM(U), merge_mode="sum").apply(params, jnp.asarray(x))
  np.testing.assert_allclose(last, forward[:, -1] + backward[:, 0], rtol=1e-5, atol=1e-6)
  assert layer.trainable(params) == {d: {"kernel": True, "recurrent_kernel": True, "bias": True}
                                     for d in ("forward", "backward")}
  assert Bidirectional(GRU(3)).config() == {"layer": {"type": "GRU", "units": 3}}


def test_bidirectional_penalties_sum_both_directions():
  layer = Bidirectional(SimpleRNN(2, kernel_regularizer=regularizers.L1(1.0)))
  params, _ = layer.init(KEY, (T, F))
  expected = sum(float(jnp.sum(jnp.abs(params[d]["kernel"]))) for d in ("forward", "backward"))
  assert float(layer.regularization(params)) == pytest.approx(expected, rel=1e-6)


def test_fit_trains_a_recurrent_model():
  x = RNG.normal(size=(96, 6, 2)).astype(np.float32)
  y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int32)  # sign of a running sum
  model = Sequential([Bidirectional(GRU(8)), Dense(2, activation="softmax")])
  _, history = training.fit(model, model.init(KEY, (6, 2)), x, y, loss="sparse_categorical_crossentropy",
                            optimizer=optimizers.OptimizerConfig("adam", learning_rate=0.01), epochs=8,
                            batch_size=16, verbose=0)
  assert history["loss"][-1] < 0.6 * history["loss"][0]


def test_dropout_makes_the_layer_stochastic_and_fit_trains_with_it():
  assert not LSTM(4).stochastic and LSTM(4, dropout=0.2).stochastic and GRU(4, recurrent_dropout=0.1).stochastic
  assert Bidirectional(SimpleRNN(3, dropout=0.5)).stochastic and not Bidirectional(SimpleRNN(3)).stochastic
  assert LSTM(4, dropout=0.25, recurrent_dropout=np.float32(0.5)).config() == {
      "units": 4, "dropout": 0.25, "recurrent_dropout": 0.5}
  model = Sequential([LSTM(8, dropout=0.2, recurrent_dropout=0.2), Dense(2, activation="softmax")])
  assert model.stochastic
  params = model.init(KEY, (6, 2))
  x = RNG.normal(size=(96, 6, 2)).astype(np.float32)
  with pytest.raises(JaxnnError, match="training=True with dropout needs a PRNG key"):
    model.apply(params, x, training=True)
  # Inference ignores the masks: no key needed, and the same output as without dropout.
  plain = Sequential([LSTM(8), Dense(2, activation="softmax")])
  np.testing.assert_array_equal(np.asarray(model.apply(params, x)), np.asarray(plain.apply(params, x)))
  y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int32)
  _, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy",
                            optimizer=optimizers.OptimizerConfig("adam", learning_rate=0.01), epochs=8,
                            batch_size=16, verbose=0, key=KEY)
  assert history["loss"][-1] < 0.8 * history["loss"][0]


def test_bidirectional_directions_draw_their_own_masks():
  layer = Bidirectional(SimpleRNN(U, dropout=0.5, return_sequences=True), merge_mode="sum")
  params, _ = layer.init(KEY, (T, F))
  params = {"forward": params["forward"], "backward": params["forward"]}  # the same weights both ways
  x = jnp.asarray(RNG.normal(size=(B, T, F)).astype(np.float32))
  k_f, k_b = jax.random.fold_in(KEY, 0), jax.random.fold_in(KEY, 1)
  forward = layer.layer.apply(params["forward"], x, training=True, key=k_f)
  backward = jnp.flip(layer.backward_layer.apply(params["backward"], x, training=True, key=k_b), axis=1)
  np.testing.assert_allclose(np.asarray(layer.apply(params, x, training=True, key=KEY)),
                             np.asarray(forward + backward), rtol=1e-6)
  same_key = jnp.flip(layer.backward_layer.apply(params["backward"], x, training=True, key=k_f), axis=1)
  assert not np.allclose(np.asarray(backward), np.asarray(same_key))


# ------------------------------------------------------------------------------------------ errors
def test_errors_name_the_layer_and_the_shapes():
  with pytest.raises(JaxnnError, match=r"LSTM\(64\): expected inputs \(T, F\), got shape \(28, 28, 1\)"):
    LSTM(64).init(KEY, (28, 28, 1))
  params, _ = GRU(4).init(KEY, (T, F))
  with pytest.raises(JaxnnError, match=r"GRU\(4\): expected inputs \(batch, T, 3\), got shape \(2, 5, 7\)"):
    GRU(4).apply(params, jnp.ones((2, 5, 7)))
  with pytest.raises(JaxnnError, match="units must be a positive int, got 0"):
    SimpleRNN(0)
  with pytest.raises(JaxnnError, match="orthogonal"):
    LSTM(4, recurrent_initializer="orthogonl")
  with pytest.raises(JaxnnError, match="expected a recurrent layer .* got Dense"):
    Bidirectional(Dense(3))
  with pytest.raises(JaxnnError, match=r"merge_mode must be one of \['concat', 'sum', 'ave', 'mul'\]"):
    Bidirectional(LSTM(3), merge_mode="max")
  with pytest.raises(JaxnnError, match="activity_regularizer needs merge_mode='concat'"):
    Bidirectional(LSTM(3, activity_regularizer="l2"), merge_mode="sum")
  with pytest.raises(JaxnnError, match=r"LSTM\(3\): dropout must be in \[0, 1\), got 1.0"):
    LSTM(3, dropout=1.0)
  with pytest.raises(JaxnnError, match=r"GRU\(3\): recurrent_dropout must be in \[0, 1\), got -0.1"):
    GRU(3, recurrent_dropout=-0.1)
  with pytest.raises(JaxnnError, match=r"SimpleRNN\(3\): dropout must be in \[0, 1\), got '0.5'"):
    SimpleRNN(3, dropout="0.5")
  with pytest.raises(JaxnnError, match=r"recurrent_dropout must be in \[0, 1\), got True"):
    SimpleRNN(3, recurrent_dropout=True)
