"""What the driver and the per-framework workers share: the settings, the initial weights, FLOP counts, the
worker command line and its JSON result. Imports no deep-learning framework (the workers import theirs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
import traceback
from typing import Any, Callable, Sequence

import numpy as np

EPOCH_SAMPLES = 60_000  # Fashion-MNIST's training set: every epoch time is reported for this many samples
INPUTS, CLASSES = 784, 10
MODELS = {"784-128-10": (128,), "784-1024-1024-10": (1024, 1024)}
LEARNING_RATE, ADAM_EPSILON = 1e-3, 1e-7  # Keras' Adam defaults; every framework is given both


@dataclasses.dataclass(frozen=True)
class Setting:
  """One benchmark cell: a model, a batch size, how many samples an epoch uses and how many epochs run.

  `samples < EPOCH_SAMPLES` (batch 1, where peers take minutes per epoch) means the steady epoch time is the
  measured per-sample rate times EPOCH_SAMPLES: reported as extrapolated.
  """

  model: str
  batch: int | str  # an int, or "full": the whole epoch in one step (batch gradient descent)
  samples: int
  epochs: int  # the first epoch (start-up) plus steady epochs

  @property
  def hidden(self) -> tuple[int, ...]:
    return MODELS[self.model]

  @property
  def batch_size(self) -> int:
    return self.samples if self.batch == "full" else int(self.batch)

  @property
  def key(self) -> str:
    return f"{self.model}/b{self.batch}"


BATCHES = (128, 32, 1, "full")


def settings(*, quick: bool, backend: str, n_train: int, batches: Sequence[int | str] = BATCHES) -> list[Setting]:
  """The grid: models x batches (128, 32, 1, full). The small model's first batch size runs first in every
  worker, so its first epoch is the fresh process's start-up. QUICK: the small model only on a CPU, 4 steady
  epochs (the first epoch of a fit call also waits for the data's transfer: with 2, the median was half
  that), batch 1 on 500 samples and batch 32 on 20,000 with 6 steady epochs (the eager peers' 60k epochs at
  batch 32 took a third of QUICK's minutes; six short epochs keep the median clear of a slow second)."""
  accelerated = backend != "cpu"
  models = ["784-128-10"] + (["784-1024-1024-10"] if accelerated or not quick else [])
  out = []
  for model in models:
    big = model != "784-128-10"
    steady = 4 if quick else (3 if big and not accelerated else 5)
    # Batch 1 over 60k is minutes per epoch for the eager peers: a subset gives the per-sample rate.
    one = 500 if quick else (1000 if big and not accelerated else 10_000)
    for batch in batches:
      samples, epochs = EPOCH_SAMPLES, steady
      if batch == 1:
        samples = one
      elif batch == 32 and quick and not accelerated:
        samples, epochs = 20_000, 6
      out.append(Setting(model, batch, min(samples, n_train), 1 + epochs))
  return out


VMAP_MODEL = "784-128-10"


def vmap_plan(*, quick: bool, backend: str, n_train: int,
              ks: Sequence[int] | None = None) -> tuple[Setting, dict[str, Any]]:
  """The vmap section: K = 1, 8, 64 (and 256 on an accelerator) models of 784-128-10 at batch 128, one program
  vs one after another. QUICK on a CPU: 4000 samples and no shared-order run (the K = 64 program alone takes
  seconds per epoch there); otherwise 60k samples, and also every model on the same batches (`data_seed`).
  `ks` replaces the K values."""
  accelerated = backend != "cpu"
  ks = list(ks or [1, 8, 64] + ([256] if accelerated else []))
  samples = min(EPOCH_SAMPLES if accelerated or not quick else 4000, n_train)
  setting = Setting(VMAP_MODEL, min(128, samples), samples, 3 if quick else 4)
  return setting, {"ks": ks, "sequential_models": 8, "shared_order": accelerated or not quick}


def glorot_uniform_weights(hidden: Sequence[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
  """(kernel (in, out), zero bias) per layer, Glorot-uniform as Keras and jaxnn default to: every framework
  starts from these same numbers."""
  rng = np.random.default_rng(seed)
  sizes = [INPUTS, *hidden, CLASSES]
  out = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    out.append((rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32), np.zeros(fan_out, np.float32)))
  return out


def param_count(hidden: Sequence[int]) -> int:
  sizes = [INPUTS, *hidden, CLASSES]
  return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def flops_per_sample(hidden: Sequence[int]) -> int:
  """The issue's convention for training FLOPs: 6 * params per sample (forward 2, backward 4)."""
  return 6 * param_count(hidden)


def train_flops_per_sample(hidden: Sequence[int]) -> int:
  """Matmul FLOPs of one training sample: forward 2*in*out per layer, the weight gradient as much again, and
  the input gradient as much again except for the first layer (no gradient w.r.t. the data). The usual
  estimate 6 * params is about 1.5x this for 784-128-10."""
  sizes = [INPUTS, *hidden, CLASSES]
  macs = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
  return 2 * (3 * sum(macs) - macs[0])


def steady_seconds(epoch_seconds: Sequence[float]) -> float | None:
  """The median of the epochs after the first (start-up) one."""
  rest = list(epoch_seconds[1:])
  return statistics.median(rest) if rest else None


def setting_result(s: Setting, *, first_seconds: float, first_cpu_seconds: float, epoch_seconds: Sequence[float],
                   steady_cpu_seconds: float, loss: float, accuracy: float, **extra: Any) -> dict[str, Any]:
  """A worker's record of one setting: first (start-up) seconds, each steady epoch, their median scaled to
  EPOCH_SAMPLES, the process CPU seconds per steady epoch (mean, scaled; on a shared machine it moves less
  than wall time, and above the wall time it shows several cores at work), and the final training loss /
  accuracy (the frameworks should roughly agree)."""
  steady = steady_seconds([first_seconds, *epoch_seconds])
  scale = EPOCH_SAMPLES / s.samples
  cpu = steady_cpu_seconds / len(epoch_seconds) * scale if epoch_seconds else None
  return {"model": s.model, "batch": s.batch, "batch_size": s.batch_size, "samples": s.samples,
          "epochs": s.epochs, "first_seconds": first_seconds, "first_cpu_seconds": first_cpu_seconds,
          "epoch_seconds": list(epoch_seconds),
          "steady_epoch_seconds": None if steady is None else steady * scale, "steady_epoch_cpu_seconds": cpu,
          "extrapolated": s.samples < EPOCH_SAMPLES, "final_loss": loss, "final_accuracy": accuracy, **extra}


# --------------------------------------------------------------------------------------------- worker plumbing
@dataclasses.dataclass
class Work:
  """What a worker is handed: the data files, the initial weights per model and its settings."""

  x: np.ndarray
  y: np.ndarray
  weights: dict[str, list[tuple[np.ndarray, np.ndarray]]]
  settings: list[Setting]
  options: dict[str, Any]


def write_spec(folder: str, x: np.ndarray, y: np.ndarray, settings_: Sequence[Setting],
               options: dict[str, Any] | None = None, *, name: str = "spec.json") -> str:
  """Writes the data (once per folder), the initial weights and a spec file; returns the spec's path."""
  os.makedirs(folder, exist_ok=True)
  if not os.path.exists(os.path.join(folder, "x.npy")):
    np.save(os.path.join(folder, "x.npy"), x)
    np.save(os.path.join(folder, "y.npy"), y)
  for model in {s.model for s in settings_}:
    path = os.path.join(folder, f"weights_{model}.npz")
    if not os.path.exists(path):
      w = glorot_uniform_weights(MODELS[model])
      np.savez(path, **{f"{kind}_{i}": a for i, layer in enumerate(w) for kind, a in zip(("kernel", "bias"), layer)})
  spec = os.path.join(folder, name)
  with open(spec, "w") as f:
    json.dump({"folder": folder, "settings": [dataclasses.asdict(s) for s in settings_],
               "options": options or {}}, f)
  return spec


def read_spec(path: str) -> Work:
  with open(path) as f:
    spec = json.load(f)
  folder = spec["folder"]
  settings_ = [Setting(**s) for s in spec["settings"]]
  weights = {}
  for model in {s.model for s in settings_}:
    with np.load(os.path.join(folder, f"weights_{model}.npz")) as z:
      weights[model] = [(z[f"kernel_{i}"], z[f"bias_{i}"]) for i in range(len(MODELS[model]) + 1)]
  return Work(np.load(os.path.join(folder, "x.npy")), np.load(os.path.join(folder, "y.npy")), weights, settings_,
              spec["options"])


def worker_main(framework: str, run: Callable[[Work], dict[str, Any]], argv: Sequence[str] | None = None) -> None:
  """A worker's command line: --spec SPEC --out RESULT.json. The result is {"framework", "status": "ok" |
  "missing" | "error", ...}; a missing framework is a result, not a crash."""
  p = argparse.ArgumentParser(prog=f"python -m experiments.bench.worker_{framework}")
  p.add_argument("--spec", required=True)
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  start = time.perf_counter()
  try:
    result = {"framework": framework, "status": "ok", **run(read_spec(args.spec))}
  except ImportError as e:
    result = {"framework": framework, "status": "missing",
              "message": f"{e} (install the peers with: pip install -e '.[bench]')"}
  except Exception as e:  # the driver reports the one line; the traceback goes to the worker's stderr
    traceback.print_exc()
    result = {"framework": framework, "status": "error", "message": f"{type(e).__name__}: {e}".splitlines()[0]}
  result["worker_seconds"] = time.perf_counter() - start
  with open(args.out, "w") as f:
    json.dump(result, f)
  sys.exit(0)
