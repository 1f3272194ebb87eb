"""Sequence masking (Embedding(mask_zero=True), Masking, step masks through Sequential) in jaxnn alone.

test_keras_parity_masking.py compares the numbers with Keras 3; this checks masking's own contracts: a masked
model's outputs do not depend on how (or how much) a sequence is padded, the static `output_masked` and the
warnings where a mask is dropped, the errors of fit / evaluate / predict and of the Embedding and pad_sequences
arguments, the masked statistics of GlobalAveragePooling1D and BatchNormalization against numpy, and training.
"""

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import data
from jaxnn import training
from jaxnn.errors import DataError, JaxnnError
from jaxnn.convolutional import (AveragePooling1D, BatchNormalization, Conv1D, GlobalAveragePooling1D,
                                 GlobalMaxPooling1D, MaxPooling1D, Reshape)
from jaxnn.layers import Activation, Dense, Dropout, Embedding, Flatten, Masking
from jaxnn.models import Sequential
from jaxnn.recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from tests.test_retrace import counting_compiles

KEY = jax.random.key(0)
V, E, U = 9, 4, 5  # vocabulary (id 0 is padding), embedding size, units
SCCE = "sparse_categorical_crossentropy"

# Token sequences of lengths 1 to 6.
SEQS = [[3, 1, 4, 1, 5], [2, 6], [8], [7, 7, 2, 8, 3, 5]]


def _randomized(params, seed, scale=0.5):
  """Params with noise added: the default Embedding table (within +-0.05) would make every difference tiny."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: np.asarray(p) + rng.normal(0, scale, p.shape).astype(np.float32), params)


@functools.lru_cache(maxsize=None)
def _model_and_params(layer, mask_zero=True, seq_len=6):
  """Embedding(V, E, mask_zero) + `layer`, with randomized params (which depend on the layer type only)."""
  model = Sequential([Embedding(V, E, mask_zero=mask_zero), layer])
  return model, _randomized(model.init(jax.random.key(1), (seq_len,)), 2)


@functools.lru_cache(maxsize=None)
def _jitted_apply(model):
  return jax.jit(model.apply)  # one compile per input shape, where eager ops compile one by one


def _apply(layer, x, mask_zero=True):
  model, params = _model_and_params(layer, mask_zero)
  return np.asarray(_jitted_apply(model)(params, x))


# ------------------------------------------------------------------------------------------ invariance to padding
LAST_STATE_LAYERS = [SimpleRNN(U), LSTM(U), GRU(U), LSTM(U, go_backwards=True), Bidirectional(LSTM(U)),
                     Bidirectional(GRU(U), merge_mode="ave")]
LAYER_IDS = ["simple_rnn", "lstm", "gru", "lstm-backwards", "bidirectional-lstm", "bidirectional-gru-ave"]


@pytest.mark.parametrize("layer", LAST_STATE_LAYERS, ids=LAYER_IDS)
def test_masked_output_does_not_depend_on_padding(layer):
  """The same sequences padded to 6 or 12 steps, before or after: the same outputs."""
  outs = {}
  for n in (6, 12):  # pre- and post-padded rows in one batch: one compile per length
    both = np.concatenate([data.pad_sequences(SEQS, maxlen=n, padding=p) for p in ("pre", "post")])
    outs[(n, "pre")], outs[(n, "post")] = np.split(_apply(layer, both), 2)
  reference = outs[(6, "post")]
  for key, out in outs.items():
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6, err_msg=str(key))
  # Not vacuous: without the mask, the padding is read as tokens and the outputs move with it.
  both = np.concatenate([data.pad_sequences(SEQS, maxlen=6, padding=p) for p in ("pre", "post")])
  pre, post = np.split(_apply(layer, both, mask_zero=False), 2)
  assert np.abs(pre - post).max() > 1e-3


# Every row holds 4 real tokens among 7 steps, padding before, between and after them.
X_GAPS = np.array([[3, 0, 1, 0, 0, 4, 1],
                   [0, 2, 6, 0, 8, 8, 0],
                   [5, 5, 5, 5, 0, 0, 0],
                   [0, 0, 0, 7, 2, 3, 1]], np.int32)
X_REMOVED = np.array([row[row != 0] for row in X_GAPS], np.int32)  # (4, 4): the same rows without padding

GAP_LAYERS = [*LAST_STATE_LAYERS, LSTM(U, return_sequences=True), GRU(U, return_sequences=True, go_backwards=True),
              SimpleRNN(U, return_sequences=True), Bidirectional(LSTM(U, return_sequences=True)),
              Bidirectional(GRU(U, return_sequences=True), merge_mode="mul")]
GAP_IDS = [*LAYER_IDS, "lstm-seq", "gru-seq-backwards", "simple_rnn-seq", "bidirectional-lstm-seq",
           "bidirectional-gru-mul-seq"]


@pytest.mark.parametrize("layer", GAP_LAYERS, ids=GAP_IDS)
def test_masked_steps_anywhere_are_skipped(layer):
  """Padding between real steps: the outputs equal those of the sequences with those steps removed (with
  return_sequences: at the real steps, in order)."""
  got, want = _apply(layer, X_GAPS), _apply(layer, X_REMOVED)
  if got.ndim == 3:
    inner = layer.layer if isinstance(layer, Bidirectional) else layer
    real = X_GAPS != 0
    if inner.go_backwards:  # outputs in processing order: step k is input step T - 1 - k
      real = real[:, ::-1]
    got = got[real].reshape(want.shape)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_outputs_at_masked_steps():
  """With return_sequences, a masked step repeats the previous output (zeros before any real step), or gives
  zeros with zero_output_for_mask; Bidirectional gives zeros, as Keras' forces zero_output_for_mask on."""
  real = X_GAPS != 0
  repeat = _apply(LSTM(U, return_sequences=True), X_GAPS)
  for b, t in zip(*np.nonzero(~real)):
    np.testing.assert_array_equal(repeat[b, t], repeat[b, t - 1] if t > 0 else np.zeros(U, np.float32))
  zeros = _apply(LSTM(U, return_sequences=True, zero_output_for_mask=True), X_GAPS)
  np.testing.assert_array_equal(zeros[~real], np.zeros_like(zeros[~real]))
  np.testing.assert_array_equal(zeros[real], repeat[real])
  bidirectional = _apply(Bidirectional(LSTM(U, return_sequences=True)), X_GAPS)
  np.testing.assert_array_equal(bidirectional[~real], np.zeros_like(bidirectional[~real]))
  assert (np.abs(bidirectional[real]).max(axis=-1) > 0).all()


