"""Sample weights against Keras 3 itself: in validation (`validation_data=(x, y, sample_weight)`, and
`validation_split` with `sample_weight`: Keras splits the weights with x and y; class_weight stays with
training) and in `weighted_metrics` (weighted by sample and class weights, "weighted_<name>" beside a metric of
the same name). One softmax layer, SGD, no shuffling, the same initial weights: the per-epoch training and
validation losses and metrics match Keras' History, and `evaluate` matches Keras' `evaluate`."""

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


OURS = jaxnn.Sequential([jaxnn.layers.Dense(C, activation="softmax")])
PARAMS = {"dense_0": {"kernel": KERNEL, "bias": BIAS}}


def _keras_model(metrics, weighted_metrics):
  model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(C, activation="softmax")])
  model.set_weights([KERNEL, BIAS])
  model.compile(loss=LOSS, metrics=metrics, weighted_metrics=weighted_metrics, optimizer=keras.optimizers.SGD(LR))
  return model


def _fit_both(metrics=("accuracy",), weighted_metrics=None, **kwargs):
  metrics = list(metrics)
  want = _keras_model(metrics, weighted_metrics).fit(X, Y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
                                                     verbose=0, **kwargs).history
  _, got = jaxnn.fit(OURS, PARAMS, X, Y, loss=LOSS, metrics=metrics, weighted_metrics=weighted_metrics,
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


WEIGHTED = {  # metrics, weighted_metrics
    "beside-the-same-metric": (["accuracy"], ["accuracy"]),
    "alone": ([], ["accuracy"]),
}


def _assert_same_logs(got, want):
  assert sorted(got) == sorted(want)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)


# Keras 3 refuses sample_weight and class_weight together (jaxnn multiplies them, as tf.keras 2 did).
TRAINING_WEIGHTS = {"sample-weight": dict(sample_weight=W), "class-weight": dict(class_weight={0: 2.0, 1: 0.5, 2: 1.0})}


@pytest.mark.parametrize("weights", list(TRAINING_WEIGHTS))
@pytest.mark.parametrize("case", list(WEIGHTED))
def test_weighted_metrics_match_keras_in_fit_and_evaluate(case, weights):
  metrics, weighted = WEIGHTED[case]
  want, got = _fit_both(metrics, weighted, validation_data=(X[35:], Y[35:], W[35:]), **TRAINING_WEIGHTS[weights])
  jaxnn_only = ("seconds", "skipped_steps", "learning_rate")
  _assert_same_logs({k: v for k, v in got.history.items() if k not in jaxnn_only}, want)
  theirs = _keras_model(metrics, weighted)
  for sample_weight in (W, None):
    _assert_same_logs(
        jaxnn.evaluate(OURS, PARAMS, X, Y, loss=LOSS, metrics=metrics, weighted_metrics=weighted,
                       sample_weight=sample_weight, batch_size=BATCH),
        theirs.evaluate(X, Y, sample_weight=sample_weight, batch_size=BATCH, verbose=0, return_dict=True))


def test_weighted_precision_and_recall_match_keras():
  """Confusion-count metrics weighted: a one-unit sigmoid model on binary targets, Keras' Precision / Recall
  (threshold 0.5) against jaxnn's precision / recall of the positive class."""
  y = (Y == 1).astype(np.float32)[:, None]
  kernel, bias = KERNEL[:, :1], BIAS[:1]
  theirs = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, activation="sigmoid")])
  theirs.set_weights([kernel, bias])
  pair = lambda: [keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")]  # noqa: E731
  theirs.compile(loss="binary_crossentropy", metrics=pair(), weighted_metrics=pair())
  want = theirs.evaluate(X, y, sample_weight=W, batch_size=BATCH, verbose=0, return_dict=True)
  ours = jaxnn.Sequential([jaxnn.layers.Dense(1, activation="sigmoid")])
  got = jaxnn.evaluate(ours, {"dense_0": {"kernel": kernel, "bias": bias}}, X, y, loss="binary_crossentropy",
                       metrics=["precision", "recall"], weighted_metrics=["precision", "recall"], sample_weight=W,
                       batch_size=BATCH)
  _assert_same_logs(got, want)
  assert abs(got["weighted_precision"] - got["precision"]) > 1e-3
