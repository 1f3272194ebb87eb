"""Losses and metrics over masked sequence outputs, in jaxnn alone.

A model whose outputs keep a step mask (Embedding(mask_zero=True) or Masking, then layers that return
sequences) trains and evaluates on its unmasked steps only, as Keras does: each batch's loss is the mean over
its unmasked steps (per-example or per-step sample weights multiply it), an epoch's loss weighs the batches by
their examples, and the metrics count unmasked steps. Checked here against numpy computed from `predict`, a
gradient written out with jnp, and invariances (the targets of masked steps, the padding's length and side);
Keras' own numbers: test_keras_parity_masked_loss.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import data
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense, Dropout, Embedding, Masking
from jaxnn.models import Sequential
from jaxnn.recurrent import GRU, LSTM, Bidirectional

V, E, U, C, T = 9, 4, 5, 3, 6  # vocabulary (id 0 is padding), embedding size, units, classes, steps
SCCE = "sparse_categorical_crossentropy"
SGD = jaxnn.OptimizerConfig("sgd", learning_rate=0.5)
FROZEN = jaxnn.OptimizerConfig("sgd", learning_rate=0.0)

# Sequences of lengths 0 to 6: the empty one is a row of padding only, with no step to count.
SEQS = [[3, 1, 4, 1, 5], [2, 6], [8], [7, 7, 2, 8, 3, 5], [4, 4, 1], [], [6, 2, 2, 2], [1, 8]]
X = data.pad_sequences(SEQS, maxlen=T, padding="post")
MASK = X != 0
N = len(X)
Y = np.random.default_rng(0).integers(0, C, (N, T)).astype(np.int32)
STEP_WEIGHTS = np.random.default_rng(1).uniform(0.0, 2.0, (N, T)).astype(np.float32)
EXAMPLE_WEIGHTS = np.random.default_rng(2).uniform(0.0, 2.0, (N,)).astype(np.float32)


def _randomized(params, seed, scale=0.5):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: np.asarray(p) + rng.normal(0, scale, p.shape).astype(np.float32), params)


@functools.lru_cache(maxsize=None)
def _tagger(recurrent=None, units=C, activation="softmax", masking=False):
  """Embedding(mask_zero) (or Masking over one-hot rows), a recurrent layer returning sequences, Dense."""
  recurrent = recurrent or LSTM(U, return_sequences=True)
  first = [Masking(0.0)] if masking else [Embedding(V, E, mask_zero=True)]
  model = Sequential([*first, recurrent, Dense(units, activation=activation)])
  input_shape = (T, V) if masking else (T,)
  return model, _randomized(model.init(jax.random.key(0), input_shape), 1)


def _crossentropy(p, y):
  """Keras' sparse crossentropy on probabilities, per step (clipped as jaxnn and Keras clip)."""
  p = np.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
  return -np.log(np.take_along_axis(p, y[..., None], -1)[..., 0])


def _reference_loss(values, mask, batch_size, weights=None):
  """Keras' epoch loss: per batch sum(values * weights * mask) / sum(mask) (0 with no unmasked step),
  averaged over the batches weighted by their examples."""
  weights = np.ones(values.shape[:1]) if weights is None else weights
  weights = weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim))
  total = 0.0
  for start in range(0, len(values), batch_size):
    part = slice(start, start + batch_size)
    count = mask[part].sum()
    batch = (values[part] * weights[part] * mask[part]).sum() / count if count else 0.0
    total += batch * len(values[part])
  return total / len(values)


# ------------------------------------------------------------------------------------------ evaluate
@pytest.mark.parametrize("batch_size", [N, 3, 1])
def test_evaluate_is_the_mean_over_unmasked_steps(batch_size):
  model, params = _tagger()
  p = training.predict(model, params, X)
  values = _crossentropy(p, Y)
  got = training.evaluate(model, params, X, Y, loss=SCCE, metrics=["accuracy"], batch_size=batch_size)
  np.testing.assert_allclose(got["loss"], _reference_loss(values, MASK, batch_size), rtol=1e-5)
  correct = p.argmax(-1) == Y
  np.testing.assert_allclose(got["accuracy"], correct[MASK].mean(), rtol=1e-6)
  # Not the unmasked mean: the padding's targets would count.
  assert abs(got["loss"] - _reference_loss(values, np.ones_like(MASK), batch_size)) > 1e-3