# ------------------------------------------------------------------------------------------ Masking
def test_masking_zeroes_the_masked_steps_and_marks_them():
  x = np.random.default_rng(3).normal(0, 1, (2, 5, 3)).astype(np.float32)
  x[0, [0, 3]] = -1.0  # whole steps: masked
  x[1, 4] = -1.0
  x[1, 1, :2] = -1.0  # some features only: a real step, kept as it is
  out, aux = Sequential([Masking(-1.0)]).forward({}, x)
  want_mask = np.array([[False, True, True, False, True], [True, True, True, True, False]])
  np.testing.assert_array_equal(np.asarray(aux["step_mask"]), want_mask)
  np.testing.assert_array_equal(np.asarray(out), np.where(want_mask[..., None], x, 0.0))
  assert np.asarray(out)[1, 1, 0] == -1.0
  # The default mask value is 0.0: here nothing is masked, as no step is all zeros.
  out, aux = Sequential([Masking()]).forward({}, x)
  assert np.asarray(aux["step_mask"]).all()
  np.testing.assert_array_equal(np.asarray(out), x)


@pytest.mark.parametrize("mask_value, shape", [("0", (5, 3)), (None, (5, 3)), (True, (5, 3)), (0.0, (5,))])
def test_masking_bad_arguments(mask_value, shape):
  with pytest.raises(JaxnnError, match="Masking"):
    Sequential([Masking(mask_value)]).output_shapes(shape)


# ------------------------------------------------------------------------------------------ output_masked / warnings
MASKED_OUTPUT_CASES = [
    ("embedding", [Embedding(V, E)], (6,), False),
    ("embedding-mask_zero", [Embedding(V, E, mask_zero=True)], (6,), True),
    ("lstm", [Embedding(V, E, mask_zero=True), LSTM(U)], (6,), False),
    ("lstm-seq", [Embedding(V, E, mask_zero=True), LSTM(U, return_sequences=True)], (6,), True),
    ("lstm-seq-dense", [Embedding(V, E, mask_zero=True), LSTM(U, return_sequences=True), Dense(3)], (6,), True),
    ("dropout-activation", [Embedding(V, E, mask_zero=True), Dropout(0.1), Activation("relu")], (6,), True),
    ("batch_norm", [Embedding(V, E, mask_zero=True), BatchNormalization()], (6,), True),
    ("global_average", [Embedding(V, E, mask_zero=True), GlobalAveragePooling1D()], (6,), False),
    ("bidirectional-seq", [Embedding(V, E, mask_zero=True), Bidirectional(GRU(U, return_sequences=True))], (6,),
     True),
    ("bidirectional", [Embedding(V, E, mask_zero=True), Bidirectional(GRU(U))], (6,), False),
    ("masking", [Masking()], (6, 3), True),
    ("dense-masking", [Dense(3), Masking()], (6, 3), True),
    ("masking-flatten", [Masking(), Flatten()], (6, 3), False),
    ("conv-lstm-seq", [Embedding(V, E, mask_zero=True), Conv1D(3, 2), LSTM(U, return_sequences=True)], (6,), False),
    ("unmasked-lstm-seq", [Embedding(V, E), LSTM(U, return_sequences=True)], (6,), False),
]


