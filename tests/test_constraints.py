"""Tests for jaxnn.constraints: Keras projections by hand on small matrices, names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import constraints
from jaxnn.errors import JaxnnError

# Columns with norms 5 and 0.5 (axis 0: one norm per output unit of a Dense kernel).
W = jnp.array([[3.0, 0.3], [4.0, 0.4]])


def test_max_norm_rescales_only_columns_above_the_max():
  out = constraints.get("max_norm")(W)  # Keras default max_value 2.
  np.testing.assert_allclose(out[:, 0], [1.2, 1.6], rtol=1e-6)
  # Under the max: unchanged up to Keras' epsilon (factor norm / (norm + 1e-7)).
  np.testing.assert_allclose(out[:, 1], W[:, 1], rtol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(out, axis=0), [2.0, 0.5], rtol=1e-6)


def test_max_norm_axis_and_idempotence():
  # Rows [3, 0.3] and [4, 0.4] have norms ~3.015 and ~4.020: both rescaled to 1.
  out = constraints.MaxNorm(max_value=1.0, axis=1)(W)
  np.testing.assert_allclose(jnp.linalg.norm(out, axis=1), [1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(out[1], np.array([4.0, 0.4]) / np.sqrt(16.16), rtol=1e-6)
  w = jax.random.normal(jax.random.key(0), (5, 4)) * 3
  for constraint in [constraints.MaxNorm(2.0), constraints.UnitNorm(), constraints.NonNeg(),
                     constraints.MinMaxNorm(0.5, 1.5)]:
    once = constraint(w)
    np.testing.assert_allclose(constraint(once), once, rtol=1e-5, atol=1e-7)
  # All axes together (a tuple axis): the whole matrix is one slice.
  out = constraints.MaxNorm(1.0, axis=(0, 1))(W)
  np.testing.assert_allclose(jnp.linalg.norm(out), 1.0, rtol=1e-6)


def test_non_neg():
  out = constraints.get("non_neg")(jnp.array([[-1.0, 0.0], [2.0, -0.5]]))
  np.testing.assert_array_equal(out, [[0.0, 0.0], [2.0, 0.0]])


def test_unit_norm():
  out = constraints.get("unit_norm")(W)
  np.testing.assert_allclose(out, [[0.6, 0.6], [0.8, 0.8]], rtol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(out, axis=0), [1.0, 1.0], rtol=1e-6)


def test_min_max_norm():
  # Default bounds [0, 1] and rate 1: a strict projection of each column norm into [0, 1].
  np.testing.assert_allclose(jnp.linalg.norm(constraints.get("min_max_norm")(W), axis=0), [1.0, 0.5], rtol=1e-6)
  # rate 0.5 moves the norm halfway: column 0: 0.5 * 1 + 0.5 * 5 = 3;
  # column 1 (below min 1): 0.5 * 1 + 0.5 * 0.5 = 0.75.
  out = constraints.MinMaxNorm(min_value=1.0, max_value=1.0, rate=0.5)(W)
  np.testing.assert_allclose(out[:, 0], [1.8, 2.4], rtol=1e-6)
  np.testing.assert_allclose(out[:, 1], [0.45, 0.6], rtol=1e-6)
  # rate 0 leaves the weights unchanged (up to epsilon).
  np.testing.assert_allclose(constraints.MinMaxNorm(2.0, 3.0, rate=0.0)(W), W, rtol=1e-6)


def test_jit_and_static_config():
  project = jax.jit(lambda c, w: c(w), static_argnums=0)
  np.testing.assert_allclose(project(constraints.MaxNorm(2.0), W)[:, 0], [1.2, 1.6], rtol=1e-6)


def test_get_names_serialize_hash():
  assert constraints.names() == ["max_norm", "min_max_norm", "non_neg", "unit_norm"]
  assert constraints.get("MaxNorm") == constraints.MaxNorm(max_value=2.0, axis=0)
  assert constraints.get("NonNeg") == constraints.NonNeg()
  assert constraints.get(None) is None
  custom = lambda w: w  # noqa: E731
  assert constraints.get(custom) is custom
  assert constraints.serialize(constraints.get("non_neg")) == "non_neg"
  assert constraints.serialize(constraints.get("max_norm")) == {"name": "max_norm", "max_value": 2.0, "axis": 0}
  assert constraints.serialize(None) is None
  for name in constraints.names():
    c = constraints.get(name)
    assert constraints.get(constraints.serialize(c)) == c and hash(c) == hash(constraints.get(name))
  # A list axis (as read back from JSON) becomes a tuple, so the constraint stays hashable.
  c = constraints.get({"name": "max_norm", "axis": [0, 1]})
  assert c == constraints.MaxNorm(2.0, (0, 1)) and hash(c) == hash(constraints.MaxNorm(2.0, (0, 1)))
  assert constraints.serialize(c)["axis"] == [0, 1]
  assert constraints.MaxNorm(3) == constraints.MaxNorm(3.0)


def test_errors():
  with pytest.raises(JaxnnError, match=r"constraint: expected one of \['max_norm', 'min_max_norm', 'non_neg', 'unit_norm'\]; got 'maxnorm'"):
    constraints.get("maxnorm")
  with pytest.raises(JaxnnError, match=r"MaxNorm max_value: expected a finite number >= 0.0; got -1.0"):
    constraints.MaxNorm(-1.0)
  with pytest.raises(JaxnnError, match=r"MinMaxNorm rate: expected a finite number in \[0.0, 1.0\]; got 1.5"):
    constraints.MinMaxNorm(rate=1.5)
  with pytest.raises(JaxnnError, match=r"MinMaxNorm max_value: expected a finite number >= 2.0; got 1.0"):
    constraints.MinMaxNorm(min_value=2.0, max_value=1.0)
  with pytest.raises(JaxnnError, match=r"UnitNorm axis: expected an int or a non-empty sequence of ints; got 'rows'"):
    constraints.UnitNorm(axis="rows")
  with pytest.raises(JaxnnError, match=r"constraint 'non_neg': expected arguments among \[\]; got \['axis'\]"):
    constraints.get({"name": "non_neg", "axis": 0})
  with pytest.raises(JaxnnError, match=r"constraint: expected a name, a dict, a callable or None; got int 2"):
    constraints.get(2)
