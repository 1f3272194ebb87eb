"""jaxnn's sequence masking against Keras 3 itself, with the same weights, where Keras is installed.

test_masking.py checks masking's own contracts (invariance to padding, errors, training); this checks that Keras
models built with the same layers and given jaxnn's params (`set_weights`, Keras' order) compute the same numbers:
Embedding(mask_zero=True) before SimpleRNN / LSTM / GRU / Bidirectional, Masking before LSTM,
GlobalAveragePooling1D and BatchNormalization (training) over masked steps, the gradient of a masked model, and
`data.pad_sequences` and the initializer aliases against Keras' own.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import dataclasses  # noqa: E402
import functools  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402
from jaxnn import initializers  # noqa: E402

keras = pytest.importorskip("keras")

V, E, U, T = 7, 4, 5, 8  # vocabulary (id 0 is padding), embedding size, units, steps
RTOL, ATOL = 1e-5, 1e-6

# Token sequences of lengths 8 down to 0 (a row of padding only).
SEQS = [[1, 2, 3, 4, 5, 6, 1, 2], [4, 5, 6, 1, 2], [3, 1, 6], [5], []]
X_IDS = {
    "pre": np.array([[0] * (T - len(s)) + s for s in SEQS], np.int32),
    "post": np.array([s + [0] * (T - len(s)) for s in SEQS], np.int32),
    # Padding inside the sequences too: masked steps anywhere are skipped.
    "middle": np.array([[3, 0, 0, 5, 2, 0, 1, 0],
                        [0, 4, 0, 6, 0, 0, 2, 0],
                        [1, 0, 2, 0, 3, 0, 4, 0],
                        [0, 0, 0, 0, 6, 0, 0, 0],
                        [5, 5, 0, 0, 0, 0, 0, 0]], np.int32),
}
# One batch mixing every kind of padding (and the all-padding row), for the Bidirectional cases.
X_MIXED = np.concatenate([X_IDS["pre"][1:4], X_IDS["post"][1:3], X_IDS["middle"][:3], X_IDS["pre"][4:]])


def _rnn_weights(params):
  """A recurrent layer's params in Keras' weight order: kernel, recurrent_kernel[, bias]."""
  return [np.asarray(params[k]) for k in ("kernel", "recurrent_kernel", "bias") if k in params]


def _randomized(params, seed, scale=0.4):
  """Params with noise added, so zero-initialised biases and every gate block take part in the comparison."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: np.asarray(p) + rng.normal(0, scale, p.shape).astype(np.float32), params)


@functools.lru_cache(maxsize=None)
def _params(model, input_shape, seed):
  """Randomized params of a jaxnn model (cached: cases that differ only in flags share their shapes' params)."""
  return _randomized(model.init(jax.random.key(seed), input_shape), seed)


def _keras_model(layers, input_shape, dtype="float32"):
  return keras.Sequential([keras.Input(input_shape, dtype=dtype), *layers])


def _set_weights(theirs, weights):
  """Gives the Keras model `weights` and checks that it now holds exactly them (not a silent no-op)."""
  theirs.set_weights(weights)
  assert len(theirs.weights) == len(weights)
  for w, p in zip(theirs.weights, weights, strict=True):
    np.testing.assert_array_equal(np.asarray(w.value), p)


# ------------------------------------------------------------------------------------------ Embedding + RNN
PADDINGS = ("pre", "post", "middle")
RNN_CASES = [(name, seq, back, padding) for name in ("SimpleRNN", "LSTM", "GRU") for seq in (False, True)
             for back in (False, True) for padding in PADDINGS]


def _rnn_id(case):
  name, seq, back, padding = case
  return f"{name}{'-seq' if seq else ''}{'-backwards' if back else ''}-{padding}"