@pytest.mark.parametrize("layers, input_shape, masked", [c[1:] for c in MASKED_OUTPUT_CASES],
                         ids=[c[0] for c in MASKED_OUTPUT_CASES])
def test_output_masked_agrees_with_forward_step_mask(layers, input_shape, masked):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the Flatten / Conv1D cases warn (tested below)
    model = Sequential(layers)
  assert model.output_masked is masked
  # The static answer is what forward computes: aux["step_mask"] is a (batch, T) bool array exactly when masked.
  params = jax.eval_shape(lambda key: model.init(key, input_shape), KEY)  # traced: nothing compiles
  x = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)
  state = model.init_state(input_shape)
  step_mask = jax.eval_shape(lambda p, x: model.forward(p, x, state=state)[1]["step_mask"], params, x)
  if masked:
    assert step_mask.shape == (2, input_shape[0]) and step_mask.dtype == jnp.bool_
  else:
    assert step_mask is None


def test_forward_step_mask_values():
  model, params = _model_and_params(LSTM(U, return_sequences=True))
  x = data.pad_sequences(SEQS, maxlen=6, padding="post")
  _, aux = jax.jit(model.forward)(params, x)
  np.testing.assert_array_equal(np.asarray(aux["step_mask"]), x != 0)
  _, aux = Sequential([Embedding(V, E, mask_zero=True)]).forward(params, x)
  np.testing.assert_array_equal(np.asarray(aux["step_mask"]), x != 0)


DROPPING_LAYERS = [Flatten(), Conv1D(3, 2), GlobalMaxPooling1D(), MaxPooling1D(2), AveragePooling1D(2),
                   Reshape((-1,))]


@pytest.mark.parametrize("producer", [Embedding(V, E, mask_zero=True), Masking()], ids=["embedding", "masking"])
@pytest.mark.parametrize("layer", DROPPING_LAYERS, ids=lambda layer: type(layer).__name__)
def test_a_layer_without_masking_support_warns_at_construction(producer, layer):
  with pytest.warns(UserWarning, match="does not support masking") as record:
    model = Sequential([producer, LSTM(U, return_sequences=True), layer])
  assert len(record) == 1
  name = model.layer_names[2]
  assert f"{name} ({type(layer).__name__})" in str(record[0].message)
  assert not model.output_masked


def test_warning_names_each_layer_that_drops_a_mask():
  with pytest.warns(UserWarning) as record:
    Sequential([Masking(), Conv1D(3, 2), Masking(), Flatten()])
  messages = [str(r.message) for r in record]
  assert len(messages) == 2
  assert "conv1d_0 (Conv1D)" in messages[0] and "flatten_0 (Flatten)" in messages[1]


# The warning names the line that builds the Sequential (stacklevel 3: _mask_flow, __init__, the caller).
def test_construction_warning_points_at_the_sequential_call():
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    Sequential([Embedding(V, E, mask_zero=True), Flatten()])
  assert len(record) == 1
  assert record[0].filename == __file__


NO_WARNING_CASES = [
    ("no-mask-flatten", [Embedding(V, E), Flatten()]),
    ("no-mask-conv", [Embedding(V, E), Conv1D(3, 2), GlobalMaxPooling1D()]),
    ("dense-flatten", [Dense(3), Flatten()]),
    ("lstm-consumes", [Embedding(V, E, mask_zero=True), LSTM(U), Flatten()]),
    ("bidirectional-consumes", [Embedding(V, E, mask_zero=True), Bidirectional(LSTM(U)), Dense(2)]),
    ("pooling-consumes", [Embedding(V, E, mask_zero=True), GlobalAveragePooling1D(), Reshape((2, 2))]),
    ("supported-chain", [Masking(), Dense(3), Dropout(0.2), Activation("tanh"), BatchNormalization(),
                         LSTM(U, return_sequences=True), GlobalAveragePooling1D()]),
]


@pytest.mark.parametrize("layers", [c[1] for c in NO_WARNING_CASES], ids=[c[0] for c in NO_WARNING_CASES])
def test_no_warning_when_no_mask_is_dropped(layers):
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    model = Sequential(layers)
    assert not model.output_masked


def test_output_masked_does_not_warn_again():
  with pytest.warns(UserWarning):
    model = Sequential([Masking(), Flatten()])
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert model.output_masked is False


# ------------------------------------------------------------------------------------------ fit / evaluate / predict
def test_predict_returns_masked_sequence_outputs_at_every_step():
  """predict() gives every step's output, masked ones included (the loss over them: test_masked_loss.py)."""
  model, params = _model_and_params(LSTM(U, return_sequences=True))
  x = data.pad_sequences(SEQS, maxlen=6, padding="post")
  out = training.predict(model, params, x)
  assert out.shape == (len(x), 6, U)
  np.testing.assert_allclose(out, np.asarray(model.apply(params, x)), rtol=1e-6, atol=1e-6)


