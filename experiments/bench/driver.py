"""`make bench`: runs each framework's worker in a fresh process and puts the results side by side.

Sections, in order (each is a function here; a new one adds a worker and a function):
  1. device: the backend JAX sees and its measured float32 matmul peak (worker_jaxnn --peak);
  2. frameworks: jaxnn, Keras 3 on JAX, Keras 3 on TensorFlow, PyTorch, one fresh process each, over the
     settings of `spec.settings` (models x batch 128, 32, 1, full);
     jaxnn's worker also times each setting's matmul-limit (the epoch's matmuls alone, at its shapes) just
     before and after it, and the matmul peak again at its end;
  3. compilation cache: two more jaxnn processes sharing a fresh persistent cache (the second one's compile);
  4. vmap: K models of 784-128-10 in one program (`jaxnn.fit_many`) vs one after another (`jaxnn.fit`),
     in a fresh process (worker_vmap).
Then `report` turns it into tables, ratios and the issue's targets, and runs/bench/results.json.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from experiments.bench import report
from experiments.bench import spec as spec_lib
from jaxnn import cli
from jaxnn.errors import JaxnnError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@dataclasses.dataclass(frozen=True)
class Framework:
  name: str
  module: str
  env: tuple[tuple[str, str], ...] = ()
  requires: tuple[str, ...] = ()  # modules whose absence makes the framework a missing peer
  env_defaults: tuple[tuple[str, str], ...] = ()  # unless the caller's environment sets them


FRAMEWORKS = (
    Framework("jaxnn", "experiments.bench.worker_jaxnn"),
    Framework("keras-jax", "experiments.bench.worker_keras", (("KERAS_BACKEND", "jax"),), ("keras",)),
    Framework("keras-tf", "experiments.bench.worker_keras", (("KERAS_BACKEND", "tensorflow"),),
              ("keras", "tensorflow")),
    # PyTorch's OpenMP threads spin while they wait; on a machine shared with other jobs that made an epoch
    # 10x slower (39 s instead of 3.7 s at batch 128, measured here). Passive waiting only helps the peer.
    Framework("torch", "experiments.bench.worker_torch", (), ("torch",), (("OMP_WAIT_POLICY", "PASSIVE"),)),
)
VMAP = Framework("jaxnn-vmap", "experiments.bench.worker_vmap")


def parse_args(argv: Sequence[str] | None):
  p = cli.ArgumentParser(prog="python -m experiments.bench", description=(__doc__ or "").split("\n")[0])
  p.add_argument("--quick", action="store_true", help="the small model only, fewer epochs (< 3 min on 2 cores)")
  p.add_argument("--out", default=os.path.join("runs", "bench"), help="output folder (default: %(default)s)")
  p.add_argument("--data-dir", default=FASHION_MNIST,
                 help="Fashion-MNIST IDX folder; random data of the same shape when absent (default: %(default)s)")
  p.add_argument("--frameworks", nargs="+", default=[f.name for f in FRAMEWORKS],
                 choices=[f.name for f in FRAMEWORKS], help="which frameworks to run (default: all)")
  p.add_argument("--batch-sizes", nargs="+", type=_batch, default=list(spec_lib.BATCHES),
                 help="batch sizes: ints and/or 'full' (default: 128 32 1 full)")
  p.add_argument("--samples", type=cli.positive_int, default=None,
                 help="use only the first N training samples (a smoke run; epoch times still scaled to 60k)")
  p.add_argument("--vmap-models", nargs="+", type=cli.positive_int, default=None, metavar="K",
                 help="the vmap section's numbers of models (default: 1 8 64, and 256 on a GPU)")
  p.add_argument("--rounds", type=cli.positive_int, default=None,
                 help="run every framework's worker this many times, in turn, and keep each one's fastest "
                      "(default: 1 quick, 2 full)")
  p.add_argument("--timeout", type=cli.positive_int, default=None,
                 help="seconds per worker process (default: 600 quick, 3600 full)")
  return p.parse_args(argv)


def _batch(text: str) -> int | str:
  return "full" if text == "full" else cli.positive_int(text)


def load_data(data_dir: str) -> tuple[np.ndarray, np.ndarray, str]:
  """Fashion-MNIST's 60k training images, scaled and flattened; random data of that shape if absent."""
  from jaxnn import data
  if os.path.isdir(data_dir):
    ds = data.load_idx_dir(data_dir)
    return data.flatten(data.scale(ds.x_train)), ds.y_train.astype(np.int32), ds.source
  print(f"bench: no Fashion-MNIST at {data_dir}: timing on random data of the same shape "
        f"({spec_lib.EPOCH_SAMPLES} x {spec_lib.INPUTS}; its loss and accuracy mean nothing)", file=sys.stderr)
  rng = np.random.default_rng(0)
  x = rng.random((spec_lib.EPOCH_SAMPLES, spec_lib.INPUTS), dtype=np.float32)
  return x, rng.integers(0, spec_lib.CLASSES, spec_lib.EPOCH_SAMPLES).astype(np.int32), "random"


