"""fit / evaluate / predict: the three descents, masking, compile-once, weights, penalties, constraints, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import losses
from jaxnn import optimizers
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense, Dropout
from jaxnn.models import Sequential

KEY = jax.random.key(0)


def blobs(n=64, d=5, classes=3, seed=0):
  """Linearly separable-ish Gaussian blobs."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n).astype(np.int32)
  centers = rng.normal(0, 3, (classes, d))
  x = (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
  return x, y


def softmax_regression(classes=3):
  return Sequential([Dense(classes, activation="softmax")])


def manual_sgd(model, params, batches, lr, loss="sparse_categorical_crossentropy"):
  """Reference: plain optax SGD over the given batches, one step per batch."""
  tx = optax.sgd(lr)
  opt_state = tx.init(params)
  loss = losses.get(loss)
  for xb, yb in batches:
    grads = jax.grad(lambda p: loss(yb, model.apply(p, xb)))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
  return params


def assert_trees_close(a, b, **kw):
  for la, lb in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(la, lb, **kw)


@pytest.mark.parametrize("batch_size, steps, epochs", [(64, 1, 40), (16, 4, 10), (1, 64, 2)],
                         ids=["batch", "minibatch", "stochastic"])
def test_the_three_descents_learn(batch_size, steps, epochs):
  x, y = blobs()
  model = softmax_regression()
  params = model.init(KEY, (5,))
  sgd = optimizers.OptimizerConfig("sgd", learning_rate=0.1)
  state, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", optimizer=sgd,
                                metrics=["accuracy"], epochs=epochs, batch_size=batch_size, verbose=0)
  assert int(state.step) == epochs * steps
  assert history.params["steps"] == steps
  assert history["loss"][-1] < history["loss"][0]
  assert history["accuracy"][-1] > 0.8


def test_batch_gradient_descent_equals_manual_full_batch_steps():
  x, y = blobs(n=20)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  state, _ = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy",
                          optimizer=optax.sgd(0.1), epochs=3, batch_size=20, verbose=0)
  expected = manual_sgd(model, params, [(x, y)] * 3, 0.1)
  assert_trees_close(state.params, expected, rtol=1e-5, atol=1e-6)


def test_partial_last_batch_is_masked_not_dropped_or_recompiled():
  x, y = blobs(n=10)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  state, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy",
                                optimizer=optax.sgd(0.5), epochs=1, batch_size=4, shuffle=False, verbose=0)
  # Batches of 4, 4 and 2: the last one is a true mean over its 2 examples.
  expected = manual_sgd(model, params, [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])], 0.5)
  assert_trees_close(state.params, expected, rtol=1e-5, atol=1e-6)
  assert int(state.step) == 3


def test_epoch_is_compiled_once_per_model_and_batch_size(traces):
  x, y = blobs()
  model = softmax_regression()
  params = model.init(KEY, (5,))

  def traces_of(**kw):
    traces.clear()
    training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", verbose=0, **kw)
    return len(traces)

  first = traces_of(epochs=4, batch_size=10)
  assert first > 0  # traced while compiling, a fixed number of times, not once per epoch or batch
  assert traces_of(epochs=2, batch_size=10) == 0  # same model, shapes and optimizer: the program is reused
  assert traces_of(epochs=1, batch_size=16) == first  # a new batch size is a new program
  assert traces_of(epochs=1, batch_size=16, optimizer="sgd") == first  # so is another optimizer
  # ReduceLROnPlateau's cuts are values in the optimizer state: no new trace when the rate changes.
  plateau = training.ReduceLROnPlateau(monitor="loss", patience=1, min_delta=10.0, factor=0.5)
  assert traces_of(epochs=5, batch_size=16, optimizer="sgd", reduce_lr=plateau) == 0
  _, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", verbose=0, epochs=5,
                            batch_size=16, optimizer="sgd", reduce_lr=plateau)
  assert len(set(history["learning_rate"])) == 4 and traces == []