@functools.lru_cache(maxsize=None)
def _classifier():
  model = Sequential([Embedding(V, E, mask_zero=True), LSTM(U), Dense(2, activation="softmax")])
  return model, model.init(KEY, (6,))


X_IDS = data.pad_sequences(SEQS, maxlen=6, padding="post")
Y_IDS = np.array([0, 1, 0, 1], np.int32)
BAD_IDS = [(V, "9.0"), (-1, "-1.0"), (1.5, "1.5"), (np.nan, "nan"), (V + 0.5, "9.5")]


def _with_bad_id(value, where=(2, 3)):
  x = X_IDS.astype(np.float64)
  x[where] = value
  return x


@pytest.mark.parametrize("value, shown", BAD_IDS, ids=[c[1] for c in BAD_IDS])
def test_embedding_ids_are_checked_in_fit_evaluate_predict_and_validation_data(value, shown):
  model, params = _classifier()
  x = _with_bad_id(value)
  expected = rf"expects integer ids in \[0, {V}\), found {shown} at index \(2, 3\)"
  with pytest.raises(JaxnnError, match=rf"^fit: x: Embedding\({V}, {E}\) {expected}"):
    training.fit(model, params, x, Y_IDS, loss=SCCE, batch_size=2, verbose=0)
  with pytest.raises(JaxnnError, match=rf"^evaluate: x: .*{expected}"):
    training.evaluate(model, params, x, Y_IDS, loss=SCCE)
  with pytest.raises(JaxnnError, match=rf"^predict: x: .*{expected}"):
    training.predict(model, params, x)
  with pytest.raises(JaxnnError, match=rf"^validation_data: x: .*{expected}"):
    training.fit(model, params, X_IDS, Y_IDS, loss=SCCE, batch_size=2, verbose=0, validation_data=(x, Y_IDS))


def test_embedding_id_check_reports_the_first_bad_index_and_accepts_whole_floats():
  model, params = _classifier()
  x = _with_bad_id(V, (3, 1))
  x[1, 4] = -2
  with pytest.raises(JaxnnError, match=r"found -2\.0 at index \(1, 4\)"):
    training.predict(model, params, x)
  # Whole numbers stored as floats are ids, as in Keras: the same predictions as the ints.
  np.testing.assert_array_equal(training.predict(model, params, X_IDS.astype(np.float64)),
                                training.predict(model, params, X_IDS))


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_dim=2**24 + 1, output_dim=2), r"input_dim above 2\*\*24"),
    (dict(input_dim=1, output_dim=2, mask_zero=True), r"mask_zero=True .* \(>= 2\), got 1"),
    (dict(input_dim=5, output_dim=2, mask_zero=1), "mask_zero must be a bool, got 1"),
    (dict(input_dim=5, output_dim=2, mask_zero="yes"), "mask_zero must be a bool"),
    (dict(input_dim=0, output_dim=2), "input_dim must be a positive int, got 0"),
    (dict(input_dim=-3, output_dim=2), "input_dim must be a positive int, got -3"),
    (dict(input_dim=5.0, output_dim=2), "input_dim must be a positive int, got 5.0"),
    (dict(input_dim=5, output_dim=0), "output_dim must be a positive int, got 0"),
    (dict(input_dim=5, output_dim=-1), "output_dim must be a positive int, got -1"),
    (dict(input_dim=5, output_dim=2, embeddings_initializer="unifrom"), "unifrom"),
], ids=["input_dim-too-large", "mask_zero-one-id", "mask_zero-int", "mask_zero-str", "input_dim-0",
        "input_dim-negative", "input_dim-float", "output_dim-0", "output_dim-negative", "bad-initializer"])
def test_embedding_constructor_errors(kwargs, match):
  with pytest.raises(JaxnnError, match=match):
    Embedding(**kwargs)


def test_embedding_accepts_the_limits():
  assert Embedding(2**24, 1).input_dim == 2**24
  assert Embedding(2, 1, mask_zero=True).mask_zero is True
  assert Embedding(np.int64(5), np.int32(3)).config() == {"input_dim": 5, "output_dim": 3}


# ------------------------------------------------------------------------------------------ Embedding's weights
def test_embedding_default_initializer_draws_uniform_within_0_05():
  params, out_shape = Embedding(1000, 16).init(KEY, (12,))
  table = np.asarray(params["embeddings"])
  assert out_shape == (12, 16) and table.shape == (1000, 16) and table.dtype == np.float32
  assert table.min() >= -0.05 and table.max() < 0.05
  assert table.min() < -0.049 and table.max() > 0.049  # the whole range, not a narrower one
  assert abs(table.std() - 0.1 / np.sqrt(12)) < 0.001 and abs(table.mean()) < 0.001


