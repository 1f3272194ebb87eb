"""Test driver (run as a subprocess): tiny fits, each writing the bytes of its final TrainState.

Usage: python tests/ckpt_driver.py '<json list of jobs>'; a job is
  {"out": file for the state bytes, "seed": 0, "dir": checkpoint folder or null, "resume": false,
   "kill": null or [phase, epoch]}.
`kill` arms a test-only hook: this process sends itself SIGKILL while saving the checkpoint of `epoch`,
  "before"  the checkpoint file is opened,
  "during"  half of its bytes are written to the temporary file (fsynced, never renamed),
  "after"   the rename, before older checkpoints are pruned.
The hook wraps checkpoint.py's private write / prune functions here; the library has no kill logic.
"""

import json
import os
import signal
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxnn import checkpoint  # noqa: E402
from jaxnn import training  # noqa: E402
from jaxnn.layers import Dense, Dropout  # noqa: E402
from jaxnn.models import Sequential  # noqa: E402
from jaxnn.optimizers import OptimizerConfig  # noqa: E402

EPOCHS = 4
MODEL = Sequential([Dense(8, activation="relu"), Dropout(0.25), Dense(3, activation="softmax")], name="tiny")
# Adam under a cosine schedule: the optimizer state holds moments and a step count, the key drives dropout
# and shuffling, so a resume that lost any of them would not end at the same bytes.
OPTIMIZER = OptimizerConfig("adam", schedule={"name": "cosine_decay", "initial_learning_rate": 0.05,
                                              "decay_steps": 3 * EPOCHS})


def data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 6)).astype(np.float32)
  return x, (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)


def state_bytes(state) -> bytes:
  """Every leaf of the TrainState (the PRNG key as its data), concatenated."""
  leaves = jax.tree_util.tree_leaves(checkpoint._plain(state))
  return b"".join(np.asarray(leaf).tobytes() for leaf in leaves)


def run(seed: int = 0, directory: str | None = None, resume: bool = False):
  x, y = data()
  params = MODEL.init(jax.random.key(seed), x.shape[1:])
  ckpt = None if directory is None else checkpoint.Checkpointing(directory, every=1, keep=2, resume=resume)
  return training.fit(MODEL, params, x, y, loss="sparse_categorical_crossentropy", optimizer=OPTIMIZER,
                      metrics=["accuracy"], epochs=EPOCHS, batch_size=16, key=jax.random.key(seed + 100),
                      verbose=0, checkpoint=ckpt)


def arm(phase: str, epoch: int) -> None:
  name = f"{epoch:08d}"
  write_file, prune = checkpoint._write_file, checkpoint._prune

  def hooked_write(path, data):
    if name in os.path.basename(path):
      if phase == "before":
        os.kill(os.getpid(), signal.SIGKILL)
      if phase == "during":
        with open(path, "xb") as f:
          f.write(data[:len(data) // 2])
          f.flush()
          os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    write_file(path, data)

  def hooked_prune(directory, keep):
    if phase == "after" and checkpoint.latest(directory).endswith(f"ckpt_{name}.msgpack"):
      os.kill(os.getpid(), signal.SIGKILL)
    prune(directory, keep)

  checkpoint._write_file, checkpoint._prune = hooked_write, hooked_prune


def main(jobs):
  for job in jobs:
    if job.get("kill"):
      arm(*job["kill"])
    state, history = run(job.get("seed", 0), job.get("dir"), job.get("resume", False))
    with open(job["out"], "wb") as f:
      f.write(state_bytes(state))
    with open(job["out"] + ".json", "w") as f:
      json.dump({"loss": history["loss"], "epoch": history.epoch}, f)


if __name__ == "__main__":
  main(json.loads(sys.argv[1]))