@functools.lru_cache(maxsize=None)
def _recurrent_outputs(name, return_sequences, go_backwards):
  """(jaxnn's, Keras') outputs of Embedding(mask_zero=True) + the recurrent layer, same weights, on every padding
  of X_IDS at once (one compile per model for its three cases; each case then reads its rows)."""
  kwargs = dict(return_sequences=return_sequences, go_backwards=go_backwards)
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E, mask_zero=True), getattr(jaxnn, name)(U, **kwargs)])
  # Params depend on the layer type only: one set per type, shared by its 12 cases.
  params = _params(jaxnn.Sequential([jaxnn.Embedding(V, E), getattr(jaxnn, name)(U)]), (T,), 0)
  theirs = _keras_model([keras.layers.Embedding(V, E, mask_zero=True), getattr(keras.layers, name)(U, **kwargs)],
                        (T,), "int32")
  _set_weights(theirs, [params["embedding_0"]["embeddings"], *_rnn_weights(params[ours.layer_names[1]])])
  x = np.concatenate([X_IDS[p] for p in PADDINGS])
  got, want = np.asarray(ours.apply(params, x)), np.asarray(theirs(x))
  assert got.shape == want.shape == (len(x), *((T,) if return_sequences else ()), U)
  if return_sequences and not go_backwards:
    # Not vacuous: the mask changes the outputs (without it, padding id 0 is read as a token); checked once per
    # layer type, as each extra model is another compile.
    unmasked = jaxnn.Sequential([jaxnn.Embedding(V, E), getattr(jaxnn, name)(U, **kwargs)])
    plain = np.asarray(unmasked.apply(params, x))
    for i in range(len(PADDINGS)):
      rows = slice(i * len(SEQS), (i + 1) * len(SEQS))
      assert np.abs(plain[rows] - got[rows]).max() > 1e-3
  return {p: (got[i * len(SEQS):(i + 1) * len(SEQS)], want[i * len(SEQS):(i + 1) * len(SEQS)])
          for i, p in enumerate(PADDINGS)}


@pytest.mark.parametrize("name, return_sequences, go_backwards, padding", RNN_CASES,
                         ids=[_rnn_id(c) for c in RNN_CASES])
def test_embedding_mask_zero_then_recurrent_matches_keras(name, return_sequences, go_backwards, padding):
  got, want = _recurrent_outputs(name, return_sequences, go_backwards)[padding]
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------ Bidirectional
BIDI_CASES = [(name, mode, seq) for name in ("LSTM", "GRU") for mode in ("concat", "sum", "ave", "mul")
              for seq in (False, True)]


def _bidi_id(case):
  name, mode, seq = case
  return f"{name}-{mode}{'-seq' if seq else ''}"


@pytest.mark.parametrize("name, merge_mode, return_sequences", BIDI_CASES, ids=[_bidi_id(c) for c in BIDI_CASES])
def test_embedding_mask_zero_then_bidirectional_matches_keras(name, merge_mode, return_sequences):
  inner = getattr(jaxnn, name)(U, return_sequences=return_sequences)
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E, mask_zero=True), jaxnn.Bidirectional(inner, merge_mode=merge_mode)])
  params = _params(jaxnn.Sequential([jaxnn.Embedding(V, E), jaxnn.Bidirectional(getattr(jaxnn, name)(U))]), (T,), 1)
  theirs = _keras_model([keras.layers.Embedding(V, E, mask_zero=True),
                         keras.layers.Bidirectional(getattr(keras.layers, name)(U, return_sequences=return_sequences),
                                                    merge_mode=merge_mode)], (T,), "int32")
  bidi = params["bidirectional_0"]
  _set_weights(theirs, [params["embedding_0"]["embeddings"], *_rnn_weights(bidi["forward"]),
                        *_rnn_weights(bidi["backward"])])
  got, want = np.asarray(ours.apply(params, X_MIXED)), np.asarray(theirs(X_MIXED))
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
  if return_sequences:
    # Keras' Bidirectional forces zero_output_for_mask on its layers when returning sequences: zeros at the masked
    # steps (a lone recurrent layer repeats its previous output there instead). This case failed before commit
    # 160381d: jaxnn's Bidirectional repeated the previous output, e.g. X_MIXED row 0 (ids [0 0 0 4 5 6 1 2]) at
    # step 0 held the backward layer's final state where Keras has 0.
    masked = X_MIXED == 0
    np.testing.assert_array_equal(got[masked], np.zeros_like(got[masked]))


