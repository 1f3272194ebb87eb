"""End-to-end: the main job on a tiny setting, its results.json and plots, and its command-line errors."""

import json
import os
import subprocess
import sys

import pytest

from experiments import mnist_mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"


def run_cli(*args, env_extra=None):
  env = dict(os.environ, JAXNN_OFFLINE="1", **(env_extra or {}))
  return subprocess.run([sys.executable, "-m", "experiments.mnist_mlp", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_main_job_tiny_run_writes_results_and_plots(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  out = tmp_path / "run"
  summary = mnist_mlp.main(["--n-train", "600", "--n-test", "200", "--epochs", "3", "--hidden", "32",
                            "--batch-size", "32", "--learning-rate", "0.01", "--out", str(out), "--verbose", "0"])
  printed = capsys.readouterr()
  assert "embedded sample" in printed.err  # the source notice is never silent
  results = json.loads((out / "results.json").read_text())
  assert results == json.loads(json.dumps(summary))
  assert results["dataset"] == "mnist" and results["source"] == "embedded-sample"
  assert results["n_train"] == 600 and results["n_test"] == 200
  assert set(results["models"]) == {"A", "B"}
  for model in results["models"].values():
    assert set(model) >= {"test_accuracy", "test_loss", "epochs", "train_seconds"}
    assert model["epochs"] == 3 and model["train_seconds"] > 0
    assert 0.5 < model["test_accuracy"] <= 1.0  # 600 digits, 3 epochs: far above chance (0.1)
    assert len(model["history"]["val_accuracy"]) == 3
  for name in ("loss.png", "accuracy.png", "confusion_matrix.png", "predictions.png", "misclassified.png"):
    assert (out / name).stat().st_size > 1000, name
  assert sum(map(sum, results["confusion_matrix_B"])) == 200
  assert "test_accuracy" in printed.out  # the summary table


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Debian's dataset-fashion-mnist is not installed")
def test_main_job_on_fashion_mnist_idx_files(tmp_path):
  out = tmp_path / "fashion"
  r = run_cli("--data-dir", FASHION, "--n-train", "2000", "--n-test", "500", "--epochs", "2", "--hidden", "64",
              "--out", str(out), "--verbose", "0")
  assert r.returncode == 0, r.stderr
  results = json.loads((out / "results.json").read_text())
  assert results["dataset"] == "fashion-mnist" and results["source"] == f"idx:{FASHION}"
  assert results["models"]["B"]["test_accuracy"] > 0.6


def test_cli_bad_data_dir_is_one_line_and_writes_nothing(tmp_path):
  out = tmp_path / "never"
  r = run_cli("--data-dir", str(tmp_path / "missing"), "--out", str(out))
  assert r.returncode != 0
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and "missing" in lines[0] and "Traceback" not in r.stderr
  assert not out.exists()


def test_cli_bad_file_is_one_line(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"):
    (data / name).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")  # labels header says 5, holds 3
  r = run_cli("--data-dir", str(data), "--out", str(tmp_path / "o"))
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
  assert "ubyte" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "expected a positive integer"),
    (["--batch-size", "x"], "expected a positive integer"),
    (["--optimizer", "adamm"], "adamm"),
])
def test_cli_bad_arguments_are_one_line(args, message, tmp_path):
  r = run_cli(*args, "--n-train", "100", "--n-test", "50", "--out", str(tmp_path / "o"))
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr
