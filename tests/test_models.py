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
