"""Bad command-line arguments to every experiment: one error line on stderr, a non-zero exit, no traceback, and
nothing written under --out.

Most cases run `main` in-process through `cli.run` (what `python -m experiments.X` runs), which catches the same
behaviour without starting Python for each; a few run as real subprocesses.
"""

import importlib
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import experiments
from jaxnn import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULES = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if m.name != "common" and not m.ispkg)
# Lines jaxnn.data may print on stderr before an error (which data source it used): not errors.
NOTICE = re.compile(r"^jaxnn\.data: ")

# Flags every experiment has (common.parser), tried on each of them.
COMMON = [
    (["--bogus"], r"unrecognized arguments: --bogus"),
    (["--verbose", "9"], r"argument --verbose: invalid choice: 9"),
    (["--seed", "x"], r"argument --seed: invalid int value: 'x'"),
    (["--out", "{file}"], r"argument --out: expected a folder, found a file at"),
    (["--out", "{file}/sub"], r"argument --out: expected a folder path, but '.*' is a file"),
]

SPECIFIC = {
    "mnist_mlp": [
        (["--epochs", "0"], r"argument --epochs: expected a positive integer, got '0'"),
        (["--batch-size", "0"], r"argument --batch-size: expected a positive integer, got '0'"),
        (["--batch-size", "-3"], r"argument --batch-size: expected a positive integer, got '-3'"),
        (["--optimizer", "adamm"], r"optimizer: expected one of \[.*'adam'.*\]; got 'adamm'"),
        (["--learning-rate", "-1"], r"argument --learning-rate: expected a finite number > 0, got '-1'"),
        (["--learning-rate", "nan"], r"argument --learning-rate: expected a finite number > 0, got 'nan'"),
        (["--schedule", "step"], r"argument --schedule: invalid choice: 'step'"),
        (["--validation-split", "1.5"], r"argument --validation-split: expected a number in \[0, 1\), got '1.5'"),
        (["--dropout", "1.0"], r"argument --dropout: expected a number in \[0, 1\), got '1.0'"),
        (["--hidden", "0"], r"argument --hidden: expected a positive integer"),
        (["--data-dir", "{missing}"], r"missing: expected a directory of IDX files, found nothing there"),
        (["--data-dir", "{file}"], r"expected a directory of IDX files, found a file"),
        (["--data-dir", "{empty}"], r"expected the 4 MNIST-style IDX files"),
        (["--n-train", "0"], r"argument --n-train: expected a positive integer, got '0'"),
        (["--n-train", "abc"], r"argument --n-train: expected a positive integer, got 'abc'"),
        (["--n-train", "100000"], r"n_train: expected at most the 8,000 train examples of 'mnist', found 100,000"),
        (["--n-test", "5000"], r"n_test: expected at most the 2,000 test examples of 'mnist', found 5,000"),
    ],
    "mnist_cnn": [
        (["--padding", "full"], r"argument --padding: invalid choice: 'full'"),
        (["--dense", "-5"], r"argument --dense: expected an integer >= 0, got '-5'"),
        (["--filters", "0"], r"argument --filters: expected a positive integer"),
        (["--dropout", "-0.2"], r"argument --dropout: expected a number in \[0, 1\)"),
        (["--validation-split", "-0.1"], r"argument --validation-split: expected a number in \[0, 1\)"),
        (["--learning-rate", "0"], r"argument --learning-rate: expected a finite number > 0, got '0'"),
    ],
    "mnist_rnn": [
        (["--cell", "rnn"], r"argument --cell: invalid choice: 'rnn'"),
        (["--units", "0"], r"argument --units: expected a positive integer"),
        (["--clipnorm", "-1"], r"argument --clipnorm: expected a finite number >= 0, got '-1'"),
        (["--epochs", "-2"], r"argument --epochs: expected a positive integer, got '-2'"),
    ],
    "activations": [
        (["--activations", "rleu"], r"activation: expected one of \[.*'relu'.*\]; got 'rleu'"),
        (["--learning-rate", "inf"], r"argument --learning-rate: expected a finite number > 0, got 'inf'"),
        (["--hidden", "0"], r"argument --hidden: expected a positive integer"),
    ],
    "backprop": [
        (["--heads", "foo"], r"argument --heads: invalid choice: 'foo'"),
        (["--lr-ce", "-1"], r"argument --lr-ce: expected a finite number > 0, got '-1'"),
        (["--lr-mse", "nan"], r"argument --lr-mse: expected a finite number > 0, got 'nan'"),
        (["--grad-batch", "0"], r"argument --grad-batch: expected a positive integer"),
    ],
    "descent_variants": [
        (["--house-learning-rate", "-1"], r"argument --house-learning-rate: expected a finite number > 0"),
        (["--mnist-learning-rate", "inf"], r"argument --mnist-learning-rate: expected a finite number > 0"),
        (["--houses", "0"], r"argument --houses: expected a positive integer"),
        (["--house-mini-batch", "0"], r"argument --house-mini-batch: expected a positive integer"),
    ],
    "gradient_descent": [
        (["--n", "0"], r"argument --n: expected a positive integer"),
        (["--learning-rate", "inf"], r"argument --learning-rate: expected a finite number > 0, got 'inf'"),
        (["--epochs", "zero"], r"argument --epochs: expected a positive integer, got 'zero'"),
    ],
    "initialization": [
        (["--activation", "tahn"], r"activation: expected one of \[.*'tanh'.*\]; got 'tahn'"),
        (["--initializers", "foo"], r"argument --initializers: invalid choice: 'foo'"),
        (["--momentum", "-1"], r"optimizer 'sgd' momentum: expected a number in \[0.0, 1.0\]; got -1.0"),
        (["--learning-rate", "-0.5"], r"argument --learning-rate: expected a finite number > 0"),
        (["--depth", "0"], r"argument --depth: expected a positive integer"),
    ],
    "losses": [
        (["--span", "0"], r"argument --span: expected a finite number > 0, got '0'"),
        (["--span", "-1"], r"argument --span: expected a finite number > 0, got '-1'"),
        (["--grid", "2"], r"argument --grid: expected an integer >= 3, got '2'"),
        (["--n-points", "0"], r"argument --n-points: expected a positive integer"),
    ],
    "metrics": [
        (["--positive", "12"], r"--positive must be a class in \[0, 10\), got 12"),
        (["--positive", "-1"], r"--positive must be a class in \[0, 10\), got -1"),
        (["--hidden", "0"], r"argument --hidden: expected a positive integer"),
    ],
    "perceptron": [
        (["--mlp-activation", "foo"], r"argument --mlp-activation: invalid choice: 'foo'"),
        (["--learning-rate", "-1"], r"argument --learning-rate: expected a finite number > 0, got '-1'"),
        (["--mlp-learning-rate", "0"], r"argument --mlp-learning-rate: expected a finite number > 0, got '0'"),
        (["--grid-points", "0"], r"argument --grid-points: expected a positive integer"),
    ],
    "regularization": [
        (["--l1", "-1"], r"argument --l1: expected a finite number >= 0, got '-1'"),
        (["--l1-l2", "0.1"], r"argument --l1-l2: expected 2 arguments"),
        (["--max-norm", "0"], r"argument --max-norm: expected a finite number > 0, got '0'"),
        (["--patience", "-1"], r"argument --patience: expected an integer >= 0, got '-1'"),
        (["--variants", "x"], r"argument --variants: invalid choice: 'x'"),
        (["--dropout", "2"], r"argument --dropout: expected a number in \[0, 1\), got '2'"),
    ],
    "masking": [
        (["--max-length", "1"], r"argument --max-length: expected at least 2 \(a first and a last token\), got 1"),
        (["--runs", "0"], r"argument --runs: expected a positive integer, got '0'"),
        (["--long-factor", "0"], r"argument --long-factor: expected a positive integer, got '0'"),
        (["--cell", "rnn"], r"argument --cell: invalid choice: 'rnn'"),
        (["--settings", "post", "x"], r"argument --settings: invalid choice: 'x'"),
    ],
    "tagging": [
        (["--max-length", "1"], r"argument --max-length: expected at least 2, got 1"),
        (["--runs", "0"], r"argument --runs: expected a positive integer, got '0'"),
        (["--long-factor", "0"], r"argument --long-factor: expected a positive integer, got '0'"),
        (["--cell", "rnn"], r"argument --cell: invalid choice: 'rnn'"),
        (["--settings", "pre", "y"], r"argument --settings: invalid choice: 'y'"),
    ],
    "vanishing_gradients": [
        (["--settings", "x"], r"argument --settings: invalid choice: 'x'"),
        (["--momentum", "2"], r"optimizer 'sgd' momentum: expected a number in \[0.0, 1.0\]; got 2.0"),
        (["--depth", "0"], r"argument --depth: expected a positive integer"),
    ],
}