def test_embeddings_regularizer_adds_to_model_regularization_and_the_loss():
  layers = [GlobalAveragePooling1D(), Dense(2, activation="softmax")]
  plain = Sequential([Embedding(V, E, mask_zero=True), *layers])
  reg = Sequential([Embedding(V, E, mask_zero=True, embeddings_regularizer={"name": "l2", "l2": 0.1}), *layers])
  params = _randomized(plain.init(KEY, (6,)), 3)
  table = params["embedding_0"]["embeddings"]
  assert float(plain.regularization(params)) == 0.0
  np.testing.assert_allclose(float(reg.regularization(params)), 0.1 * np.sum(table**2), rtol=1e-5)
  l1 = Sequential([Embedding(V, E, embeddings_regularizer="l1"), *layers])
  np.testing.assert_allclose(float(l1.regularization(params)), 0.01 * np.abs(table).sum(), rtol=1e-5)
  # evaluate's loss adds it, as Keras reports it.
  with_reg, without = (training.evaluate(m, params, X_IDS, Y_IDS, loss=SCCE)["loss"] for m in (reg, plain))
  np.testing.assert_allclose(with_reg - without, 0.1 * np.sum(table**2), rtol=1e-4)


def test_embedding_activity_regularizer_penalizes_the_outputs_per_example():
  model = Sequential([Embedding(V, E, activity_regularizer={"name": "l2", "l2": 0.5})])
  params = _randomized(model.init(KEY, (6,)), 4)
  out, aux = model.forward(params, X_IDS)
  np.testing.assert_allclose(float(aux["activity_penalty"]), 0.5 * np.sum(np.asarray(out)**2) / len(X_IDS),
                             rtol=1e-5)


def test_embeddings_constraint_applies_in_constrain_and_in_fit():
  model = Sequential([Embedding(V, E, mask_zero=True, embeddings_constraint="non_neg"), GlobalAveragePooling1D(),
                      Dense(2, activation="softmax")])
  params = _randomized(model.init(KEY, (6,)), 5)
  table = params["embedding_0"]["embeddings"]
  assert (table < 0).any()
  constrained = model.constrain(params)
  np.testing.assert_array_equal(np.asarray(constrained["embedding_0"]["embeddings"]), np.maximum(table, 0))
  np.testing.assert_array_equal(np.asarray(constrained["dense_0"]["kernel"]), params["dense_0"]["kernel"])
  state, _ = training.fit(model, params, X_IDS, Y_IDS, loss=SCCE, batch_size=2, epochs=1, verbose=0)
  trained = np.asarray(state.params["embedding_0"]["embeddings"])
  assert trained.min() >= 0.0 and trained.max() > 0.0


def test_summary_lists_the_embedding_params():
  model = Sequential([Embedding(1000, 16, mask_zero=True), LSTM(U)])
  text = model.summary((12,))
  row = next(line for line in text.splitlines() if line.startswith("embedding_0"))
  assert "(Embedding)" in row and "(None, 12, 16)" in row and row.rstrip().endswith("16,000")
  lstm = 4 * (16 * U + U * U + U)
  assert f"Total params: {16_000 + lstm:,}" in text
  assert f"Trainable params: {16_000 + lstm:,}" in text


# ------------------------------------------------------------------------------------------ Embedding with LoRA
def test_embedding_lora_starts_from_the_base_table_and_trains_only_the_factors():
  plain = Sequential([Embedding(V, E, mask_zero=True), GlobalAveragePooling1D(), Dense(2, activation="softmax")])
  lora = Sequential([Embedding(V, E, mask_zero=True, lora_rank=2), *plain.layers[1:]])
  params, lora_params = plain.init(KEY, (6,)), lora.init(KEY, (6,))
  table = lora_params["embedding_0"]
  np.testing.assert_array_equal(np.asarray(table["embeddings"]), np.asarray(params["embedding_0"]["embeddings"]))
  assert table["lora_a"].shape == (V, 2) and table["lora_b"].shape == (2, E) and not np.any(table["lora_b"])
  assert np.abs(np.asarray(table["lora_a"])).max() <= np.sqrt(6 / V) and np.any(table["lora_a"])  # He uniform
  np.testing.assert_array_equal(np.asarray(lora.apply(lora_params, X_IDS)), np.asarray(plain.apply(params, X_IDS)))
  assert lora.layers[0].trainable(table) == {"embeddings": False, "lora_a": True, "lora_b": True}
  assert f"Non-trainable params: {V * E:,}" in lora.summary((6,))
  state, _ = training.fit(lora, lora_params, X_IDS, Y_IDS, loss=SCCE, batch_size=2, epochs=2, verbose=0,
                          optimizer=jaxnn.OptimizerConfig("sgd", learning_rate=0.5))
  trained = state.params["embedding_0"]
  np.testing.assert_array_equal(np.asarray(trained["embeddings"]), np.asarray(table["embeddings"]))
  assert np.any(trained["lora_b"]) and not np.array_equal(np.asarray(trained["lora_a"]), np.asarray(table["lora_a"]))


