"""--resume: every experiment accepts it; the main job interrupted mid-fit resumes to the same results."""

import importlib
import json
import os

import pytest

from experiments import mnist_mlp
from experiments import sweep
from jaxnn import checkpoint
from jaxnn import cli

EXPERIMENTS = ("mnist_mlp", "mnist_cnn", "mnist_rnn", "activations", "backprop", "descent_variants",
               "gradient_descent", "initialization", "losses", "metrics", "perceptron", "regularization",
               "sweep", "vanishing_gradients", "masking", "tagging")
TINY = ["--n-train", "300", "--n-test", "100", "--epochs", "3", "--hidden", "16", "--batch-size", "32",
        "--verbose", "0"]


def test_every_experiment_is_listed():
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
  modules = {f[:-3] for f in os.listdir(here) if f.endswith(".py") and f not in ("__init__.py", "common.py")}
  assert modules == set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_accepts_resume(name, tmp_path):
  module = importlib.import_module(f"experiments.{name}")
  config = module.parse_args(["--resume", "--checkpoint-every", "2", "--out", str(tmp_path)])
  assert config.resume is True and config.checkpoint_every == 2
  assert module.parse_args(["--out", str(tmp_path)]).resume is False


def histories(results):
  return {name: m["history"]["loss"] for name, m in results["models"].items()}


def test_main_job_interrupted_then_resumed(tmp_path, monkeypatch, interrupt_after_save):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  reference = mnist_mlp.main([*TINY, "--out", str(tmp_path / "reference")])

  out = tmp_path / "run"
  # Dies right after model B's second epoch is saved.
  with interrupt_after_save(lambda directory, state: directory.endswith(os.path.join("checkpoints", "B"))
                            and int(state.epoch) == 2):
    mnist_mlp.main([*TINY, "--out", str(out), "--checkpoint-every", "1"])
  assert not (out / "results.json").exists()
  assert [os.path.basename(p) for p in checkpoint.checkpoints(str(out / "checkpoints" / "B"))] == [
      "ckpt_00000001.msgpack", "ckpt_00000002.msgpack"]

  resumed = mnist_mlp.main([*TINY, "--out", str(out), "--checkpoint-every", "1", "--resume"])
  assert histories(resumed) == histories(reference)  # bit-equal losses, epoch by epoch, both models
  for name in ("A", "B"):
    assert resumed["models"][name]["test_accuracy"] == reference["models"][name]["test_accuracy"]
    assert resumed["models"][name]["test_loss"] == reference["models"][name]["test_loss"]
  assert resumed["confusion_matrix_B"] == reference["confusion_matrix_B"]

  # Both fits have finished: a second --resume trains nothing and reports the same.
  written = {p: os.stat(p).st_mtime_ns
             for tag in ("A", "B") for p in checkpoint.checkpoints(str(out / "checkpoints" / tag))}
  again = mnist_mlp.main([*TINY, "--out", str(out), "--checkpoint-every", "1", "--resume"])
  assert {p: os.stat(p).st_mtime_ns for p in written} == written
  assert histories(again) == histories(reference)
  assert json.loads((out / "results.json").read_text())["models"]["B"]["test_accuracy"] == (
      reference["models"]["B"]["test_accuracy"])


SWEEP_TINY = ["--n-train", "300", "--n-test", "100", "--values", "1e-3", "3e-2", "--seeds", "2", "--epochs", "3",
              "--hidden", "16", "--batch-size", "32", "--checkpoint-every", "1"]


def test_sweep_interrupted_then_resumed(tmp_path, capsys, interrupt_after_save):
  reference = sweep.main([*SWEEP_TINY, "--out", str(tmp_path / "reference")])
  out = tmp_path / "run"
  with interrupt_after_save(lambda directory, state: int(state.epoch[0]) == 2):  # all 4 models saved, then it dies
    sweep.main([*SWEEP_TINY, "--out", str(out)])
  assert not (out / "results.json").exists()
  assert [os.path.basename(p) for p in checkpoint.checkpoints(str(out / "checkpoints" / "learning_rate"))] == [
      "ckpt_00000001.msgpack", "ckpt_00000002.msgpack"]

  resumed = sweep.main([*SWEEP_TINY, "--out", str(out), "--resume"])
  assert checkpoint.latest(str(out / "checkpoints" / "learning_rate")).endswith("ckpt_00000003.msgpack")
  keys = ("value", "seeds", "val_accuracy", "test_accuracy", "train_loss", "val_accuracy_curve")
  assert [{k: r[k] for k in keys} for r in resumed["results"]] == [  # bit-equal, every model
      {k: r[k] for k in keys} for r in reference["results"]]
  assert resumed["best"] == reference["best"]

  # Other values in the same folder: refused in one line on stderr; the results and checkpoints stay as they were.
  written = {p: p.stat().st_mtime_ns for p in [out / "results.json", *(out / "checkpoints").rglob("*")]}
  capsys.readouterr()
  with pytest.raises(SystemExit) as e:
    cli.run(sweep.main, [*SWEEP_TINY[:5], "1e-3", "1e-2", *SWEEP_TINY[7:], "--out", str(out), "--resume"],
            prog="sweep")
  assert e.value.code != 0
  err = capsys.readouterr().err.splitlines()  # the data loader's note about the embedded sample, then the error
  assert err[-1].startswith("sweep: error: checkpoint ") and "Traceback" not in "\n".join(err)
  assert "learning_rate=[0.001, 0.001, 0.03, 0.03], this run has learning_rate=[0.001, 0.001, 0.01, 0.01]" in err[-1]
  assert {p: p.stat().st_mtime_ns for p in written} == written