# ------------------------------------------------------------------------------------------ Masking + LSTM
F = 3


def _masking_inputs(mask_value):
  """Float steps with whole padded steps (every feature `mask_value`) before, after and between real ones, and
  steps where only some features equal `mask_value` (real steps: Keras masks a step only when all do)."""
  x = np.random.default_rng(2).normal(0, 1, (4, T, F)).astype(np.float32)
  x[0, :3] = mask_value  # pre-padded
  x[1, 5:] = mask_value  # post-padded
  x[2, [1, 2, 6]] = mask_value  # padding in the middle
  x[3, 2, :2] = mask_value  # a partial step: real
  x[3, 4, 1:] = mask_value
  return x


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
def test_masking_then_lstm_matches_keras(mask_value, return_sequences):
  ours = jaxnn.Sequential([jaxnn.Masking(mask_value), jaxnn.LSTM(U, return_sequences=return_sequences)])
  params = _params(jaxnn.Sequential([jaxnn.LSTM(U)]), (T, F), 3)
  theirs = _keras_model([keras.layers.Masking(mask_value),
                         keras.layers.LSTM(U, return_sequences=return_sequences)], (T, F))
  _set_weights(theirs, _rnn_weights(params["lstm_0"]))
  x = _masking_inputs(mask_value)
  got, want = np.asarray(ours.apply(params, x)), np.asarray(theirs(x))
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
  # Masking's own output (masked steps zeroed) and step mask match Keras' too.
  masking = keras.layers.Masking(mask_value)
  np.testing.assert_array_equal(np.asarray(jaxnn.Sequential([jaxnn.Masking(mask_value)]).apply({}, x)),
                                np.asarray(masking(x)))
  _, aux = jaxnn.Sequential([jaxnn.Masking(mask_value)]).forward({}, x)
  np.testing.assert_array_equal(np.asarray(aux["step_mask"]), np.asarray(masking.compute_mask(x)))
  assert not np.asarray(aux["step_mask"]).all() and np.asarray(aux["step_mask"])[3].all()


# ------------------------------------------------------------------------------------------ GlobalAveragePooling1D
def test_global_average_pooling_after_embedding_mask_zero_matches_keras():
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E, mask_zero=True), jaxnn.GlobalAveragePooling1D()])
  params = _params(ours, (T,), 4)
  theirs = _keras_model([keras.layers.Embedding(V, E, mask_zero=True), keras.layers.GlobalAveragePooling1D()],
                        (T,), "int32")
  _set_weights(theirs, [params["embedding_0"]["embeddings"]])
  x = np.concatenate([X_IDS["pre"], X_IDS["middle"]])  # row 4: padding only
  got, want = np.asarray(ours.apply(params, x)), np.asarray(theirs(x))
  real = x.any(axis=1)
  assert real.sum() == len(x) - 1
  np.testing.assert_allclose(got[real], want[real], rtol=RTOL, atol=ATOL)
  # A row of padding only: Keras divides 0 by 0, jaxnn gives zeros.
  np.testing.assert_array_equal(got[~real], np.zeros((1, E), np.float32))
  assert np.isnan(want[~real]).all()
  # Not vacuous: the plain mean over all steps differs.
  plain = np.asarray(params["embedding_0"]["embeddings"])[x].mean(axis=1)
  assert np.abs(plain[real] - got[real]).max() > 1e-3