CASES = [pytest.param(name, args, message, id=f"{name}{' '.join(['', *args])}")
         for name in MODULES for args, message in COMMON + SPECIFIC.get(name, [])]


@pytest.fixture
def paths(tmp_path):
  """Placeholders for the cases: a file, a missing path, an empty folder; and the --out that must stay unwritten."""
  (tmp_path / "a-file").write_text("keep me\n")
  (tmp_path / "empty").mkdir()
  return {"file": str(tmp_path / "a-file"), "missing": str(tmp_path / "missing"), "empty": str(tmp_path / "empty"),
          "out": tmp_path / "out"}


def error_line(stderr: str, prog: str) -> str:
  """The one error line; anything else on stderr may only be jaxnn.data's notice of the data source."""
  lines = stderr.strip().splitlines()
  errors = [line for line in lines if not NOTICE.match(line)]
  assert len(errors) == 1 and "Traceback" not in stderr, stderr
  assert errors[0] == lines[-1] and re.match(rf"^(python -m experiments\.)?{prog}: error: ", errors[0]), stderr
  return errors[0]


def test_every_experiment_runs_main_through_cli_run():
  """`python -m experiments.X` turns a JaxnnError into one line only if X's __main__ goes through cli.run."""
  assert len(MODULES) >= 14, MODULES
  for name in MODULES:
    source = (ROOT / "experiments" / f"{name}.py").read_text()
    assert callable(importlib.import_module(f"experiments.{name}").main), name
    assert f'cli.run(main, prog="{name}")' in source, name