def test_embedding_lora_alpha_scales_the_update_and_the_regularizer_sees_the_factors():
  a = np.arange(V * 2, dtype=np.float32).reshape(V, 2) / 10
  b = np.ones((2, E), np.float32)
  params = {"embeddings": np.zeros((V, E), np.float32), "lora_a": a, "lora_b": b}
  layer = Embedding(V, E, lora_rank=2, lora_alpha=6, embeddings_regularizer={"name": "l2", "l2": 0.5})
  np.testing.assert_allclose(np.asarray(layer.embeddings(params)), 3.0 * a @ b, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(layer.apply(params, np.array([[2, 0]]))), 3.0 * (a @ b)[[[2, 0]]], rtol=1e-6)
  np.testing.assert_allclose(float(layer.regularization(params)), 0.5 * (np.sum(a**2) + np.sum(b**2)), rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lora_rank=0), "lora_rank must be a positive int, got 0"),
    (dict(lora_rank=2.0), "lora_rank must be a positive int, got 2.0"),
    (dict(lora_rank=2, embeddings_constraint="non_neg"), r"Embedding\(5, 2\): embeddings_constraint cannot be "
                                                         r"combined with lora_rank"),
], ids=["rank-0", "rank-float", "with-constraint"])
def test_embedding_lora_constructor_errors(kwargs, match):
  with pytest.raises(JaxnnError, match=match):
    Embedding(5, 2, **kwargs)


# ------------------------------------------------------------------------------------------ training end to end
def _count_task(n, maxlen=12, seed=0):
  """Random sequences of 3..maxlen tokens from {1, 2, 3, 4}, post-padded; label: more 1s than 2s (no ties)."""
  rng = np.random.default_rng(seed)
  seqs, labels = [], []
  while len(seqs) < n:
    s = rng.integers(1, 5, rng.integers(3, maxlen + 1))
    ones, twos = int((s == 1).sum()), int((s == 2).sum())
    if ones != twos:
      seqs.append(s)
      labels.append(int(ones > twos))
  return data.pad_sequences(seqs, maxlen=maxlen, padding="post"), np.array(labels, np.int32)


def test_masked_lstm_learns_a_counting_task():
  """Measured (seeds 0-3): 0.99-1.0 training accuracy after 12 epochs, 0.99 on held-out sequences; chance is 0.5."""
  x, y = _count_task(512)
  x_test, y_test = _count_task(256, seed=1)
  assert 0.4 < y.mean() < 0.6
  model = Sequential([Embedding(5, 8, mask_zero=True), LSTM(16), Dense(2, activation="softmax")])
  params = model.init(KEY, (12,))
  state, history = training.fit(model, params, x, y, loss=SCCE, metrics=["accuracy"], epochs=12, batch_size=32,
                                verbose=0, key=jax.random.key(10))
  assert history["accuracy"][-1] > 0.9
  assert history["loss"][-1] < 0.5 * history["loss"][0]
  probs = training.predict(model, state, x_test)
  assert (probs.argmax(axis=1) == y_test).mean() > 0.9
  # Masking made the model blind to padding: the same sequences padded to 20 steps, before, predict the same.
  longer = np.concatenate([np.zeros((len(x_test), 8), np.int32), x_test], axis=1)
  np.testing.assert_allclose(training.predict(model, state, longer), probs, rtol=1e-5, atol=1e-6)


def test_masked_fit_compiles_once_across_epochs_and_calls(traces):
  # Sizes no other test uses, so nothing compiled earlier in this process stands in for these programs.
  model = Sequential([Embedding(7, 3, mask_zero=True), GRU(6), Dense(2, activation="softmax")])
  x, y = _count_task(40, maxlen=7, seed=2)

  def counts(params, **kw):
    traces.clear()
    with counting_compiles() as compiles:
      training.fit(model, params, x, y, loss=SCCE, metrics=["accuracy"], batch_size=16, verbose=0,
                   validation_data=(x[:8], y[:8]), **kw)
    return len(traces), len(compiles)

  first = counts(model.init(KEY, (7,)), epochs=2)
  assert first[0] > 0 and first[1] > 0
  # More epochs, other params and run key: nothing traced or compiled again.
  assert counts(model.init(jax.random.key(5), (7,)), epochs=3, key=jax.random.key(3)) == (0, 0)


# ------------------------------------------------------------------------------------------ pad_sequences errors
@pytest.mark.parametrize("seqs, kwargs, match", [
    ([[1, 2], [3]], dict(padding="middle"), "expected padding 'pre' or 'post', found 'middle'"),
    ([[1, 2], [3]], dict(truncating="both"), "expected truncating 'pre' or 'post', found 'both'"),
    ([[1, 2], [3]], dict(maxlen=0), "expected maxlen a positive int or None, found 0"),
    ([[1, 2], [3]], dict(maxlen=1.5), "expected maxlen a positive int or None, found 1.5"),
    ([[1, 2], [3]], dict(maxlen=True), "expected maxlen a positive int or None, found True"),
    ([[[1, 2]], [[1, 2, 3]]], {}, r"expected every step of the same shape, found step shapes \[\(2,\), \(3,\)\]"),
    ([[1, 2], 5], {}, r"sequence 1 is a scalar"),
    ([[1, 2], [3]], dict(value=0.5), r"value 0.5 does not fit dtype int32 \(whole numbers in \[-2147483648, 2147483647\]\)"),
    ([[1, 2], [3]], dict(value=0.5, dtype="int64"), r"value 0.5 does not fit dtype int64 \(whole numbers in"),
    ([[1, [2, 3]]], {}, "expected a list of sequences"),
], ids=["padding", "truncating", "maxlen-0", "maxlen-float", "maxlen-bool", "step-shapes", "scalar",
        "value-int32", "value-int64", "ragged-steps"])
