"""Tests for jaxnn.activations: hand values, ranges, derivatives, name resolution."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnn import activations
from jaxnn.errors import JaxnnError

X = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])

# (name, x, expected) worked out by hand from the definitions.
HAND_VALUES = [
    ("linear", -1.5, -1.5),
    ("sigmoid", 0.0, 0.5),
    ("sigmoid", math.log(3.0), 0.75),
    ("tanh", 0.0, 0.0),
    ("tanh", math.log(2.0), 0.6),  # (4 - 1) / (4 + 1)
    ("relu", -1.0, 0.0),
    ("relu", 2.5, 2.5),
    ("relu6", 7.0, 6.0),
    ("relu6", 3.0, 3.0),
    ("step", -0.1, 0.0),
    ("step", 0.0, 1.0),
    ("step", 3.0, 1.0),
    ("leaky_relu", -1.0, -0.2),  # Keras 3 default negative_slope 0.2.
    ("leaky_relu", 2.0, 2.0),
    ("elu", -1.0, math.exp(-1.0) - 1.0),
    ("elu", 2.0, 2.0),
    ("selu", 1.0, 1.0507009873554805),
    ("selu", -1.0, 1.0507009873554805 * 1.6732632423543772 * (math.exp(-1.0) - 1.0)),
    ("gelu", 1.0, 0.8413447460685429),  # x * Phi(x), exact erf form.
    ("gelu", -1.0, -0.15865525393145707),
    ("silu", 1.0, 1.0 / (1.0 + math.exp(-1.0))),
    ("swish", 1.0, 1.0 / (1.0 + math.exp(-1.0))),
    ("softplus", 0.0, math.log(2.0)),
    ("softsign", 1.0, 0.5),
    ("softsign", -3.0, -0.75),
    ("hard_sigmoid", 0.0, 0.5),  # relu6(x + 3) / 6
    ("hard_sigmoid", 1.5, 0.75),
    ("hard_sigmoid", -3.0, 0.0),
    ("hard_sigmoid", 4.0, 1.0),
    ("exponential", 1.0, math.e),
    ("mish", 1.0, math.tanh(math.log1p(math.e))),
    ("log_sigmoid", 0.0, -math.log(2.0)),
]


@pytest.mark.parametrize("name,x,expected", HAND_VALUES)
def test_hand_values(name, x, expected):
  out = activations.get(name)(jnp.array([x]))
  np.testing.assert_allclose(out, [expected], rtol=1e-6, atol=1e-7)


def test_softmax_hand_values_and_axis():
  x = jnp.array([[0.0, math.log(3.0)], [1.0, 1.0]])
  np.testing.assert_allclose(activations.get("softmax")(x), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-6)
  np.testing.assert_allclose(activations.Softmax(axis=0)(x).sum(axis=0), [1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(
      activations.get("log_softmax")(x), np.log([[0.25, 0.75], [0.5, 0.5]]), rtol=1e-6
  )


def test_ranges():
  x = jnp.linspace(-10.0, 10.0, 201)
  s = activations.get("sigmoid")(x)
  assert bool(jnp.all((s > 0) & (s < 1)))
  t = activations.get("tanh")(jnp.linspace(-5.0, 5.0, 101))
  assert bool(jnp.all((t > -1) & (t < 1)))
  np.testing.assert_array_equal(activations.get("relu")(x), np.maximum(0.0, np.asarray(x)))
  h = activations.get("hard_sigmoid")(x)
  assert bool(jnp.all((h >= 0) & (h <= 1)))


def test_step_values_dtype_and_zero_gradient():
  np.testing.assert_array_equal(activations.step(X), [0.0, 0.0, 1.0, 1.0, 1.0])
  assert activations.step(X.astype(jnp.bfloat16)).dtype == jnp.bfloat16
  assert activations.step(jnp.array([-1, 0, 1])).dtype == jnp.float32
  grads = jax.vmap(jax.grad(activations.step))(X)
  np.testing.assert_array_equal(grads, np.zeros(5))


@pytest.mark.parametrize("x", [-2.0, -0.3, 0.4, 1.7])
def test_derivatives_match_closed_forms(x):
  def grad(name):
    return float(jax.grad(activations.get(name))(x))

  s = 1.0 / (1.0 + math.exp(-x))
  t = math.tanh(x)
  np.testing.assert_allclose(grad("sigmoid"), s * (1.0 - s), rtol=1e-5)
  np.testing.assert_allclose(grad("tanh"), 1.0 - t * t, rtol=1e-5)
  np.testing.assert_allclose(grad("relu"), 1.0 if x > 0 else 0.0)
  np.testing.assert_allclose(grad("linear"), 1.0)
  np.testing.assert_allclose(grad("leaky_relu"), 1.0 if x > 0 else 0.2)
  np.testing.assert_allclose(grad("softplus"), s, rtol=1e-5)
  np.testing.assert_allclose(grad("exponential"), math.exp(x), rtol=1e-5)
  np.testing.assert_allclose(grad("silu"), s + x * s * (1.0 - s), rtol=1e-5)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "softsign", "elu", "selu", "gelu", "silu", "mish"])
def test_gradients_match_finite_differences(name):
  # Points away from 0, where elu/selu have a kink in the second derivative.
  check_grads(activations.get(name), (jnp.array([-1.3, -0.4, 0.6, 1.9]),), order=1, modes=["rev"])


def test_softmax_gradients_match_finite_differences():
  check_grads(activations.get("softmax"), (jnp.array([[0.1, -0.7, 1.2]]),), order=1, modes=["rev"])


def test_get_none_callable_and_keras_class_names():
  assert activations.get(None) is activations.linear
  custom = lambda x: 2 * x  # noqa: E731
  assert activations.get(custom) is custom
  assert activations.get("ReLU") is activations.get("relu")
  assert activations.get("LeakyReLU") == activations.LeakyReLU(negative_slope=0.2)
  assert activations.get("swish") is activations.get("silu")
  assert activations.get("gelu") == activations.GELU(approximate=False)


def test_hashable_equal_and_serialize_round_trip():
  for name in activations.names():
    act = activations.get(name)
    assert hash(act) == hash(activations.get(name))
    assert act == activations.get(name)
    assert activations.get(activations.serialize(act)) == act
  assert activations.serialize(activations.get("relu")) == "relu"
  assert activations.serialize(activations.get("softmax")) == {"name": "softmax", "axis": -1}
  leaky = activations.get({"name": "leaky_relu", "negative_slope": 0.1})
  assert leaky == activations.LeakyReLU(0.1) and leaky != activations.LeakyReLU()
  np.testing.assert_allclose(leaky(jnp.array([-2.0])), [-0.2], rtol=1e-6)

  def my_act(x):
    return x

  assert activations.serialize(my_act) == "my_act"


def test_names_sorted_and_complete():
  names = activations.names()
  assert names == sorted(names)
  required = {"linear", "sigmoid", "tanh", "relu", "softmax", "step", "leaky_relu", "elu", "selu", "gelu",
              "silu", "softplus", "softsign", "hard_sigmoid", "relu6", "exponential", "log_softmax"}
  assert required <= set(names)


def test_unknown_name_lists_valid_names():
  with pytest.raises(JaxnnError, match=r"activation: expected one of \['elu', .*'tanh'\]; got 'relux'"):
    activations.get("relux")


def test_bad_arguments():
  with pytest.raises(JaxnnError, match=r"activation 'softmax': expected arguments among \['axis'\]; got \['alpha'\]"):
    activations.get({"name": "softmax", "alpha": 1.0})
  with pytest.raises(JaxnnError, match=r"activation 'relu': expected no arguments; got \['alpha'\]"):
    activations.get({"name": "relu", "alpha": 1.0})
  with pytest.raises(JaxnnError, match=r"activation: expected a dict with a 'name' string"):
    activations.get({"axis": 1})
  with pytest.raises(JaxnnError, match=r"activation: expected a name, a dict, a callable or None; got int 3"):
    activations.get(3)
