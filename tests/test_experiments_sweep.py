"""End-to-end: the sweep experiment on a tiny setting (4 models in one program); its results.json and plots."""

import json

import pytest

from experiments import sweep


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("sweep")
  returned = sweep.main(["--n-train", "300", "--n-test", "100", "--values", "1e-5", "1e-2", "--seeds", "2",
                         "--epochs", "3", "--hidden", "16", "--batch-size", "32", "--out", str(out)])
  results = json.loads((out / "results.json").read_text())
  assert results == json.loads(json.dumps(returned))
  return results, out


def test_sweep_results(sweep_run):
  results, out = sweep_run
  assert results["sweep"] == "learning_rate" and results["models"] == 4
  assert [r["value"] for r in results["results"]] == [1e-5, 1e-2]
  for r in results["results"]:
    assert r["seeds"] == [0, 1]
    assert len(r["val_accuracy"]) == len(r["test_accuracy"]) == 2
    assert len(r["val_accuracy_curve"]) == 3
    assert r["test_accuracy_mean"] == pytest.approx(sum(r["test_accuracy"]) / 2)
  slow, fast = results["results"]
  # 3 epochs at 1e-5 barely move from chance; 1e-2 learns: the sweep shows the learning rate's effect.
  assert fast["val_accuracy_mean"] > slow["val_accuracy_mean"] + 0.2
  assert results["best"]["value"] == 1e-2
  for name in results["plots"]:
    assert (out / name).stat().st_size > 1000, name
  assert results["plots"] == ["accuracy_vs_learning_rate.png", "curves.png"]


def test_sweep_bad_value_is_one_line(tmp_path, capsys):
  from jaxnn import cli
  with pytest.raises(SystemExit) as e:
    cli.run(sweep.main, ["--sweep", "dropout_rate", "--values", "0.5", "1.5", "--n-train", "100", "--out",
                         str(tmp_path)], prog="sweep")
  assert e.value.code != 0
  assert capsys.readouterr().err == "sweep: error: fit_many: dropout_rate values must be in [0.0, 1.0), found 1.5\n"
  assert not (tmp_path / "results.json").exists()
