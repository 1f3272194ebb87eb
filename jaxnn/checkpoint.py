"""Checkpoints: the whole TrainState, the History and fit's bookkeeping in one file, written atomically.

A checkpoint is `<directory>/ckpt_<epoch, 8 digits>.msgpack`, flax.serialization's msgpack of
`{"format", "version", "sha256", "payload"}`; the payload (msgpack too) holds the TrainState as a state dict
(params, optimizer state, step, epoch, the PRNG key's data, model state, fault counters), the History so
far, early stopping's progress and the fit's batch size, sample count and shuffling. `fit_many` writes the same
file for its stacked state (one leading model axis on every array), its K Histories, and its models' seeds and
swept values, so a resumed sweep continues the same K runs.

The data order needs nothing more: `fit` draws each epoch's order from the run key and the epoch number
alone (`training.epoch_order`), and checkpoints are taken at epoch boundaries, so the saved (key, epoch, step) say exactly
where the data order and the dropout keys continue. Resuming is bit-exact on CPU.

Writing is atomic: the bytes go to `.tmp-ckpt_...` in the same directory, are flushed and fsynced, then
renamed with os.replace (atomic on POSIX) and the directory is fsynced. A process killed at any moment leaves
the previous checkpoints intact, plus at most a stray temporary file that is never read (the next save
removes it; one writer per directory is assumed). Every load verifies the payload's sha256, so a truncated
or zeroed file is an error naming it, never a silent load; with `fallback` the previous checkpoint is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from jaxnn import _checks
from jaxnn.errors import JaxnnError

PyTree = Any

FORMAT = "jaxnn.checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt_(\d{8})\.msgpack$")
_TMP_PREFIX = ".tmp-ckpt_"


class CheckpointError(JaxnnError):
  """A checkpoint cannot be used: unreadable, corrupted, or written by another model or fit."""


class CorruptCheckpointError(CheckpointError):
  """A checkpoint file is truncated, zeroed or otherwise not what `save` wrote."""


@dataclasses.dataclass(frozen=True)
class Checkpointing:
  """How `fit` checkpoints (Keras' BackupAndRestore, for the whole training state).

  Args:
    directory: where the checkpoint files go (created if needed).
    every: save after every `every`-th epoch (counted from the start of the run); 0 saves only at the end.
      `fit` always saves when it ends (last epoch or early stop).
    keep: how many of the newest checkpoints to keep (None: all).
    resume: continue from the newest complete checkpoint in `directory`, if there is one; without it a
      fit starts over and first deletes the checkpoints it finds there.
    fallback: when the newest checkpoint is corrupted, warn and load the one before (else raise).
  """

  directory: str
  every: int = 1
  keep: int | None = 3
  resume: bool = False
  fallback: bool = False

  def __post_init__(self):
    if not isinstance(self.directory, (str, os.PathLike)) or not str(self.directory):
      raise JaxnnError(f"Checkpointing: directory must be a path, got {self.directory!r}")
    if not _checks.is_int(self.every) or self.every < 0:
      raise JaxnnError(f"Checkpointing: every must be an int >= 0 (epochs; 0: only at the end), got {self.every!r}")
    if self.keep is not None and (not _checks.is_int(self.keep) or self.keep < 1):
      raise JaxnnError(f"Checkpointing: keep must be an int >= 1 or None (keep all), got {self.keep!r}")
    object.__setattr__(self, "every", int(self.every))
    object.__setattr__(self, "keep", None if self.keep is None else int(self.keep))

  def due(self, epoch: int, last: bool) -> bool:
    """Whether `fit` saves after `epoch` (1-based); `last` when the fit ends there."""
    return last or (self.every > 0 and epoch % self.every == 0)


@dataclasses.dataclass
class Checkpoint:
  """A loaded checkpoint: the state (restored into the target's structure), History data and bookkeeping."""

  path: str
  state: Any
  history: dict[str, Any]
  meta: dict[str, Any]
  best_params: PyTree | None = None


# --------------------------------------------------------------------------------------------- listing
def checkpoints(directory: str) -> list[str]:
  """The complete checkpoint files in `directory`, oldest epoch first ([] if there is no directory)."""
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return []
  found = sorted((int(m.group(1)), name) for name in names if (m := _NAME.match(name)))
  return [os.path.join(directory, name) for _, name in found]


def latest(directory: str) -> str | None:
  """The newest complete checkpoint file in `directory` (by epoch), or None."""
  paths = checkpoints(directory)
  return paths[-1] if paths else None


def clear(directory: str) -> None:
  """Deletes the checkpoint files (and stray temporary files) in `directory`; other files are left alone."""
  for path in checkpoints(directory):
    os.unlink(path)
  _remove_temporaries(directory)


# --------------------------------------------------------------------------------------------- save
def _is_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _plain(tree: PyTree) -> PyTree:
  """Typed PRNG keys replaced by their raw uint32 data (msgpack stores plain arrays)."""
  return jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _state_dict(tree: PyTree) -> PyTree:
  return serialization.to_state_dict(jax.device_get(_plain(tree)))


def _epoch_of(state: Any) -> int:
  """The state's epoch; a stacked state (`fit_many`'s, one epoch per model) must have all its models at one."""
  epochs = np.unique(np.asarray(jax.device_get(state.epoch)))
  if epochs.size != 1:
    raise CheckpointError(f"checkpoint: the stacked state's models are at different epochs {epochs.tolist()}")
  return int(epochs[0])


def _write_file(path: str, data: bytes) -> None:
  """Writes `data` to a new file and forces it to disk."""
  with open(path, "xb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def _fsync_dir(directory: str) -> None:
  """Makes a rename in `directory` durable (where the platform lets a directory be opened)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _remove_temporaries(directory: str, but: str | None = None) -> None:
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return
  for name in names:
    path = os.path.join(directory, name)
    if name.startswith(_TMP_PREFIX) and path != but:
      try:
        os.unlink(path)
      except FileNotFoundError:
        pass


def _prune(directory: str, keep: int | None) -> None:
  """Deletes all but the newest `keep` checkpoints."""
  if keep is None:
    return
  for path in checkpoints(directory)[:-keep]:
    os.unlink(path)


def save(directory: str, state: Any, *, history: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
         best_params: PyTree | None = None, keep: int | None = None) -> str:
  """Writes `state` (a TrainState) as `<directory>/ckpt_<epoch>.msgpack`, atomically; keeps the newest `keep`.

  Args:
    directory: the checkpoint folder (created if needed).
    state: the TrainState; its `epoch` names the file.
    history: the History so far (fit stores `{"epoch": [...], "history": [(name, values), ...]}`).
    meta: JSON-like bookkeeping (fit's settings, early stopping's progress).
    best_params: early stopping's best params, if it keeps them.
    keep: how many checkpoints to keep, newest first (None: all).

  Returns:
    The path of the checkpoint written.
  """
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  epoch = _epoch_of(state)
  payload = serialization.msgpack_serialize({
      "state": _state_dict(state), "history": history or {}, "meta": meta or {},
      "best_params": None if best_params is None else _state_dict(best_params)})
  record = serialization.msgpack_serialize({"format": FORMAT, "version": VERSION,
                                            "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload})
  final = os.path.join(directory, f"ckpt_{epoch:08d}.msgpack")
  tmp = os.path.join(directory, f"{_TMP_PREFIX}{epoch:08d}-{os.getpid()}.msgpack")
  _remove_temporaries(directory)  # left by a writer that was killed
  try:
    _write_file(tmp, record)
    os.replace(tmp, final)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  _fsync_dir(directory)
  _prune(directory, keep)
  return final


# --------------------------------------------------------------------------------------------- load
def _read(path: str) -> dict[str, Any]:
  """The verified payload of the checkpoint at `path`."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise CheckpointError(f"checkpoint {path}: cannot be read ({e.strerror})") from None
  try:
    record = serialization.msgpack_restore(raw)
  except Exception as e:  # msgpack raises several types for truncated or garbage bytes
    raise CorruptCheckpointError(f"checkpoint {path}: not a complete checkpoint file ({len(raw)} bytes; "
                                 f"truncated or overwritten: {type(e).__name__})") from None
  if not isinstance(record, dict) or record.get("format") != FORMAT or "payload" not in record:
    raise CorruptCheckpointError(f"checkpoint {path}: not a jaxnn checkpoint file ({len(raw)} bytes)")
  if record.get("version") != VERSION:
    raise CheckpointError(f"checkpoint {path}: format version {record.get('version')!r}, this jaxnn reads "
                          f"version {VERSION}")
  payload = record["payload"]
  if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != record.get("sha256"):
    raise CorruptCheckpointError(f"checkpoint {path}: the payload does not match its sha256 (the file is corrupted)")
  return serialization.msgpack_restore(payload)


def _flat(state_dict: PyTree) -> dict[str, Any]:
  leaves = jax.tree_util.tree_flatten_with_path(state_dict)[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in leaves}


def _check_structure(path: str, target: PyTree, saved: PyTree, what: str) -> None:
  """Raises a CheckpointError naming the first entry whose presence, shape or dtype differs."""
  want, have = _flat(target), _flat(saved)
  # Params first: when two models differ, the message names a layer's parameter, not its optimizer moments.
  for name, leaf in sorted(want.items(), key=lambda item: not item[0].startswith("params/")):
    if name not in have:
      raise CheckpointError(f"checkpoint {path}: {what}/{name} with shape {np.shape(leaf)} is in the model but "
                            "not in the checkpoint (written by another model?)")
    if np.shape(have[name]) != np.shape(leaf):
      raise CheckpointError(f"checkpoint {path}: {what}/{name} has shape {np.shape(have[name])} in the checkpoint "
                            f"but {np.shape(leaf)} in the model")
    if isinstance(leaf, np.ndarray) and np.asarray(have[name]).dtype != leaf.dtype:
      raise CheckpointError(f"checkpoint {path}: {what}/{name} has dtype {np.asarray(have[name]).dtype} in the "
                            f"checkpoint but {leaf.dtype} in the model")
  for name in have:
    if name not in want:
      raise CheckpointError(f"checkpoint {path}: {what}/{name} is in the checkpoint but not in the model "
                            "(written by another model?)")


def _restore_into(path: str, target: PyTree, saved: PyTree, what: str) -> PyTree:
  """`saved` (a state dict) checked against and restored into `target`'s structure, on the device."""
  plain = _plain(target)
  _check_structure(path, serialization.to_state_dict(jax.device_get(plain)), saved, what)
  restored = serialization.from_state_dict(plain, saved)

  def to_device(t, r):
    if _is_key(t):
      return jax.random.wrap_key_data(jnp.asarray(r), impl=jax.random.key_impl(t))
    return jnp.asarray(r, dtype=t.dtype) if hasattr(t, "dtype") else jnp.asarray(r)

  return jax.tree_util.tree_map(to_device, target, restored)


def _check_settings(path: str, meta: dict[str, Any], settings: dict[str, Any]) -> None:
  """Raises a CheckpointError naming the first setting of this run that the checkpoint's run did not have."""
  saved = meta.get("fit", {})
  for name, value in settings.items():
    if name not in saved:
      raise CheckpointError(f"checkpoint {path}: written by a run without {name}, this run has {name}={value!r}; "
                            "resuming would not continue the same run (use another directory, or resume=False "
                            "to start over)")
    if saved[name] != value:
      raise CheckpointError(f"checkpoint {path}: written by a run with {name}={saved[name]!r}, this run has "
                            f"{name}={value!r}; resuming would not continue the same run (use another directory, "
                            "or resume=False to start over)")


def load(path: str, target: Any, *, settings: dict[str, Any] | None = None) -> Checkpoint:
  """Loads the checkpoint at `path` into the structure of `target` (a TrainState of the same model and optimizer).

  Args:
    path: the checkpoint file.
    target: a TrainState (stacked, for `fit_many`) whose structure, shapes and dtypes the checkpoint must have.
    settings: the run's settings (`meta["fit"]` when saved); a checkpoint saved with other values is refused
      before its arrays are compared, so the message names the setting that differs.

  Raises:
    CorruptCheckpointError: the file is truncated, zeroed or altered (the message names it).
    CheckpointError: a setting differs, or an entry's presence, shape or dtype differs from `target` (the
      message names the entry and both shapes).
  """
  path = os.fspath(path)
  data = _read(path)
  if settings is not None:
    _check_settings(path, data.get("meta") or {}, settings)
  state = _restore_into(path, target, data["state"], "state")
  best = data.get("best_params")
  best_params = None if best is None else _restore_into(path, target.params, best, "best_params")
  return Checkpoint(path=path, state=state, history=data.get("history") or {}, meta=data.get("meta") or {},
                    best_params=best_params)


def load_latest(directory: str, target: Any, *, fallback: bool = False,
                settings: dict[str, Any] | None = None) -> Checkpoint | None:
  """The newest checkpoint in `directory` loaded into `target`'s structure; None if there is none.

  With `fallback`, a corrupted newest checkpoint is skipped with a warning and the one before is tried; an
  incompatible one (another model, other `settings`) always raises.
  """
  paths = checkpoints(directory)
  for i, path in enumerate(reversed(paths)):
    try:
      return load(path, target, settings=settings)
    except CorruptCheckpointError as e:
      if not fallback or i == len(paths) - 1:
        raise
      warnings.warn(f"{e}; falling back to the checkpoint before it", RuntimeWarning, stacklevel=2)
  return None


# --------------------------------------------------------------------------------------------- fit's use
def begin(config: Checkpointing, state: Any, fit_settings: dict[str, Any], target_epoch: int) -> Checkpoint | None:
  """At the start of `fit` / `fit_many`: with `resume`, the newest checkpoint, checked against this run; else a
  clean folder.

  Args:
    config: the run's Checkpointing.
    state: the TrainState the run would start from (the structure to restore into; stacked for `fit_many`).
    fit_settings: what makes the run this run: fit's batch size, sample count and shuffling; fit_many adds
      the number of models, their seeds and swept values. A checkpoint written with others does not continue
      the same run, so it is an error.
    target_epoch: the epoch the run trains up to.
  """
  if not config.resume:
    clear(config.directory)
    return None
  ckpt = load_latest(config.directory, state, fallback=config.fallback, settings=fit_settings)
  if ckpt is None:
    return None
  epoch = _epoch_of(ckpt.state)
  if epoch > target_epoch:
    raise CheckpointError(f"checkpoint {ckpt.path}: at epoch {epoch}, past the {target_epoch} epochs this fit "
                          "trains to")
  return ckpt
