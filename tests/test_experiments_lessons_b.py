"""End-to-end: the lessons backprop, regularization, initialization, vanishing_gradients and metrics on tiny
settings; their results.json, self-checks, headline effects and plots."""

import json
import math

import numpy as np
import pytest

from experiments import backprop
from experiments import initialization
from experiments import metrics
from experiments import regularization
from experiments import vanishing_gradients

DATA = ["--n-train", "200", "--n-test", "100"]


def run(module, tmp_path_factory, *args):
  """Runs `module.main` on `args`; returns (results from the file, folder). The file must equal the return."""
  out = tmp_path_factory.mktemp(module.__name__.split(".")[-1])
  returned = module.main([*args, "--out", str(out)])
  results = json.loads((out / "results.json").read_text())
  assert results == json.loads(json.dumps(returned))
  return results, out


def assert_plots(results, out):
  assert results["plots"]
  for name in results["plots"]:
    assert (out / name).stat().st_size > 1000, name


# --------------------------------------------------------------------------------------------- backprop
@pytest.fixture(scope="module")
def backprop_run(tmp_path_factory):
  # One head keeps the file fast; the default run checks both (and fails if either self-check does).
  return run(backprop, tmp_path_factory, *DATA, "--hidden", "8", "--steps", "25", "--grad-batch", "64", "--heads",
             "softmax_crossentropy")


def test_backprop_hand_gradients_equal_jax_grad(backprop_run):
  results, out = backprop_run
  assert set(results["heads"]) == {"softmax_crossentropy"}
  assert results["max_grad_rel_diff_float64"] < 1e-10
  for head in results["heads"].values():
    checks = head["gradient_check"]
    for when in ("float64", "float64_after_training"):
      assert checks[when]["dtype"] == "float64"
      for against in ("vs_jax_grad_of_hand_loss", "vs_jax_grad_of_jaxnn_loss"):
        assert checks[when][against]["max_abs"] < 1e-10 and checks[when][against]["max_rel"] < 1e-10
    # The hand-written loss is jaxnn's loss (away from its probability clipping).
    assert checks["float64"]["loss_hand"] == pytest.approx(checks["float64"]["loss_jaxnn"], rel=1e-12)
  assert_plots(results, out)


def test_backprop_training_matches_step_for_step(backprop_run):
  results, _ = backprop_run
  for head in results["heads"].values():
    assert len(head["loss_curve_hand_float64"]) == len(head["loss_curve_fit_float32"]) == 25
    assert head["training_float64_hand_vs_jax_grad"]["loss"]["max_rel"] < 1e-12
    assert head["training_float64_hand_vs_jax_grad"]["params"]["max_rel"] < 1e-10
    assert head["training_float32_fit_vs_hand"]["loss"]["max_rel"] < 1e-5
    assert head["training_float32_fit_vs_hand"]["params"]["max_rel"] < 1e-4
    assert head["loss_last"] < head["loss_first"]  # the hand-written descent learns


def test_backprop_self_checks_raise():
  # What the run does when the hand-written math disagrees: an error, never a silent pass.
  with pytest.raises(backprop.JaxnnError, match="self-check failed"):
    backprop.check_close("curves", np.array([1.0, 0.5]), np.array([1.0, 0.5 + 1e-6]), "float64")
  close = backprop.check_close("curves", np.array([1.0, 0.5]), np.array([1.0, 0.5 + 1e-6]), "float32")
  assert close["max_rel"] == pytest.approx(2e-6, rel=1e-3)
  a = {"dense_0": {"kernel": np.array([[1.0, -2.0]]), "bias": np.array([0.5])}}
  b = {"dense_0": {"kernel": np.array([[1.0, -2.5]]), "bias": np.array([0.5])}}
  assert backprop.tree_difference(a, b) == {"max_abs": 0.5, "max_rel": 0.2}


# --------------------------------------------------------------------------------------------- regularization
@pytest.fixture(scope="module")
def regularization_run(tmp_path_factory):
  # Equal split sizes let the train / validation / test evaluations share one compiled program.
  return run(regularization, tmp_path_factory, "--n-train", "150", "--n-val", "150", "--n-test", "150",
             "--hidden", "64", "64", "--epochs", "10", "--batch-size", "16", "--patience", "1", "--variants",
             "l2", "early_stopping")


def test_regularization_table(regularization_run):
  results, out = regularization_run
  variants = results["variants"]
  assert list(variants) == ["base", "l2", "early_stopping"]
  for r in variants.values():
    assert r["gap"] == pytest.approx(r["train_accuracy"] - r["val_accuracy"])
    assert r["crossentropy_gap"] == pytest.approx(r["val_crossentropy"] - r["train_crossentropy"])
    assert set(r) >= {"gap_closed", "crossentropy_gap_closed", "test_accuracy", "history", "epochs"}
    assert len(r["history"]["val_accuracy"]) == r["epochs"]
  base = variants["base"]
  assert base["gap_closed"] == 0.0
  assert base["train_accuracy"] >= 0.95 and base["train_accuracy"] > base["val_accuracy"] + 0.05  # overfits
  es = variants["early_stopping"]
  assert es["epochs"] <= 10 and 1 <= es["best_epoch"] <= es["epochs"]
  assert "l2" in json.dumps(variants["l2"]["model"])
  assert_plots(results, out)


def test_regularization_variants_change_one_thing():
  config = regularization.Config()
  base = regularization.build_model(config, "base")
  for variant, needle in (("l1", '"l1": 0.0001'), ("l2", '"l2": 0.001'), ("l1_l2", '"l1": 1e-05'),
                          ("max_norm", '"max_value": 1.0'), ("dropout", '"rate": 0.5')):
    model = regularization.build_model(config, variant)
    assert model != base
    assert needle in json.dumps(model.config()), variant