def test_jit_and_no_jit_agree():
  x, y = blobs(n=16)
  model = Sequential([Dense(8, activation="relu"), Dropout(0.5), Dense(3, activation="softmax")])
  params = model.init(KEY, (5,))
  state = training.create_train_state(model, params, "adam", key=KEY)
  loss = losses.get("sparse_categorical_crossentropy")
  args = (state, jnp.asarray(x), jnp.asarray(y), jnp.ones(16), jnp.ones(16))
  jitted = jax.jit(training.train_step, static_argnames=("model", "loss", "metrics"))(*args, model=model, loss=loss)
  with jax.disable_jit():
    eager = training.train_step(*args, model=model, loss=loss)
  assert_trees_close(jitted[0].params, eager[0].params, rtol=1e-5, atol=1e-6)


def test_history_and_validation():
  x, y = blobs(n=100)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  _, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                            epochs=3, batch_size=16, validation_split=0.2, verbose=0)
  assert history.epoch == [1, 2, 3]
  for k in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate"):
    assert len(history[k]) == 3, k
  assert history.params["samples"] == 80  # the last 20 % are held out
  assert history["learning_rate"][0] == pytest.approx(0.001)  # Keras' Adam default
  assert history.compile_seconds > 0


def test_validation_split_equals_explicit_validation_data():
  x, y = blobs(n=50)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=2, batch_size=8, verbose=0)
  _, h1 = training.fit(model, params, x, y, validation_split=0.2, **kw)
  _, h2 = training.fit(model, params, x[:40], y[:40], validation_data=(x[40:], y[40:]), **kw)
  np.testing.assert_allclose(h1["val_loss"], h2["val_loss"], rtol=1e-6)


def test_validation_data_triple_weighs_the_validation_loss_only():
  """(x_val, y_val, sample_weight_val), as Keras takes it: the weights weigh val_loss as evaluate's
  sample_weight does; training and the val metrics are what they are without them; None is no weights."""
  x, y = blobs(n=60)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  w = np.random.default_rng(1).uniform(0, 3, 20).astype(np.float32)
  kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=2, batch_size=8, verbose=0,
            eval_batch_size=7)
  state, weighted = training.fit(model, params, x[:40], y[:40], validation_data=(x[40:], y[40:], w), **kw)
  _, plain = training.fit(model, params, x[:40], y[:40], validation_data=(x[40:], y[40:]), **kw)
  _, none = training.fit(model, params, x[:40], y[:40], validation_data=[x[40:], y[40:], None], **kw)
  np.testing.assert_array_equal(weighted["loss"], plain["loss"])
  np.testing.assert_array_equal(weighted["val_accuracy"], plain["val_accuracy"])
  np.testing.assert_array_equal(none["val_loss"], plain["val_loss"])
  want = training.evaluate(model, state, x[40:], y[40:], loss="sparse_categorical_crossentropy", batch_size=7,
                           sample_weight=w)["loss"]
  assert weighted["val_loss"][-1] == pytest.approx(want, rel=1e-6)
  assert abs(weighted["val_loss"][-1] - plain["val_loss"][-1]) > 1e-3


def test_validation_split_holds_out_the_sample_weights_too_not_the_class_weights():
  """Keras splits sample_weight with x and y: the held-out weights weigh val_loss. class_weight stays with
  training (Keras' validation is not class-weighted)."""
  x, y = blobs(n=50)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  w = np.random.default_rng(2).uniform(0, 3, 50).astype(np.float32)
  kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=2, batch_size=8, verbose=0)
  _, split = training.fit(model, params, x, y, sample_weight=w, validation_split=0.2, **kw)
  _, explicit = training.fit(model, params, x[:40], y[:40], sample_weight=w[:40],
                             validation_data=(x[40:], y[40:], w[40:]), **kw)
  for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
    np.testing.assert_allclose(split[name], explicit[name], rtol=1e-6, err_msg=name)
  state, class_weighted = training.fit(model, params, x, y, class_weight={0: 3.0, 1: 0.5, 2: 1.0},
                                       validation_split=0.2, **kw)
  want = training.evaluate(model, state, x[40:], y[40:], loss="sparse_categorical_crossentropy")["loss"]
  assert class_weighted["val_loss"][-1] == pytest.approx(want, rel=1e-6)