@pytest.mark.parametrize("weights", ["example", "step"])
def test_evaluate_sample_weight_weighs_the_loss_not_the_metrics(weights):
  model, params = _tagger()
  sample_weight = {"example": EXAMPLE_WEIGHTS, "step": STEP_WEIGHTS}[weights]
  p = training.predict(model, params, X)
  got = training.evaluate(model, params, X, Y, loss=SCCE, metrics=["accuracy"], batch_size=3,
                          sample_weight=sample_weight)
  np.testing.assert_allclose(got["loss"], _reference_loss(_crossentropy(p, Y), MASK, 3, sample_weight), rtol=1e-5)
  np.testing.assert_allclose(got["accuracy"], (p.argmax(-1) == Y)[MASK].mean(), rtol=1e-6)


def test_evaluate_regression_and_binary_outputs_over_unmasked_steps():
  rng = np.random.default_rng(3)
  model, params = _tagger(units=2, activation="linear")
  y = rng.normal(size=(N, T, 2)).astype(np.float32)
  p = training.predict(model, params, X)
  got = training.evaluate(model, params, X, y, loss="mse", metrics=["mae"], batch_size=N)
  np.testing.assert_allclose(got["loss"], ((p - y) ** 2).mean(-1)[MASK].mean(), rtol=1e-5)
  np.testing.assert_allclose(got["mae"], np.abs(p - y).mean(-1)[MASK].mean(), rtol=1e-5)

  model, params = _tagger(units=1, activation="sigmoid")
  y = rng.integers(0, 2, (N, T, 1)).astype(np.float32)
  p = training.predict(model, params, X)
  got = training.evaluate(model, params, X, y, loss="binary_crossentropy", metrics=["accuracy"], batch_size=N)
  q = np.clip(p, 1e-7, 1 - 1e-7)
  bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))[..., 0]
  np.testing.assert_allclose(got["loss"], bce[MASK].mean(), rtol=1e-5)
  np.testing.assert_allclose(got["accuracy"], ((p[..., 0] > 0.5) == y[..., 0])[MASK].mean(), rtol=1e-6)


def test_confusion_metrics_count_unmasked_steps_only():
  model, params = _tagger()
  p = training.predict(model, params, X)
  got = training.evaluate(model, params, X, Y, loss=SCCE, metrics=["precision", "recall"], batch_size=3)
  pred, true = p.argmax(-1)[MASK], Y[MASK]
  cm = np.zeros((C, C))
  np.add.at(cm, (true, pred), 1.0)
  tp = np.diag(cm)
  with np.errstate(invalid="ignore", divide="ignore"):
    precision = np.nan_to_num(tp / cm.sum(0)).mean()
    recall = np.nan_to_num(tp / cm.sum(1)).mean()
  np.testing.assert_allclose([got["precision"], got["recall"]], [precision, recall], rtol=1e-6)


def test_masking_layer_outputs_are_masked_like_embeddings():
  """Masking(0.0) over one-hot rows: the all-zero rows are the padding."""
  model, params = _tagger(masking=True)
  x = np.eye(V, dtype=np.float32)[X] * MASK[..., None]
  p = training.predict(model, params, x)
  got = training.evaluate(model, params, x, Y, loss=SCCE, batch_size=N)
  np.testing.assert_allclose(got["loss"], _crossentropy(p, Y)[MASK].mean(), rtol=1e-5)


