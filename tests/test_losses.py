"""Tests for jaxnn.losses: hand-computed values (Keras' formulas), reduction, errors, hashing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import test_util as jtu

from jaxnn import losses
from jaxnn.errors import JaxnnError

EPS = 1e-7


def _jit(fn):
  """`fn` compiled as one program, options static: several times faster than op-by-op on tiny arrays."""
  def call(*args, **kwargs):
    arrays = {key: value for key, value in kwargs.items() if isinstance(value, (jax.Array, np.ndarray))}
    options = {key: value for key, value in kwargs.items() if key not in arrays}
    return jax.jit(functools.partial(fn, **options))(*args, **arrays)
  return call


def _finite_grad(fn, y_true, y_pred, **kwargs):
  """The gradient of the summed loss w.r.t. y_pred, asserted finite."""
  grad = jax.jit(jax.grad(lambda p: jnp.sum(fn(y_true, p, **kwargs))))(jnp.asarray(y_pred, jnp.float32))
  assert np.all(np.isfinite(grad)), grad
  return grad


# --------------------------------------------------------------------------------------------- crossentropy
def test_sparse_categorical_crossentropy_probabilities():
  y_true = jnp.array([0, 2])
  y_pred = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
  np.testing.assert_allclose(_jit(losses.sparse_categorical_crossentropy)(y_true, y_pred),
                             [-np.log(0.7), -np.log(0.6)], rtol=1e-6)


def test_sparse_categorical_crossentropy_logits():
  y_true = jnp.array([2, 1])
  logits = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  expected = [np.log(np.exp(1) + np.exp(2) + np.exp(3)) - 3.0, np.log(3.0)]  # logsumexp - label logit
  out = _jit(losses.sparse_categorical_crossentropy)(y_true, logits, from_logits=True)
  np.testing.assert_allclose(out, expected, rtol=1e-6)
  from_probs = _jit(losses.sparse_categorical_crossentropy)(y_true, jax.nn.softmax(logits))
  np.testing.assert_allclose(from_probs, out, rtol=1e-5)


def test_categorical_probabilities_are_renormalized():
  # Keras divides by the sum before clipping: [2, 1, 1] is [0.5, 0.25, 0.25].
  y_pred = jnp.array([[2.0, 1.0, 1.0]])
  np.testing.assert_allclose(_jit(losses.sparse_categorical_crossentropy)(jnp.array([0]), y_pred),
                             [np.log(2.0)], rtol=1e-6)
  np.testing.assert_allclose(_jit(losses.categorical_crossentropy)(jnp.array([[0.0, 1.0, 0.0]]), y_pred),
                             [np.log(4.0)], rtol=1e-6)


def test_sparse_categorical_crossentropy_at_zero_and_one():
  y_pred = jnp.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
  y_true = jnp.array([0, 1])
  out = _jit(losses.sparse_categorical_crossentropy)(y_true, y_pred)
  np.testing.assert_allclose(out, [0.0, -np.log(EPS)], atol=1e-6, rtol=1e-6)
  _finite_grad(losses.sparse_categorical_crossentropy, y_true, y_pred)


def test_sparse_categorical_crossentropy_ignore_class():
  y_pred = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]])
  out = _jit(losses.sparse_categorical_crossentropy)(jnp.array([0, -1, 1]), y_pred, ignore_class=-1)
  np.testing.assert_allclose(out, [-np.log(0.7), 0.0, -np.log(0.25)], rtol=1e-6)
  out = _jit(losses.sparse_categorical_crossentropy)(jnp.array([0, 2, 2]), y_pred, ignore_class=2)
  np.testing.assert_allclose(out, [-np.log(0.7), 0.0, 0.0], rtol=1e-6)


def test_sparse_categorical_crossentropy_sequence_labels():
  y_pred = jnp.full((2, 3, 4), 0.25)
  out = _jit(losses.sparse_categorical_crossentropy)(jnp.zeros((2, 3), jnp.int32), y_pred)
  np.testing.assert_allclose(out, np.full((2, 3), np.log(4.0)), rtol=1e-6)


def test_sparse_labels_out_of_range():
  y_pred = jnp.full((2, 3), 1 / 3)
  with pytest.raises(JaxnnError, match=r"labels must be in \[0, 3\), found 3"):
    losses.sparse_categorical_crossentropy(jnp.array([0, 3]), y_pred)
  with pytest.raises(JaxnnError, match=r"found -1"):
    losses.sparse_categorical_crossentropy(jnp.array([-1, 0]), y_pred)
  # Traced labels cannot be checked: they give nan (never a silently wrapped index).
  out = jax.jit(losses.sparse_categorical_crossentropy)(jnp.array([-1, 3]), y_pred)
  assert np.all(np.isnan(out))


def test_sparse_labels_errors():
  y_pred = jnp.full((2, 3), 1 / 3)
  with pytest.raises(JaxnnError, match=r"integer class labels, found dtype float32 "
                                       r"\(use categorical_crossentropy for one-hot labels\)"):
    losses.sparse_categorical_crossentropy(jnp.array([0.0, 1.0]), y_pred)
  with pytest.raises(JaxnnError, match=r"must have shape \(2,\).*found \(2, 1\) \(drop the trailing axis"):
    losses.sparse_categorical_crossentropy(jnp.array([[0], [1]]), y_pred)
  with pytest.raises(JaxnnError, match=r"found \(2, 3\) \(one-hot labels\? use categorical_crossentropy\)"):
    losses.sparse_categorical_crossentropy(jnp.eye(3, dtype=jnp.int32)[:2], y_pred)
  with pytest.raises(JaxnnError, match=r"y_pred must be floating-point, found dtype int32"):
    losses.sparse_categorical_crossentropy(jnp.array([0, 1]), jnp.ones((2, 3), jnp.int32))
  with pytest.raises(JaxnnError, match=r"from_logits must be a bool"):
    losses.sparse_categorical_crossentropy(jnp.array([0, 1]), y_pred, from_logits="yes")


def test_categorical_crossentropy_probabilities():
  y_true = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  y_pred = jnp.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
  np.testing.assert_allclose(_jit(losses.categorical_crossentropy)(y_true, y_pred),
                             [-np.log(0.7), -np.log(0.4)], rtol=1e-6)


def test_categorical_crossentropy_label_smoothing():
  y_true = jnp.array([[0.0, 1.0, 0.0]])
  y_pred = jnp.array([[0.2, 0.7, 0.1]])
  # ls = 0.3, C = 3: targets y * 0.7 + 0.1 = [0.1, 0.8, 0.1].
  expected = -(0.1 * np.log(0.2) + 0.8 * np.log(0.7) + 0.1 * np.log(0.1))
  out = _jit(losses.categorical_crossentropy)(y_true, y_pred, label_smoothing=0.3)
  np.testing.assert_allclose(out, [expected], rtol=1e-6)
  out_logits = _jit(losses.categorical_crossentropy)(y_true, jnp.log(y_pred), from_logits=True,
                                                     label_smoothing=0.3)
  np.testing.assert_allclose(out_logits, [expected], rtol=1e-5)


def test_categorical_crossentropy_logits_agree_with_probabilities():
  logits = jnp.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
  y_true = jnp.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(_jit(losses.categorical_crossentropy)(y_true, logits, from_logits=True),
                             _jit(losses.categorical_crossentropy)(y_true, jax.nn.softmax(logits)), rtol=1e-5)


def test_categorical_crossentropy_at_zero_and_one():
  y_true = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  y_pred = jnp.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
  out = _jit(losses.categorical_crossentropy)(y_true, y_pred)
  np.testing.assert_allclose(out, [0.0, -np.log(EPS)], atol=1e-6, rtol=1e-6)
  _finite_grad(losses.categorical_crossentropy, y_true, y_pred)
  _finite_grad(losses.categorical_crossentropy, y_true, y_pred, label_smoothing=0.1)


def test_categorical_crossentropy_errors():
  y_pred = jnp.full((2, 3), 1 / 3)
  with pytest.raises(JaxnnError, match=r"categorical_crossentropy: y_true must have the shape of y_pred "
                                       r"\(2, 3\).*found \(2,\); for integer class labels use "
                                       r"sparse_categorical_crossentropy"):
    losses.categorical_crossentropy(jnp.array([0, 1]), y_pred)
  with pytest.raises(JaxnnError, match=r"found \(2, 4\)"):
    losses.categorical_crossentropy(jnp.zeros((2, 4)), y_pred)
  with pytest.raises(JaxnnError, match=r"label_smoothing must be in \[0, 1\], found 1.5"):
    losses.categorical_crossentropy(jnp.zeros((2, 3)), y_pred, label_smoothing=1.5)
  with pytest.raises(JaxnnError, match=r"at least 2 axes, found \(3,\)"):
    losses.categorical_crossentropy(jnp.zeros((3,)), jnp.full((3,), 1 / 3))


def test_binary_crossentropy():
  y_pred = jnp.array([[0.8], [0.4]])
  expected = [-np.log(0.8), -np.log(0.6)]
  np.testing.assert_allclose(_jit(losses.binary_crossentropy)(jnp.array([[1.0], [0.0]]), y_pred), expected,
                             rtol=1e-6)
  # Rank 1: the only axis is the batch, nothing is averaged away.
  np.testing.assert_allclose(_jit(losses.binary_crossentropy)(jnp.array([1.0, 0.0]), y_pred[:, 0]), expected,
                             rtol=1e-6)
  # Multi-label (B, 2): mean over the labels.
  out = _jit(losses.binary_crossentropy)(jnp.array([[1, 0], [0, 1]]), jnp.array([[0.9, 0.2], [0.3, 0.6]]))
  np.testing.assert_allclose(out, [-(np.log(0.9) + np.log(0.8)) / 2, -(np.log(0.7) + np.log(0.6)) / 2],
                             rtol=1e-6)
  assert losses.log_loss is losses.binary_crossentropy


def test_binary_crossentropy_label_smoothing_and_logits():
  # ls = 0.2: targets y * 0.8 + 0.1, so 1 -> 0.9 and 0 -> 0.1.
  y_true, y_pred = jnp.array([1.0, 0.0]), jnp.array([0.8, 0.4])
  expected = [-(0.9 * np.log(0.8) + 0.1 * np.log(0.2)), -(0.1 * np.log(0.4) + 0.9 * np.log(0.6))]
  np.testing.assert_allclose(_jit(losses.binary_crossentropy)(y_true, y_pred, label_smoothing=0.2), expected,
                             rtol=1e-6)
  logits = jnp.log(y_pred / (1 - y_pred))
  out = _jit(losses.binary_crossentropy)(y_true, logits, from_logits=True, label_smoothing=0.2)
  np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_binary_crossentropy_at_zero_and_one():
  y_true = jnp.array([1.0, 0.0, 1.0, 0.0])
  y_pred = jnp.array([0.0, 1.0, 1.0, 0.0])
  p = np.clip(np.array([0.0, 1.0, 1.0, 0.0], np.float32), np.float32(EPS), np.float32(1 - EPS))
  expected = [-np.log(p[0]), -np.log1p(-p[1]), -np.log(p[2]), -np.log1p(-p[3])]
  np.testing.assert_allclose(_jit(losses.binary_crossentropy)(y_true, y_pred), expected, atol=1e-6, rtol=1e-5)
  _finite_grad(losses.binary_crossentropy, y_true, y_pred)
  _finite_grad(losses.binary_crossentropy, y_true, y_pred, label_smoothing=0.1)


# --------------------------------------------------------------------------------------------- regression
def test_mean_squared_and_absolute_error():
  y_true = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  y_pred = jnp.array([[1.0, 3.0], [5.0, 4.0]])
  np.testing.assert_allclose(_jit(losses.mean_squared_error)(y_true, y_pred), [0.5, 2.0])
  np.testing.assert_allclose(_jit(losses.mean_absolute_error)(y_true, y_pred), [0.5, 1.0])
  np.testing.assert_allclose(_jit(losses.mse)(jnp.array([1.0, 2.0]), jnp.array([3.0, 2.0])), [4.0, 0.0])


def test_mean_absolute_percentage_error():
  out = _jit(losses.mean_absolute_percentage_error)(jnp.array([[2.0, 4.0]]), jnp.array([[1.0, 5.0]]))
  np.testing.assert_allclose(out, [100 * (0.5 + 0.25) / 2], rtol=1e-6)
  # A zero target is guarded by EPSILON, as in Keras: finite, if huge.
  out = _jit(losses.mape)(jnp.array([[0.0]]), jnp.array([[1.0]]))
  np.testing.assert_allclose(out, [100 / EPS], rtol=1e-5)


def test_mean_squared_logarithmic_error():
  e = np.e
  msle = _jit(losses.mean_squared_logarithmic_error)
  out = msle(jnp.array([[e - 1, e**2 - 1]]), jnp.array([[e**2 - 1, e - 1]]))
  np.testing.assert_allclose(out, [1.0], rtol=1e-5)  # (2 - 1)^2 and (1 - 2)^2
  # Negative predictions are clipped to EPSILON: log1p(EPSILON) ~ 0 against log1p(e - 1) = 1.
  np.testing.assert_allclose(_jit(losses.msle)(jnp.array([e - 1]), jnp.array([-3.0])), [1.0], rtol=1e-5)


def test_huber():
  y_true = jnp.zeros((1, 2))
  np.testing.assert_allclose(_jit(losses.huber)(y_true, jnp.array([[0.5, 2.0]])), [(0.125 + 1.5) / 2])
  # delta = 2: 0.5 * 2^2 = 2 at error 2; 0.5 * 2^2 + 2 * (3 - 2) = 4 at error -3.
  np.testing.assert_allclose(_jit(losses.huber)(y_true, jnp.array([[2.0, -3.0]]), delta=2.0), [3.0])
  with pytest.raises(JaxnnError, match=r"huber: delta must be > 0, found 0"):
    losses.huber(y_true, y_true, delta=0)


def test_log_cosh_and_poisson():
  out = _jit(losses.log_cosh)(jnp.array([[0.0, 0.0]]), jnp.array([[1.0, -2.0]]))
  np.testing.assert_allclose(out, [(np.log(np.cosh(1.0)) + np.log(np.cosh(2.0))) / 2], rtol=1e-6)
  out = _jit(losses.poisson)(jnp.array([[1.0, 2.0]]), jnp.array([[1.0, 4.0]]))
  np.testing.assert_allclose(out, [(1 - np.log(1 + EPS) + 4 - 2 * np.log(4 + EPS)) / 2], rtol=1e-6)
  _finite_grad(losses.poisson, jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 0.0]]))


def test_kl_divergence():
  out = _jit(losses.kl_divergence)(jnp.array([[0.5, 0.5]]), jnp.array([[0.25, 0.75]]))
  np.testing.assert_allclose(out, [0.5 * np.log(2) + 0.5 * np.log(2 / 3)], rtol=1e-6)
  # Zeros are clipped to EPSILON on both sides (Keras): finite values and gradients.
  out = _jit(losses.kld)(jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.5]]))
  np.testing.assert_allclose(out, [np.log(2) + EPS * np.log(EPS / 0.5)], rtol=1e-6)
  out = _jit(losses.kl_divergence)(jnp.array([[0.5, 0.5]]), jnp.array([[1.0, 0.0]]))
  np.testing.assert_allclose(out, [0.5 * np.log(0.5) + 0.5 * np.log(0.5 / EPS)], rtol=1e-5)
  _finite_grad(losses.kl_divergence, jnp.array([[0.5, 0.5]]), jnp.array([[1.0, 0.0]]))


def test_cosine_similarity_has_keras_sign():
  y_true = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
  y_pred = jnp.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 1.0]])
  np.testing.assert_allclose(_jit(losses.cosine_similarity)(y_true, y_pred), [-1.0, 1.0, -1 / np.sqrt(2)],
                             rtol=1e-6)
  # A zero vector gives 0, not nan, and a finite gradient.
  np.testing.assert_allclose(_jit(losses.cosine_similarity)(y_true[:1], jnp.zeros((1, 2))), [0.0])
  _finite_grad(losses.cosine_similarity, y_true[:1], jnp.zeros((1, 2)))


def test_hinge_losses():
  y_pred = jnp.array([[0.3, 0.4]])
  # 0 / 1 targets are read as -1 / 1: max(0, 1 + 0.3) = 1.3 and max(0, 1 - 0.4) = 0.6.
  for y_true in (jnp.array([[0.0, 1.0]]), jnp.array([[-1.0, 1.0]])):
    np.testing.assert_allclose(_jit(losses.hinge)(y_true, y_pred), [0.95], rtol=1e-6)
    np.testing.assert_allclose(_jit(losses.squared_hinge)(y_true, y_pred), [(1.69 + 0.36) / 2], rtol=1e-6)
  # The conversion also happens under jit (decided from the values at run time).
  np.testing.assert_allclose(jax.jit(losses.hinge)(jnp.array([[0.0, 1.0]]), y_pred), [0.95], rtol=1e-6)


def test_categorical_hinge():
  out = _jit(losses.categorical_hinge)(jnp.array([[0.0, 1.0, 0.0]]), jnp.array([[0.3, 0.6, 0.1]]))
  np.testing.assert_allclose(out, [0.7], rtol=1e-6)  # max(0, 0.3 - 0.6 + 1)
  # Keras' product form lets the true class's zeroed score into the max: neg = max(0, -0.2, -0.9) = 0.
  out = _jit(losses.categorical_hinge)(jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[-0.5, -0.2, -0.9]]))
  np.testing.assert_allclose(out, [1.5], rtol=1e-6)


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_percentage_error", "huber",
                                  "log_cosh", "poisson", "mean_squared_logarithmic_error"])
def test_regression_gradients_match_finite_differences(name):
  fn = getattr(losses, name)
  y_true = jnp.array([[0.5, 1.5], [2.0, 0.8]])
  y_pred = jnp.array([[0.9, 1.0], [2.7, 1.1]])
  jtu.check_grads(jax.jit(lambda p: jnp.sum(fn(y_true, p))), (y_pred,), order=1, modes=["rev"], eps=1e-3,
                  atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("fn", [losses.mean_squared_error, losses.mean_absolute_error, losses.hinge,
                                losses.binary_crossentropy, losses.poisson, losses.log_cosh])
def test_mismatched_shapes_raise_instead_of_broadcasting(fn):
  with pytest.raises(JaxnnError, match=r"y_true must have the shape of y_pred \(4, 1\) \(no broadcasting\), "
                                       r"found \(4,\)"):
    fn(jnp.zeros((4,)), jnp.zeros((4, 1)))


def test_shape_checks_work_under_jit():
  with pytest.raises(JaxnnError, match="no broadcasting"):
    jax.jit(losses.mean_squared_error)(jnp.zeros((4,)), jnp.zeros((4, 1)))


# --------------------------------------------------------------------------------------------- reduction
def test_weighted_mean():
  weighted_mean = _jit(losses.weighted_mean)
  values = jnp.array([1.0, 2.0, 3.0, 4.0])
  np.testing.assert_allclose(weighted_mean(values), 2.5)
  # Divides by the number of examples, not by the sum of the weights.
  np.testing.assert_allclose(weighted_mean(values, jnp.array([1.0, 0.0, 2.0, 1.0])), 11 / 4)
  np.testing.assert_allclose(weighted_mean(values, mask=jnp.array([1, 1, 1, 0])), 2.0)
  mask = jnp.array([True, True, False, False])
  np.testing.assert_allclose(weighted_mean(values, jnp.array([2.0, 1.0, 1.0, 5.0]), mask), (2 + 2) / 2)
  np.testing.assert_allclose(weighted_mean(values, mask=jnp.zeros(4)), 0.0)
  # Extra axes are averaged first, as Keras averages every element.
  np.testing.assert_allclose(weighted_mean(jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([1.0, 0.0])), 1.0)


def test_weighted_mean_ignores_garbage_in_padding():
  out = _jit(losses.weighted_mean)(jnp.array([1.0, jnp.nan]), mask=jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(out, 1.0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(0, 5), st.booleans()), min_size=1, max_size=8))
def test_weighted_mean_masking_equals_dropping(rows):
  values, weights, keep = (np.array(column) for column in zip(*rows))
  masked = _jit(losses.weighted_mean)(values.astype(np.float32), weights.astype(np.float32), keep)
  expected = np.sum(values[keep] * weights[keep]) / max(keep.sum(), 1)
  np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-5)


def test_weighted_mean_per_step_masks_and_weights():
  """(B, T) values (a loss over sequence outputs): a per-step mask divides by the unmasked steps (Keras' masked
  reduction); per-step and per-example weights multiply; a per-example mask keeps averaging over the steps."""
  weighted_mean = _jit(losses.weighted_mean)
  rng = np.random.default_rng(0)
  values = rng.normal(size=(4, 5)).astype(np.float32)
  step_mask = rng.random((4, 5)) < 0.6
  step_w = rng.uniform(0, 2, (4, 5)).astype(np.float32)
  example_w = rng.uniform(0, 2, (4,)).astype(np.float32)
  np.testing.assert_allclose(weighted_mean(values, mask=step_mask), values[step_mask].mean(), rtol=1e-5)
  np.testing.assert_allclose(weighted_mean(values, step_w, step_mask),
                             (values * step_w)[step_mask].sum() / step_mask.sum(), rtol=1e-5)
  np.testing.assert_allclose(weighted_mean(values, example_w, step_mask),
                             (values * example_w[:, None])[step_mask].sum() / step_mask.sum(), rtol=1e-5)
  # Per-step weights without a mask: the mean over every element.
  np.testing.assert_allclose(weighted_mean(values, step_w), (values * step_w).mean(), rtol=1e-5)
  # A per-example mask with per-step weights: the mean over the unmasked examples' elements.
  rows = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
  np.testing.assert_allclose(weighted_mean(values, step_w, rows),
                             (values * step_w)[rows == 1].mean(), rtol=1e-5)
  # (B, T, K) values with a (B, T) mask: averaged over K, then over the unmasked steps.
  values3 = rng.normal(size=(4, 5, 3)).astype(np.float32)
  np.testing.assert_allclose(weighted_mean(values3, mask=step_mask), values3.mean(-1)[step_mask].mean(), rtol=1e-5)
  # Nothing unmasked: 0 (Keras divides with divide_no_nan), and nan in masked steps stays out.
  np.testing.assert_allclose(weighted_mean(values, mask=np.zeros((4, 5))), 0.0)
  garbage = np.where(step_mask, values, np.nan)
  np.testing.assert_allclose(weighted_mean(garbage, step_w, step_mask),
                             (values * step_w)[step_mask].sum() / step_mask.sum(), rtol=1e-5)
  grad = jax.grad(lambda v: losses.weighted_mean(v, step_w, step_mask))(jnp.asarray(garbage))
  np.testing.assert_allclose(grad, np.where(step_mask, step_w / step_mask.sum(), 0.0), rtol=1e-6)


def test_weighted_mean_errors():
  with pytest.raises(JaxnnError, match=r"sample_weight: expected shape \(3,\), one value per example, "
                                       r"found \(3, 1\)"):
    losses.weighted_mean(jnp.zeros(3), jnp.ones((3, 1)))
  with pytest.raises(JaxnnError, match=r"mask: expected shape \(3,\).*found \(\)"):
    losses.weighted_mean(jnp.zeros(3), mask=1.0)
  with pytest.raises(JaxnnError, match=r"values: expected per-example values with a batch axis"):
    losses.weighted_mean(jnp.float32(1.0))
  with pytest.raises(JaxnnError, match=r"^mask: expected shape \(4,\) or \(4, 5\), one value per example or per "
                                       r"step, found \(5,\)$"):
    losses.weighted_mean(jnp.zeros((4, 5)), mask=jnp.ones(5))
  with pytest.raises(JaxnnError, match=r"^sample_weight: expected shape \(4,\) or \(4, 5\) or \(4, 5, 2\), "
                                       r"one value per example or per step, found \(4, 6\)$"):
    losses.weighted_mean(jnp.zeros((4, 5, 2)), jnp.ones((4, 6)))


def test_loss_call_weights_and_masks():
  loss = losses.get("mse")
  call = jax.jit(loss)
  y_true, y_pred = jnp.array([[0.0], [0.0], [0.0]]), jnp.array([[1.0], [2.0], [3.0]])
  np.testing.assert_allclose(call(y_true, y_pred), 14 / 3, rtol=1e-6)
  np.testing.assert_allclose(call(y_true, y_pred, sample_weight=jnp.array([2.0, 1.0, 0.0])), 6 / 3,
                             rtol=1e-6)
  np.testing.assert_allclose(call(y_true, y_pred, mask=jnp.array([1.0, 1.0, 0.0])), 5 / 2, rtol=1e-6)
  np.testing.assert_allclose(loss.per_example(y_true, y_pred), [1.0, 4.0, 9.0])


def test_class_weight_to_sample_weight():
  out = losses.class_weight_to_sample_weight(jnp.array([0, 1, 2, 2]), {0: 1.0, 2: 3.0}, 3)
  np.testing.assert_allclose(out, [1.0, 1.0, 3.0, 3.0])  # class 1 unlisted: 1.0
  one_hot = np.eye(3, dtype=np.float32)[[2, 0]]
  out = losses.class_weight_to_sample_weight(one_hot, np.array([0.5, 1.0, 2.0]), 3)
  np.testing.assert_allclose(out, [2.0, 0.5])
  # One sigmoid output: the classes are 0 and 1, from (B, 1) float targets.
  out = losses.class_weight_to_sample_weight(np.array([[0.0], [1.0], [1.0]]), {0: 1.0, 1: 5.0}, 1)
  np.testing.assert_allclose(out, [1.0, 5.0, 5.0])


def test_class_weight_with_sample_weight_in_the_loss():
  y_true = jnp.array([0, 1])
  y_pred = jnp.array([[0.5, 0.5], [0.25, 0.75]])
  weight = losses.class_weight_to_sample_weight(y_true, {1: 4.0}, 2) * jnp.array([1.0, 0.5])
  out = losses.get("sparse_categorical_crossentropy")(y_true, y_pred, sample_weight=weight)
  np.testing.assert_allclose(out, (np.log(2) + 2.0 * -np.log(0.75)) / 2, rtol=1e-6)


def test_class_weight_errors():
  with pytest.raises(JaxnnError, match=r"class_weight: keys must be class indices in \[0, 3\), found 3"):
    losses.class_weight_to_sample_weight(jnp.array([0]), {3: 1.0}, 3)
  with pytest.raises(JaxnnError, match=r"y_true: class labels must be in \[0, 3\), found 5"):
    losses.class_weight_to_sample_weight(jnp.array([0, 5]), {0: 2.0}, 3)
  with pytest.raises(JaxnnError, match=r"class_weight: expected a dict or an array of shape \(3,\), "
                                       r"found shape \(2,\)"):
    losses.class_weight_to_sample_weight(jnp.array([0]), [1.0, 2.0], 3)
  with pytest.raises(JaxnnError, match=r"one-hot rows must have 3 columns"):
    losses.class_weight_to_sample_weight(jnp.zeros((2, 4)), {0: 2.0}, 3)
  with pytest.raises(JaxnnError, match=r"weights must be numbers >= 0, found -1"):
    losses.class_weight_to_sample_weight(jnp.array([0]), {0: -1}, 3)


# --------------------------------------------------------------------------------------------- Loss / get
def test_get_names_aliases_and_class_names():
  assert losses.get("mse").fn is losses.mean_squared_error
  assert losses.get("MeanSquaredError").name == "mean_squared_error"
  assert losses.get("SparseCategoricalCrossentropy").fn is losses.sparse_categorical_crossentropy
  assert losses.get("log_loss").fn is losses.binary_crossentropy
  assert losses.get("kld") == losses.get("KLDivergence")
  for name in losses.names():
    assert isinstance(losses.get(name), losses.Loss)
  assert {"mse", "mae", "mape", "msle", "kld", "log_loss", "Huber"} <= set(losses.names())


def test_get_unknown_name_lists_valid_names():
  with pytest.raises(JaxnnError, match=r"loss: unknown name 'crossentropy'; valid names: .*"
                                       r"binary_crossentropy.*mean_squared_error.*mse"):
    losses.get("crossentropy")
  with pytest.raises(JaxnnError, match=r"expected a name, a Loss or a callable, found int"):
    losses.get(3)


def test_get_options():
  loss = losses.get("categorical_crossentropy", from_logits=True, label_smoothing=0.1)
  assert loss.kwargs == (("from_logits", True), ("label_smoothing", 0.1))
  assert losses.get(loss) is loss
  assert dict(losses.get(loss, label_smoothing=0.2).kwargs) == {"from_logits": True, "label_smoothing": 0.2}
  with pytest.raises(JaxnnError, match=r"mean_squared_error: unknown option\(s\) \['from_logits'\]; "
                                       r"accepted: none"):
    losses.get("mse", from_logits=True)
  with pytest.raises(JaxnnError, match=r"unknown option\(s\) \['delt'\]; accepted: \['delta'\]"):
    losses.get("huber", delt=2.0)
  with pytest.raises(JaxnnError, match=r"options must be hashable static values"):
    losses.Loss("weighted", losses.mean_squared_error, {"weights": [1, 2]})


def test_numpy_scalar_options_become_python_scalars():
  """np.float32 / np.bool_ options are stored as the Python scalars of the same value: equal, same hash, and
  the same per-example losses to the bit."""
  plain = losses.get("categorical_crossentropy", from_logits=True, label_smoothing=0.25)
  from_numpy = losses.get("categorical_crossentropy", from_logits=np.bool_(True),
                          label_smoothing=np.float32(0.25))
  assert from_numpy.kwargs == (("from_logits", True), ("label_smoothing", 0.25))
  assert [type(v) for _, v in from_numpy.kwargs] == [bool, float]
  assert from_numpy == plain and hash(from_numpy) == hash(plain)
  y = np.eye(3, dtype=np.float32)[[0, 2, 1, 1]]
  logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-2.0, 1.0, 0.0], [0.3, 0.3, 0.3]], np.float32)
  np.testing.assert_array_equal(from_numpy.per_example(y, logits), plain.per_example(y, logits))
  tenth = losses.get("categorical_crossentropy", label_smoothing=np.float32(0.1)).kwargs
  assert tenth == (("label_smoothing", float(np.float32(0.1))),)  # the float32's exact value, not 0.1


def test_get_wraps_callables():
  def doubled_mae(y_true, y_pred, *, scale=2.0):
    return scale * losses.mean_absolute_error(y_true, y_pred)

  loss = losses.get(doubled_mae, scale=3.0)
  assert loss.name == "doubled_mae" and loss.label_format == "regression"
  np.testing.assert_allclose(loss(jnp.zeros((2, 1)), jnp.ones((2, 1))), 3.0)


def test_label_format():
  formats = {"sparse_categorical_crossentropy": "sparse", "categorical_crossentropy": "one_hot",
             "categorical_hinge": "one_hot", "kld": "one_hot", "binary_crossentropy": "binary",
             "hinge": "binary", "squared_hinge": "binary", "mse": "regression", "huber": "regression",
             "cosine_similarity": "regression", "poisson": "regression"}
  for name, label_format in formats.items():
    assert losses.get(name).label_format == label_format, name


def test_loss_is_hashable_and_a_static_jit_argument():
  traces = []

  @functools.partial(jax.jit, static_argnames="loss")
  def objective(y_true, y_pred, *, loss):
    traces.append(loss.name)
    return loss(y_true, y_pred)

  y_true, y_pred = jnp.array([0, 1]), jnp.array([[0.5, 0.5], [0.2, 0.8]])
  a = losses.get("sparse_categorical_crossentropy")
  b = losses.get("SparseCategoricalCrossentropy")
  assert a == b and hash(a) == hash(b)
  np.testing.assert_allclose(objective(y_true, y_pred, loss=a), -(np.log(0.5) + np.log(0.8)) / 2, rtol=1e-6)
  objective(y_true, y_pred, loss=b)
  assert len(traces) == 1  # equal losses share the compiled function
  objective(y_true, jnp.log(y_pred), loss=losses.get(a, from_logits=True))
  assert len(traces) == 2
