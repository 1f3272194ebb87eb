"""jaxnn's metrics against Keras 3's own, accumulated over batches, where Keras is installed.

test_metrics.py checks values worked by hand; this feeds `metrics.get(name, **options)` (its `update` summed
over 3 batches of 16, then `compute`) and the Keras metric that means the same thing (`update_state` per
batch, then `result`) the same predictions, labels and sample weights (0 / 0.5 / 1 / 2, zeros as padding).
Scores on a grid of quarters tie often, at the top-k boundary and at the max; probabilities on a grid of
tenths fall exactly on the thresholds 0.3, 0.5 and 0.7.

jaxnn's multiclass precision / recall / F1 predict the argmax: Keras' configuration that means the same is
`Precision` / `Recall(top_k=1, class_id=c)` (lax.top_k, like argmax, keeps the first of tied scores) and
`F1Score(threshold=None)` (every score equal to the row's max, so the same only without ties at the max).
Keras' `threshold` on multiclass scores thresholds each class independently (multi-label); jaxnn has no
such mode, so only binary inputs are compared with thresholds. Where jaxnn computes something else, the
case stays, marked xfail(strict=True) with what differs.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jaxnn import metrics  # noqa: E402

keras = pytest.importorskip("keras")

# Keras' own Variable read through numpy 2's __array__ protocol, and MeanIoU asking for int64 without x64.
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64")]

RTOL = 1e-6
BATCHES, BATCH, CLASSES, LABELS_PER_ROW = 3, 16, 5, 3
_RNG = np.random.default_rng(0)
SPARSE = _RNG.integers(0, CLASSES, (BATCHES, BATCH)).astype(np.int32)
ONE_HOT = np.eye(CLASSES, dtype=np.float32)[SPARSE]
TIED = (_RNG.integers(1, 5, (BATCHES, BATCH, CLASSES)) / 4).astype(np.float32)  # quarters: many ties
DISTINCT = np.asarray(jax.nn.softmax(_RNG.normal(0, 1.5, (BATCHES, BATCH, CLASSES)), axis=-1), np.float32)
PROBS = (_RNG.integers(0, 11, (BATCHES, BATCH)) / 10).astype(np.float32)  # tenths: on the thresholds
TARGETS = _RNG.integers(0, 2, (BATCHES, BATCH)).astype(np.float32)
MULTI_PROBS = (_RNG.integers(0, 11, (BATCHES, BATCH, LABELS_PER_ROW)) / 10).astype(np.float32)
MULTI_TARGETS = _RNG.integers(0, 2, (BATCHES, BATCH, LABELS_PER_ROW)).astype(np.float32)
WEIGHTS = _RNG.choice(np.array([0.0, 0.5, 1.0, 2.0], np.float32), (BATCHES, BATCH))

# (y_true, y_pred) per batch, by name.
DATA = {
    "sparse": (SPARSE, TIED),
    "one_hot": (ONE_HOT, TIED),
    "sparse_distinct": (SPARSE, DISTINCT),
    "one_hot_distinct": (ONE_HOT, DISTINCT),
    "binary": (TARGETS, PROBS),
    "binary_column": (TARGETS[..., None], PROBS[..., None]),
    "multi_label": (MULTI_TARGETS, MULTI_PROBS),
}


def _batches(data, weighted):
  y_true, y_pred = DATA[data]
  return [(y_true[i], y_pred[i], WEIGHTS[i] if weighted else None) for i in range(BATCHES)]


def run_jaxnn(metric, data, weighted):
  """`compute` of the jitted `update`s summed leaf by leaf over the batches."""
  update, stats = jax.jit(metric.update), None
  for y_true, y_pred, weight in _batches(data, weighted):
    batch_stats = update(y_true, y_pred, weight)
    stats = batch_stats if stats is None else jax.tree.map(jnp.add, stats, batch_stats)
  return np.asarray(metric.compute(stats))


def run_keras(metric, data, weighted):
  """`result()` after one `update_state` per batch."""
  for y_true, y_pred, weight in _batches(data, weighted):
    metric.update_state(y_true, y_pred, sample_weight=weight)
  return np.asarray(metric.result())


def _differs(reason):
  return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


WEIGHTED = pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])


# --------------------------------------------------------------------------------------------- accuracies
def _acc(name, keras_name, data, marks=(), keras_data=None, **options):
  shown = ",".join(f"{k}={v}" for k, v in options.items())
  return pytest.param(name, options, keras_name, options, data, keras_data or data, marks=marks,
                      id=f"{name}{'(' + shown + ')' if shown else ''}-{data}")


ACCURACY_CASES = [
    _acc("sparse_categorical_accuracy", "SparseCategoricalAccuracy", "sparse"),
    _acc("SparseCategoricalAccuracy", "SparseCategoricalAccuracy", "sparse_distinct"),
    _acc("categorical_accuracy", "CategoricalAccuracy", "one_hot"),
    _acc("CategoricalAccuracy", "CategoricalAccuracy", "one_hot_distinct"),
    _acc("binary_accuracy", "BinaryAccuracy", "binary"),
    _acc("binary_accuracy", "BinaryAccuracy", "binary", threshold=0.3),
    _acc("BinaryAccuracy", "BinaryAccuracy", "binary_column", threshold=0.7),
    _acc("binary_accuracy", "BinaryAccuracy", "multi_label"),
    _acc("binary_accuracy", "BinaryAccuracy", "multi_label", threshold=0.3),
    _acc("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy", "sparse", k=1),
    _acc("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy", "sparse", k=2),
    _acc("SparseTopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "sparse", k=3),
    _acc("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy", "sparse_distinct", k=2),
    _acc("top_k_categorical_accuracy", "TopKCategoricalAccuracy", "one_hot", k=1),
    _acc("top_k_categorical_accuracy", "TopKCategoricalAccuracy", "one_hot", k=2),
    _acc("TopKCategoricalAccuracy", "TopKCategoricalAccuracy", "one_hot", k=4),
    _acc("top_k_categorical_accuracy", "TopKCategoricalAccuracy", "one_hot_distinct", k=3),
]


@WEIGHTED
@pytest.mark.parametrize("name, options, keras_name, keras_options, data, keras_data", ACCURACY_CASES)
def test_accuracy_matches_keras(name, options, keras_name, keras_options, data, keras_data, weighted):
  ours = run_jaxnn(metrics.get(name, **options), data, weighted)
  theirs = run_keras(getattr(keras.metrics, keras_name)(**keras_options), keras_data, weighted)
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)


@WEIGHTED
@pytest.mark.parametrize("name, k, data, keras_name", [
    ("top_2_accuracy", 2, "sparse", "SparseTopKCategoricalAccuracy"),
    ("top_3_accuracy", 3, "one_hot", "TopKCategoricalAccuracy"),
    ("top_k_accuracy", 5, "sparse", "SparseTopKCategoricalAccuracy"),  # k defaults to 5, as Keras'
], ids=["top_2_accuracy-sparse", "top_3_accuracy-one_hot", "top_k_accuracy-sparse"])
def test_top_k_names_match_keras(name, k, data, keras_name, weighted):
  """top_<k>_accuracy / top_k_accuracy pick the sparse or one-hot top-k by the labels' rank."""
  ours = run_jaxnn(metrics.get(name), data, weighted)
  theirs = run_keras(getattr(keras.metrics, keras_name)(k=k), data, weighted)
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)