# ------------------------------------------------------------------------------------------ fit
@pytest.mark.parametrize("weights", [None, "example", "step"])
@pytest.mark.parametrize("batch_size", [N, 3])
def test_fit_loss_is_the_weighted_mean_over_unmasked_steps(weights, batch_size):
  """With a learning rate of 0 the epoch's loss is that of the params given; the validation pass's too."""
  model, params = _tagger()
  sample_weight = {None: None, "example": EXAMPLE_WEIGHTS, "step": STEP_WEIGHTS}[weights]
  _, history = training.fit(model, params, X, Y, loss=SCCE, optimizer=FROZEN, metrics=["accuracy"],
                            batch_size=batch_size, epochs=1, shuffle=False, sample_weight=sample_weight,
                            validation_data=(X, Y), verbose=0)
  p = training.predict(model, params, X)
  values = _crossentropy(p, Y)
  np.testing.assert_allclose(history["loss"][0], _reference_loss(values, MASK, batch_size, sample_weight),
                             rtol=1e-5)
  np.testing.assert_allclose(history["val_loss"][0], _reference_loss(values, MASK, N), rtol=1e-5)
  accuracy = (p.argmax(-1) == Y)[MASK].mean()
  np.testing.assert_allclose([history["accuracy"][0], history["val_accuracy"][0]], [accuracy] * 2, rtol=1e-6)


def test_one_step_gradient_equals_the_masked_mean_written_out():
  """A full-batch SGD step of learning rate 1 moves the params by the gradient of
  sum(crossentropy * weight * mask) / sum(mask), written out here with jnp."""
  model, params = _tagger()
  mask = jnp.asarray(MASK, jnp.float32)

  def objective(prm):
    p = model.apply(prm, jnp.asarray(X))
    p = jnp.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    ll = -jnp.log(jnp.take_along_axis(p, jnp.asarray(Y)[..., None], -1)[..., 0])
    return jnp.sum(ll * STEP_WEIGHTS * mask) / jnp.sum(mask)

  grads = jax.grad(objective)(jax.tree.map(jnp.asarray, params))
  state, _ = training.fit(model, params, X, Y, loss=SCCE, optimizer=jaxnn.OptimizerConfig("sgd", learning_rate=1.0),
                          batch_size=N, epochs=1, shuffle=False, sample_weight=STEP_WEIGHTS, verbose=0)
  moved = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), params, state.params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    got = functools.reduce(lambda d, k: d[k.key], path, moved)
    np.testing.assert_allclose(got, np.asarray(g), rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  assert max(float(np.abs(g).max()) for g in jax.tree.leaves(grads)) > 1e-2  # a step that moved something


def _fit(model, params, x, y, **kwargs):
  kwargs = dict(dict(loss=SCCE, optimizer=SGD, batch_size=3, epochs=2, verbose=0), **kwargs)
  state, history = training.fit(model, params, x, y, **kwargs)
  return jax.tree.map(np.asarray, state.params), history


@pytest.mark.parametrize("recurrent", [LSTM(U, return_sequences=True), GRU(U, return_sequences=True),
                                       Bidirectional(LSTM(U, return_sequences=True))],
                         ids=["lstm", "gru", "bidirectional-lstm"])
def test_fit_ignores_the_targets_of_masked_steps(recurrent):
  model, params = _tagger(recurrent)
  other = np.where(MASK, Y, (Y + 1) % C)  # different labels on every masked step only
  first, h1 = _fit(model, params, X, Y)
  second, h2 = _fit(model, params, X, other)
  jax.tree.map(np.testing.assert_array_equal, first, second)
  assert h1.history["loss"] == h2.history["loss"]


def test_fit_with_dropout_after_the_sequence_still_masks():
  model = Sequential([Embedding(V, E, mask_zero=True), LSTM(U, return_sequences=True), Dropout(0.3),
                      Dense(C, activation="softmax")])
  params = model.init(jax.random.key(0), (T,))
  other = np.where(MASK, Y, (Y + 2) % C)
  first, _ = _fit(model, params, X, Y, optimizer="adam")
  second, _ = _fit(model, params, X, other, optimizer="adam")
  jax.tree.map(np.testing.assert_array_equal, first, second)


def test_fit_does_not_depend_on_the_padding():
  """The same sequences and targets post-padded to 6 steps, pre-padded to 6 and post-padded to 10 steps: the
  same trained params (up to rounding), since only the unmasked steps count."""
  model, params = _tagger()
  results = []
  for maxlen, padding in ((T, "post"), (T, "pre"), (10, "post")):
    x = data.pad_sequences(SEQS, maxlen=maxlen, padding=padding)
    y = data.pad_sequences([list(row[:len(s)]) for row, s in zip(Y, SEQS)], maxlen=maxlen, padding=padding)
    results.append(_fit(model, params, x, y))
  for trained, history in results[1:]:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), trained, results[0][0])
    np.testing.assert_allclose(history["loss"], results[0][1]["loss"], rtol=1e-5)


