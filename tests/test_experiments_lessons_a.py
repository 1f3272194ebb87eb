"""End-to-end: the lesson experiments (activations, losses, gradient descent, descent variants, perceptron).

Each runs in-process on a tiny setting; its results.json is checked for its self-checks and headline result,
and its plots for being real images.
"""

import json

import pytest

from experiments import activations
from experiments import descent_variants
from experiments import gradient_descent
from experiments import losses
from experiments import perceptron
from jaxnn.errors import JaxnnError


def read_results(out, returned):
  results = json.loads((out / "results.json").read_text())
  assert results == json.loads(json.dumps(returned))  # main returns what it wrote
  for name in results["plots"]:
    assert (out / name).stat().st_size > 1000, name
  return results


def test_perceptron_learns_and_or_not_xor_and_mlp_solves_xor(tmp_path, capsys):
  out = tmp_path / "perceptron"
  results = read_results(out, perceptron.main(["--max-epochs", "30", "--grid-points", "21", "--mlp-epochs", "300",
                                               "--out", str(out)]))
  runs = results["perceptron"]
  for gate, weights_ok in (("AND", lambda w, b: w[0] + w[1] + b >= 0 > max(w) + b),
                           ("OR", lambda w, b: min(w) + b >= 0 > b)):
    assert runs[gate]["learned"] and runs[gate]["correct"] == 4, gate
    assert runs[gate]["outputs"] == list(perceptron.GATES[gate])
    assert 1 <= runs[gate]["epochs_to_learn"] <= 10
    assert weights_ok(runs[gate]["w"], runs[gate]["b"]), gate
  xor = runs["XOR"]
  assert not xor["learned"] and xor["epochs_run"] == 30 and xor["best_correct_ever"] < 4
  assert results["xor_never_learned"] and results["xor_cycles"]
  assert xor["cycle"]["period"] >= 1 and 4 not in xor["cycle"]["correct_in_cycle"]
  assert results["grid_search"]["XOR"]["max_correct"] == 3 and results["grid_search"]["XOR"]["candidates_with_4"] == 0
  assert results["grid_search"]["AND"]["max_correct"] == 4
  assert results["checks"]["forward_vs_hand_max_abs_diff"] == 0.0
  assert results["checks"]["step_gradient_at"]["grad"] == [0.0, 0.0, 0.0, 0.0]
  assert results["mlp_xor"]["correct"] == 4 and results["mlp_xor"]["outputs"] == [0, 1, 1, 0]
  assert set(results["plots"]) == {"decision_boundaries.png", "perceptron_training.png"}
  assert "XOR" in capsys.readouterr().out  # the results table


def test_losses_by_hand_equal_jaxnn_and_mse_is_nonconvex(tmp_path):
  out = tmp_path / "losses"
  results = read_results(out, losses.main(["--grid", "21", "--out", str(out)]))
  example = results["course_example"]
  assert set(example) == {"mean_absolute_error", "mean_squared_error", "binary_crossentropy"}
  for value in example.values():
    assert value["abs_diff"] < 1e-5
  # Worked out from the arrays: |y - p| sums to 3.9 and (y - p)^2 to 2.65 over the ten entries.
  assert example["mean_absolute_error"]["jaxnn"] == pytest.approx(0.39, abs=1e-6)
  assert example["mean_squared_error"]["jaxnn"] == pytest.approx(0.265, abs=1e-6)
  assert example["binary_crossentropy"]["unclipped"] in ("nan", "inf")  # log(0) without the epsilon clip
  assert results["sparse_vs_categorical"]["max_abs_diff"] < 1e-5
  assert results["checks"]["log_loss_hessian_vs_formula_max_abs_diff"] < 1e-5
  assert results["log_loss_convex"] and results["mse_nonconvex"]
  assert results["convexity"]["log_loss"]["min_hessian_eigenvalue"] >= -1e-5
  assert results["convexity"]["mse"]["min_hessian_eigenvalue"] < -1e-3
  assert results["convexity"]["mse"]["line_b0_mixed_sign"]
  assert not results["convexity"]["log_loss"]["line_b0_mixed_sign"]
  assert len(results["plots"]) == 3