# ------------------------------------------------------------------------------------------ BatchNormalization
def test_batch_normalization_training_after_masked_lstm_matches_keras():
  """Batch statistics over the real steps only, and the moving statistics after one training call."""
  momentum = 0.5  # not Keras' 0.99: the batch statistics then move the moving ones by half, not 1%
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E, mask_zero=True), jaxnn.LSTM(U, return_sequences=True),
                           jaxnn.BatchNormalization(momentum=momentum)])
  params = _params(ours, (T,), 5)
  rng = np.random.default_rng(6)
  state = {"batch_normalization_0": {"moving_mean": rng.normal(0, 1, U).astype(np.float32),
                                     "moving_variance": rng.uniform(0.5, 2, U).astype(np.float32)}}
  theirs = _keras_model([keras.layers.Embedding(V, E, mask_zero=True), keras.layers.LSTM(U, return_sequences=True),
                         keras.layers.BatchNormalization(momentum=momentum)], (T,), "int32")
  bn = params["batch_normalization_0"]
  _set_weights(theirs, [params["embedding_0"]["embeddings"], *_rnn_weights(params["lstm_0"]), bn["gamma"],
                        bn["beta"], state["batch_normalization_0"]["moving_mean"],
                        state["batch_normalization_0"]["moving_variance"]])
  x = X_IDS["middle"]
  got, aux = ours.forward(params, x, state=state, training=True)
  want = np.asarray(theirs(x, training=True))
  # Keras divides the masked sums by (count + 1e-7): a relative 1e-7 / count, below RTOL.
  np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL, atol=ATOL)
  new = aux["state"]["batch_normalization_0"]
  keras_bn = theirs.layers[-1]
  np.testing.assert_allclose(np.asarray(new["moving_mean"]), np.asarray(keras_bn.moving_mean.value),
                             rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(np.asarray(new["moving_variance"]), np.asarray(keras_bn.moving_variance.value),
                             rtol=RTOL, atol=ATOL)
  # Not vacuous: the moments over every step (padding included) are other numbers.
  h = np.asarray(jaxnn.Sequential(ours.layers[:2]).apply(params, x))
  old = state["batch_normalization_0"]["moving_mean"]
  batch_mean = (np.asarray(new["moving_mean"]) - momentum * old) / (1 - momentum)
  np.testing.assert_allclose(batch_mean, h[x != 0].mean(axis=0), rtol=1e-4, atol=1e-5)
  assert np.abs(batch_mean - h.reshape(-1, U).mean(axis=0)).max() > 1e-3


# ------------------------------------------------------------------------------------------ Embedding without mask
def test_embedding_without_mask_zero_matches_keras():
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E)])
  params = _params(ours, (T,), 7)
  layer = keras.layers.Embedding(V, E)
  theirs = _keras_model([layer], (T,), "int32")
  _set_weights(theirs, [params["embedding_0"]["embeddings"]])
  x = X_IDS["middle"]
  got, aux = ours.forward(params, x)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(theirs(x)))  # a gather: exact
  assert aux["step_mask"] is None and layer.compute_mask(x) is None
  # Float ids (how fit hands them over) give the same rows.
  np.testing.assert_array_equal(np.asarray(ours.apply(params, x.astype(np.float32))), np.asarray(got))


