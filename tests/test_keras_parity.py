"""jaxnn's losses against Keras 3 itself, where Keras is installed (TensorFlow brings it with the tfds extra).

The hand-computed tests in test_losses.py are the reference; this checks the same semantics against the
library jaxnn promises to match, on random inputs including probabilities of exactly 0 and 1.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jaxnn import losses  # noqa: E402

keras = pytest.importorskip("keras")

B, C = 6, 4
RNG = np.random.default_rng(0)


def _probs(shape):
  p = RNG.uniform(0, 1, shape).astype(np.float32)
  p[0, 0], p[1, 1] = 0.0, 1.0  # the clipping edge cases
  return p


LABELS = RNG.integers(0, C, B).astype(np.int32)
ONE_HOT = np.eye(C, dtype=np.float32)[LABELS]
LOGITS = RNG.normal(0, 2, (B, C)).astype(np.float32)
BINARY = RNG.integers(0, 2, (B, C)).astype(np.float32)
REAL_T, REAL_P = RNG.normal(0, 1, (2, B, C)).astype(np.float32)
POS_T, POS_P = RNG.uniform(0.1, 2, (2, B, C)).astype(np.float32)

CASES = [
    ("sparse_categorical_crossentropy", LABELS, _probs((B, C)), {}),
    ("sparse_categorical_crossentropy", LABELS, LOGITS, {"from_logits": True}),
    ("categorical_crossentropy", ONE_HOT, _probs((B, C)), {}),
    ("categorical_crossentropy", ONE_HOT, LOGITS, {"from_logits": True, "label_smoothing": 0.1}),
    ("binary_crossentropy", BINARY, _probs((B, C)), {}),
    ("binary_crossentropy", BINARY, LOGITS, {"from_logits": True, "label_smoothing": 0.2}),
    ("mean_squared_error", REAL_T, REAL_P, {}),
    ("mean_absolute_error", REAL_T, REAL_P, {}),
    ("mean_absolute_percentage_error", REAL_T, REAL_P, {}),
    ("mean_squared_logarithmic_error", POS_T, POS_P, {}),
    ("hinge", BINARY, REAL_P, {}),
    ("squared_hinge", BINARY, REAL_P, {}),
    ("categorical_hinge", ONE_HOT, REAL_P, {}),
    ("huber", REAL_T, REAL_P, {}),
    ("log_cosh", REAL_T, REAL_P, {}),
    ("kl_divergence", POS_T / POS_T.sum(-1, keepdims=True), POS_P / POS_P.sum(-1, keepdims=True), {}),
    ("poisson", POS_T, POS_P, {}),
    ("cosine_similarity", REAL_T, REAL_P, {}),
]


@pytest.mark.parametrize("name, y_true, y_pred, kwargs", CASES, ids=[f"{c[0]}{c[3] or ''}" for c in CASES])
def test_per_example_values_match_keras(name, y_true, y_pred, kwargs):
  ours = np.asarray(losses.get(name, **kwargs).per_example(y_true, y_pred))
  theirs = np.asarray(getattr(keras.losses, name)(y_true, y_pred, **kwargs))
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