def test_weighted_metrics_take_the_sample_and_class_weights_metrics_do_not():
  """Keras' weighted_metrics: sum(w * value) / sum(w) with the sample weights times the class weights, in fit
  (training and validation) and evaluate; named "weighted_<name>" beside a metric of the same name, under
  their own name otherwise; without weights they equal the plain metrics."""
  x, y = blobs(n=40)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  w = np.random.default_rng(4).uniform(0, 3, 40).astype(np.float32)
  class_weight = {0: 2.0, 1: 0.0, 2: 1.0}
  correct = (training.predict(model, params, x).argmax(-1) == y).astype(np.float64)
  weighted = np.sum(correct * w) / np.sum(w)
  assert abs(weighted - correct.mean()) > 1e-2  # the weights change the value
  kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
  got = training.evaluate(model, params, x, y, sample_weight=w, batch_size=16, **kw)
  assert got["accuracy"] == pytest.approx(correct.mean()) and got["weighted_accuracy"] == pytest.approx(weighted)
  got = training.evaluate(model, params, x, y, batch_size=16, **kw)
  assert got["weighted_accuracy"] == got["accuracy"]
  alone = training.evaluate(model, params, x, y, loss=kw["loss"], weighted_metrics=["accuracy"], sample_weight=w)
  assert set(alone) == {"loss", "accuracy"} and alone["accuracy"] == pytest.approx(weighted)
  # fit with a learning rate of 0: the metrics of the initial params, over shuffled, partly padded batches.
  frozen = dict(kw, optimizer=optimizers.OptimizerConfig("sgd", learning_rate=0.0), batch_size=16, verbose=0)
  cw = np.array([class_weight[int(c)] for c in y], np.float32)
  _, history = training.fit(model, params, x, y, sample_weight=w, class_weight=class_weight,
                            validation_data=(x, y, w), **frozen)
  assert history["accuracy"][0] == pytest.approx(correct.mean())
  assert history["weighted_accuracy"][0] == pytest.approx(np.sum(correct * w * cw) / np.sum(w * cw))
  assert history["val_weighted_accuracy"][0] == pytest.approx(weighted)  # class weights stay with training
  # EarlyStopping may watch a weighted metric.
  stop = training.EarlyStopping(monitor="val_weighted_accuracy", patience=0, mode="max")
  _, history = training.fit(model, params, x, y, validation_data=(x, y, w), early_stopping=stop, epochs=3, **frozen)
  assert len(history["val_weighted_accuracy"]) == 2


def test_weighted_metrics_over_masked_steps_weigh_the_unmasked_ones():
  """Per-step weights (N, T) on a sequence model with a step mask: the weighted accuracy is over unmasked steps."""
  from jaxnn.layers import Embedding
  from jaxnn.recurrent import SimpleRNN
  tokens = np.array([[1, 2, 0, 0], [3, 1, 2, 0], [2, 2, 2, 3]], np.int32)
  labels = np.array([[0, 1, 0, 0], [1, 1, 0, 1], [0, 1, 1, 0]], np.int32)
  step_w = np.random.default_rng(5).uniform(0.5, 2, (3, 4)).astype(np.float32)
  model = Sequential([Embedding(4, 3, mask_zero=True), SimpleRNN(4, return_sequences=True),
                      Dense(2, activation="softmax")])
  params = model.init(KEY, (4,))
  correct = training.predict(model, params, tokens).argmax(-1) == labels
  keep = (tokens != 0) * step_w
  got = training.evaluate(model, params, tokens, labels, loss="sparse_categorical_crossentropy",
                          weighted_metrics=["accuracy"], sample_weight=step_w, batch_size=2)
  assert got["accuracy"] == pytest.approx(np.sum(correct * keep) / np.sum(keep))
  unweighted = np.sum(correct * (tokens != 0)) / np.sum(tokens != 0)
  assert abs(got["accuracy"] - unweighted) > 1e-3