# "accuracy" as jaxnn resolves it from the loss (or, with none, the shapes) against what Keras 3's compile
# resolves it to from the shapes of y_true and y_pred (compile_utils.get_metric).
_MULTI_LABEL_ACCURACY = (
    "for binary_crossentropy on multi-label (B, 3) targets jaxnn's 'accuracy' is binary_accuracy (from the "
    "loss, jaxnn/metrics.py _BY_LABEL_FORMAT / get), Keras 3's compile picks CategoricalAccuracy from the "
    "shapes alone (last axis != 1, same rank): argmax of y_pred vs argmax of y_true. Measured: jaxnn "
    "{ours}, Keras {theirs}")


@WEIGHTED
@pytest.mark.parametrize("loss, data", [
    pytest.param("sparse_categorical_crossentropy", "sparse", id="sparse_categorical_crossentropy-sparse"),
    pytest.param("categorical_crossentropy", "one_hot", id="categorical_crossentropy-one_hot"),
    pytest.param("binary_crossentropy", "binary_column", id="binary_crossentropy-binary_column"),
    pytest.param(None, "sparse", id="no_loss-sparse"),
    pytest.param(None, "one_hot", id="no_loss-one_hot"),
    pytest.param(None, "binary_column", id="no_loss-binary_column"),
    pytest.param(None, "multi_label", id="no_loss-multi_label"),
    pytest.param("mse", "one_hot", id="mse-one_hot"),
    pytest.param("binary_crossentropy", "multi_label", id="binary_crossentropy-multi_label",
                 marks=_differs(_MULTI_LABEL_ACCURACY.format(ours="0.5417 (weighted 0.5000)",
                                                             theirs="0.3542 (weighted 0.3804)"))),
])
def test_accuracy_resolves_as_keras_compile_does(loss, data, weighted):
  # Keras' private module: only this test skips where a later Keras moves it.
  compile_utils = pytest.importorskip("keras.src.trainers.compile_utils")
  y_true, y_pred = DATA[data]
  ours = run_jaxnn(metrics.get("accuracy", loss=loss), data, weighted)
  theirs = run_keras(compile_utils.get_metric("accuracy", y_true[0], y_pred[0]), data, weighted)
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)