def run_worker(framework: Framework, spec: str, out: str, log: str, timeout: int,
               extra_env: dict[str, str] | None = None) -> dict[str, Any]:
  """Runs one worker process; its stdout / stderr go to `log`. Never raises for the worker's failure."""
  missing = [m for m in framework.requires if importlib.util.find_spec(m) is None]
  if missing:
    return {"framework": framework.name, "status": "missing",
            "message": f"{', '.join(missing)} not installed (pip install -e '.[bench]')"}
  env = dict(framework.env_defaults, **os.environ)
  env.update(TF_CPP_MIN_LOG_LEVEL="2", **dict(framework.env), **(extra_env or {}))
  set_env = {k: env[k] for k, _ in framework.env + framework.env_defaults}
  if os.path.exists(out):
    os.unlink(out)
  start = time.perf_counter()
  with open(log, "w") as f:
    try:
      subprocess.run([sys.executable, "-m", framework.module, "--spec", spec, "--out", out], cwd=ROOT, env=env,
                     stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
      return {"framework": framework.name, "status": "error", "message": f"timed out after {timeout} s (log: {log})"}
  if not os.path.exists(out):
    with open(log) as f:
      tail = [line.strip() for line in f if line.strip()][-1:] or ["no output"]
    return {"framework": framework.name, "status": "error", "message": f"{tail[0]} (log: {log})"}
  with open(out) as f:
    result = json.load(f)
  result.update(process_seconds=time.perf_counter() - start, env=set_env)
  return result


def device_section(work: str, x, y, logs: str, timeout: int) -> dict[str, Any]:
  spec = spec_lib.write_spec(work, x, y, [], {"peak": True}, name="peak.json")
  return run_worker(FRAMEWORKS[0], spec, os.path.join(work, "peak.out.json"), os.path.join(logs, "peak.log"),
                    timeout)


def limits_and_peak(device: dict[str, Any], frameworks: dict[str, dict[str, Any]]
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
  """The matmul-limit times the jaxnn worker measured just before and after each of its settings (same
  process, same minutes: on a shared machine a limit from another process and time compares badly), and the
  device's peak as the larger of the device section's and the jaxnn worker's own measurement (a peak: the
  least disturbed one). Returns (limits, device with that peak)."""
  j = frameworks.get("jaxnn", {})
  if j.get("status") != "ok":
    return {"status": "skipped", "message": "no jaxnn result"}, device
  if "matmul_peak" in j:
    runs = [device["matmul_peak"]["gflops"], j["matmul_peak"]["gflops"]]
    device = dict(device, matmul_peak=dict(device["matmul_peak"], gflops=max(runs), runs_gflops=runs))
  return {"status": "ok", "settings": [r["matmul_limit"] for r in j["settings"] if "matmul_limit" in r]}, device


def frameworks_section(work: str, x, y, settings: list[spec_lib.Setting], names: Sequence[str], logs: str,
                       timeout: int, rounds: int = 1) -> dict[str, dict[str, Any]]:
  """Every framework's worker, once per round (round 1: each framework in turn, then round 2, ...), merged
  by `merge_rounds`: on a shared machine one disturbed minute then costs each framework at most one round."""
  spec = spec_lib.write_spec(work, x, y, settings, {"matmul_limit": True, "peak": True})
  by_round: dict[str, list[dict[str, Any]]] = {}
  for r in range(rounds):
    for fw in FRAMEWORKS:
      if fw.name not in names:
        continue
      tag = fw.name if rounds == 1 else f"{fw.name}.round{r + 1}"
      print(f"bench: {tag} ...", flush=True)
      result = run_worker(fw, spec, os.path.join(work, f"{tag}.out.json"), os.path.join(logs, f"{tag}.log"), timeout)
      by_round.setdefault(fw.name, []).append(result)
      print(f"bench: {tag}: {result['status']}" + ("" if result["status"] == "ok" else f" ({result['message']})"),
            flush=True)
  return {name: merge_rounds(results) for name, results in by_round.items()}


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
  """One framework's rounds as one result: per setting the fastest steady epoch of any round (with that round's
  epochs, CPU seconds and final loss) and the fastest first fit call (with its compile split), each round's
  two figures kept beside them (round_steady_epoch_seconds, round_first_seconds); jaxnn's matmul-limit time
  (and each epoch part timed with it) is the fastest of every run, its peak the highest.
  Failed rounds are left out (and counted); with none ok, the first round's result stands."""
  ok = [r for r in results if r["status"] == "ok"]
  if len(results) == 1 or not ok:
    return results[0]
  merged = dict(ok[0], rounds=len(results), failed_rounds=len(results) - len(ok), settings=[])
  first_keys = ("first_seconds", "first_cpu_seconds", "compile_seconds", "first_epoch_seconds")
  for per_round in zip(*(r["settings"] for r in ok)):
    steady = min(per_round, key=lambda s: s["steady_epoch_seconds"])
    first = min(per_round, key=lambda s: s["first_seconds"])
    setting = dict(steady, **{k: first[k] for k in first_keys if k in first},
                   round_steady_epoch_seconds=[s["steady_epoch_seconds"] for s in per_round],
                   round_first_seconds=[s["first_seconds"] for s in per_round])
    limits = [s["matmul_limit"] for s in per_round if "matmul_limit" in s]
    if limits:
      setting["matmul_limit"] = dict(min(limits, key=lambda m: m["seconds"]),
                                     runs_seconds=[t for m in limits for t in m["runs_seconds"]])
      for part in ("optimizer_seconds", "gather_seconds"):
        if all(part in m for m in limits):
          setting["matmul_limit"][part] = min(m[part] for m in limits)
    merged["settings"].append(setting)
  peaks = [r["matmul_peak"] for r in ok if "matmul_peak" in r]
  if peaks:
    merged["matmul_peak"] = max(peaks, key=lambda p: p["gflops"])
  return merged


def cache_section(work: str, x, y, logs: str, timeout: int) -> dict[str, Any]:
  """Two jaxnn processes, one after the other, on one fresh persistent cache: the first compiles and writes,
  the second should load. Same setting as the start-up comparison (784-128-10, batch 128)."""
  cache = tempfile.mkdtemp(prefix="jax-cache-", dir=work)
  setting = spec_lib.Setting("784-128-10", 128, min(spec_lib.EPOCH_SAMPLES, len(x)), 1)
  spec = spec_lib.write_spec(work, x, y, [setting], {"compilation_cache": cache}, name="cache.json")
  runs = []
  for i in (1, 2):
    print(f"bench: compilation cache, process {i} ...", flush=True)
    r = run_worker(FRAMEWORKS[0], spec, os.path.join(work, f"cache{i}.out.json"), os.path.join(logs, f"cache{i}.log"),
                   timeout)
    if r["status"] != "ok":
      return {"status": "error", "message": r["message"]}
    s = r["settings"][0]
    runs.append({"compile_seconds": s["compile_seconds"], "first_seconds": s["first_seconds"],
                 "process_seconds": r["process_seconds"]})
  files = sum(len(f) for _, _, f in os.walk(cache))
  return {"status": "ok", "setting": setting.key, "cache_files": files, "first_process": runs[0],
          "second_process": runs[1]}


def vmap_section(work: str, x, y, logs: str, timeout: int, *, quick: bool, backend: str,
                 ks: Sequence[int] | None = None) -> dict[str, Any]:
  """K = 1, 8, 64 (256 on GPU) models of 784-128-10 trained in one program vs one after another."""
  setting, options = spec_lib.vmap_plan(quick=quick, backend=backend, n_train=len(x), ks=ks)
  spec = spec_lib.write_spec(work, x, y, [setting], options, name="vmap.json")
  print(f"bench: vmap, K = {' '.join(map(str, options['ks']))} models ...", flush=True)
  r = run_worker(VMAP, spec, os.path.join(work, "vmap.out.json"), os.path.join(logs, "vmap.log"), timeout)
  print(f"bench: vmap: {r['status']}" + ("" if r["status"] == "ok" else f" ({r['message']})"), flush=True)
  return r


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  start = time.perf_counter()
  timeout = args.timeout or (600 if args.quick else 3600)
  x, y, source = load_data(args.data_dir)
  if args.samples:
    x, y = x[:args.samples], y[:args.samples]
  logs = os.path.join(args.out, "logs")
  os.makedirs(logs, exist_ok=True)
  work = tempfile.mkdtemp(prefix="jaxnn-bench-")
  try:
    device = device_section(work, x, y, logs, timeout)
    if device["status"] != "ok":
      raise JaxnnError(f"bench: jaxnn's worker failed on the device check: {device['message']}")
    settings = spec_lib.settings(quick=args.quick, backend=device["backend"], n_train=len(x),
                                 batches=args.batch_sizes)
    print(f"bench: {device['device']}, matmul peak {device['matmul_peak']['gflops']:.0f} GFLOP/s; "
          f"{len(settings)} settings x {len(args.frameworks)} frameworks, data: {source}", flush=True)
    rounds = args.rounds or (1 if args.quick else 2)
    frameworks = frameworks_section(work, x, y, settings, args.frameworks, logs, timeout, rounds)
    limits, device = limits_and_peak(device, frameworks)
    cache = cache_section(work, x, y, logs, timeout) if "jaxnn" in args.frameworks else {"status": "skipped"}
    vmap = (vmap_section(work, x, y, logs, timeout, quick=args.quick, backend=device["backend"],
                         ks=args.vmap_models) if "jaxnn" in args.frameworks else {"status": "skipped"})
  finally:
    shutil.rmtree(work, ignore_errors=True)
  results = report.build(quick=args.quick, source=source, n_train=len(x), device=device, settings=settings,
                         frameworks=frameworks, cache=cache, vmap=vmap, limits=limits)
  results["wall_seconds"] = time.perf_counter() - start
  results["rounds"] = rounds
  path = cli.write_json(os.path.join(args.out, "results.json"), results)
  print(report.render(results))
  print(f"bench: {results['wall_seconds']:.0f} s in all; wrote {path} (worker logs in {logs})")
  return results