def test_gradient_descent_four_ways_agree(tmp_path):
  out = tmp_path / "gd"
  results = read_results(out, gradient_descent.main(["--n", "60", "--epochs", "300", "--out", str(out)]))
  assert set(results["weights"]) == set(gradient_descent.METHODS)
  assert results["methods_agree"] and results["max_abs_diff_between_methods"] < 1e-4
  assert results["gradient_formula_vs_jax_grad_max_abs_diff"] < 1e-5
  assert results["max_abs_diff_loss_history"] < 1e-5
  history = results["loss_history"]["jaxnn_fit"]
  assert len(history) == 300 and history[-1] < history[0]
  assert results["data"]["true_weights"] == gradient_descent.TRUE_WEIGHTS and results["data"]["n"] == 60
  assert "generated" in results["data"]["source"]
  w = results["weights"]["jaxnn_fit"]
  assert w["w1"] > 0 and w["w2"] > 0  # older people, and those who can afford it, buy more
  assert len(results["predictions"]) == len(gradient_descent.PEOPLE)
  assert all(0 < p["p_bought"] < 1 for p in results["predictions"])


def test_descent_variants_one_knob(tmp_path):
  # The MNIST half (three more fits, about 7 s of compiling) is left to the full run: the file's time budget.
  out = tmp_path / "dv"
  results = read_results(out, descent_variants.main([
      "--houses", "20", "--house-epochs", "20", "--house-mini-batch", "4", "--skip-mnist", "--out", str(out)]))
  house = results["houses"]["variants"]
  assert [house[v]["batch_size"] for v in descent_variants.VARIANTS] == [20, 1, 4]
  assert [house[v]["steps_per_epoch"] for v in descent_variants.VARIANTS] == [1, 20, 5]
  assert results["houses"]["scan_vs_fit_batch_max_abs_diff"] < 1e-5
  assert house["batch"]["noise"]["uphill_fraction"] == 0.0  # small lr, exact gradient: a monotone descent
  assert house["stochastic"]["noise"]["uphill_fraction"] > 0.0
  for v in house.values():
    assert len(v["history"]["val_loss"]) == 20 and v["seconds_per_epoch"] > 0
    assert len(v["per_step_full_loss"]) == 20 * v["steps_per_epoch"] + 1
  # Same epochs: more steps per epoch go further on this convex problem.
  assert house["stochastic"]["history"]["val_loss"][-1] < house["batch"]["history"]["val_loss"][-1]
  prices = results["houses"]["predictions_lakh"]
  assert len(prices) == len(descent_variants.HOUSES_TO_PRICE) and all(p["stochastic"] > 0 for p in prices)
  assert "mnist" not in results and results["plots"] == ["house_prices.png"]


def test_activations_ranges_derivatives_and_training(tmp_path):
  out = tmp_path / "act"
  results = read_results(out, activations.main([
      "--activations", "relu", "step", "--epochs", "2", "--hidden", "16", "--batch-size", "32", "--learning-rate",
      "0.01", "--n-train", "600", "--n-test", "200", "--out", str(out)]))
  functions = results["functions"]
  assert set(functions) == set(activations.elementwise_names())
  assert functions["sigmoid"]["in_range"] and 0 < functions["sigmoid"]["min"] < functions["sigmoid"]["max"] < 1
  assert -1 < functions["tanh"]["min"] and functions["tanh"]["max"] < 1
  assert all(f["in_range"] for f in functions.values() if "in_range" in f)
  assert results["max_grad_vs_closed_form_abs_diff"] < 1e-5
  exact = results["exact_checks"]
  assert exact["relu_equals_max_0_x"] and exact["step_is_0_or_1"] and exact["step_gradient_all_zero"]
  assert exact["softmax_of_x_0_vs_sigmoid_max_abs_diff"] < 1e-5
  runs = results["training"]
  assert set(runs) == {"relu", "step"}
  assert runs["step"]["hidden_kernel_max_abs_change"] == 0.0  # no gradient through the step
  assert runs["relu"]["hidden_kernel_max_abs_change"] > 0.0
  assert runs["relu"]["test_accuracy"] > 0.5  # 600 digits, 2 epochs: far above chance
  for r in runs.values():
    assert len(r["history"]["val_accuracy"]) == 2 and r["test_accuracy"] == r["history"]["val_accuracy"][-1]
    assert r["epochs_to_90_test"] is None or 1 <= r["epochs_to_90_test"] <= 2


def test_bad_flags_fail_before_any_work(tmp_path):
  out = tmp_path / "never"
  with pytest.raises(JaxnnError, match="relux"):
    activations.main(["--activations", "relux", "--out", str(out)])
  with pytest.raises(SystemExit):  # argparse: a one-line error, exit status 2
    descent_variants.main(["--house-epochs", "0", "--out", str(out)])
  assert not out.exists()