@pytest.mark.parametrize("name, args, message", CASES)
def test_bad_argument_is_one_line_and_writes_nothing(name, args, message, paths, monkeypatch, capsys):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  module = importlib.import_module(f"experiments.{name}")
  args = [a.format(**paths) for a in args]
  argv = args if "--out" in args else [*args, "--out", str(paths["out"])]
  with pytest.raises(SystemExit) as e:
    cli.run(module.main, argv, prog=name)
  assert e.value.code == 2
  line = error_line(capsys.readouterr().err, name)
  assert re.search(message, line), f"{message!r} not in {line!r}"
  assert not paths["out"].exists()
  assert pathlib.Path(paths["file"]).read_text() == "keep me\n"


@pytest.mark.parametrize("name, args, message", [
    ("mnist_mlp", ["--out", "{file}"], r"argument --out: expected a folder, found a file"),
    ("losses", ["--grid", "2", "--out", "{out}"], r"argument --grid: expected an integer >= 3"),
    ("regularization", ["--max-norm", "0", "--out", "{out}"], r"argument --max-norm: expected a finite number > 0"),
])
def test_bad_argument_as_a_program(name, args, message, paths):
  """The same through `python -m`: exit status 2, one line, no traceback, nothing written."""
  args = [a.format(**paths) for a in args]
  r = subprocess.run([sys.executable, "-m", f"experiments.{name}", *args], cwd=ROOT, capture_output=True, text=True,
                     env=dict(os.environ, JAXNN_OFFLINE="1"), timeout=300)
  assert r.returncode == 2, r.stderr
  assert re.search(message, error_line(r.stderr, name))
  assert not paths["out"].exists() and pathlib.Path(paths["file"]).read_text() == "keep me\n"


def test_an_os_error_while_writing_is_one_line(tmp_path, capsys):
  """A failure of the disk rather than of the arguments (here: a folder where results.json goes) is one line too."""

  def main(argv):
    del argv
    (tmp_path / "results.json").mkdir()
    cli.write_json(str(tmp_path / "results.json"), {"a": 1})

  with pytest.raises(SystemExit) as e:
    cli.run(main, [], prog="exp")
  assert e.value.code == 1
  line = error_line(capsys.readouterr().err, "exp")
  assert "results.json" in line
  assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # the temporary file was removed