def test_evaluate_sample_weight_is_keras_sum_over_batch_size():
  """Weighted losses summed and divided by the batch's examples (not by the weights' sum), the batches of the
  epoch weighed by their sizes; the metrics are unweighted."""
  x, y = blobs(n=30)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  w = np.random.default_rng(0).uniform(0, 3, 30).astype(np.float32)
  probs = training.predict(model, params, x)
  ll = -np.log(probs[np.arange(30), y])
  result = training.evaluate(model, params, x, y, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                             batch_size=7, sample_weight=w)
  batches = [slice(i, i + 7) for i in range(0, 30, 7)]
  expected = sum(np.sum(ll[b] * w[b]) for b in batches) / 30
  assert result["loss"] == pytest.approx(expected, rel=1e-5)
  assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(-1) == y))
  unweighted = training.evaluate(model, params, x, y, loss="sparse_categorical_crossentropy", batch_size=7)
  ones = training.evaluate(model, params, x, y, loss="sparse_categorical_crossentropy", batch_size=7,
                           sample_weight=np.ones(30))
  assert ones["loss"] == pytest.approx(unweighted["loss"], rel=1e-6)


def test_evaluate_and_predict_match_numpy():
  x, y = blobs(n=30)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  probs = training.predict(model, params, x, batch_size=7)  # 30 = 4 * 7 + 2: padded last batch
  # Batches of 7 and one of 30 are different matmuls: float32 rounding (1.03e-6 relative on a Zen 3 CPU).
  np.testing.assert_allclose(probs, model.apply(params, x), rtol=1e-5)
  result = training.evaluate(model, params, x, y, loss="sparse_categorical_crossentropy",
                             metrics=["accuracy"], batch_size=7)
  expected_loss = -np.mean(np.log(probs[np.arange(30), y]))
  assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
  assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(-1) == y))
  np.testing.assert_array_equal(training.predict_classes(model, params, x), probs.argmax(-1))


def test_sample_weight_scales_the_loss_like_keras():
  x, y = blobs(n=12)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  kw = dict(loss="sparse_categorical_crossentropy", epochs=2, batch_size=12, verbose=0)
  doubled, _ = training.fit(model, params, x, y, optimizer=optax.sgd(0.1), sample_weight=np.full(12, 2.0), **kw)
  faster, _ = training.fit(model, params, x, y, optimizer=optax.sgd(0.2), **kw)
  assert_trees_close(doubled.params, faster.params, rtol=1e-5, atol=1e-6)


def test_class_weight_equals_the_matching_sample_weight():
  x, y = blobs(n=12)
  model = softmax_regression()
  params = model.init(KEY, (5,))
  kw = dict(loss="sparse_categorical_crossentropy", optimizer=optax.sgd(0.1), epochs=2, batch_size=4,
            verbose=0)
  by_class, _ = training.fit(model, params, x, y, class_weight={0: 3.0, 2: 0.5}, **kw)
  by_sample, _ = training.fit(model, params, x, y, sample_weight=np.array([3.0, 1.0, 0.5])[y], **kw)
  assert_trees_close(by_class.params, by_sample.params, rtol=1e-6)


def test_dropout_training_is_reproducible_from_the_key():
  x, y = blobs()
  model = Sequential([Dense(16, activation="relu"), Dropout(0.5), Dense(3, activation="softmax")])
  params = model.init(KEY, (5,))
  kw = dict(loss="sparse_categorical_crossentropy", epochs=2, batch_size=8, verbose=0)
  a, _ = training.fit(model, params, x, y, key=jax.random.key(1), **kw)
  b, _ = training.fit(model, params, x, y, key=jax.random.key(1), **kw)
  c, _ = training.fit(model, params, x, y, key=jax.random.key(2), **kw)
  assert_trees_close(a.params, b.params, rtol=0, atol=0)
  assert not np.allclose(a.params["dense_0"]["kernel"], c.params["dense_0"]["kernel"])


def test_regularization_is_part_of_the_training_loss():
  x, y = blobs()
  kw = dict(loss="sparse_categorical_crossentropy", optimizer=optax.sgd(0.0), epochs=1, batch_size=64, verbose=0)
  plain = Sequential([Dense(3, activation="softmax")])
  reg = Sequential([Dense(3, activation="softmax", kernel_regularizer="l2")])
  params = plain.init(KEY, (5,))
  _, h_plain = training.fit(plain, params, x, y, **kw)
  _, h_reg = training.fit(reg, params, x, y, **kw)
  penalty = 0.01 * float(jnp.sum(params["dense_0"]["kernel"] ** 2))
  assert h_reg["loss"][0] == pytest.approx(h_plain["loss"][0] + penalty, rel=1e-5)