# --------------------------------------------------------------------------------------------- binary P / R / F1
@WEIGHTED
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.7])
@pytest.mark.parametrize("data", ["binary", "binary_column"])
@pytest.mark.parametrize("name, keras_name", [("precision", "Precision"), ("recall", "Recall")])
def test_binary_precision_recall_match_keras(name, keras_name, data, threshold, weighted):
  """Binary inputs: the positive class, positive where y_pred > threshold, as Keras' `thresholds`."""
  ours = run_jaxnn(metrics.get(name, threshold=threshold), data, weighted)
  theirs = run_keras(getattr(keras.metrics, keras_name)(thresholds=threshold), data, weighted)
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)


@WEIGHTED
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.7])
@pytest.mark.parametrize("keras_average", [None, "micro", "macro", "weighted"])
def test_binary_f1_matches_keras(keras_average, threshold, weighted):
  """Keras' F1Score on one (B, 1) column is the positive class's F1 whatever its average."""
  ours = run_jaxnn(metrics.get("f1_score", threshold=threshold), "binary_column", weighted)
  theirs = run_keras(keras.metrics.F1Score(average=keras_average, threshold=threshold), "binary_column",
                     weighted)
  np.testing.assert_allclose(ours, np.reshape(theirs, ()), rtol=RTOL)


# --------------------------------------------------------------------------------------------- multiclass P / R / F1
def _keras_per_class(keras_name, data, weighted):
  """Keras' top_k=1 metric for each class_id, and each class's weighted support (TP + FN) from Recall."""
  values, support = [], []
  for class_id in range(CLASSES):
    values.append(run_keras(getattr(keras.metrics, keras_name)(top_k=1, class_id=class_id), data, weighted))
    recall = keras.metrics.Recall(top_k=1, class_id=class_id)
    run_keras(recall, data, weighted)
    support.append(np.asarray(recall.true_positives.numpy() + recall.false_negatives.numpy()).sum())
  return np.stack(values), np.asarray(support)


def _keras_multiclass(keras_name, average, data, weighted):
  """Keras' value for jaxnn's argmax precision / recall with `average`."""
  if average == "micro":  # top_k=1 without class_id: counts summed over every (example, class) entry
    return run_keras(getattr(keras.metrics, keras_name)(top_k=1), data, weighted)
  per_class, support = _keras_per_class(keras_name, data, weighted)
  if average is None:
    return per_class
  if average == "weighted":
    return np.sum(per_class * support) / np.sum(support)
  return np.mean(per_class)  # macro, and auto for more than two classes


@WEIGHTED
@pytest.mark.parametrize("average", [None, "macro", "micro", "weighted", "auto"],
                         ids=["per_class", "macro", "micro", "weighted", "auto"])
@pytest.mark.parametrize("labels", ["sparse", "one_hot"])
@pytest.mark.parametrize("name, keras_name", [("precision", "Precision"), ("recall", "Recall")])
def test_multiclass_precision_recall_match_keras(name, keras_name, labels, average, weighted):
  """Argmax predictions (tied scores: the first) against Keras' top_k=1, per class_id or summed."""
  ours = run_jaxnn(metrics.get(name, average=average), labels, weighted)
  theirs = _keras_multiclass(keras_name, average, "one_hot", weighted)
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)


_F1_TIES = ("Keras' F1Score(threshold=None) predicts every class whose score equals the row's max (several "
            "on ties), jaxnn's f1_score the argmax alone, the first of the tied classes "
            "(jaxnn/metrics.py _confusion_update, jnp.argmax); Keras' top_k=1 Precision / Recall agree with "
            "jaxnn on the same scores. Measured with tied scores: jaxnn {ours}, Keras {theirs}")