def test_embedding_without_mask_zero_then_lstm_matches_keras():
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E), jaxnn.LSTM(U, return_sequences=True)])
  params = _params(ours, (T,), 8)
  theirs = _keras_model([keras.layers.Embedding(V, E), keras.layers.LSTM(U, return_sequences=True)], (T,), "int32")
  _set_weights(theirs, [params["embedding_0"]["embeddings"], *_rnn_weights(params["lstm_0"])])
  x = X_IDS["pre"]
  np.testing.assert_allclose(np.asarray(ours.apply(params, x)), np.asarray(theirs(x)), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------ Embedding with LoRA
@pytest.mark.parametrize("rank, alpha", [(2, None), (2, 6), (3, 1)])
def test_embedding_lora_matches_keras(rank, alpha):
  """embeddings + (alpha / rank) * A @ B looked up, the table frozen and the factors trained, the regularizer on
  the factors, in both (nonzero factors, so the update shows)."""
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E, lora_rank=rank, lora_alpha=alpha, embeddings_regularizer="l2")])
  params = _params(ours, (T,), 11)
  layer = keras.layers.Embedding(V, E, embeddings_regularizer="l2")
  theirs = _keras_model([layer], (T,), "int32")
  layer.enable_lora(rank, lora_alpha=alpha)
  table = params["embedding_0"]
  _set_weights(theirs, [table["embeddings"], table["lora_a"], table["lora_b"]])
  assert [w.path.split("/")[-1] for w in theirs.weights] == ["embeddings", "lora_embeddings_a", "lora_embeddings_b"]
  assert [w.trainable for w in theirs.weights] == list(ours.layers[0].trainable(table).values())
  x = X_IDS["middle"]
  np.testing.assert_allclose(np.asarray(ours.apply(params, x)), np.asarray(theirs(x)), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(np.asarray(ours.layers[0].embeddings(table)), np.asarray(layer.embeddings),
                             rtol=RTOL, atol=ATOL)
  assert not np.allclose(np.asarray(ours.layers[0].embeddings(table)), table["embeddings"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(ours.regularization(params)), float(sum(theirs.losses)), rtol=RTOL, atol=ATOL)


def test_embedding_lora_with_a_constraint_is_refused_as_in_keras():
  layer = keras.layers.Embedding(V, E, embeddings_constraint="non_neg")
  layer.build((None, T))
  with pytest.raises(ValueError, match="incompatible with embedding constraints"):
    layer.enable_lora(2)
  with pytest.raises(jaxnn.JaxnnError, match="embeddings_constraint cannot be combined with lora_rank"):
    jaxnn.Embedding(V, E, lora_rank=2, embeddings_constraint="non_neg")


# ------------------------------------------------------------------------------------------ gradients
def test_gradient_of_masked_model_matches_keras():
  """d(loss)/d(every param) of Embedding(mask_zero)+LSTM+Dense, Keras' through `stateless_call` in jax.grad."""
  ours = jaxnn.Sequential([jaxnn.Embedding(V, E, mask_zero=True), jaxnn.LSTM(U), jaxnn.Dense(3)])
  params = _params(ours, (T,), 9)
  theirs = _keras_model([keras.layers.Embedding(V, E, mask_zero=True), keras.layers.LSTM(U), keras.layers.Dense(3)],
                        (T,), "int32")
  ordered = [params["embedding_0"]["embeddings"], *_rnn_weights(params["lstm_0"]), params["dense_0"]["kernel"],
             params["dense_0"]["bias"]]
  _set_weights(theirs, ordered)
  assert [v.path.split("/")[-1] for v in theirs.trainable_variables] == [
      "embeddings", "kernel", "recurrent_kernel", "bias", "kernel", "bias"]
  x = np.concatenate([X_IDS["post"], X_IDS["middle"]])
  target = np.random.default_rng(10).normal(0, 1, (len(x), 3)).astype(np.float32)

  def loss(y):
    return jnp.mean(jnp.square(y - target))

  ours_grads = jax.grad(lambda p: loss(ours.apply(p, x)))(params)
  non_trainable = [v.value for v in theirs.non_trainable_variables]

  def keras_loss(trainable):
    y, _ = theirs.stateless_call(trainable, non_trainable, x)
    return loss(y)

  keras_grads = jax.grad(keras_loss)([jnp.asarray(w) for w in ordered])
  ours_ordered = [ours_grads["embedding_0"]["embeddings"], *_rnn_weights(ours_grads["lstm_0"]),
                  ours_grads["dense_0"]["kernel"], ours_grads["dense_0"]["bias"]]
  for got, want in zip(ours_ordered, keras_grads, strict=True):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=ATOL)
  # The padding row gets no gradient (every step that reads it is masked), the others do.
  embedding_grad = np.asarray(ours_ordered[0])
  np.testing.assert_array_equal(embedding_grad[0], np.zeros(E, np.float32))
  assert (np.abs(embedding_grad[1:]).max(axis=1) > 0).all()


# ------------------------------------------------------------------------------------------ pad_sequences
# Lengths 0 to 7, so maxlen None (7), shorter (3) and longer (10) all cut or pad something.
PAD_SEQS = [[1, 2, 3, 4, 5], [], [6, 7], [8, 9, 10, 11, 12, 13, 14], [15]]


@pytest.mark.parametrize("maxlen", [None, 3, 10])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_pad_sequences_matches_keras(padding, truncating, maxlen):
  kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating)
  got = jaxnn.data.pad_sequences(PAD_SEQS, **kwargs)
  want = keras.utils.pad_sequences(PAD_SEQS, **kwargs)
  assert got.dtype == want.dtype == np.int32
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("maxlen", [None, 2, 5])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_pad_sequences_of_vectors_matches_keras(padding, truncating, maxlen):
  rng = np.random.default_rng(11)
  seqs = [rng.normal(0, 1, (n, 3)).astype(np.float32) for n in (4, 0, 1, 3)]
  kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating, dtype="float32", value=-1.5)
  got = jaxnn.data.pad_sequences(seqs, **kwargs)
  want = keras.utils.pad_sequences(seqs, **kwargs)
  assert got.shape == want.shape == (4, maxlen or 4, 3)
  assert got.dtype == want.dtype == np.float32
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kwargs", [dict(dtype="float32", value=-0.25), dict(dtype="float64", value=2.5),
                                    dict(value=-1), dict(dtype="int64", value=9, maxlen=4, padding="post")],
                         ids=["float32", "float64", "int-value", "int64-post"])
