"""Sequential: params layout, summary, forward pass, penalties, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense, Dropout, Flatten
from jaxnn.models import Sequential

KEY = jax.random.key(0)


def mlp():
  return Sequential([Flatten(), Dense(128, activation="relu"), Dropout(0.2), Dense(10, activation="softmax")])


def test_params_are_a_plain_dict_with_readable_names():
  params = mlp().init(KEY, (28, 28))
  assert type(params) is dict
  assert sorted(params) == ["dense_0", "dense_1"]
  assert params["dense_0"]["kernel"].shape == (784, 128)
  assert params["dense_1"]["bias"].shape == (10,)


def test_init_is_deterministic_in_the_key():
  a, b, c = (mlp().init(k, (28, 28)) for k in (KEY, KEY, jax.random.key(1)))
  np.testing.assert_array_equal(a["dense_0"]["kernel"], b["dense_0"]["kernel"])
  assert not np.array_equal(a["dense_0"]["kernel"], c["dense_0"]["kernel"])


def _every_initializer_model():
  from jaxnn import initializers
  from jaxnn.recurrent import LSTM
  from jaxnn.convolutional import Reshape
  layers = [Dense(6, kernel_initializer=name, bias_initializer="zeros" if name in ("identity", "orthogonal") else name)
            for name in initializers.names()]
  return Sequential([*layers, Reshape((2, 3)), LSTM(4)])  # LSTM: orthogonal recurrent kernels (QR)


def test_init_program_values_equal_a_fully_optimized_compile():
  # Sequential.init compiles with ONE_SHOT_COMPILER_OPTIONS (less LLVM optimization: start-up); its values
  # must be the bits XLA's default optimization gives, for every initializer. (Optimization level 0 fails this:
  # no fused multiply-adds.)
  from jaxnn import models
  model = _every_initializer_model()
  got = model.init(KEY, (6,))
  want = jax.jit(model._init, static_argnums=0).lower((6,), KEY).compile()(KEY)
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree_util.tree_leaves(want)):
    assert g.dtype == w.dtype and np.array_equal(g, w), jax.tree_util.keystr(path)
  assert models.ONE_SHOT_COMPILER_OPTIONS  # the test compares two different compiles


def test_init_inside_a_callers_jit_and_vmap():
  model = Sequential([Dense(4, activation="relu"), Dense(2)])
  want = model.init(KEY, (3,))
  traced_key = jax.jit(lambda k: model.init(k, (3,)))(KEY)
  closed_over_key = jax.jit(lambda: model.init(KEY, (3,)))()
  raw_key = model.init(jax.random.key_data(KEY), (3,))
  stacked = jax.vmap(lambda k: model.init(k, (3,)))(jnp.stack([KEY, KEY]))
  for got in (traced_key, closed_over_key, raw_key, jax.tree_util.tree_map(lambda a: a[1], stacked)):
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)


def test_apply_shapes_and_probabilities():
  model = mlp()
  params = model.init(KEY, (28, 28))
  probs = model.apply(params, jnp.ones((4, 28, 28)))
  assert probs.shape == (4, 10)
  np.testing.assert_allclose(probs.sum(-1), np.ones(4), rtol=1e-5)


def test_apply_equals_composing_the_layers_by_hand():
  model = Sequential([Dense(5, activation="tanh"), Dense(2)])
  params = model.init(KEY, (3,))
  x = jax.random.normal(KEY, (4, 3))
  h = jnp.tanh(x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"])
  np.testing.assert_allclose(model.apply(params, x), h @ params["dense_1"]["kernel"] + params["dense_1"]["bias"],
                             rtol=1e-6, atol=1e-6)


def test_dropout_only_when_training():
  model = mlp()
  params = model.init(KEY, (28, 28))
  x = jnp.ones((2, 28, 28))
  np.testing.assert_array_equal(model.apply(params, x), model.apply(params, x, key=KEY))
  train_a = model.apply(params, x, training=True, key=KEY)
  train_b = model.apply(params, x, training=True, key=jax.random.key(5))
  assert not np.allclose(train_a, train_b)
  with pytest.raises(JaxnnError, match="needs a PRNG key"):
    model.apply(params, x, training=True)


def test_summary_counts_parameters():
  text = mlp().summary((28, 28))
  assert "dense_0 (Dense)" in text and "(None, 128)" in text and "100,480" in text
  assert "Total params: 101,770" in text
  assert "Trainable params: 101,770" in text
  lora = Sequential([Dense(10, lora_rank=2)])
  text = lora.summary((784,))
  # kernel 7,840 frozen; bias 10 + lora 784*2 + 2*10 trainable
  assert "Non-trainable params: 7,840" in text and "Trainable params: 1,598" in text


def test_model_regularization_sums_the_layers():
  model = Sequential([Dense(2, kernel_regularizer="l2", kernel_initializer="ones"),
                      Dense(1, kernel_regularizer="l1", kernel_initializer="ones")])
  params = model.init(KEY, (3,))
  assert float(model.regularization(params)) == pytest.approx(0.01 * 6 + 0.01 * 2)


def test_activity_penalty_from_forward():
  model = Sequential([Dense(2, kernel_initializer="ones", activity_regularizer="l2")])
  params = model.init(KEY, (3,))
  out, aux = model.forward(params, jnp.ones((4, 3)))
  np.testing.assert_allclose(out, np.full((4, 2), 3.0))
  assert float(aux["activity_penalty"]) == pytest.approx(0.01 * 9 * 8 / 4)
  assert aux["state"] == {} and model.init_state((3,)) == {}


def test_bad_models_and_shapes():
  with pytest.raises(JaxnnError, match="at least one layer"):
    Sequential([])
  with pytest.raises(JaxnnError, match="layer 1 must be a jaxnn layer, got str"):
    Sequential([Dense(2), "relu"])
  with pytest.raises(JaxnnError, match="input_shape: expected a tuple of positive ints"):
    mlp().init(KEY, (0, 28))
  params = Sequential([Dense(2)]).init(KEY, (3,))
  with pytest.raises(JaxnnError, match="expected inputs with last axis 3"):
    Sequential([Dense(2)]).apply(params, jnp.ones((1, 4)))


def test_config_describes_the_architecture():
  cfg = mlp().config()
  assert [l["type"] for l in cfg["layers"]] == ["Flatten", "Dense", "Dropout", "Dense"]
  assert cfg["layers"][1] == {"name": "dense_0", "type": "Dense", "units": 128, "activation": "relu"}