def test_max_norm_constraint_holds_after_every_update():
  x, y = blobs()
  model = Sequential([Dense(3, activation="softmax", kernel_constraint="max_norm")])
  params = model.init(KEY, (5,))
  state, _ = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy",
                          optimizer=optax.sgd(5.0), epochs=3, batch_size=8, verbose=0)
  norms = np.linalg.norm(np.asarray(state.params["dense_0"]["kernel"]), axis=0)
  assert norms.max() <= 2.0 + 1e-5
  assert norms.max() > 1.9  # the large learning rate pushed it to the bound


def test_lora_training_leaves_the_base_kernel_unchanged():
  x, y = blobs()
  model = Sequential([Dense(3, activation="softmax", lora_rank=2)])
  params = model.init(KEY, (5,))
  state, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy",
                                optimizer="adam", epochs=5, batch_size=8, verbose=0)
  np.testing.assert_array_equal(state.params["dense_0"]["kernel"], params["dense_0"]["kernel"])
  assert not np.array_equal(state.params["dense_0"]["lora_b"], params["dense_0"]["lora_b"])
  assert history["loss"][-1] < history["loss"][0]


def test_early_stopping_stops_and_restores():
  x, y = blobs()
  model = softmax_regression()
  params = model.init(KEY, (5,))
  stop = training.EarlyStopping(monitor="loss", patience=1, min_delta=1e9, restore_best_weights=True)
  state, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", epochs=10,
                                batch_size=8, early_stopping=stop, verbose=0)
  assert history.epoch == [1, 2]  # epoch 1 sets the best; 2 does not improve by 1e9: patience 1 is used up
  assert int(state.step) == 2 * 8


def test_fit_continues_from_a_train_state():
  x, y = blobs()
  model = softmax_regression()
  params = model.init(KEY, (5,))
  kw = dict(loss="sparse_categorical_crossentropy", batch_size=8, verbose=0)
  straight, _ = training.fit(model, params, x, y, epochs=4, **kw)
  half, _ = training.fit(model, params, x, y, epochs=2, **kw)
  resumed, history = training.fit(model, half, x, y, epochs=2, **kw)
  assert history.epoch == [3, 4]
  assert_trees_close(straight.params, resumed.params, rtol=0, atol=0)


def test_progress_lines(capsys):
  x, y = blobs()
  model = softmax_regression()
  params = model.init(KEY, (5,))
  training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=2,
               batch_size=8, validation_split=0.25, verbose=1)
  out = capsys.readouterr().out
  assert "Epoch 2/2 - " in out and " - loss: " in out and " - val_accuracy: " in out
  training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", epochs=2, batch_size=8, verbose=0)
  assert capsys.readouterr().out == ""


@pytest.mark.parametrize("change, message", [
    (dict(batch_size=0), r"batch_size must be an int in \[1, 64\]"),
    (dict(batch_size=65), r"batch_size must be an int in \[1, 64\] \(the number of training examples\), got 65"),
    (dict(epochs=-1), "epochs must be an int >= 0"),
    (dict(x=np.zeros((64, 5), np.uint8)), "got uint8 images; scale them first"),
    (dict(y=np.full(64, 3)), r"labels must be in \[0, 3\) for a model with 3 outputs, found 3"),
    (dict(y=np.zeros(63, np.int32)), "same number of examples, got 64 and 63"),
    (dict(y=np.zeros(64, np.float32)), "expects integer class labels, got dtype float32"),
    (dict(x=np.zeros((0, 5), np.float32), y=np.zeros(0, np.int32)), "the dataset is empty"),
    (dict(validation_split=1.5), r"validation_split must be in \[0, 1\)"),
    (dict(metrics=["acuracy"]), "acuracy"),
])
def test_bad_input_is_a_clear_error_before_compiling(change, message):
  x, y = blobs()
  model = softmax_regression()
  args = dict(x=x, y=y, loss="sparse_categorical_crossentropy", epochs=1, batch_size=8, verbose=0)
  args.update(change)
  with pytest.raises(JaxnnError, match=message):
    training.fit(model, model.init(KEY, (5,)), args.pop("x"), args.pop("y"), **args)