def test_pad_sequences_dtype_and_value_match_keras(kwargs):
  seqs = [[0.5, 1.5], [], [2.0, 3.0, 4.0]] if "float" in kwargs.get("dtype", "") else PAD_SEQS
  got = jaxnn.data.pad_sequences(seqs, **kwargs)
  want = keras.utils.pad_sequences(seqs, **kwargs)
  assert got.dtype == want.dtype
  np.testing.assert_array_equal(got, want)


def test_pad_sequences_of_empty_sequences_matches_keras():
  for seqs, maxlen in (([[], []], None), ([[], []], 3), ([], 4)):
    got = jaxnn.data.pad_sequences(seqs, maxlen=maxlen)
    want = keras.utils.pad_sequences(seqs, maxlen=maxlen)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------------------ initializer aliases
@pytest.mark.parametrize("alias", ["uniform", "normal"])
def test_initializer_alias_has_keras_config(alias):
  ours = dataclasses.asdict(initializers.get(alias))
  theirs = keras.initializers.get(alias).get_config()
  assert theirs.pop("seed") is None
  assert ours == theirs
  assert type(initializers.get(alias)).__name__ == type(keras.initializers.get(alias)).__name__


@pytest.mark.parametrize("alias", ["one", "zero"])
def test_constant_initializer_alias_matches_keras(alias):
  ours = np.asarray(initializers.get(alias)(jax.random.key(0), (2, 3)))
  np.testing.assert_array_equal(ours, np.asarray(keras.initializers.get(alias)((2, 3))))
  assert type(initializers.get(alias)).__name__ == type(keras.initializers.get(alias)).__name__


def test_embedding_default_initializer_matches_keras():
  theirs = keras.layers.Embedding(V, E).get_config()["embeddings_initializer"]
  ours = initializers.serialize(initializers.get(jaxnn.Embedding(V, E).embeddings_initializer))
  assert theirs["class_name"] == "RandomUniform"
  assert ours == {"name": "random_uniform", "minval": theirs["config"]["minval"],
                  "maxval": theirs["config"]["maxval"]}
