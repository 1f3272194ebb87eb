"""Tests for jaxnn.metrics: hand-computed values, additive statistics, resolution by name, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import losses
from jaxnn import metrics
from jaxnn.errors import JaxnnError

# Compiled once per (metric, shapes): several times faster than op-by-op on tiny arrays.
_evaluate = jax.jit(metrics.evaluate, static_argnums=0)

# Four examples, three classes; predictions argmax [0, 1, 1, 2] against labels [0, 1, 2, 2].
LABELS = jnp.array([0, 1, 2, 2])
ONE_HOT = jax.nn.one_hot(LABELS, 3)
SCORES = jnp.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])


def _value(name, y_true, y_pred, sample_weight=None, **options):
  return _evaluate(metrics.get(name, **options), y_true, y_pred, sample_weight)


def _jit(fn):
  """`fn` compiled with its keyword options static."""
  def call(*args, **kwargs):
    return jax.jit(functools.partial(fn, **kwargs))(*args)
  return call


# --------------------------------------------------------------------------------------------- accuracies
def test_sparse_and_categorical_accuracy():
  np.testing.assert_allclose(_jit(metrics.sparse_categorical_accuracy)(LABELS, SCORES), [1, 1, 0, 1])
  np.testing.assert_allclose(_jit(metrics.categorical_accuracy)(ONE_HOT, SCORES), [1, 1, 0, 1])
  np.testing.assert_allclose(_value("sparse_categorical_accuracy", LABELS, SCORES), 0.75)
  np.testing.assert_allclose(_value("categorical_accuracy", ONE_HOT, SCORES), 0.75)


def test_binary_accuracy_threshold():
  y_true = jnp.array([[1.0], [0.0], [1.0], [0.0]])
  y_pred = jnp.array([[0.6], [0.4], [0.5], [0.7]])
  # Keras compares y_pred > threshold: 0.5 is not above 0.5.
  np.testing.assert_allclose(_jit(metrics.binary_accuracy)(y_true, y_pred), [1, 1, 0, 0])
  np.testing.assert_allclose(_jit(metrics.binary_accuracy)(y_true, y_pred, threshold=0.45), [1, 1, 1, 0])
  np.testing.assert_allclose(_value("binary_accuracy", y_true[:, 0], y_pred[:, 0], threshold=0.45), 0.75)
  # Multi-label (B, 2): the fraction of right labels per example.
  out = _jit(metrics.binary_accuracy)(jnp.array([[1, 0], [1, 1]]), jnp.array([[0.9, 0.8], [0.7, 0.6]]))
  np.testing.assert_allclose(out, [0.5, 1.0])


def test_top_k_accuracy():
  y_pred = jnp.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
  top_k = _jit(metrics.sparse_top_k_categorical_accuracy)
  np.testing.assert_allclose(top_k(jnp.array([2, 0]), y_pred, k=1), [0, 0])
  np.testing.assert_allclose(top_k(jnp.array([2, 0]), y_pred, k=2), [1, 1])
  # Ties count in favour (Keras): class 1 ties class 0 for second place.
  np.testing.assert_allclose(top_k(jnp.array([2, 1]), y_pred, k=2), [1, 1])
  np.testing.assert_allclose(
      _jit(metrics.top_k_categorical_accuracy)(jax.nn.one_hot(jnp.array([2, 0]), 3), y_pred, k=1), [0, 0])
  # The default k = 5 covers every one of 3 classes.
  np.testing.assert_allclose(_value("top_k_categorical_accuracy", jax.nn.one_hot(jnp.array([2, 0]), 3),
                                    y_pred), 1.0)
  # An out-of-range label traced under jit is never "in the top k".
  np.testing.assert_allclose(top_k(jnp.array([7, -1]), y_pred, k=3), [0, 0])


def test_accuracy_follows_the_loss():
  cases = {"sparse_categorical_crossentropy": metrics.sparse_categorical_accuracy,
           "categorical_crossentropy": metrics.categorical_accuracy,
           "binary_crossentropy": metrics.binary_accuracy}
  for loss_name, fn in cases.items():
    for alias in ("accuracy", "acc"):
      metric = metrics.get(alias, loss=losses.get(loss_name))
      assert metric.name == alias  # reported under the name asked for, as Keras does
      assert dict(metric.update.kwargs)["fn"] is fn
  metric = metrics.get("accuracy", loss="binary_crossentropy", threshold=0.3)
  np.testing.assert_allclose(_evaluate(metric, jnp.array([[1.0]]), jnp.array([[0.4]])), 1.0)


def test_accuracy_without_a_loss_uses_keras_shape_rule():
  accuracy = metrics.get("accuracy")
  np.testing.assert_allclose(_evaluate(accuracy, LABELS, SCORES), 0.75)  # sparse
  np.testing.assert_allclose(_evaluate(accuracy, ONE_HOT, SCORES), 0.75)  # one-hot
  binary = _evaluate(accuracy, jnp.array([[1.0], [0.0]]), jnp.array([[0.7], [0.7]]))
  np.testing.assert_allclose(binary, 0.5)
  # A regression (or custom) loss says nothing about labels, so the shapes decide there too.
  np.testing.assert_allclose(_evaluate(metrics.get("acc", loss="mse"), ONE_HOT, SCORES), 0.75)


def test_top_k_names():
  metric = metrics.get("top_2_accuracy", loss="sparse_categorical_crossentropy")
  assert metric.name == "top_2_accuracy"
  assert dict(metric.update.kwargs)["options"] == (("k", 2),)
  y_pred = jnp.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
  np.testing.assert_allclose(_evaluate(metric, jnp.array([2, 0]), y_pred), 1.0)
  np.testing.assert_allclose(_value("top_k_accuracy", LABELS, SCORES, k=1), 0.75)
  with pytest.raises(JaxnnError, match=r"k is given by the name"):
    metrics.get("top_2_accuracy", k=3)
  with pytest.raises(JaxnnError, match=r"k must be an int >= 1, found 0"):
    _value("top_k_accuracy", LABELS, SCORES, k=0)


# --------------------------------------------------------------------------------------------- confusion
def test_confusion_matrix_three_classes():
  cm = jax.jit(metrics.confusion_matrix, static_argnums=2)(LABELS, jnp.argmax(SCORES, -1), 3)
  np.testing.assert_allclose(cm, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
  weights = jnp.array([0.5, 2.0, 3.0, 0.0])
  cm = metrics.confusion_matrix(LABELS, jnp.array([0, 1, 1, 2]), 3, weights)
  np.testing.assert_allclose(cm, [[0.5, 0, 0], [0, 2, 0], [0, 3, 0]])


def test_confusion_matrix_errors():
  with pytest.raises(JaxnnError, match=r"y_pred_classes classes must be in \[0, 3\), found 3"):
    metrics.confusion_matrix(LABELS, jnp.array([0, 1, 3, 2]), 3)
  with pytest.raises(JaxnnError, match=r"y_true must hold integer classes, found dtype float32"):
    metrics.confusion_matrix(ONE_HOT, jnp.zeros((4, 3), jnp.int32), 3)
  with pytest.raises(JaxnnError, match=r"y_pred_classes must have the shape of y_true \(4,\).*"
                                       r"found \(4, 1\)"):
    metrics.confusion_matrix(LABELS, LABELS[:, None], 3)
  with pytest.raises(JaxnnError, match=r"num_classes must be an int >= 1, found 0"):
    metrics.confusion_matrix(LABELS, LABELS, 0)


def test_precision_recall_f1_multiclass():
  # cm (rows true, columns predicted) [[1, 0, 0], [0, 1, 0], [0, 1, 1]]:
  # TP [1, 1, 1], predicted counts [1, 2, 1], true counts [1, 1, 2].
  expected = {
      "precision": {None: [1, 0.5, 1], "macro": 2.5 / 3, "micro": 0.75, "weighted": (1 + 0.5 + 2) / 4},
      "recall": {None: [1, 1, 0.5], "macro": 2.5 / 3, "micro": 0.75, "weighted": (1 + 1 + 1) / 4},
      "f1_score": {None: [1, 2 / 3, 2 / 3], "macro": 7 / 9, "micro": 0.75,
                   "weighted": (1 + 2 / 3 + 2 * 2 / 3) / 4},
  }
  for name, by_average in expected.items():
    for average, value in by_average.items():
      np.testing.assert_allclose(_value(name, LABELS, SCORES, average=average), value, rtol=1e-6,
                                 err_msg=f"{name} {average}")
      np.testing.assert_allclose(_value(name, ONE_HOT, SCORES, average=average), value, rtol=1e-6)
    np.testing.assert_allclose(_value(name, LABELS, SCORES), by_average["macro"], rtol=1e-6)  # auto


def test_precision_recall_f1_binary_report_the_positive_class():
  y_true = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
  y_pred = jnp.array([0.9, 0.6, 0.2, 0.1, 0.1])  # TP 1, FP 1, FN 2, TN 1
  np.testing.assert_allclose(metrics.precision(y_true, y_pred), 0.5)
  np.testing.assert_allclose(metrics.recall(y_true, y_pred), 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics.f1_score(y_true, y_pred), 2 * 1 / (2 * 1 + 1 + 2), rtol=1e-6)
  np.testing.assert_allclose(_value("Precision", y_true[:, None], y_pred[:, None]), 0.5)
  # average=None: the two classes; class 0 has TN 1, with 2 wrongly predicted negative and 1 missed.
  np.testing.assert_allclose(metrics.precision(y_true, y_pred, average=None), [1 / 3, 0.5], rtol=1e-6)
  np.testing.assert_allclose(metrics.recall(y_true, y_pred, threshold=0.05), 1.0)


def test_zero_division_gives_zero():
  # Class 2 is never true and never predicted, class 1 never predicted: 0, not nan.
  y_true, y_pred = jnp.array([0, 1]), jnp.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]])
  np.testing.assert_allclose(metrics.precision(y_true, y_pred, average=None), [0.5, 0, 0])
  np.testing.assert_allclose(metrics.f1_score(y_true, y_pred, average=None), [2 / 3, 0, 0], rtol=1e-6)
  np.testing.assert_allclose(metrics.recall(y_true, y_pred, average="macro"), 1 / 3, rtol=1e-6)
  no_positive = metrics.precision(jnp.array([0.0, 1.0]), jnp.array([0.1, 0.2]))
  np.testing.assert_allclose(no_positive, 0.0)
  empty = metrics.get("accuracy").compute({"total": jnp.float32(0), "count": jnp.float32(0)})
  np.testing.assert_allclose(empty, 0.0)


# --------------------------------------------------------------------------------------------- statistics
def test_weighted_and_masked_updates():
  weights = jnp.array([1.0, 1.0, 2.0, 0.0])
  # Mean metrics divide by the summed weight (Keras' Mean metrics): (1 + 1 + 0) / 4.
  np.testing.assert_allclose(_value("accuracy", LABELS, SCORES, weights), 0.5)
  # Padded rows (weight 0) may hold garbage predictions.
  padded = SCORES.at[3].set(jnp.nan)
  np.testing.assert_allclose(_value("mse", ONE_HOT, padded, weights), _value("mse", ONE_HOT[:3], SCORES[:3],
                                                                              weights[:3]), rtol=1e-6)
  np.testing.assert_allclose(_value("f1_score", LABELS, padded, weights, average="micro"), 0.5)
  stats = metrics.get("recall").update(LABELS, SCORES, jnp.array([True, True, True, False]))
  np.testing.assert_allclose(stats["confusion"], [[1, 0, 0], [0, 1, 0], [0, 1, 0]])


def test_mean_metric_divides_by_summed_weight_unlike_the_loss():
  y_true, y_pred = jnp.zeros((2, 1)), jnp.array([[1.0], [2.0]])
  weights = jnp.array([1.0, 3.0])
  np.testing.assert_allclose(_value("mse", y_true, y_pred, weights), (1 + 12) / 4)
  np.testing.assert_allclose(losses.get("mse")(y_true, y_pred, weights), (1 + 12) / 2)
  np.testing.assert_allclose(_value("rmse", y_true, y_pred, weights), np.sqrt(13 / 4), rtol=1e-6)


@pytest.mark.parametrize("name,y_true,options", [
    ("accuracy", LABELS, {}),
    ("top_k_accuracy", LABELS, {"k": 2}),
    ("precision", LABELS, {"average": "macro"}),
    ("f1_score", ONE_HOT, {"average": None}),
    ("recall", ONE_HOT, {"average": "weighted"}),
    ("categorical_crossentropy", ONE_HOT, {}),
])
def test_summed_halves_equal_the_whole(name, y_true, options):
  metric = metrics.get(name, **options)
  weights = jnp.array([1.0, 0.5, 2.0, 1.0])
  halves = [metric.update(y_true[s], SCORES[s], weights[s]) for s in (slice(0, 2), slice(2, 4))]
  summed = jax.tree_util.tree_map(jnp.add, *halves)
  np.testing.assert_allclose(metric.compute(summed), _evaluate(metric, y_true, SCORES, weights), rtol=1e-6)


def test_update_sums_inside_a_compiled_scan():
  metric_list = (metrics.get("accuracy"), metrics.get("f1_score", average="macro"),
                 metrics.get("top_k_accuracy", k=2))
  # Two batches of two; the last example is padding (mask False), as in a partial last batch.
  y_true, y_pred = LABELS.reshape(2, 2), SCORES.reshape(2, 2, 3)
  mask = jnp.array([[True, True], [True, False]])

  @jax.jit
  def totals(y_true, y_pred, mask):
    def step(carry, batch):
      stats = tuple(metric.update(*batch) for metric in metric_list)
      return jax.tree_util.tree_map(jnp.add, carry, stats), None

    first = tuple(metric.update(y_true[0], y_pred[0], mask[0]) for metric in metric_list)
    return jax.lax.scan(step, jax.tree_util.tree_map(jnp.zeros_like, first), (y_true, y_pred, mask))[0]

  for metric, stats in zip(metric_list, totals(y_true, y_pred, mask)):
    np.testing.assert_allclose(metric.compute(stats), _evaluate(metric, LABELS[:3], SCORES[:3]), rtol=1e-6)


# --------------------------------------------------------------------------------------------- get
def test_loss_names_as_metrics():
  y_true, y_pred = jnp.array([[1.0, 2.0]]), jnp.array([[2.0, 4.0]])
  np.testing.assert_allclose(_value("mae", y_true, y_pred), 1.5)
  np.testing.assert_allclose(_value("MeanSquaredError", y_true, y_pred), 2.5)
  np.testing.assert_allclose(_value("mape", y_true, y_pred), 100.0)
  # Keras' cosine_similarity metric is +cos (its loss is -cos).
  np.testing.assert_allclose(_value("cosine_similarity", y_true, y_pred), 1.0, rtol=1e-6)
  logits = jnp.array([[0.0, np.log(3.0)]])
  np.testing.assert_allclose(_value("binary_crossentropy", jnp.array([[0.0, 1.0]]), logits, from_logits=True),
                             (np.log(2.0) + np.log(4 / 3)) / 2, rtol=1e-6)


def test_custom_callable_metric():
  def abs_error(y_true, y_pred):
    return jnp.abs(y_true - y_pred)

  metric = metrics.get(abs_error)
  assert metric.name == "abs_error"
  np.testing.assert_allclose(_evaluate(metric, jnp.array([1.0, 2.0]), jnp.array([2.0, 5.0])), 2.0)
  assert metrics.get(metric) is metric


def test_metric_is_hashable_and_a_static_jit_argument():
  a, b = metrics.get("f1", average="micro"), metrics.get("f1", average="micro")
  assert a == b and hash(a) == hash(b)
  assert a != metrics.get("f1", average="macro")
  traces = []

  @functools.partial(jax.jit, static_argnames="metric")
  def run(y_true, y_pred, *, metric):
    traces.append(metric.name)
    return metrics.evaluate(metric, y_true, y_pred)

  np.testing.assert_allclose(run(LABELS, SCORES, metric=a), 0.75)
  run(LABELS, SCORES, metric=b)
  assert len(traces) == 1


def test_unknown_names_and_options():
  with pytest.raises(JaxnnError, match=r"metric: unknown name 'accuracyy'; valid names: .*accuracy.*"
                                       r"f1_score.*precision.*top_<k>_accuracy"):
    metrics.get("accuracyy")
  assert {"accuracy", "acc", "f1", "F1Score", "mse", "rmse", "top_k_accuracy"} <= set(metrics.names())
  with pytest.raises(JaxnnError, match=r"precision: average must be one of \['auto', 'macro', 'micro', "
                                       r"'weighted', None\], found 'samples'"):
    metrics.get("precision", average="samples")
  with pytest.raises(JaxnnError, match=r"recall: unknown option\(s\) \['k'\]"):
    metrics.get("recall", k=3)
  top3 = metrics.get("sparse_top_k_categorical_accuracy", k=np.int64(3))  # a numpy int is stored as the int
  assert top3 == metrics.get("sparse_top_k_categorical_accuracy", k=3)
  assert "np.int64" not in repr(top3) and "('k', 3)" in repr(top3)
  with pytest.raises(JaxnnError, match=r"accuracy \(sparse_categorical_accuracy\): unknown option\(s\) "
                                       r"\['threshold'\]; accepted: none"):
    metrics.get("accuracy", loss="sparse_categorical_crossentropy", threshold=0.5)
  with pytest.raises(JaxnnError, match=r"expected a name, a Metric or a callable, found int"):
    metrics.get(5)


def test_shape_and_dtype_errors():
  with pytest.raises(JaxnnError, match=r"binary_accuracy: y_true must have the shape of y_pred \(4, 1\) "
                                       r"\(no broadcasting\), found \(4,\)"):
    metrics.binary_accuracy(jnp.zeros(4), jnp.zeros((4, 1)))
  with pytest.raises(JaxnnError, match=r"sparse_categorical_accuracy: y_true must hold integer class "
                                       r"labels, found dtype float32 \(use categorical_accuracy for "
                                       r"one-hot labels\)"):
    metrics.sparse_categorical_accuracy(jnp.zeros(4), SCORES)
  with pytest.raises(JaxnnError, match=r"categorical_accuracy: .*found \(4,\); for integer class labels use "
                                       r"sparse_categorical_accuracy"):
    metrics.categorical_accuracy(LABELS, SCORES)
  with pytest.raises(JaxnnError, match=r"labels must be in \[0, 3\), found 5"):
    metrics.sparse_categorical_accuracy(jnp.array([0, 1, 2, 5]), SCORES)
  with pytest.raises(JaxnnError, match=r"precision: y_true must have the shape of the binary y_pred "
                                       r"\(4, 1\)"):
    metrics.precision(jnp.zeros(4), jnp.zeros((4, 1)))
  with pytest.raises(JaxnnError, match=r"f1_score: y_true must be integer labels of shape \(4,\) or one-hot "
                                       r"rows of shape \(4, 3\), found \(4, 1\)"):
    metrics.f1_score(LABELS[:, None], SCORES)
  with pytest.raises(JaxnnError, match=r"sample_weight: expected shape \(4,\), one value per example, "
                                       r"found \(4, 1\)"):
    metrics.evaluate(metrics.get("accuracy"), LABELS, SCORES, jnp.ones((4, 1)))
  with pytest.raises(JaxnnError, match=r"^sample_weight: expected shape \(4,\) or \(4, 2\), one value per example "
                                       r"or per step, found \(2, 4\)$"):
    metrics.evaluate(metrics.get("sparse_categorical_accuracy"), jnp.zeros((4, 2), jnp.int32),
                     jnp.zeros((4, 2, 3)), jnp.ones((2, 4)))
  with pytest.raises(JaxnnError, match="no broadcasting"):
    jax.jit(metrics.get("binary_accuracy").update)(jnp.zeros(4), jnp.zeros((4, 1)))


def test_per_step_weights_count_steps_as_keras_mean_metrics_do():
  """Sequence outputs (B, T, C) with a (B, T) weight or mask: the mean over the weighted steps, and statistics
  that still add over batches; confusion metrics count the weighted steps."""
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(6, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (6, 5)).astype(np.int32)
  mask = (rng.random((6, 5)) < 0.7).astype(np.float32)
  correct = (scores.argmax(-1) == labels)
  accuracy = metrics.get("sparse_categorical_accuracy")
  np.testing.assert_allclose(metrics.evaluate(accuracy, labels, scores, mask), correct[mask == 1].mean(), rtol=1e-6)
  halves = [accuracy.update(labels[s], scores[s], mask[s]) for s in (slice(0, 2), slice(2, 6))]
  np.testing.assert_allclose(accuracy.compute(jax.tree.map(jnp.add, *halves)), correct[mask == 1].mean(), rtol=1e-6)
  # Per-example weights on per-step values: each example's steps averaged, then weighted.
  w = rng.uniform(0, 2, (6,)).astype(np.float32)
  np.testing.assert_allclose(metrics.evaluate(accuracy, labels, scores, w),
                             (correct.mean(-1) * w).sum() / w.sum(), rtol=1e-6)
  # Binary per-step outputs (B, T, 1) with a (B, T) mask.
  probs = rng.random((6, 5, 1)).astype(np.float32)
  targets = rng.integers(0, 2, (6, 5, 1)).astype(np.float32)
  hits = ((probs > 0.5) == targets)[..., 0]
  np.testing.assert_allclose(metrics.evaluate(metrics.get("binary_accuracy"), targets, probs, mask),
                             hits[mask == 1].mean(), rtol=1e-6)
  cm = np.zeros((3, 3))
  np.add.at(cm, (labels[mask == 1], scores.argmax(-1)[mask == 1]), 1.0)
  np.testing.assert_allclose(metrics.confusion_matrix(labels, scores.argmax(-1), 3, mask), cm)
  np.testing.assert_allclose(metrics.precision(labels, scores, mask, average="micro"), np.trace(cm) / cm.sum(),
                             rtol=1e-6)
