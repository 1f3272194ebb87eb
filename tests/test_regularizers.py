"""Tests for jaxnn.regularizers: Keras formulas by hand, gradients, names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnn import regularizers
from jaxnn.errors import JaxnnError

W = jnp.array([[1.0, -2.0], [3.0, -4.0]])  # sum |w| = 10, sum w**2 = 30.


def test_hand_values():
  np.testing.assert_allclose(regularizers.get("l1")(W), 0.01 * 10, rtol=1e-6)
  np.testing.assert_allclose(regularizers.get("l2")(W), 0.01 * 30, rtol=1e-6)  # No 1/2 factor.
  np.testing.assert_allclose(regularizers.L1L2(l1=0.1, l2=0.2)(W), 0.1 * 10 + 0.2 * 30, rtol=1e-6)
  np.testing.assert_allclose(regularizers.L2(l2=0.5)(jnp.array([3.0, 4.0])), 12.5, rtol=1e-6)
  # Keras' L1L2 defaults are both 0: no penalty.
  assert float(regularizers.get("l1_l2")(W)) == 0.0
  assert regularizers.get("l2")(W).shape == ()


def test_gradients():
  np.testing.assert_allclose(jax.grad(regularizers.L1(0.3))(W), 0.3 * np.sign(W), rtol=1e-6)
  np.testing.assert_allclose(jax.grad(regularizers.L2(0.3))(W), 2 * 0.3 * np.asarray(W), rtol=1e-6)
  np.testing.assert_allclose(
      jax.grad(regularizers.L1L2(0.1, 0.2))(W), 0.1 * np.sign(W) + 0.4 * np.asarray(W), rtol=1e-6
  )
  check_grads(regularizers.L1L2(0.1, 0.2), (W,), order=2, modes=["rev"])


def test_usable_as_static_jit_argument():
  penalty = jax.jit(lambda reg, w: reg(w), static_argnums=0)
  np.testing.assert_allclose(penalty(regularizers.L2(), W), 0.3, rtol=1e-6)
  np.testing.assert_allclose(penalty(regularizers.get("l2"), 2 * W), 1.2, rtol=1e-6)


def test_get_names_and_serialize():
  assert regularizers.names() == ["l1", "l1_l2", "l2"]
  assert regularizers.get("l2") == regularizers.L2(l2=0.01)
  assert regularizers.get("L2") == regularizers.get("l2")
  assert regularizers.get("L1L2") == regularizers.get("l1l2") == regularizers.L1L2()
  assert regularizers.get(None) is None
  custom = lambda w: jnp.sum(w)  # noqa: E731
  assert regularizers.get(custom) is custom
  assert regularizers.serialize(regularizers.get("l2")) == {"name": "l2", "l2": 0.01}
  assert regularizers.serialize(regularizers.L1L2(0.1, 0.2)) == {"name": "l1_l2", "l1": 0.1, "l2": 0.2}
  assert regularizers.serialize(None) is None
  for name in regularizers.names():
    reg = regularizers.get(name)
    assert regularizers.get(regularizers.serialize(reg)) == reg
  assert regularizers.get({"name": "l1", "l1": 0.5}) == regularizers.L1(0.5)


def test_hashable_and_equal():
  assert hash(regularizers.L2()) == hash(regularizers.L2(l2=0.01))
  assert regularizers.L2(1) == regularizers.L2(1.0) and isinstance(regularizers.L2(1).l2, float)
  assert regularizers.L2(np.float32(0.5)) == regularizers.L2(0.5)
  assert regularizers.L1(0.01) != regularizers.L2(0.01)
  assert len({regularizers.L2(), regularizers.get("l2"), regularizers.L1()}) == 2


def test_errors():
  with pytest.raises(JaxnnError, match=r"regularizer: expected one of \['l1', 'l1_l2', 'l2'\]; got 'l3'"):
    regularizers.get("l3")
  with pytest.raises(JaxnnError, match=r"L2 l2: expected a finite number >= 0; got -0.1"):
    regularizers.L2(-0.1)
  with pytest.raises(JaxnnError, match=r"L1L2 l1: expected a finite number >= 0; got nan"):
    regularizers.L1L2(l1=float("nan"))
  with pytest.raises(JaxnnError, match=r"L1 l1: expected a finite number >= 0; got '0.1'"):
    regularizers.L1("0.1")
  with pytest.raises(JaxnnError, match=r"regularizer 'l2': expected arguments among \['l2'\]; got \['l1'\]"):
    regularizers.get({"name": "l2", "l1": 0.1})
  with pytest.raises(JaxnnError, match=r"regularizer: expected a name, a dict, a callable or None; got float 0.01"):
    regularizers.get(0.01)