def test_pad_sequences_errors(seqs, kwargs, match):
  with pytest.raises(DataError, match=f"^pad_sequences: {match}"):
    data.pad_sequences(seqs, **kwargs)


# A padding value the dtype cannot hold (out of an int dtype's range, or NaN) is a DataError, not numpy's error.
@pytest.mark.parametrize("kwargs", [dict(value=-1, dtype="uint8"), dict(value=300, dtype="int8"),
                                    dict(value=float("nan"), dtype="int32")], ids=["uint8", "int8", "nan"])
def test_pad_sequences_value_out_of_the_dtype_range_is_a_data_error(kwargs):
  with pytest.raises(DataError, match=r"^pad_sequences: value .* does not fit dtype .* \(whole numbers in \["):
    data.pad_sequences([[1, 2], [3]], **kwargs)


def test_pad_sequences_basics():
  out = data.pad_sequences([[1, 2, 3], [4], []])
  assert out.dtype == np.int32
  np.testing.assert_array_equal(out, [[1, 2, 3], [0, 0, 4], [0, 0, 0]])
  np.testing.assert_array_equal(data.pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post"),
                                [[1, 2], [4, 0]])
  np.testing.assert_array_equal(data.pad_sequences([np.array([1, 2, 3])], maxlen=2), [[2, 3]])
  assert data.pad_sequences([[]]).shape == (1, 0)


# ------------------------------------------------------------------------------------------ masked statistics
def _masked_inputs(seed=6):
  rng = np.random.default_rng(seed)
  x = rng.normal(1.0, 2.0, (4, 7, 3)).astype(np.float32)
  step_mask = rng.uniform(size=(4, 7)) < 0.6
  step_mask[0] = False  # a row of padding only
  step_mask[1, 0] = True
  return x, step_mask


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling_masked_mean_equals_numpy(keepdims):
  x, step_mask = _masked_inputs()
  layer = GlobalAveragePooling1D(keepdims=keepdims)
  got = np.asarray(layer.apply({}, x, step_mask=step_mask))
  w = step_mask[..., None].astype(np.float64)
  want = (w * x).sum(axis=1, keepdims=keepdims) / np.maximum(w.sum(axis=1, keepdims=keepdims), 1)
  assert got.shape == ((4, 1, 3) if keepdims else (4, 3))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got[0], np.zeros_like(got[0]))  # padding only: zeros
  # Without a mask: the mean over every step.
  np.testing.assert_allclose(np.asarray(layer.apply({}, x)), x.mean(axis=1, keepdims=keepdims), rtol=1e-5, atol=1e-6)
  with pytest.raises(JaxnnError, match=r"step_mask of shape \(4, 7\)"):
    layer.apply({}, x, step_mask=step_mask[:, :5])


