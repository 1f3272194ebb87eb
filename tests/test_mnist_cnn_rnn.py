"""End-to-end: the CNN and RNN digit recognizers on tiny settings, their results.json and plots, bad flags."""

import json
import os

import pytest

from experiments import mnist_cnn
from experiments import mnist_rnn

FASHION = "/usr/share/datasets/fashion-mnist"
PLOTS = ("loss.png", "accuracy.png", "confusion_matrix.png", "predictions.png", "misclassified.png")


def check_results(out, summary, model_name, n_train=300, n_test=100):
  results = json.loads((out / "results.json").read_text())
  assert results == json.loads(json.dumps(summary))
  assert set(results) >= {"dataset", "source", "n_train", "n_test", "models", "config", "plots"}
  assert results["n_train"] == n_train and results["n_test"] == n_test
  assert list(results["models"]) == [model_name]
  model = results["models"][model_name]
  assert set(model) >= {"test_accuracy", "test_loss", "epochs", "train_seconds"}
  assert model["epochs"] == 1 and model["train_seconds"] > 0 and 0.0 <= model["test_accuracy"] <= 1.0
  assert sum(map(sum, results[f"confusion_matrix_{model_name}"])) == n_test
  for name in PLOTS:
    assert (out / name).stat().st_size > 1000, name
  assert results["plots"] == list(PLOTS)
  return results


def test_cnn_tiny_run_writes_results_and_plots(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  out = tmp_path / "cnn"
  summary = mnist_cnn.main(["--n-train", "300", "--n-test", "100", "--epochs", "1", "--batch-size", "30",
                            "--filters", "8", "--out", str(out), "--verbose", "0"])
  results = check_results(out, summary, "cnn")
  assert results["dataset"] == "mnist" and results["source"] == "embedded-sample"
  layers = [layer["type"] for layer in results["models"]["cnn"]["model"]["layers"]]
  assert layers[:4] == ["Conv2D", "BatchNormalization", "Activation", "MaxPooling2D"]
  # No accuracy floor: after 9 steps the running statistics (momentum 0.99) are still near their initial
  # values, so inference is poor, exactly as in Keras.
  assert results["models"]["cnn"]["history"]["accuracy"][0] > 0.1
  assert "test_accuracy" in capsys.readouterr().out


def test_rnn_tiny_run_writes_results_and_plots(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  fashion = os.path.isdir(FASHION)
  out = tmp_path / "rnn"
  data = ["--data-dir", FASHION] if fashion else []
  summary = mnist_rnn.main([*data, "--cell", "gru", "--units", "16", "--n-train", "300", "--n-test", "100",
                            "--epochs", "1", "--batch-size", "30", "--out", str(out), "--verbose", "0"])
  results = check_results(out, summary, "gru")
  assert results["models"]["gru"]["model"]["layers"][0] == {"name": "gru_0", "type": "GRU", "units": 16}
  if fashion:
    assert results["dataset"] == "fashion-mnist" and results["source"] == f"idx:{FASHION}"


@pytest.mark.parametrize("main, args, message", [
    (mnist_rnn.main, ["--cell", "rnn"], "invalid choice: 'rnn'"),
    (mnist_cnn.main, ["--epochs", "0"], "expected a positive integer"),
    (mnist_cnn.main, ["--optimizer", "adamm"], "adamm"),
])
def test_bad_flags_fail_before_reading_data(main, args, message, tmp_path, capsys):
  with pytest.raises((SystemExit, ValueError)) as e:
    main([*args, "--out", str(tmp_path / "never")])
  assert message in str(e.value) + capsys.readouterr().err
  assert not (tmp_path / "never").exists()
