"""fit_many (K models in one program) against separate fits, compile-once over hyperparameter values, errors;
per-example gradients against a loop of jax.grad."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ckpt_driver
from jaxnn import checkpoint
from jaxnn import losses
from jaxnn import optimizers
from jaxnn import regularizers
from jaxnn import sweep
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense, Dropout
from jaxnn.models import Sequential

LOSS = "sparse_categorical_crossentropy"


def blobs(n=120, d=6, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n).astype(np.int32)
  x = (rng.normal(0, 2, (classes, d))[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
  return x, y


def mlp(rate=0.5, l2=0.0):
  reg = regularizers.L2(l2) if l2 else None
  return Sequential([Dense(8, activation="relu", kernel_regularizer=reg), Dropout(rate),
                     Dense(3, activation="softmax", kernel_regularizer=reg)])


FIT = dict(loss=LOSS, metrics=["accuracy"], epochs=3, batch_size=16, validation_split=0.2, verbose=0)


def test_model_k_equals_a_single_fit_with_its_seed_and_hyperparameters():
  x, y = blobs()
  # Model 0 with every hyperparameter at "off", model 1 with every one on.
  seeds, lrs, wds, l2s, rates = [0, 1], [1e-3, 3e-2], [0.0, 0.2], [0.0, 3e-2], [0.0, 0.4]
  states, histories = sweep.fit_many(mlp(), x, y, seeds=seeds, learning_rate=lrs, weight_decay=wds, l2=l2s,
                                     dropout_rate=rates, **FIT)
  assert len(histories) == 2 and states.epoch.shape == (2,)
  for k, state_k in enumerate(sweep.unstack(states)):
    model = mlp(rates[k], l2s[k])  # the same hyperparameters as static config, as a user would write them
    init_key, fit_key = sweep.seed_keys(seeds[k])
    optimizer = optimizers.OptimizerConfig("adam", learning_rate=lrs[k], weight_decay=wds[k])
    single, history = training.fit(model, model.init(init_key, (6,)), x, y, optimizer=optimizer, key=fit_key, **FIT)
    for a, b in zip(jax.tree_util.tree_leaves(single.params), jax.tree_util.tree_leaves(state_k.params)):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"model {k}")
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
      np.testing.assert_allclose(histories[k][name], history[name], rtol=1e-5, err_msg=f"model {k} {name}")
    assert histories[k].params["seed"] == seeds[k] and histories[k].params["learning_rate"] == lrs[k]
    assert histories[k].params["dropout_rate"] == rates[k] and histories[k].params["models"] == 2
    # Each unstacked state works with evaluate / predict like a fit's.
    assert training.evaluate(model, state_k, x, y, loss=LOSS) == pytest.approx(
        training.evaluate(model, single, x, y, loss=LOSS), rel=1e-5)
  # The models really differ: different seeds and hyperparameters, different params.
  assert not np.allclose(states.params["dense_0"]["kernel"][0], states.params["dense_0"]["kernel"][1])


def test_validation_weights_weigh_each_models_val_loss_and_weighted_metrics_as_in_fit():
  x, y = blobs()
  w = np.random.default_rng(3).uniform(0, 3, 24).astype(np.float32)
  fit = dict(FIT, validation_split=0.0, validation_data=(x[96:], y[96:], w), weighted_metrics=["accuracy"])
  _, histories = sweep.fit_many(mlp(0.0), x[:96], y[:96], seeds=[0, 1], **fit)
  for k in range(2):
    init_key, fit_key = sweep.seed_keys(k)
    _, history = training.fit(mlp(0.0), mlp(0.0).init(init_key, (6,)), x[:96], y[:96], key=fit_key, **fit)
    for name in ("val_loss", "val_accuracy", "val_weighted_accuracy", "weighted_accuracy"):
      np.testing.assert_allclose(histories[k][name], history[name], rtol=1e-5, err_msg=f"model {k} {name}")
    # No training weights: the weighted training accuracy is the plain one.
    np.testing.assert_array_equal(histories[k]["weighted_accuracy"], histories[k]["accuracy"])
  assert np.abs(np.subtract(histories[0]["val_weighted_accuracy"], histories[0]["val_accuracy"])).max() > 1e-3
  _, unweighted = sweep.fit_many(mlp(0.0), x[:96], y[:96], seeds=[0, 1], **dict(fit, validation_data=(x[96:], y[96:])))
  assert abs(unweighted[0]["val_loss"][-1] - histories[0]["val_loss"][-1]) > 1e-3


COMPILES = []
# XLA compilations, counted through jax.monitoring (a listener cannot be removed, so it is registered once).
jax.monitoring.register_event_duration_secs_listener(
    lambda event, *_, **__: COMPILES.append(1) if event == "/jax/core/compile/backend_compile_duration" else None)


def test_new_hyperparameter_values_do_not_recompile():
  x, y = blobs()

  def compiles_of(seeds, lr, wd, l2, rate):
    sweep.fit_many(mlp(), x, y, seeds=seeds, learning_rate=lr, weight_decay=wd, l2=l2, dropout_rate=rate,
                   **dict(FIT, epochs=1, validation_split=0.0))
    COMPILES.clear()  # the first call warms up the small helper programs (init, ...) as well
    sweep.fit_many(mlp(), x, y, seeds=seeds[::-1], learning_rate=lr[::-1], weight_decay=wd, l2=l2,
                   dropout_rate=rate, **dict(FIT, epochs=1, validation_split=0.0))
    return len(COMPILES)

  assert compiles_of([0, 1], [1e-3, 1e-2], [0.0, 0.1], [0.0, 1e-3], [0.1, 0.2]) == 0  # new values: same programs
  COMPILES.clear()
  sweep.fit_many(mlp(), x, y, seeds=[0, 1, 2], learning_rate=[1e-3, 1e-2, 0.1], weight_decay=[0.0, 0.1, 0.2],
                 l2=[0.0, 1e-3, 0.1], dropout_rate=[0.1, 0.2, 0.3], **dict(FIT, epochs=1, validation_split=0.0))
  assert len(COMPILES) > 0  # a new number of models is a new program (the counter does count)


def test_shared_seed_and_data_order_single_values_broadcast():
  # One seed for all models (same initial params), one dropout rate for all, and data_seed: every model sees
  # the batches `fit(key=jax.random.key(data_seed))` sees. Without dropout the run key does nothing else,
  # so model k is that fit with model k's learning rate.
  x, y = blobs()
  fit = dict(FIT, validation_split=0.0)
  states, histories = sweep.fit_many(mlp(0.3), x, y, seeds=7, learning_rate=[1e-2, 3e-2], dropout_rate=0.0,
                                     data_seed=11, **fit)
  assert [h.params["seed"] for h in histories] == [7, 7]
  assert [h.params["dropout_rate"] for h in histories] == [0.0, 0.0]
  assert [h["learning_rate"][-1] for h in histories] == pytest.approx([1e-2, 3e-2])
  single, _ = training.fit(mlp(0.0), mlp().init(sweep.seed_keys(7)[0], (6,)), x, y, key=jax.random.key(11),
                           optimizer=optimizers.OptimizerConfig("adam", learning_rate=3e-2), **fit)
  for a, b in zip(jax.tree_util.tree_leaves(single.params), jax.tree_util.tree_leaves(states.params)):
    np.testing.assert_allclose(b[1], a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(b[0], a)  # model 0 (another learning rate) went elsewhere


def test_a_diverging_model_turns_nan_alone():
  """fit_many has no NaN guard: a model whose learning rate blows it up reports a NaN loss, and the models beside
  it train to the bit as they do beside a model that stays finite (vmap keeps the K runs apart)."""
  x, y = blobs()
  fit = dict(FIT, validation_split=0.0, optimizer="sgd")
  states, histories = sweep.fit_many(mlp(0.0), x, y, seeds=[0, 1, 2], learning_rate=[0.05, 1e30, 0.1], **fit)
  calm, calm_histories = sweep.fit_many(mlp(0.0), x, y, seeds=[0, 1, 2], learning_rate=[0.05, 0.2, 0.1], **fit)
  assert not np.isfinite(histories[1]["loss"][-1]) and np.isfinite(calm_histories[1]["loss"][-1])
  for k in (0, 2):
    assert np.all(np.isfinite(histories[k]["loss"])) and histories[k]["loss"] == calm_histories[k]["loss"]
    for a, b in zip(jax.tree_util.tree_leaves(states.params), jax.tree_util.tree_leaves(calm.params)):
      assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes(), f"model {k}"


def test_lion_sweeps_weight_decay_from_none():
  # Lion decays inside optax's alias (adam, above, through a chained step); its default has no decay term,
  # so one is built in when the decay is swept.
  x, y = blobs()
  fit = dict(FIT, validation_split=0.0)
  states, _ = sweep.fit_many(mlp(0.0), x, y, optimizer="lion", weight_decay=[0.0, 0.5], **fit)
  single, _ = training.fit(mlp(0.0), mlp().init(sweep.seed_keys(0)[0], (6,)), x, y, key=sweep.seed_keys(0)[1],
                           optimizer=optimizers.OptimizerConfig("lion", weight_decay=0.5), **fit)
  for a, b in zip(jax.tree_util.tree_leaves(single.params), jax.tree_util.tree_leaves(states.params)):
    np.testing.assert_allclose(b[1], a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seeds=[0, 1], learning_rate=[1e-3, 1e-2, 0.1]),
     "fit_many: per-model sequences must have one length (the number of models), got {'seeds': 2, 'learning_rate': 3}"),
    (dict(learning_rate=-1.0), "fit_many: learning_rate values must be in [0.0, inf), found -1.0"),
    (dict(dropout_rate=[0.5, 1.0]), "fit_many: dropout_rate values must be in [0.0, 1.0), found 1.0"),
    (dict(l2="big"), "fit_many: l2 must be a number or a sequence of numbers, got 'big'"),
    (dict(l2=[[0.1]]), "fit_many: l2 must be a number or a non-empty 1-D sequence, got shape (1, 1)"),
    (dict(seeds=[0.5]), "fit_many: seeds must be an int or a non-empty sequence of ints, got [0.5]"),
    (dict(seeds=[-1]), "fit_many: seeds must be in [0, 2**31), got [-1]"),
    (dict(learning_rate=[1e-3], optimizer=optimizers.OptimizerConfig("adam", schedule={
        "name": "cosine_decay", "initial_learning_rate": 1e-3, "decay_steps": 10})),
     "fit_many: the optimizer holds no 'learning_rate' to set per model"),
    (dict(batch_size=0), "fit_many: batch_size must be an int in [1, 96]"),
    (dict(data_seed=1.5), "fit_many: data_seed must be None or an int in [0, 2**31), got 1.5"),
    (dict(checkpoint="ckpts"), "fit_many: checkpoint must be a jaxnn.Checkpointing or None, got 'ckpts'"),
    (dict(validation_split=0.0, validation_data=(np.zeros((4, 6), np.float32),)),
     "fit_many: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight_val), got a tuple of length 1"),
    (dict(validation_split=0.0, validation_data=(np.zeros((4, 6), np.float32), np.zeros(4, np.int32), np.ones(5))),
     "validation_data: sample_weight must have shape (4,), one weight per example, got (5,)"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
  x, y = blobs()
  with pytest.raises(JaxnnError) as e:
    sweep.fit_many(mlp(), x, y, **{**FIT, **kwargs})
  assert str(e.value).startswith(message)


def test_dropout_rate_needs_a_dropout_layer():
  x, y = blobs()
  with pytest.raises(JaxnnError, match="fit_many: dropout_rate is set but sequential has no Dropout layer"):
    sweep.fit_many(Sequential([Dense(3, activation="softmax")]), x, y, dropout_rate=[0.1, 0.2], **FIT)
  with pytest.raises(JaxnnError, match="unstack: expected a stacked TrainState"):
    model = Sequential([Dense(3)])
    sweep.unstack(training.create_train_state(model, model.init(jax.random.key(0), (6,))))


# --------------------------------------------------------------------------------------------- checkpoints
# Three models with their own seeds, learning rates and dropout rates: a resume that mixed up the models, lost
# their optimizer moments, keys or swept values would not end at the same bytes.
SWEPT = dict(FIT, epochs=4, seeds=[0, 1, 2], learning_rate=[1e-3, 1e-2, 3e-2], dropout_rate=[0.0, 0.2, 0.4])


def fit_many_checkpointed(directory, *, resume=False, **kwargs):
  x, y = blobs()
  return sweep.fit_many(mlp(), x, y, **{**SWEPT, **kwargs},
                        checkpoint=checkpoint.Checkpointing(str(directory), every=1, keep=None, resume=resume))


def test_fit_many_interrupted_then_resumed_is_bit_exact(tmp_path, monkeypatch, interrupt_after_save):
  x, y = blobs()
  reference, reference_histories = sweep.fit_many(mlp(), x, y, **SWEPT)
  with interrupt_after_save(lambda directory, state: int(state.epoch[0]) == 2):
    fit_many_checkpointed(tmp_path)
  assert sorted(os.listdir(tmp_path)) == ["ckpt_00000001.msgpack", "ckpt_00000002.msgpack"]

  saved_epochs = []

  save = checkpoint.save

  def recording_save(directory, state, **kwargs):
    saved_epochs.append(int(state.epoch[0]))
    return save(directory, state, **kwargs)

  with monkeypatch.context() as m:
    m.setattr(checkpoint, "save", recording_save)
    states, histories = fit_many_checkpointed(tmp_path, resume=True)
  assert saved_epochs == [3, 4]  # it continued from epoch 2, it did not start over
  assert ckpt_driver.state_bytes(states) == ckpt_driver.state_bytes(reference)  # all K models, byte for byte
  for k, (history, expected) in enumerate(zip(histories, reference_histories)):
    assert history.epoch == [1, 2, 3, 4], k
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
      assert history[name] == expected[name], (k, name)  # bit-equal floats, epochs 1-2 from the checkpoint
    assert history.params == expected.params

  # Finished: resuming again trains nothing and writes nothing.
  written = {p: os.stat(p).st_mtime_ns for p in checkpoint.checkpoints(str(tmp_path))}
  assert len(written) == 4
  again, again_histories = fit_many_checkpointed(tmp_path, resume=True)
  assert {p: os.stat(p).st_mtime_ns for p in written} == written
  assert ckpt_driver.state_bytes(again) == ckpt_driver.state_bytes(reference)
  assert [h["loss"] for h in again_histories] == [h["loss"] for h in reference_histories]


def test_fit_many_refuses_a_checkpoint_of_other_models_or_values(tmp_path):
  fit_many_checkpointed(tmp_path, epochs=1)
  refused = [
      (dict(seeds=[0, 1], learning_rate=[1e-3, 1e-2], dropout_rate=[0.0, 0.2]),
       "written by a run with models=3, this run has models=2"),
      (dict(seeds=[0, 1, 5]), "written by a run with seeds=[0, 1, 2], this run has seeds=[0, 1, 5]"),
      (dict(learning_rate=[1e-3, 1e-2, 0.1]),
       "written by a run with learning_rate=[0.001, 0.01, 0.03], this run has learning_rate=[0.001, 0.01, 0.1]"),
      (dict(l2=1e-3), "written by a run with l2=None, this run has l2=[0.001, 0.001, 0.001]"),
      (dict(data_seed=3), "written by a run with data_seed=None, this run has data_seed=3"),
  ]
  path = checkpoint.latest(str(tmp_path))
  for change, message in refused:
    with pytest.raises(checkpoint.CheckpointError) as e:
      fit_many_checkpointed(tmp_path, resume=True, **change)
    assert str(e.value).startswith(f"checkpoint {path}: {message}; resuming would not continue the same run"), change
  assert checkpoint.checkpoints(str(tmp_path)) == [path]  # refused runs leave the checkpoint alone
  # A single fit's checkpoint is not a sweep's either.
  model, (x, y) = mlp(), blobs()
  training.fit(model, model.init(jax.random.key(0), (6,)), x, y, **dict(FIT, epochs=1),
               checkpoint=checkpoint.Checkpointing(str(tmp_path / "single")))
  with pytest.raises(checkpoint.CheckpointError, match="written by a run without data_seed"):
    fit_many_checkpointed(tmp_path / "single", resume=True)


# --------------------------------------------------------------------------------------------- per-example
def test_per_example_grads_equal_a_loop_and_average_to_the_batch_gradient():
  x, y = blobs(n=10)
  model = mlp()
  params = model.init(jax.random.key(3), (6,))
  loss = losses.get(LOSS)
  grads = sweep.per_example_grads(model, params, x, y, loss=LOSS)
  assert grads["dense_0"]["kernel"].shape == (10, 6, 8)
  grad_one = jax.jit(jax.grad(lambda p, x_1, y_1: loss(y_1, model.apply(p, x_1))))
  for i in range(len(x)):
    one = grad_one(params, x[i:i + 1], y[i:i + 1])
    for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(grads)):
      np.testing.assert_allclose(b[i], a, rtol=1e-5, atol=1e-7)
  batch = jax.jit(jax.grad(lambda p: loss(y, model.apply(p, x))))(params)
  for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(grads)):
    np.testing.assert_allclose(np.mean(b, axis=0), a, rtol=1e-5, atol=1e-7)
  norms = sweep.per_example_grad_norms(model, params, x, y, loss=LOSS, batch_size=3)  # chunks of 3, last short
  flat = np.concatenate([np.reshape(g, (10, -1)) for g in jax.tree_util.tree_leaves(grads)], axis=1)
  assert norms.shape == (10,)
  np.testing.assert_allclose(norms, np.linalg.norm(flat, axis=1), rtol=1e-5)
  assert np.all(norms > 0)


def test_per_example_grads_take_a_train_state_and_check_inputs():
  x, y = blobs(n=4)
  model = Sequential([Dense(3, activation="softmax")])
  params = model.init(jax.random.key(0), (6,))
  state = training.create_train_state(model, params)
  np.testing.assert_array_equal(sweep.per_example_grads(model, state, x, y, loss=LOSS)["dense_0"]["bias"],
                                sweep.per_example_grads(model, params, x, y, loss=LOSS)["dense_0"]["bias"])
  with pytest.raises(JaxnnError, match="per_example_grads: x and y must have the same number of examples"):
    sweep.per_example_grads(model, params, x, y[:3], loss=LOSS)
  with pytest.raises(JaxnnError, match="per_example_grad_norms: batch_size must be a positive int, got 0"):
    sweep.per_example_grad_norms(model, params, x, y, loss=LOSS, batch_size=0)
  assert jnp.allclose(sweep.per_example_grads(model, params, x, y, loss=LOSS)["dense_0"]["bias"].sum(-1), 0,
                      atol=1e-6)  # softmax crossentropy: each example's bias gradient sums to zero