# --------------------------------------------------------------------------------------------- initialization
@pytest.fixture(scope="module")
def initialization_run(tmp_path_factory):
  return run(initialization, tmp_path_factory, *DATA, "--depth", "3", "--width", "16", "--epochs", "1",
             "--stats-batch", "64", "--initializers", "zeros", "constant_0.01", "normal_0.01", "glorot_uniform")


def test_initialization_symmetry_is_exact(initialization_run):
  results, out = initialization_run
  inits = results["initializers"]
  assert inits["zeros"]["unit_spread_at_init"] == 0.0
  assert inits["zeros"]["unit_spread_after_training"] == 0.0
  # A constant init moves during training, yet its units stay exactly equal.
  assert inits["constant_0.01"]["kernel_change"] > 0
  assert inits["constant_0.01"]["unit_spread_after_training"] == 0.0
  assert inits["glorot_uniform"]["unit_spread_after_training"] > 0
  assert_plots(results, out)


def test_initialization_scale_shows_in_statistics(initialization_run):
  inits = initialization_run[0]["initializers"]
  for r in inits.values():
    assert len(r["at_init"]["activation_std"]) == 4 and len(r["at_init"]["kernel_grad_norm"]) == 4
    assert len(r["history"]["loss"]) == 1
  std = {k: r["at_init"]["activation_std"] for k, r in inits.items()}
  grad = {k: r["at_init"]["kernel_grad_norm"] for k, r in inits.items()}
  assert std["normal_0.01"][2] < 1e-2 * std["glorot_uniform"][2]  # too small: activations shrink
  assert grad["normal_0.01"][0] < 1e-2 * grad["glorot_uniform"][0]


# --------------------------------------------------------------------------------------------- vanishing gradients
@pytest.fixture(scope="module")
def vanishing_run(tmp_path_factory):
  return run(vanishing_gradients, tmp_path_factory, "--n-train", "200", "--depth", "6", "--width", "32",
             "--epochs", "1", "--stats-batch", "64", "--settings", "sigmoid_glorot", "relu_he", "relu_normal_1")


def test_vanishing_and_exploding_ratios(vanishing_run):
  results, out = vanishing_run
  s = results["settings"]
  for r in s.values():
    assert len(r["kernel_grad_norm_at_init"]) == 7
    assert len(r["kernel_grad_norm_per_epoch"]) == 2  # init + 1 epoch
  ratio = {k: r["first_to_last_ratio_at_init"] for k, r in s.items()}
  assert ratio["sigmoid_glorot"] < 1e-3 * ratio["relu_he"]  # vanishing
  assert 0.1 < ratio["relu_he"] < 100  # He + ReLU: the same order of magnitude
  # The backpropagated signal dL/d(outputs), first hidden layer over the logits: shrinks, holds, grows.
  signal = {k: r["signal_first_to_last_ratio_at_init"] for k, r in s.items()}
  assert signal["sigmoid_glorot"] < 1e-2
  assert 0.1 < signal["relu_he"] < 10
  assert signal["relu_normal_1"] > 10
  assert_plots(results, out)


def test_exploding_relu_loss_is_huge(vanishing_run):
  exploding = vanishing_run[0]["settings"]["relu_normal_1"]
  assert exploding["loss_at_init"] > 1e3
  assert exploding["first_nonfinite_loss_epoch"] is not None or exploding["final_loss"] > 1e3
  # The file is standard JSON: nan is written as null.
  assert all(v is None or math.isfinite(v) for v in exploding["history"]["loss"])


# --------------------------------------------------------------------------------------------- metrics
@pytest.fixture(scope="module")
def metrics_run(tmp_path_factory):
  return run(metrics, tmp_path_factory, "--n-train", "1000", "--n-test", "300", "--epochs", "2", "--hidden", "16",
             "--hidden-binary", "16")


def test_metrics_self_check_and_ten_classes(metrics_run):
  results, out = metrics_run
  assert results["self_check_max"] < 1e-5
  ten = results["ten_classes"]
  assert len(ten["precision_per_class"]) == len(ten["recall_per_class"]) == len(ten["f1_per_class"]) == 10
  assert sum(map(sum, ten["confusion_matrix"])) == 300
  assert ten["accuracy"] > 0.5 and 0 < ten["log_loss"] < 2.3
  assert ten["f1_macro"] == pytest.approx(sum(ten["f1_per_class"]) / 10, abs=1e-6)
  assert_plots(results, out)


def test_metrics_accuracy_misleads_on_imbalanced_task(metrics_run):
  task = metrics_run[0]["is_5"]
  assert 0.03 < task["positive_rate_test"] < 0.2
  majority = task["majority"]
  assert majority["accuracy"] == pytest.approx(1 - task["positive_rate_test"])
  assert majority["accuracy"] > 0.8
  assert majority["recall"] == 0.0 and majority["f1"] == 0.0
  assert task["trained_balanced"]["recall"] > 0.5
  assert task["trained_balanced"]["f1"] > majority["f1"]
  assert len(task["threshold_sweep"]["recall"]) == len(task["threshold_sweep"]["thresholds"])


# --------------------------------------------------------------------------------------------- command lines
@pytest.mark.parametrize("module, args", [
    (backprop, ["--steps", "0"]),
    (regularization, ["--variants", "l3"]),
    (initialization, ["--initializers", "ones"]),
    (vanishing_gradients, ["--depth", "x"]),
    (metrics, ["--epochs", "-1"]),
])
def test_bad_flags_exit_with_usage_error(module, args, capsys):
  with pytest.raises(SystemExit) as e:
    module.main(args)
  assert e.value.code == 2
  assert "see --help" in capsys.readouterr().err
