"""Checkpoints: atomic saves survive SIGKILL at every phase, resume is bit-exact, bad files are named errors."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import ckpt_driver
from jaxnn import checkpoint
from jaxnn import optimizers
from jaxnn import training
from jaxnn.checkpoint import Checkpointing
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "ckpt_driver.py")
PHASES = ("before", "during", "after")
KILL_EPOCH = 3  # of ckpt_driver.EPOCHS = 4: checkpoints 1 and 2 exist, 3 is being written


def drive(jobs):
  return subprocess.Popen([sys.executable, DRIVER, json.dumps(jobs)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def names(directory):
  return sorted(os.listdir(directory))


def test_sigkill_at_every_phase_of_a_save_then_resume_is_bit_exact(tmp_path):
  """Three processes killed mid-save (one per phase), then one process that resumes each to the end and
  runs the same fit uninterrupted, without checkpoints, as the reference. (One test, not one per phase:
  under pytest-xdist a shared fixture would run once per worker.)"""
  dirs = {phase: str(tmp_path / phase) for phase in PHASES}
  killed = {phase: drive([{"out": str(tmp_path / f"{phase}.killed"), "dir": dirs[phase], "kill": [phase, KILL_EPOCH]}])
            for phase in PHASES}
  stderr = {phase: proc.communicate(timeout=300)[1] for phase, proc in killed.items()}
  after_kill = {phase: names(d) for phase, d in dirs.items()}
  jobs = [{"out": str(tmp_path / "reference")}]
  jobs += [{"out": str(tmp_path / f"{phase}.resumed"), "dir": dirs[phase], "resume": True} for phase in PHASES]
  resume = drive(jobs)
  _, err = resume.communicate(timeout=300)
  assert resume.returncode == 0, err
  reference = (tmp_path / "reference").read_bytes()
  reference_log = json.loads((tmp_path / "reference.json").read_text())
  assert len(reference) > 1000

  for phase in PHASES:
    assert killed[phase].returncode == -9, (phase, stderr[phase])
    assert not (tmp_path / f"{phase}.killed").exists(), phase  # it really died before finishing
    complete = [n for n in after_kill[phase] if not n.startswith(".")]
    temporaries = [n for n in after_kill[phase] if n.startswith(".tmp-")]
    if phase == "before":
      assert complete == ["ckpt_00000001.msgpack", "ckpt_00000002.msgpack"] and temporaries == []
    elif phase == "during":  # a half-written temporary file, never renamed, never read
      assert complete == ["ckpt_00000001.msgpack", "ckpt_00000002.msgpack"]
      assert len(temporaries) == 1 and temporaries[0].startswith(f".tmp-ckpt_{KILL_EPOCH:08d}")
    else:  # renamed, not yet pruned
      assert complete == ["ckpt_00000001.msgpack", "ckpt_00000002.msgpack", "ckpt_00000003.msgpack"]
    resumed = (tmp_path / f"{phase}.resumed").read_bytes()
    assert resumed == reference, phase  # the whole TrainState, byte for byte
    # The History too: every epoch's loss, bit-equal floats.
    assert json.loads((tmp_path / f"{phase}.resumed.json").read_text()) == reference_log, phase
    assert names(dirs[phase]) == ["ckpt_00000003.msgpack", "ckpt_00000004.msgpack"], phase  # strays cleaned


# --------------------------------------------------------------------------------------------- in process
X, Y = ckpt_driver.data()


def fit(directory=None, *, epochs=ckpt_driver.EPOCHS, resume=False, model=ckpt_driver.MODEL, **kwargs):
  params = model.init(jax.random.key(0), X.shape[1:])
  ckpt = None if directory is None else Checkpointing(str(directory), resume=resume, **kwargs.pop("ckpt", {}))
  return training.fit(model, params, X, Y, loss="sparse_categorical_crossentropy",
                      optimizer=kwargs.pop("optimizer", ckpt_driver.OPTIMIZER), epochs=epochs,
                      batch_size=kwargs.pop("batch_size", 16),
                      key=jax.random.key(100), verbose=0, checkpoint=ckpt, **kwargs)


class Interrupted(Exception):
  pass


def interrupt_after_save(monkeypatch, epoch):
  """Makes `checkpoint.save` raise once it has written the checkpoint of `epoch` (a crash right after)."""
  save = checkpoint.save

  def crashing_save(directory, state, **kwargs):
    path = save(directory, state, **kwargs)
    if int(state.epoch) == epoch:
      raise Interrupted(path)
    return path

  monkeypatch.setattr(checkpoint, "save", crashing_save)


@pytest.fixture(scope="module")
def reference():
  state, history = fit()
  return ckpt_driver.state_bytes(state), history


def test_save_load_round_trip_keeps_every_bit(tmp_path, reference):
  state, _ = fit(tmp_path, ckpt={"every": 0})
  assert checkpoint.checkpoints(tmp_path) == [str(tmp_path / "ckpt_00000004.msgpack")]
  loaded = checkpoint.load(checkpoint.latest(tmp_path), state)
  assert ckpt_driver.state_bytes(loaded.state) == ckpt_driver.state_bytes(state) == reference[0]
  assert jax.random.key_impl(loaded.state.key) == jax.random.key_impl(state.key)  # a typed key again
  assert loaded.history["epoch"] == [1, 2, 3, 4]
  assert loaded.meta["fit"] == {"batch_size": 16, "samples": 40, "shuffle": True}


def test_every_and_keep(tmp_path):
  fit(tmp_path, epochs=5, ckpt={"every": 2, "keep": 2})  # saves after 2, 4 and 5 (the end), keeps 2
  assert names(tmp_path) == ["ckpt_00000004.msgpack", "ckpt_00000005.msgpack"]
  fit(tmp_path, epochs=3, ckpt={"every": 1, "keep": None})  # without resume: starts over, old files removed
  assert names(tmp_path) == ["ckpt_00000001.msgpack", "ckpt_00000002.msgpack", "ckpt_00000003.msgpack"]


def test_crash_then_resume_in_process(tmp_path, monkeypatch, reference):
  with monkeypatch.context() as m:
    interrupt_after_save(m, 2)
    with pytest.raises(Interrupted):
      fit(tmp_path)
  state, history = fit(tmp_path, resume=True)
  assert ckpt_driver.state_bytes(state) == reference[0]
  assert history.epoch == [1, 2, 3, 4] and history["loss"] == reference[1]["loss"]


def test_resuming_a_finished_fit_does_not_train(tmp_path, reference):
  fit(tmp_path)
  before = {p: os.stat(p).st_mtime_ns for p in checkpoint.checkpoints(tmp_path)}
  state, history = fit(tmp_path, resume=True)
  assert ckpt_driver.state_bytes(state) == reference[0] and history["loss"] == reference[1]["loss"]
  assert {p: os.stat(p).st_mtime_ns for p in checkpoint.checkpoints(tmp_path)} == before  # nothing written
  # Asking for more epochs continues the same run.
  state6, history6 = fit(tmp_path, epochs=6, resume=True)
  assert history6.epoch == [1, 2, 3, 4, 5, 6] and int(state6.epoch) == 6


def test_early_stopping_resumes_its_progress(tmp_path, monkeypatch):
  stopper = training.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, restore_best_weights=True)
  state, history = fit(early_stopping=stopper, epochs=6)
  assert len(history.epoch) == 2  # a huge min_delta: no epoch counts as an improvement
  with monkeypatch.context() as m:
    interrupt_after_save(m, 1)
    with pytest.raises(Interrupted):
      fit(tmp_path, early_stopping=stopper, epochs=6)
  resumed, resumed_history = fit(tmp_path, early_stopping=stopper, epochs=6, resume=True)
  assert resumed_history.epoch == history.epoch
  assert ckpt_driver.state_bytes(resumed) == ckpt_driver.state_bytes(state)  # best weights restored alike
  again, again_history = fit(tmp_path, early_stopping=stopper, epochs=6, resume=True)  # stopped: stays stopped
  assert again_history.epoch == history.epoch and ckpt_driver.state_bytes(again) == ckpt_driver.state_bytes(state)


def test_reduce_lr_on_plateau_resumes_its_progress_and_rate(tmp_path, monkeypatch):
  """Interrupted after epoch 3, between two cuts: the resumed run cuts at the same epochs and ends in the same
  bits as the straight run."""
  plateau = training.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0, cooldown=2)
  adam = optimizers.OptimizerConfig("adam", learning_rate=0.01)  # no schedule: a rate that can be set
  state, history = fit(reduce_lr=plateau, optimizer=adam, epochs=7)
  assert len(set(history["learning_rate"])) >= 3  # cut twice or more
  with monkeypatch.context() as m:
    interrupt_after_save(m, 3)
    with pytest.raises(Interrupted):
      fit(tmp_path, reduce_lr=plateau, optimizer=adam, epochs=7)
  resumed, resumed_history = fit(tmp_path, reduce_lr=plateau, optimizer=adam, epochs=7, resume=True)
  assert resumed_history["learning_rate"] == history["learning_rate"]
  assert ckpt_driver.state_bytes(resumed) == ckpt_driver.state_bytes(state)


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "flipped", "empty"])
def test_damaged_checkpoint_is_an_error_naming_it(tmp_path, damage):
  fit(tmp_path, epochs=2)
  path = checkpoint.latest(tmp_path)
  with open(path, "rb") as f:
    raw = f.read()
  damaged = {"truncated": raw[:len(raw) * 2 // 3], "zeroed": bytes(len(raw)), "empty": b"",
             "flipped": raw[:-100] + bytes([raw[-100] ^ 1]) + raw[-99:]}[damage]
  with open(path, "wb") as f:
    f.write(damaged)
  with pytest.raises(checkpoint.CorruptCheckpointError, match="ckpt_00000002.msgpack") as e:
    fit(tmp_path, epochs=4, resume=True)
  assert str(e.value).startswith(f"checkpoint {path}: ")
  with pytest.raises(JaxnnError, match="ckpt_00000002.msgpack"):
    checkpoint.load(path, fit(epochs=0)[0])


def test_fallback_to_the_previous_checkpoint(tmp_path, reference):
  fit(tmp_path, epochs=3)
  newest = checkpoint.latest(tmp_path)
  os.truncate(newest, 100)
  with pytest.warns(RuntimeWarning, match="ckpt_00000003.msgpack.*falling back"):
    state, history = fit(tmp_path, resume=True, ckpt={"fallback": True})
  assert ckpt_driver.state_bytes(state) == reference[0] and history["loss"] == reference[1]["loss"]
  # With every checkpoint damaged the fallback has nothing left: an error naming the oldest (kept: 2, 3, 4).
  for path in checkpoint.checkpoints(tmp_path):
    os.truncate(path, 10)
  with pytest.raises(checkpoint.CorruptCheckpointError, match="ckpt_00000002.msgpack"), pytest.warns(RuntimeWarning):
    fit(tmp_path, resume=True, ckpt={"fallback": True})


def test_restoring_into_another_shape_names_the_parameter(tmp_path):
  fit(tmp_path, epochs=1)
  wider = Sequential([Dense(16, activation="relu"), ckpt_driver.MODEL.layers[1], ckpt_driver.MODEL.layers[2]])
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"state/params/dense_0/bias has shape \(8,\) in the checkpoint but \(16,\) in the model"):
    fit(tmp_path, resume=True, model=wider)
  deeper = Sequential([*ckpt_driver.MODEL.layers, Dense(3, activation="softmax")])
  with pytest.raises(checkpoint.CheckpointError, match="dense_2.* is in the model but not in the checkpoint"):
    fit(tmp_path, resume=True, model=deeper)


def test_resume_refuses_another_run(tmp_path):
  fit(tmp_path, epochs=3)
  with pytest.raises(checkpoint.CheckpointError, match="batch_size=16.*batch_size=8"):
    fit(tmp_path, resume=True, batch_size=8)
  with pytest.raises(checkpoint.CheckpointError, match="at epoch 3, past the 2 epochs"):
    fit(tmp_path, epochs=2, resume=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"directory": ""}, "directory must be a path"),
    ({"directory": "d", "every": -1}, "every must be an int >= 0"),
    ({"directory": "d", "keep": 0}, "keep must be an int >= 1 or None"),
])
def test_checkpointing_arguments(kwargs, message):
  with pytest.raises(JaxnnError, match=message):
    Checkpointing(**kwargs)


def test_missing_file_is_an_error_naming_it(tmp_path):
  target = fit(epochs=0)[0]
  with pytest.raises(checkpoint.CheckpointError, match=f"{tmp_path}/nope.msgpack: cannot be read"):
    checkpoint.load(str(tmp_path / "nope.msgpack"), target)
  assert checkpoint.load_latest(str(tmp_path / "empty"), target) is None
  np.testing.assert_equal(checkpoint.checkpoints(str(tmp_path / "empty")), [])
