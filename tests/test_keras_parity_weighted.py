"""Sample weights in validation, against Keras 3 itself: `validation_data=(x, y, sample_weight)` and
`validation_split` with `sample_weight` (Keras splits the weights with x and y; class_weight stays with
training). One softmax layer, SGD, no shuffling, the same initial weights: the per-epoch training and validation
losses and metrics match Keras' History."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402

keras = pytest.importorskip("keras")

N, D, C = 50, 5, 3
BATCH, LR, EPOCHS = 8, 0.3, 3
RTOL, ATOL = 1e-5, 1e-6
RNG = np.random.default_rng(0)
Y = RNG.integers(0, C, N).astype(np.int32)
X = (RNG.normal(0, 2, (C, D))[Y] + RNG.normal(0, 1, (N, D))).astype(np.float32)
W = RNG.uniform(0.0, 3.0, N).astype(np.float32)
KERNEL = RNG.normal(0, 0.3, (D, C)).astype(np.float32)
BIAS = RNG.normal(0, 0.1, C).astype(np.float32)
LOSS = "sparse_categorical_crossentropy"
NAMES = ("loss", "accuracy", "val_loss", "val_accuracy")


def _keras_model():
  model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(C, activation="softmax")])
  model.set_weights([KERNEL, BIAS])
  model.compile(loss=LOSS, metrics=["accuracy"], optimizer=keras.optimizers.SGD(LR))
  return model


def _fit_both(**kwargs):
  want = _keras_model().fit(X, Y, batch_size=BATCH, epochs=EPOCHS,
                            shuffle=False, verbose=0, **kwargs).history
  ours = jaxnn.Sequential([jaxnn.layers.Dense(C, activation="softmax")])
  _, got = jaxnn.fit(ours, {"dense_0": {"kernel": KERNEL, "bias": BIAS}}, X, Y, loss=LOSS, metrics=["accuracy"],
                     optimizer=jaxnn.OptimizerConfig("sgd", learning_rate=LR), batch_size=BATCH, epochs=EPOCHS,
                     shuffle=False, verbose=0, **kwargs)
  return want, got


CASES = {
    "validation-data-triple": dict(validation_data=(X[35:], Y[35:], W[35:])),
    "validation-split-with-sample-weight": dict(validation_split=0.3, sample_weight=W),
    "validation-split-with-class-weight": dict(validation_split=0.3, class_weight={0: 3.0, 1: 0.5, 2: 1.0}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_weighted_validation_matches_keras(case):
  want, got = _fit_both(**CASES[case])
  for name in NAMES:
    np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_the_validation_weights_change_keras_val_loss():
  """The comparison above has teeth: with the weights dropped, Keras' val_loss is another number."""
  weighted, _ = _fit_both(validation_data=(X[35:], Y[35:], W[35:]))
  plain, _ = _fit_both(validation_data=(X[35:], Y[35:]))
  assert np.abs(np.asarray(weighted["val_loss"]) - np.asarray(plain["val_loss"])).max() > 1e-3
