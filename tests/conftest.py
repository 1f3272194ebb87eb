"""Test-wide settings: hermetic data loading (no network probe)."""

import os

# The suite never reaches for the network: `data.load("mnist")` goes straight to the embedded sample.
os.environ.setdefault("JAXNN_OFFLINE", "1")
# Hermetic compiles: the experiments' persistent compilation cache stays off unless a test turns it on.
os.environ.setdefault("JAXNN_COMPILATION_CACHE", "off")

import contextlib
import tempfile

import pytest


@pytest.fixture(autouse=True, scope="session")
def scratch_tempdir():
  """Every temporary file of the session, subprocesses' too, in one folder removed at its end.

  TFDS leaves an empty /tmp/tmp*tfds folder for each `tfds.builder` of data that is not prepared (its
  DatasetInfo.initialize_from_bucket); the data tests make a score of them per run.
  """
  with tempfile.TemporaryDirectory(prefix="jaxnn-tests-") as scratch, pytest.MonkeyPatch.context() as patch:
    patch.setattr(tempfile, "tempdir", scratch)
    patch.setenv("TMPDIR", scratch)
    yield scratch


class Interrupted(Exception):
  """A training run stopped right after a checkpoint was written (raised by `interrupt_after_save`)."""


@pytest.fixture
def interrupt_after_save(monkeypatch):
  """`with interrupt_after_save(when):` runs the block with `jaxnn.checkpoint.save` raising Interrupted right
  after it writes a checkpoint for which `when(directory, state)` is true, and asserts that it did."""
  from jaxnn import checkpoint
  save = checkpoint.save

  @contextlib.contextmanager
  def patched(when):
    def save_then_stop(directory, state, **kwargs):
      path = save(directory, state, **kwargs)
      if when(directory, state):
        raise Interrupted(path)
      return path

    with monkeypatch.context() as m:
      m.setattr(checkpoint, "save", save_then_stop)
      with pytest.raises(Interrupted):
        yield

  return patched


@pytest.fixture
def traces(monkeypatch):
  """Counts traces of `training.train_step` (a Python side effect runs only while JAX traces); the
  compiled-program cache starts empty."""
  from jaxnn import training
  seen = []
  original = training.train_step

  def counting_step(*args, **kwargs):
    seen.append(1)
    return original(*args, **kwargs)

  monkeypatch.setattr(training, "train_step", counting_step)
  monkeypatch.setattr(training, "_COMPILED", {})
  return seen