def test_example_weights_equal_the_same_weights_on_every_step():
  model, params = _tagger()
  by_example, h1 = _fit(model, params, X, Y, sample_weight=EXAMPLE_WEIGHTS)
  by_step, h2 = _fit(model, params, X, Y, sample_weight=np.repeat(EXAMPLE_WEIGHTS[:, None], T, axis=1))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), by_example, by_step)
  np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-6)


def test_a_zero_step_weight_drops_the_step_but_keeps_it_in_the_count():
  """Weight 0 on a step: its target no longer matters, but unlike a masked step it still counts in the mean's
  denominator (Keras' sample weights do the same)."""
  model, params = _tagger()
  weights = np.ones((N, T), np.float32)
  weights[0, :2] = 0.0
  other = Y.copy()
  other[0, :2] = (Y[0, :2] + 1) % C
  first, h1 = _fit(model, params, X, Y, sample_weight=weights, optimizer=FROZEN, epochs=1, shuffle=False,
                   batch_size=N)
  second, h2 = _fit(model, params, X, other, sample_weight=weights, optimizer=FROZEN, epochs=1, shuffle=False,
                    batch_size=N)
  assert h1["loss"] == h2["loss"]
  values = _crossentropy(training.predict(model, params, X), Y)
  np.testing.assert_allclose(h1["loss"][0], (values * weights)[MASK].sum() / MASK.sum(), rtol=1e-5)


def test_masked_tagger_learns_and_fit_many_matches_fit():
  """A real task: tag each token with its parity. fit_many's model 0 is fit's model."""
  rng = np.random.default_rng(4)
  seqs = [list(rng.integers(1, V, rng.integers(1, 13))) for _ in range(256)]
  x = data.pad_sequences(seqs, maxlen=12, padding="post")
  y = (x % 2).astype(np.int32)  # padding (id 0) would be class 0: learnable for free if it counted
  model = Sequential([Embedding(V, 8, mask_zero=True), GRU(16, return_sequences=True), Dense(2, activation="softmax")])
  params = model.init(jax.random.key(5), (12,))
  state, history = training.fit(model, params, x, y, loss=SCCE, metrics=["accuracy"], batch_size=32, epochs=15,
                                key=jax.random.key(6), verbose=0,
                                optimizer=jaxnn.OptimizerConfig("adam", learning_rate=1e-2))
  assert history["accuracy"][-1] > 0.99, history["accuracy"]
  states, histories = jaxnn.fit_many(model, x, y, loss=SCCE, metrics=["accuracy"], batch_size=32, epochs=2,
                                     seeds=[0, 1], optimizer=jaxnn.OptimizerConfig("adam", learning_rate=1e-2))
  init_key, fit_key = jaxnn.sweep.seed_keys(0)
  _, single = training.fit(model, model.init(init_key, (12,)), x, y, loss=SCCE, metrics=["accuracy"], batch_size=32,
                           epochs=2, key=fit_key, verbose=0, max_bad_steps=None,
                           optimizer=jaxnn.OptimizerConfig("adam", learning_rate=1e-2))
  np.testing.assert_allclose(histories[0]["loss"], single["loss"], rtol=1e-5)
  np.testing.assert_allclose(histories[0]["accuracy"], single["accuracy"], rtol=1e-5)


