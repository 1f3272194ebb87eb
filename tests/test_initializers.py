"""Tests for jaxnn.initializers: statistics of large draws against Keras' formulas, names."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import initializers
from jaxnn.errors import JaxnnError

KEY = jax.random.key(0)
SHAPE = (400, 600)  # fan_in 400, fan_out 600, fan_avg 500; 240,000 draws.
FANS = {"fan_in": 400, "fan_out": 600, "fan_avg": 500}
TRUNCATED_STD_FACTOR = 0.87962566103423978  # std of a unit normal cut at +-2.

VARIANCE_SCALING = [
    ("glorot_uniform", 1.0, "fan_avg", "uniform"),
    ("glorot_normal", 1.0, "fan_avg", "truncated_normal"),
    ("he_normal", 2.0, "fan_in", "truncated_normal"),
    ("he_uniform", 2.0, "fan_in", "uniform"),
    ("lecun_normal", 1.0, "fan_in", "truncated_normal"),
    ("lecun_uniform", 1.0, "fan_in", "uniform"),
]


def _check_variance_scaling(x, scale, n, distribution):
  """Asserts Keras' statistics: variance scale / n, and the distribution's bounds."""
  x = np.asarray(x, np.float64)
  std = math.sqrt(scale / n)
  assert abs(x.mean()) < 0.01 * std
  np.testing.assert_allclose(x.std(), std, rtol=0.01)
  if distribution == "uniform":
    limit = math.sqrt(3.0 * scale / n)
    assert np.abs(x).max() <= limit
    assert np.abs(x).max() > 0.99 * limit
  elif distribution == "truncated_normal":
    # Keras rescales the untruncated stddev so the *truncated* draw has variance scale / n.
    bound = 2.0 * std / TRUNCATED_STD_FACTOR
    assert np.abs(x).max() <= bound * (1 + 1e-6)
    assert np.abs(x).max() > 0.99 * bound
  else:  # Untruncated: tails beyond 2 stddevs hold about 4.6% of draws.
    np.testing.assert_allclose((np.abs(x) > 2 * std).mean(), 0.0455, atol=0.003)


@pytest.mark.parametrize("name,scale,mode,distribution", VARIANCE_SCALING)
def test_variance_scaling_presets_match_keras_formulas(name, scale, mode, distribution):
  init = initializers.get(name)
  x = init(KEY, SHAPE)
  assert x.shape == SHAPE and x.dtype == jnp.float32
  _check_variance_scaling(x, scale, FANS[mode], distribution)
  assert init == initializers.get(name)


@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling(mode, distribution):
  init = initializers.get({"name": "variance_scaling", "scale": 3.0, "mode": mode, "distribution": distribution})
  _check_variance_scaling(init(KEY, SHAPE), 3.0, FANS[mode], distribution)


def test_fans_of_conv_and_1d_shapes():
  # Conv kernel (3, 3, 16, 32): receptive field 9, fan_in 144, fan_out 288.
  x = initializers.get("he_normal")(KEY, (3, 3, 16, 32))
  np.testing.assert_allclose(np.std(x), math.sqrt(2.0 / 144), rtol=0.03)
  x = initializers.get("glorot_uniform")(KEY, (3, 3, 16, 32))
  assert np.abs(x).max() <= math.sqrt(6.0 / (144 + 288))
  # Keras: a 1-D shape (n,) has fan_in = fan_out = n; a scalar has fans of 1.
  x = initializers.get("lecun_uniform")(KEY, (50_000,))
  np.testing.assert_allclose(np.std(x), math.sqrt(1.0 / 50_000), rtol=0.02)
  assert initializers.get("he_normal")(KEY, ()).shape == ()


def test_random_normal_uniform_truncated_normal():
  x = np.asarray(initializers.get("random_normal")(KEY, SHAPE))
  np.testing.assert_allclose([x.mean(), x.std()], [0.0, 0.05], atol=5e-4)
  x = np.asarray(initializers.get({"name": "random_normal", "mean": 1.0, "stddev": 0.2})(KEY, SHAPE))
  np.testing.assert_allclose([x.mean(), x.std()], [1.0, 0.2], atol=2e-3)

  x = np.asarray(initializers.get("random_uniform")(KEY, SHAPE))
  assert x.min() >= -0.05 and x.max() < 0.05
  np.testing.assert_allclose([x.mean(), x.std()], [0.0, 0.1 / math.sqrt(12)], atol=5e-4)
  x = np.asarray(initializers.RandomUniform(minval=2.0, maxval=3.0)(KEY, SHAPE))
  assert x.min() >= 2.0 and x.max() < 3.0

  # Keras' stddev is that of the normal before truncation at 2 stddevs.
  x = np.asarray(initializers.get("truncated_normal")(KEY, SHAPE))
  np.testing.assert_allclose(x.std(), 0.05 * TRUNCATED_STD_FACTOR, rtol=0.01)
  assert np.abs(x).max() <= 0.1 * (1 + 1e-6)
  x = np.asarray(initializers.TruncatedNormal(mean=-1.0, stddev=0.5)(KEY, SHAPE))
  assert np.abs(x + 1.0).max() <= 1.0 * (1 + 1e-6)
  np.testing.assert_allclose(x.mean(), -1.0, atol=3e-3)


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (3, 3, 8, 16)])
def test_orthogonal(shape):
  q = np.asarray(initializers.get("orthogonal")(KEY, shape), np.float64).reshape(-1, shape[-1])
  gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
  np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)
  q = np.asarray(initializers.Orthogonal(gain=2.0)(KEY, shape), np.float64).reshape(-1, shape[-1])
  gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
  np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-4)


def test_deterministic_constants():
  np.testing.assert_array_equal(initializers.get("zeros")(KEY, (2, 3)), np.zeros((2, 3)))
  np.testing.assert_array_equal(initializers.get("ones")(KEY, (2, 3)), np.ones((2, 3)))
  np.testing.assert_array_equal(initializers.get("constant")(KEY, (2,)), [0.0, 0.0])
  np.testing.assert_array_equal(initializers.Constant(value=0.5)(KEY, (2, 2)), np.full((2, 2), 0.5))
  np.testing.assert_array_equal(initializers.Identity(gain=3.0)(KEY, (2, 3)), [[3, 0, 0], [0, 3, 0]])
  assert initializers.get("ones")(KEY, (2,), jnp.bfloat16).dtype == jnp.bfloat16
  assert initializers.get("he_normal")(KEY, (4, 4), jnp.float16).dtype == jnp.float16


@pytest.mark.parametrize("name", initializers.names())
def test_same_key_same_draw_and_jit(name):
  init = initializers.get(name)
  a, b = init(KEY, (8, 8)), init(KEY, (8, 8))
  np.testing.assert_array_equal(a, b)
  if name in ("glorot_uniform", "random_normal"):  # Compiling every one would be slow.
    # Compiled draws may differ in the last bit (fused multiply-add), not more.
    np.testing.assert_allclose(jax.jit(init, static_argnums=1)(KEY, (8, 8)), a, rtol=1e-6)
  if name not in ("zeros", "ones", "constant", "identity"):
    assert not np.array_equal(init(jax.random.key(1), (8, 8)), a)


def test_hashable_equal_and_serialize_round_trip():
  for name in initializers.names():
    init = initializers.get(name)
    assert hash(init) == hash(initializers.get(name)) and init == initializers.get(name)
    assert initializers.get(initializers.serialize(init)) == init
  assert initializers.serialize(initializers.get("glorot_uniform")) == "glorot_uniform"
  assert initializers.serialize(initializers.get("random_normal")) == {
      "name": "random_normal", "mean": 0.0, "stddev": 0.05}
  assert initializers.get("GlorotUniform") == initializers.GlorotUniform()
  assert initializers.get("HeNormal") == initializers.get("he_normal")
  assert initializers.RandomNormal(stddev=0.1) != initializers.RandomNormal()
  assert len({initializers.get("zeros"), initializers.Zeros(), initializers.get("ones")}) == 2
  assert initializers.get(None) is None
  custom = jax.nn.initializers.normal(1.0)
  assert initializers.get(custom) is custom


def test_unknown_name_lists_valid_names():
  with pytest.raises(JaxnnError, match=r"initializer: expected one of \['constant', .*'zeros'\]; got 'glorot'"):
    initializers.get("glorot")


def test_bad_arguments():
  with pytest.raises(JaxnnError, match=r"initializer 'random_normal': expected arguments among \['mean', 'stddev'\]; got \['seed'\]"):
    initializers.get({"name": "random_normal", "seed": 1})
  with pytest.raises(JaxnnError, match=r"initializer 'he_normal': expected arguments among \[\]; got \['scale'\]"):
    initializers.get({"name": "he_normal", "scale": 2.0})
  with pytest.raises(JaxnnError, match=r"VarianceScaling mode: expected one of .*; got 'fan_max'"):
    initializers.VarianceScaling(mode="fan_max")
  with pytest.raises(JaxnnError, match=r"VarianceScaling distribution: expected one of .*; got 'cauchy'"):
    initializers.VarianceScaling(distribution="cauchy")
  with pytest.raises(JaxnnError, match=r"VarianceScaling scale: expected a positive number; got -1.0"):
    initializers.VarianceScaling(scale=-1.0)
  with pytest.raises(JaxnnError, match=r"RandomUniform: expected minval < maxval; got minval=1.0, maxval=0.0"):
    initializers.RandomUniform(1.0, 0.0)
  with pytest.raises(JaxnnError, match=r"Identity shape: expected 2 dimensions; got \(2, 2, 2\)"):
    initializers.get("identity")(KEY, (2, 2, 2))
  with pytest.raises(JaxnnError, match=r"Orthogonal shape: expected at least 2 dimensions; got \(5,\)"):
    initializers.get("orthogonal")(KEY, (5,))
  with pytest.raises(JaxnnError, match=r"initializer: expected a name, a dict, a callable or None; got float 0.5"):
    initializers.get(0.5)
