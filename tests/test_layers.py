"""Dense / Dropout / Flatten: forward values by hand, penalties, constraints, LoRA, gradients, errors."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from jaxnn import regularizers
from jaxnn.errors import JaxnnError
from jaxnn.layers import Activation, Dense, Dropout, Flatten

KEY = jax.random.key(0)


def test_dense_forward_is_x_kernel_plus_bias_then_activation():
  layer = Dense(3, activation="relu")
  params, out_shape = layer.init(KEY, (4,))
  assert out_shape == (3,)
  assert params["kernel"].shape == (4, 3) and params["bias"].shape == (3,)
  params = {"kernel": jnp.arange(12.0).reshape(4, 3) - 6.0, "bias": jnp.array([1.0, -100.0, 0.5])}
  x = jnp.array([[1.0, 0.0, 2.0, -1.0]])
  # x @ W = row0 + 2*row2 - row3 = [-6,-5,-4] + 2*[0,1,2] - [3,4,5] = [-9,-7,-5]
  expected = np.maximum(np.array([[-9.0, -7.0, -5.0]]) + np.array([1.0, -100.0, 0.5]), 0.0)
  np.testing.assert_allclose(layer.apply(params, x), expected)


def test_dense_without_bias_and_with_initializers():
  layer = Dense(2, use_bias=False, kernel_initializer="ones")
  params, _ = layer.init(KEY, (3,))
  assert set(params) == {"kernel"}
  np.testing.assert_allclose(layer.apply(params, jnp.ones((5, 3))), np.full((5, 2), 3.0))
  params, _ = Dense(2, bias_initializer="ones").init(KEY, (3,))
  np.testing.assert_allclose(params["bias"], [1.0, 1.0])


def test_dense_glorot_uniform_default_bounds():
  params, _ = Dense(300).init(KEY, (200,))
  limit = np.sqrt(6.0 / (200 + 300))
  kernel = np.asarray(params["kernel"])
  assert kernel.min() >= -limit and kernel.max() <= limit
  assert kernel.std() == pytest.approx(limit / np.sqrt(3.0), rel=0.02)
  np.testing.assert_array_equal(params["bias"], np.zeros(300))


def test_dense_penalties_by_hand():
  layer = Dense(2, kernel_regularizer=regularizers.L2(0.1), bias_regularizer=regularizers.L1(0.5),
                activity_regularizer=regularizers.L1(0.01))
  params = {"kernel": jnp.array([[1.0, -2.0], [3.0, 0.0]]), "bias": jnp.array([-1.0, 2.0])}
  # 0.1 * (1 + 4 + 9) + 0.5 * (1 + 2)
  assert float(layer.regularization(params)) == pytest.approx(0.1 * 14 + 0.5 * 3)
  outputs = jnp.array([[1.0, -2.0], [0.5, 0.5]])
  # Keras divides the activity penalty by the batch size: 0.01 * 4 / 2
  assert float(layer.activity_penalty(outputs)) == pytest.approx(0.02)


def test_dense_constraints_project_after_update():
  layer = Dense(2, kernel_constraint="non_neg", bias_constraint=None)
  params = {"kernel": jnp.array([[1.0, -2.0], [-3.0, 4.0]]), "bias": jnp.array([-1.0, 2.0])}
  out = layer.constrain(params)
  np.testing.assert_allclose(out["kernel"], [[1.0, 0.0], [0.0, 4.0]])
  np.testing.assert_allclose(out["bias"], [-1.0, 2.0])  # no bias constraint: unchanged


def test_lora_starts_from_the_base_layer_and_freezes_the_kernel():
  layer = Dense(4, lora_rank=2)
  params, _ = layer.init(KEY, (6,))
  assert params["lora_a"].shape == (6, 2) and params["lora_b"].shape == (2, 4)
  x = jax.random.normal(jax.random.key(1), (3, 6))
  base = Dense(4)
  np.testing.assert_allclose(layer.apply(params, x), base.apply({k: params[k] for k in ("kernel", "bias")}, x))
  assert layer.trainable(params) == {"kernel": False, "bias": True, "lora_a": True, "lora_b": True}
  grads = jax.grad(lambda p: jnp.sum(layer.apply(p, x) ** 2))(params)
  np.testing.assert_array_equal(grads["kernel"], np.zeros((6, 4)))  # stop_gradient: frozen base


def test_lora_kernel_regularizer_penalizes_the_factors_not_the_frozen_kernel():
  """As Keras: the regularizer is on the trainable factors; the frozen kernel carries no penalty."""
  from jaxnn.models import Sequential
  layer = Dense(3, lora_rank=2, kernel_regularizer=regularizers.L2(0.5), bias_regularizer=regularizers.L1(2.0))
  params = {"kernel": jnp.full((4, 3), 10.0), "bias": jnp.array([1.0, -2.0, 0.0]),
            "lora_a": jnp.arange(8.0).reshape(4, 2), "lora_b": jnp.ones((2, 3))}
  expected = 0.5 * (np.sum(np.arange(8.0) ** 2) + 6.0) + 2.0 * 3.0
  assert float(layer.regularization(params)) == pytest.approx(expected)
  # fit_many's traced l2 adds l2 * this sum: the same arrays.
  model = Sequential([Dense(3, lora_rank=2)])
  assert float(model.kernel_sum_of_squares({"dense_0": params})) == pytest.approx(np.sum(np.arange(8.0) ** 2) + 6.0)


def test_lora_alpha_scales_the_update():
  params = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2), "lora_a": jnp.eye(2), "lora_b": jnp.eye(2)}
  x = jnp.array([[1.0, 2.0]])
  np.testing.assert_allclose(Dense(2, lora_rank=2).apply(params, x), [[1.0, 2.0]])  # alpha = rank
  np.testing.assert_allclose(Dense(2, lora_rank=2, lora_alpha=8.0).apply(params, x), [[4.0, 8.0]])


def test_dense_gradients_match_finite_differences():
  layer = Dense(3, activation="tanh", kernel_regularizer="l2")
  params, _ = layer.init(KEY, (4,))
  x = jax.random.normal(jax.random.key(2), (5, 4))
  with jax.enable_x64(True):
    params64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    x64 = jnp.asarray(x, jnp.float64)
    f = lambda p: jnp.sum(layer.apply(p, x64) ** 2) + layer.regularization(p)
    jax.test_util.check_grads(f, (params64,), order=2, modes=["fwd", "rev"])


def test_dropout_drops_the_given_fraction_and_rescales():
  layer = Dropout(0.3)
  x = jnp.ones((200, 500))
  y = np.asarray(layer.apply({}, x, training=True, key=KEY))
  dropped = np.mean(y == 0.0)
  assert dropped == pytest.approx(0.3, abs=0.01)
  np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / 0.7], rtol=1e-6)
  assert y.mean() == pytest.approx(1.0, abs=0.02)  # inverted dropout keeps the expectation
  np.testing.assert_array_equal(layer.apply({}, x, training=False), x)  # identity at inference


def test_dropout_needs_a_key_when_training():
  with pytest.raises(JaxnnError, match="needs a PRNG key"):
    Dropout(0.5).apply({}, jnp.ones((2, 2)), training=True)


def test_flatten_and_activation_layers():
  assert Flatten().output_shape((28, 28)) == (784,)
  assert Flatten().apply({}, jnp.ones((2, 3, 4))).shape == (2, 12)
  np.testing.assert_allclose(Activation("relu").apply({}, jnp.array([-1.0, 2.0])), [0.0, 2.0])


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, "units must be a positive int, got 0"),
    ({"units": 2.5}, "units must be a positive int"),
    ({"units": 2, "lora_rank": 0}, "lora_rank must be a positive int"),
    ({"units": 2, "lora_rank": 1, "kernel_constraint": "non_neg"},
     r"Dense\(2\): kernel_constraint cannot be combined with lora_rank .* got kernel_constraint='non_neg'"),
])
def test_dense_bad_arguments(kwargs, message):
  with pytest.raises(JaxnnError, match=message):
    Dense(**kwargs)


def test_unknown_names_fail_at_construction_listing_valid_names():
  with pytest.raises(JaxnnError, match="relu") as e:
    Dense(2, activation="rleu")
  assert "rleu" in str(e.value)
  with pytest.raises(JaxnnError, match="glorot_uniform"):
    Dense(2, kernel_initializer="glorot")


def test_dropout_bad_rate():
  for rate in (1.0, -0.1, "0.5"):
    with pytest.raises(JaxnnError, match="rate must be a float in \\[0, 1\\)"):
      Dropout(rate)


def test_dense_input_mismatch_names_the_layer_and_shapes():
  params, _ = Dense(3).init(KEY, (4,))
  with pytest.raises(JaxnnError, match=r"Dense\(3\): expected inputs with last axis 4, got shape \(2, 5\)"):
    Dense(3).apply(params, jnp.ones((2, 5)))


def test_layers_are_hashable_configs():
  assert hash(Dense(3, activation="relu")) == hash(Dense(3, activation="relu"))
  assert Dense(3) != Dense(4)
  assert Dense(3, kernel_regularizer="l2").config() == {"units": 3, "kernel_regularizer": {"name": "l2", "l2": 0.01}}