def test_per_example_grads_leave_the_masked_steps_out():
  """Example i's gradient is that of the mean crossentropy over its own unmasked steps (written out with jnp);
  its masked steps' targets do not matter. An example with no unmasked step has a zero gradient."""
  model, params = _tagger()
  grads = jaxnn.per_example_grads(model, params, X, Y, loss=SCCE)
  other = jaxnn.per_example_grads(model, params, X, np.where(MASK, Y, (Y + 1) % C), loss=SCCE)
  jax.tree.map(np.testing.assert_array_equal, grads, other)
  jparams = jax.tree.map(jnp.asarray, params)
  for i in (0, 2, 5):
    mask = jnp.asarray(MASK[i:i + 1], jnp.float32)

    def objective(prm, i=i, mask=mask):
      p = model.apply(prm, jnp.asarray(X[i:i + 1]))
      p = jnp.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
      ll = -jnp.log(jnp.take_along_axis(p, jnp.asarray(Y[i:i + 1])[..., None], -1)[..., 0])
      return jnp.sum(ll * mask) / jnp.maximum(jnp.sum(mask), 1.0)

    want = jax.grad(objective)(jparams)
    for path, g in jax.tree_util.tree_leaves_with_path(want):
      got = functools.reduce(lambda d, k: d[k.key], path, grads)[i]
      np.testing.assert_allclose(got, np.asarray(g), rtol=1e-4, atol=1e-6, err_msg=f"{i} {jax.tree_util.keystr(path)}")
  assert not SEQS[5]  # the row of padding only
  norms = jaxnn.per_example_grad_norms(model, params, X, Y, loss=SCCE)
  assert norms[5] == 0.0 and (np.delete(norms, 5) > 0).all()


# ------------------------------------------------------------------------------------------ errors
def test_sample_weight_shape_errors_name_both_accepted_shapes():
  model, params = _tagger()
  with pytest.raises(JaxnnError, match=rf"^fit: sample_weight must have shape \({N},\), one weight per training "
                                       rf"example, or \({N}, {T}\), one per output step, got \({N}, {T + 1}\)$"):
    training.fit(model, params, X, Y, loss=SCCE, sample_weight=np.ones((N, T + 1)), batch_size=4, verbose=0)
  weights = STEP_WEIGHTS.copy()
  weights[2, 4] = -1.0
  with pytest.raises(JaxnnError, match=r"^fit: sample_weight must be finite and >= 0, found -1\.0 at "
                                       r"sample_weight\[2, 4\] \(1 such values\)$"):
    training.fit(model, params, X, Y, loss=SCCE, sample_weight=weights, batch_size=4, verbose=0)
  # A model with one output per example takes one weight per example only.
  flat = Sequential([Embedding(V, E, mask_zero=True), LSTM(U), Dense(C, activation="softmax")])
  flat_params = flat.init(jax.random.key(0), (T,))
  with pytest.raises(JaxnnError, match=rf"^fit: sample_weight must have shape \({N},\), one weight per training "
                                       rf"example, got \({N}, {T}\)$"):
    training.fit(flat, flat_params, X, Y[:, 0], loss=SCCE, sample_weight=STEP_WEIGHTS, batch_size=4, verbose=0)


def test_evaluate_sample_weight_errors():
  model, params = _tagger()
  with pytest.raises(JaxnnError, match=rf"^evaluate: sample_weight must have shape \({N},\), one weight per "
                                       rf"example, or \({N}, {T}\), one per output step, got \({N - 1},\)$"):
    training.evaluate(model, params, X, Y, loss=SCCE, sample_weight=np.ones(N - 1))
  with pytest.raises(JaxnnError, match=r"^evaluate: sample_weight must be finite and >= 0, found -2\.0 at "
                                       r"sample_weight\[3\] \(1 such values\)$"):
    training.evaluate(model, params, X, Y, loss=SCCE, sample_weight=np.array([1, 1, 1, -2, 1, 1, 1, 1.0]))


def test_class_weight_with_per_step_outputs_is_refused_with_the_alternative():
  model, params = _tagger()
  with pytest.raises(JaxnnError, match=rf"^fit: class_weight needs one output per example, found outputs of shape "
                                       rf"\({T}, {C}\) per example; pass per-step weights as sample_weight of shape "
                                       rf"\({N}, {T}\)$"):
    training.fit(model, params, X, Y, loss=SCCE, class_weight={0: 1.0, 1: 2.0}, batch_size=4, verbose=0)


def test_targets_must_have_one_label_per_step():
  model, params = _tagger()
  with pytest.raises(JaxnnError, match=rf"^fit: {SCCE} expects integer class labels of shape \({N}, {T}\), got "
                                       rf"shape \({N},\)"):
    training.fit(model, params, X, Y[:, 0], loss=SCCE, batch_size=4, verbose=0)
