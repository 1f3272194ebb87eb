"""Determinism: the same seed gives the same bytes in two processes, another seed other bytes; golden values.

Golden values (seed 0): the sha256 of a fixed model's initial params and the first three epoch losses of a
fixed fit. They change only when JAX's random bits, jaxnn's initializers or its training arithmetic change.
After a deliberate upgrade, regenerate them with
  python tests/test_determinism.py --regenerate
and paste the printed lines over the constants below (say why in the commit message).
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_driver  # noqa: E402

from jaxnn import training  # noqa: E402
from jaxnn.layers import Dense  # noqa: E402
from jaxnn.models import Sequential  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGENERATE = "python tests/test_determinism.py --regenerate"

# Generated with jax 0.10.2 on CPU.
GOLDEN_INIT_SHA256 = "0358d705d2f4a051f835f0998ebdea38afdb1b40bb8540b07193907d798c262f"
GOLDEN_FIRST_LOSSES = (1.0053679943084717, 0.965161144733429, 0.9323114156723022)

GOLDEN_MODEL = Sequential([Dense(16, activation="relu", kernel_initializer="he_normal"),
                           Dense(3, activation="softmax")], name="golden")


def golden_params():
  return GOLDEN_MODEL.init(jax.random.key(0), (6,))


def golden_init_sha256() -> str:
  leaves = jax.tree_util.tree_leaves(golden_params())
  return hashlib.sha256(b"".join(np.asarray(leaf).tobytes() for leaf in leaves)).hexdigest()


def golden_first_losses() -> tuple[float, ...]:
  x, y = ckpt_driver.data()
  _, history = training.fit(GOLDEN_MODEL, golden_params(), x, y, loss="sparse_categorical_crossentropy",
                            optimizer="adam", epochs=3, batch_size=8, key=jax.random.key(0), verbose=0)
  return tuple(history["loss"])


def test_same_seed_same_bytes_across_processes_other_seed_other_bytes(tmp_path):
  outs = [str(tmp_path / f"run{i}") for i in range(2)]
  procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "ckpt_driver.py"),
                             json.dumps([{"out": out, "seed": 0}])], cwd=ROOT, stderr=subprocess.PIPE, text=True)
           for out in outs]
  for proc in procs:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
  first, second = (pathlib.Path(out).read_bytes() for out in outs)
  assert len(first) > 1000 and first == second  # the whole TrainState after 4 epochs with dropout
  assert pathlib.Path(outs[0] + ".json").read_text() == pathlib.Path(outs[1] + ".json").read_text()  # every loss
  other_seed, _ = ckpt_driver.run(seed=1)
  assert ckpt_driver.state_bytes(other_seed) != first


def test_golden_initial_params():
  got = golden_init_sha256()
  assert got == GOLDEN_INIT_SHA256, (
      f"seed 0's initial params changed (sha256 {got}, pinned {GOLDEN_INIT_SHA256}). If JAX or jaxnn's "
      f"initializers changed on purpose, regenerate the golden values: {REGENERATE}")


def test_golden_first_losses():
  got = golden_first_losses()
  # float32 epoch means: a tolerance of a few ulps lets a CPU with other vector units pass, while any
  # change to the arithmetic of training shows.
  assert np.allclose(got, GOLDEN_FIRST_LOSSES, rtol=1e-6, atol=0), (
      f"seed 0's first three losses changed: {got}, pinned {GOLDEN_FIRST_LOSSES}. If that follows a deliberate "
      f"JAX / optax upgrade or a change to training, regenerate the golden values: {REGENERATE}")


if __name__ == "__main__":
  if sys.argv[1:] != ["--regenerate"]:
    sys.exit(f"usage: {REGENERATE}")
  print(f'GOLDEN_INIT_SHA256 = "{golden_init_sha256()}"')
  print(f"GOLDEN_FIRST_LOSSES = {golden_first_losses()!r}")
  print(f"(jax {jax.__version__}, {jax.default_backend()})")