@WEIGHTED
@pytest.mark.parametrize("average, keras_average", [
    (None, None), ("macro", "macro"), ("micro", "micro"), ("weighted", "weighted"), ("auto", "macro"),
], ids=["per_class", "macro", "micro", "weighted", "auto"])
@pytest.mark.parametrize("labels, scores", [
    pytest.param("sparse_distinct", "one_hot_distinct", id="sparse-distinct"),
    pytest.param("one_hot_distinct", "one_hot_distinct", id="one_hot-distinct"),
    pytest.param("one_hot", "one_hot", id="one_hot-tied", marks=_differs(_F1_TIES.format(
        ours="per class [0.485 0.095 0.111 0 0], macro 0.1382, micro 0.2083, weighted 0.1745",
        theirs="per class [0.485 0.080 0.286 0.381 0.222], macro 0.2907, micro 0.2979, weighted 0.3303 "
               "(unweighted)"))),
])
def test_multiclass_f1_matches_keras(labels, scores, average, keras_average, weighted):
  """Argmax F1 against Keras' F1Score(threshold=None) on one-hot labels."""
  ours = run_jaxnn(metrics.get("f1_score", average=average), labels, weighted)
  theirs = run_keras(keras.metrics.F1Score(average=keras_average, threshold=None), scores, weighted)
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)


# --------------------------------------------------------------------------------------------- confusion matrix
@WEIGHTED
@pytest.mark.parametrize("data", ["sparse", "sparse_distinct"])
def test_confusion_matrix_matches_keras_mean_iou(data, weighted):
  """jaxnn's confusion matrix, and the statistics precision accumulates, against MeanIoU's `total_cm`."""
  keras_iou = keras.metrics.MeanIoU(num_classes=CLASSES, sparse_y_pred=False, dtype="float32")
  run_keras(keras_iou, data, weighted)
  theirs = np.asarray(keras_iou.total_cm.numpy())
  ours = sum(np.asarray(metrics.confusion_matrix(y_true, np.argmax(y_pred, -1), CLASSES, weight))
             for y_true, y_pred, weight in _batches(data, weighted))
  np.testing.assert_allclose(ours, theirs, rtol=RTOL)
  precision = metrics.get("precision")
  summed = jax.tree.map(lambda *s: sum(s), *[precision.update(*batch) for batch in _batches(data, weighted)])
  np.testing.assert_allclose(summed["confusion"], theirs, rtol=RTOL)


# --------------------------------------------------------------------------------------------- the data
def _keras_value(keras_name, data, **options):
  return run_keras(getattr(keras.metrics, keras_name)(**options), data, weighted=False)


def test_top_k_ties_matter():
  """Counting tied scores out of the top k (rank by >=) would change Keras' value on these scores."""
  y_true, y_pred = SPARSE.reshape(-1), TIED.reshape(-1, CLASSES)
  label_score = np.take_along_axis(y_pred, y_true[:, None], axis=-1)
  for k in (1, 2, 3):
    ties_out = np.mean(np.sum(y_pred >= label_score, axis=-1) <= k)
    assert not np.isclose(ties_out, _keras_value("SparseTopKCategoricalAccuracy", "sparse", k=k)), k


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.7])
def test_thresholds_matter(threshold):
  """Probabilities lie exactly on each threshold, so `>=` instead of `>` would change the values."""
  y_true, y_pred = TARGETS.reshape(-1), PROBS.reshape(-1)
  at = y_pred == np.float32(threshold)
  assert np.any(at & (y_true == 1)) and np.any(at & (y_true == 0))
  predicted = y_pred >= np.float32(threshold)
  tp = np.sum(predicted & (y_true == 1))
  assert not np.isclose(tp / np.sum(predicted), _keras_value("Precision", "binary", thresholds=threshold))
  assert not np.isclose(tp / np.sum(y_true == 1), _keras_value("Recall", "binary", thresholds=threshold))


def test_tied_and_distinct_scores():
  """TIED has ties at the row max (where argmax and Keras' F1Score part), DISTINCT none; every class occurs."""
  for scores, tied in ((TIED, True), (DISTINCT, False)):
    at_max = np.sum(scores == scores.max(axis=-1, keepdims=True), axis=-1)
    assert np.any(at_max > 1) == tied
  assert set(np.unique(SPARSE)) == set(range(CLASSES))
  assert set(np.unique(SPARSE[WEIGHTS > 0])) == set(range(CLASSES))