def test_global_average_pooling_after_embedding_averages_real_steps():
  model, params = _model_and_params(GlobalAveragePooling1D())
  x = np.array([[3, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.int32)
  table = np.asarray(params["embedding_0"]["embeddings"])
  got = np.asarray(model.apply(params, x))
  np.testing.assert_allclose(got[0], (table[3] + table[1]) / 2, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got[1], np.zeros(E, np.float32))


def _bn_params_state(features, seed=7):
  rng = np.random.default_rng(seed)
  params = {"gamma": rng.uniform(0.5, 1.5, features).astype(np.float32),
            "beta": rng.normal(0, 1, features).astype(np.float32)}
  state = {"moving_mean": rng.normal(0, 1, features).astype(np.float32),
           "moving_variance": rng.uniform(0.5, 2, features).astype(np.float32)}
  return params, state


def _numpy_batch_norm(x, weights, params, state, momentum, epsilon):
  w = weights[..., None].astype(np.float64)
  count = w.sum(axis=(0, 1))
  mean = (w * x).sum(axis=(0, 1)) / count
  var = (w * (x - mean) ** 2).sum(axis=(0, 1)) / count
  y = (x - mean) / np.sqrt(var + epsilon) * params["gamma"] + params["beta"]
  return y, momentum * state["moving_mean"] + (1 - momentum) * mean, \
      momentum * state["moving_variance"] + (1 - momentum) * var


@pytest.mark.parametrize("with_row_mask", [False, True], ids=["steps", "steps-and-rows"])
def test_batch_normalization_with_step_mask_equals_numpy_over_real_steps(with_row_mask):
  x, step_mask = _masked_inputs()
  layer = BatchNormalization(momentum=0.8, epsilon=1e-3)
  params, state = _bn_params_state(3)
  row_mask = np.array([1, 1, 0, 1], np.float32) if with_row_mask else None  # fit's padded last batch
  y, new = layer.apply_stateful(params, state, x, training=True, step_mask=step_mask,
                                mask=None if row_mask is None else jnp.asarray(row_mask))
  weights = step_mask if row_mask is None else step_mask & (row_mask[:, None] > 0)
  want_y, want_mean, want_var = _numpy_batch_norm(x, weights, params, state, 0.8, 1e-3)
  np.testing.assert_allclose(np.asarray(y), want_y, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(new["moving_mean"]), want_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(new["moving_variance"]), want_var, rtol=1e-5, atol=1e-6)
  # Not vacuous: statistics over every step are other numbers.
  _, all_mean, _ = _numpy_batch_norm(x, np.ones_like(step_mask), params, state, 0.8, 1e-3)
  assert np.abs(all_mean - want_mean).max() > 1e-2
  # Inference: the moving statistics, whatever the mask.
  y_inf, same = layer.apply_stateful(params, state, x, training=False, step_mask=step_mask)
  np.testing.assert_allclose(np.asarray(y_inf), (x - state["moving_mean"]) / np.sqrt(state["moving_variance"] + 1e-3)
                             * params["gamma"] + params["beta"], rtol=1e-5, atol=1e-5)
  assert same is state


def test_padded_rows_of_a_batch_leave_masked_batch_norm_statistics_alone():
  """Sequential.forward with fit's row mask: a garbage last row changes nothing that the real rows determine."""
  model = Sequential([Embedding(V, E, mask_zero=True), LSTM(U, return_sequences=True), BatchNormalization(),
                      GlobalAveragePooling1D()])
  params = _randomized(model.init(KEY, (6,)), 8)
  state = model.init_state((6,))
  x = data.pad_sequences(SEQS[:3], maxlen=6, padding="post")
  padded = np.concatenate([x, [[8, 8, 8, 8, 8, 8]]])  # fit fills a partial batch with a copy of some example
  forward = jax.jit(functools.partial(model.forward, training=True))
  y_real, aux_real = forward(params, x, state=state)
  y_pad, aux_pad = forward(params, padded, state=state, mask=jnp.asarray([1.0, 1.0, 1.0, 0.0]))
  np.testing.assert_allclose(np.asarray(y_pad)[:3], np.asarray(y_real), rtol=1e-5, atol=1e-6)
  for k in ("moving_mean", "moving_variance"):
    np.testing.assert_allclose(np.asarray(aux_pad["state"]["batch_normalization_0"][k]),
                               np.asarray(aux_real["state"]["batch_normalization_0"][k]), rtol=1e-5, atol=1e-6)
  # Not vacuous: without the row mask the garbage row moves the statistics.
  _, aux_all = forward(params, padded, state=state)
  assert np.abs(np.asarray(aux_all["state"]["batch_normalization_0"]["moving_mean"])
                - np.asarray(aux_real["state"]["batch_normalization_0"]["moving_mean"])).max() > 1e-4


def test_fit_with_a_partial_last_batch_and_masked_batch_norm():
  model = Sequential([Embedding(5, 4, mask_zero=True), LSTM(U, return_sequences=True), BatchNormalization(),
                      GlobalAveragePooling1D(), Dense(2, activation="softmax")])
  x, y = _count_task(50, maxlen=8, seed=3)
  params = model.init(KEY, (8,))
  state, history = training.fit(model, params, x, y, loss=SCCE, metrics=["accuracy"], epochs=2, batch_size=16,
                                verbose=0)
  assert history.params["steps"] == 4 and 50 % 16 != 0
  assert all(np.isfinite(history["loss"])) and history.history.get("skipped_steps", [0, 0]) == [0, 0]
  moving = state.model_state["batch_normalization_0"]
  assert all(np.isfinite(np.asarray(v)).all() for v in moving.values())
  assert np.abs(np.asarray(moving["moving_mean"])).max() > 0  # the statistics moved


def test_a_layer_without_step_mask_argument_still_works():
  # A user's layer written against the older apply_stateful signature (no step_mask) in a model without masks.
  @dataclasses.dataclass(frozen=True)
  class Double(jaxnn.Layer):
    def apply(self, params, x, *, training=False, key=None):
      return 2.0 * x

    def apply_stateful(self, params, state, x, *, training=False, key=None, mask=None):
      return self.apply(params, x), state

  model = Sequential([Dense(3), Double()])
  params = model.init(jax.random.key(0), (4,))
  x = jnp.ones((2, 4))
  np.testing.assert_allclose(model.apply(params, x), 2.0 * Sequential([Dense(3)]).apply(params, x), rtol=1e-6)
