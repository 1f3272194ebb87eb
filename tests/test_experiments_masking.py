"""End-to-end: the masking lesson on a tiny setting; its results.json, self-checks and plots."""

import json

import numpy as np
import pytest

from experiments import masking


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
  out = tmp_path_factory.mktemp("masking")
  returned = masking.main(["--n-train", "256", "--n-test", "64", "--max-length", "12", "--epochs", "2",
                           "--runs", "2", "--units", "8", "--out", str(out)])
  results = json.loads((out / "results.json").read_text())
  assert results == json.loads(json.dumps(returned))
  return results, out


def test_every_setting_and_run_is_reported(lesson):
  results, out = lesson
  assert list(results["settings"]) == ["pre", "pre_masked", "post", "post_masked"]
  assert results["long_length"] == 36
  for name, setting in results["settings"].items():
    assert setting["masked"] == name.endswith("_masked")
    assert [run["seed"] for run in setting["runs"]] == [0, 1]
    for run in setting["runs"]:
      assert len(run["history"]["val_accuracy"]) == 2
      assert 0.0 <= run["test_accuracy"] <= 1.0 and 0.0 <= run["changed_long"] <= 1.0
    accs = [run["test_accuracy"] for run in setting["runs"]]
    assert setting["test_accuracy_min"] == min(accs) and setting["test_accuracy_max"] == max(accs)
    assert setting["test_accuracy_mean"] == pytest.approx(np.mean(accs))
  for name in results["plots"]:
    assert (out / name).stat().st_size > 1000, name


def test_masked_models_ignore_the_padding(lesson):
  results, _ = lesson
  for name in ("pre_masked", "post_masked"):
    for run in results["settings"][name]["runs"]:
      assert run["changed_long"] == 0.0
      assert run["max_dp_long"] <= masking.INVARIANCE_TOLERANCE
      assert run["max_dp_other_side"] <= masking.INVARIANCE_TOLERANCE
      assert run["test_accuracy"] == run["test_accuracy_long"]


def test_unmasked_models_read_the_padding(lesson):
  # Without a mask, 24 more padding steps move every trained model's outputs (by how much varies; that they
  # move at all is what the lesson's masked runs are compared against).
  results, _ = lesson
  for name in ("pre", "post"):
    for run in results["settings"][name]["runs"]:
      assert run["max_dp_long"] > 1e-4


def test_same_start_for_every_setting(lesson):
  # Run i of each setting starts from the same weights and batches; the two masked settings compute the same
  # forward pass, so after 2 short epochs their test accuracies agree (their gradients differ in rounding only).
  results, _ = lesson
  pre, post = results["settings"]["pre_masked"]["runs"], results["settings"]["post_masked"]["runs"]
  for a, b in zip(pre, post):
    assert a["history"]["loss"][0] == pytest.approx(b["history"]["loss"][0], rel=1e-5)


def test_self_check_raises():
  assert masking.check_invariant("m", "x", np.array([0.5, 0.25]), np.array([0.5, 0.25])) == 0.0
  with pytest.raises(masking.JaxnnError, match="self-check failed"):
    masking.check_invariant("m", "between A and B", np.array([0.5]), np.array([0.5 + 1e-4]))


def test_sequences_and_labels():
  config = masking.Config(max_length=9)
  seqs, labels = masking.make_sequences(500, config, np.random.default_rng(0))
  assert labels.shape == (500, 1) and labels.dtype == np.float32
  lengths = [len(s) for s in seqs]
  assert min(lengths) >= 2 and max(lengths) <= 9
  for s, y in zip(seqs, labels[:, 0]):
    assert 1 <= s.min() and s.max() < config.vocab and s[0] != s[-1]
    assert y == float(s[-1] > s[0])
  assert 0.3 < labels.mean() < 0.7
