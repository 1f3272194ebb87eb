"""End-to-end: the tagging lesson (a loss over padded steps) on a tiny setting; results.json, self-checks, plots."""

import json

import numpy as np
import pytest

from experiments import tagging


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
  out = tmp_path_factory.mktemp("tagging")
  returned = tagging.main(["--n-train", "256", "--n-test", "64", "--max-length", "12", "--epochs", "2",
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
    assert 0.0 < setting["padding_share"] < setting["padding_share_long"] < 1.0
    for run in setting["runs"]:
      assert len(run["history"]["val_accuracy"]) == 2
      for k in ("reported_accuracy", "real_accuracy", "reported_accuracy_long", "real_accuracy_long"):
        assert 0.0 <= run[k] <= 1.0
    accs = [run["real_accuracy"] for run in setting["runs"]]
    assert setting["real_accuracy_min"] == min(accs) and setting["real_accuracy_max"] == max(accs)
    assert setting["real_accuracy_mean"] == pytest.approx(np.mean(accs))
  for name in results["plots"]:
    assert (out / name).stat().st_size > 1000, name


def test_masked_models_report_the_real_tokens_at_any_padding(lesson):
  results, _ = lesson
  for name in ("pre_masked", "post_masked"):
    for run in results["settings"][name]["runs"]:
      assert run["accuracy_diff"] <= tagging.ACCURACY_TOLERANCE
      assert run["loss_diff"] <= tagging.LOSS_RTOL * run["real_loss"]
      assert run["max_dp_long"] <= tagging.INVARIANCE_TOLERANCE
      assert run["reported_accuracy_long"] == pytest.approx(run["real_accuracy"], abs=1e-6)
      assert run["real_accuracy_long"] == run["real_accuracy"]


def test_unmasked_models_count_the_padding(lesson):
  """The unmasked reported accuracy is the mix of real and padded steps: real_acc * (1 - share) + pad_acc * share,
  so it differs from the real-token one whenever the padding is scored differently from the real tokens."""
  results, _ = lesson
  for name in ("pre", "post"):
    setting = results["settings"][name]
    for run in setting["runs"]:
      share = setting["padding_share"]
      pad_accuracy = (run["reported_accuracy"] - run["real_accuracy"] * (1 - share)) / share
      assert -1e-6 <= pad_accuracy <= 1 + 1e-6
      assert run["reported_accuracy"] != run["real_accuracy"]


def test_bayes_scores_and_sequences():
  config = tagging.Config(max_length=9)
  seqs, tags = tagging.make_sequences(3000, config, np.random.default_rng(0))
  assert all(2 <= len(s) <= 9 and len(s) == len(t) for s, t in zip(seqs, tags))
  x = np.concatenate(seqs)
  assert x.min() >= 1 and x.max() < config.vocab
  accuracy, loss = tagging.bayes_scores(seqs, tags, config.vocab)
  # Uniform next tokens over 1..19: the best accuracy is 271 / 361 in expectation, the entropy floor ~0.497.
  assert accuracy == pytest.approx(271 / 361, abs=0.02)
  assert loss == pytest.approx(0.4971, abs=0.01)
  # The tags follow the rule: where the current token is 19, nothing is larger; where it is 1, P(larger) = 18/19.
  y = np.concatenate(tags)
  assert y[x == 19].sum() == 0
  assert y[x == 1].mean() > 0.85


def test_self_check_raises():
  assert tagging.check("m", "accuracy", 0.5, 0.5, atol=1e-6) == 0.0
  with pytest.raises(tagging.JaxnnError, match=r"^tagging: self-check failed: m's reported loss: 0\.51 against 0\.5"):
    tagging.check("m", "reported loss", 0.51, 0.5, rtol=1e-4)


def test_real_token_scores_leave_the_padding_out():
  p = np.array([[[0.9], [0.2], [0.7]]], np.float32)
  y = np.array([[[1.0], [0.0], [0.0]]], np.float32)
  mask = np.array([[True, True, False]])
  accuracy, loss = tagging.real_token_scores(p, y, mask)
  assert accuracy == 1.0
  assert loss == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-6)
