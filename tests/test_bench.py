"""`make bench` plumbing: settings, FLOP counts, the jaxnn worker's record, missing / failing peers, the report's
ratios and targets, and one tiny end-to-end run of the driver. Speed itself is measured by `make bench` only."""

import dataclasses
import importlib
import json
import math
import re

import numpy as np
import pytest

from experiments.bench import driver, report, worker_jaxnn, worker_vmap
from experiments.bench import spec as spec_lib
from jaxnn import cli

SMALL = "784-128-10"


def test_flops_and_params_by_hand():
  # 784-128-10: matmuls of 784*128 = 100,352 and 128*10 = 1,280 multiply-adds per sample. Forward 2x, weight
  # gradient 2x, input gradient 2x except for the first layer: 2 * (3 * 101,632 - 100,352) = 409,088.
  assert spec_lib.train_flops_per_sample((128,)) == 409_088
  assert spec_lib.param_count((128,)) == 100_352 + 128 + 1_280 + 10 == 101_770
  assert spec_lib.flops_per_sample((128,)) == 6 * 101_770
  assert spec_lib.param_count((1024, 1024)) == 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10


def test_initial_weights_are_glorot_uniform_with_zero_biases():
  weights = spec_lib.glorot_uniform_weights((128,))
  assert [k.shape for k, _ in weights] == [(784, 128), (128, 10)]
  for (kernel, bias), (fan_in, fan_out) in zip(weights, [(784, 128), (128, 10)]):
    limit = math.sqrt(6 / (fan_in + fan_out))
    assert kernel.dtype == np.float32 and np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert not bias.any()
  np.testing.assert_array_equal(weights[0][0], spec_lib.glorot_uniform_weights((128,))[0][0])  # seeded


def test_settings_grid():
  quick = spec_lib.settings(quick=True, backend="cpu", n_train=60_000)
  assert [(s.model, s.batch) for s in quick] == [(SMALL, 128), (SMALL, 32), (SMALL, 1), (SMALL, "full")]
  assert [s.samples for s in quick] == [60_000, 20_000, 500, 60_000] and quick[3].batch_size == 60_000
  assert [s.epochs for s in quick] == [5, 7, 5, 5]
  full = spec_lib.settings(quick=False, backend="cpu", n_train=60_000)
  assert len(full) == 8 and {s.model for s in full} == set(spec_lib.MODELS)
  assert [s.samples for s in full if s.batch == 1] == [10_000, 1000]  # the big model's batch-1 steps are slow
  assert all(s.samples == 60_000 for s in full if s.batch != 1)
  gpu_quick = spec_lib.settings(quick=True, backend="gpu", n_train=60_000)
  assert ("784-1024-1024-10", 128) in [(s.model, s.batch) for s in gpu_quick]  # the GPU targets' settings
  assert spec_lib.settings(quick=True, backend="cpu", n_train=300, batches=[1, "full"])[1].batch_size == 300
  setting, options = spec_lib.vmap_plan(quick=True, backend="cpu", n_train=60_000)
  assert (setting.model, setting.batch, setting.samples) == (SMALL, 128, 4000) and options["ks"] == [1, 8, 64]
  setting, options = spec_lib.vmap_plan(quick=True, backend="gpu", n_train=60_000)
  assert setting.samples == 60_000 and options["ks"] == [1, 8, 64, 256] and options["shared_order"]
  assert spec_lib.vmap_plan(quick=False, backend="cpu", n_train=100, ks=[2])[0].batch == 100


def test_jaxnn_worker_record(tmp_path):
  rng = np.random.default_rng(0)
  x, y = rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64).astype(np.int32)
  setting = spec_lib.Setting(SMALL, 16, 64, 3)
  work = spec_lib.Work(x, y, {SMALL: spec_lib.glorot_uniform_weights((128,))}, [setting], {})
  out = worker_jaxnn.run(work)
  assert out["backend"] and out["compilation_cache"] is None
  (r,) = out["settings"]
  assert (r["model"], r["batch"], r["samples"]) == (SMALL, 16, 64)
  assert len(r["epoch_seconds"]) == 2 and r["extrapolated"]  # 64 samples stand for 60k
  assert r["steady_epoch_seconds"] == pytest.approx(np.median(r["epoch_seconds"]) * 60_000 / 64)
  assert r["first_seconds"] >= r["compile_seconds"] > 0
  assert r["recompile_seconds"] < r["compile_seconds"]  # the continuing fit found the program compiled
  assert math.isfinite(r["final_loss"]) and 0 <= r["final_accuracy"] <= 1


def test_vmap_worker_record():
  rng = np.random.default_rng(0)
  x, y = rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64).astype(np.int32)
  # One sequential fit stands for both models (scaled); the end-to-end test below covers K <= the cap.
  work = spec_lib.Work(x, y, {}, [spec_lib.Setting(SMALL, 16, 64, 3)],
                       {"ks": [2], "sequential_models": 1, "shared_order": True})
  out = worker_vmap.run(work)
  seq = out["sequential"]
  assert len(seq["models"]) == 1 and seq["models"][0]["compile_seconds"] > 0
  assert seq["model_samples_per_second"] == pytest.approx(64 / np.median(seq["models"][0]["epoch_seconds"][1:]))
  (two,) = out["ks"]
  assert (two["k"], two["sequential_timed"], two["sequential_scaled"]) == (2, 1, True)
  many = two["one_program"]
  assert many["steady_epoch_seconds"] == pytest.approx(np.median(many["epoch_seconds"][1:]))
  assert many["model_samples_per_second"] == pytest.approx(2 * 64 / many["steady_epoch_seconds"])
  assert two["ratio"] == pytest.approx(many["model_samples_per_second"] / seq["model_samples_per_second"])
  assert len(many["final_losses"]) == 2 and many["compile_seconds"] > 0
  assert two["max_loss_difference"] < 1e-4  # model 0 is the same run both ways
  shared = two["shared_order"]
  assert two["shared_order_ratio"] == pytest.approx(shared["model_samples_per_second"]
                                                    / seq["model_samples_per_second"])
  assert len(shared["final_losses"]) == 2


def fake_vmap(ratios: dict[int, float]) -> dict:
  seq = {"models": [{"compile_seconds": 1.0}], "model_samples_per_second": 1000.0}
  ks = [{"k": k, "sequential_timed": min(k, 8), "sequential_scaled": k > 8, "ratio": ratio,
         "sequential_model_samples_per_second": 1000.0, "max_loss_difference": 1e-7,
         "one_program": {"model_samples_per_second": 1000.0 * ratio, "compile_seconds": 2.0,
                         "steady_epoch_seconds": k / ratio, "call_seconds": 5.0, "epoch_seconds": [1.0]}}
        for k, ratio in ratios.items()]
  return {"status": "ok", "model": SMALL, "batch": 128, "samples": 4000, "epochs": 3, "sequential": seq, "ks": ks}


@pytest.mark.parametrize("backend, ratios, met", [("cpu", {1: 0.9, 64: 0.5}, None), ("gpu", {8: 6.0, 256: 60.0}, True),
                                                   ("gpu", {256: 30.0}, False), ("gpu", {64: 30.0}, None)])
def test_report_vmap_rows_and_target(backend, ratios, met):
  device = {"backend": backend, "device": "x", "jax": "0", "matmul_peak": {"gflops": 100.0}, "status": "ok"}
  results = report.build(quick=True, source="random", n_train=4000, device=device, settings=[], frameworks={},
                         cache={"status": "skipped"}, vmap=fake_vmap(ratios))
  assert [(r["k"], r["ratio"]) for r in results["vmap"]["rows"]] == list(ratios.items())
  assert all(r["startup_seconds"] == 4.0 for r in results["vmap"]["rows"])  # the call less its epochs
  (target,) = [t for t in results["targets"] if "256 models in one program" in t["target"]]
  assert target["met"] is met and target["threshold"] == 50
  if backend == "cpu":
    assert target["value"] is None and target["note"] == "GPU target not measured: backend is cpu"
  text = report.render(results)
  if 64 in ratios:
    assert "one after another: 8 of 64 models timed, rate scaled" in text
  assert f"{1000 * ratios[max(ratios)]:,.0f}" in text


def test_report_vmap_failure_is_a_line():
  device = {"backend": "gpu", "device": "x", "jax": "0", "matmul_peak": {"gflops": 100.0}, "status": "ok"}
  results = report.build(quick=True, source="random", n_train=4000, device=device, settings=[], frameworks={},
                         cache={"status": "skipped"}, vmap={"status": "error", "message": "timed out after 600 s"})
  assert results["vmap"]["rows"] == []
  assert "vmap K models: error timed out after 600 s" in report.render(results)
  (target,) = [t for t in results["targets"] if "256 models" in t["target"]]
  assert target["met"] is None and "no K = 256 result" in target["note"]


def test_worker_command_line_reports_a_missing_framework(tmp_path):
  spec = spec_lib.write_spec(str(tmp_path), np.zeros((4, 784), np.float32), np.zeros(4, np.int32), [])

  def needs_missing(work):
    importlib.import_module("no_such_framework_here")

  def fails(work):
    raise ValueError("bad\nsecond line")

  for run, status, message in ((needs_missing, "missing", "No module named 'no_such_framework_here'"),
                               (fails, "error", "ValueError: bad")):
    out = tmp_path / f"{status}.json"
    with pytest.raises(SystemExit):
      spec_lib.worker_main("demo", run, ["--spec", spec, "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["status"] == status and message in result["message"] and "\n" not in result["message"]


def test_driver_marks_missing_and_failing_peers(tmp_path):
  spec = spec_lib.write_spec(str(tmp_path), np.zeros((4, 784), np.float32), np.zeros(4, np.int32), [])
  missing = driver.Framework("ghost", "experiments.bench.worker_torch", requires=("no_such_framework_here",))
  r = driver.run_worker(missing, spec, str(tmp_path / "a.json"), str(tmp_path / "a.log"), 60)
  assert r["status"] == "missing" and "no_such_framework_here not installed" in r["message"]
  broken = driver.Framework("broken", "experiments.bench.no_such_worker")
  r = driver.run_worker(broken, spec, str(tmp_path / "b.json"), str(tmp_path / "b.log"), 60)
  assert r["status"] == "error" and "No module named experiments.bench.no_such_worker" in r["message"]


def test_epoch_matmuls_do_the_steps_matmuls(monkeypatch):
  # The limit's program: per batch, the forward matmul per layer, a^T g per layer and g W^T for all but the
  # first layer (dot_generals counted in its jaxpr), scanned over every batch of the setting.
  import jax
  from experiments.bench import worker_jaxnn
  lowered = []
  real_jit = jax.jit
  monkeypatch.setattr(jax, "jit", lambda f: lowered.append(f) or real_jit(f))
  setting = spec_lib.Setting("784-1024-1024-10", 32, 100, 2)
  r = worker_jaxnn.epoch_matmul_seconds(setting, repeats=2)
  assert r["seconds"] > 0 and r["seconds"] <= r["median_seconds"]
  xs = jax.numpy.zeros((4, 32, 784))
  ws = [jax.numpy.zeros(shape) for shape in ((784, 1024), (1024, 1024), (1024, 10))]
  jaxpr = jax.make_jaxpr(lowered[0])(ws, xs)
  (scan,) = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
  assert scan.params["length"] == 4
  dots = [e for e in scan.params["jaxpr"].eqns if e.primitive.name == "dot_general"]
  assert len(dots) == 3 + 3 + 2


def test_short_programs_are_timed_for_at_least_min_seconds():
  import time
  calls = []

  def nap():
    calls.append(1)
    time.sleep(0.01)

  times = worker_jaxnn._timed_runs(nap, 2, min_seconds=0.08)
  assert len(calls) == len(times) + 1 and len(times) >= 2  # +1: the warm-up
  assert sum(times) >= 0.08 > sum(times[:-1])  # ran until the runs added up to min_seconds, and no further
  assert len(worker_jaxnn._timed_runs(nap, 2, min_seconds=10, max_repeats=4)) == 4
  assert len(worker_jaxnn._timed_runs(nap, 3)) == 3  # a long program: `repeats` runs


def test_rounds_merge_to_each_frameworks_fastest():
  s = spec_lib.Setting(SMALL, 128, 60_000, 3)

  def limit(t):
    return {"model": SMALL, "batch": 128, "seconds": t, "median_seconds": t, "runs_seconds": [t, t + 1],
            "optimizer_seconds": 3 * t, "gather_seconds": 2 - t}

  one = {"status": "ok", "settings": [dict(fake_result(s, 0.30, 1.0), compile_seconds=0.5, matmul_limit=limit(0.2))],
         "matmul_peak": {"gflops": 300.0}}
  two = {"status": "ok", "settings": [dict(fake_result(s, 0.25, 1.4), compile_seconds=0.9, matmul_limit=limit(0.1))],
         "matmul_peak": {"gflops": 350.0}}
  failed = {"status": "error", "message": "timed out"}
  merged = driver.merge_rounds([one, failed, two])
  (got,) = merged["settings"]
  assert got["steady_epoch_seconds"] == pytest.approx(0.25) and got["epoch_seconds"] == [0.25, 0.25]
  assert (got["first_seconds"], got["compile_seconds"]) == (1.0, 0.5)  # the fastest first call, with its split
  assert got["round_steady_epoch_seconds"] == pytest.approx([0.30, 0.25]) and got["round_first_seconds"] == [1.0, 1.4]
  assert got["matmul_limit"]["seconds"] == 0.1 and got["matmul_limit"]["runs_seconds"] == [0.2, 1.2, 0.1, 1.1]
  # each epoch part is its own fastest run, not the one that rode along with the fastest matmul time
  assert (got["matmul_limit"]["optimizer_seconds"], got["matmul_limit"]["gather_seconds"]) == pytest.approx((0.3, 1.8))
  assert merged["matmul_peak"]["gflops"] == 350.0 and (merged["rounds"], merged["failed_rounds"]) == (3, 1)
  assert driver.merge_rounds([failed, failed]) is failed and driver.merge_rounds([one]) is one


def fake_result(setting, epoch, first):
  return spec_lib.setting_result(setting, first_seconds=first, first_cpu_seconds=first,
                                 epoch_seconds=[epoch] * (setting.epochs - 1),
                                 steady_cpu_seconds=epoch * (setting.epochs - 1), loss=0.5, accuracy=0.8)


def test_report_ratios_targets_and_missing_rows():
  settings = [spec_lib.Setting(SMALL, 128, 60_000, 3), spec_lib.Setting(SMALL, 1, 1000, 3)]
  frameworks = {
      "jaxnn": {"status": "ok", "settings": [dict(fake_result(settings[0], 0.25, 1.5), compile_seconds=1.2),
                                             fake_result(settings[1], 0.1, 1.0)]},
      "keras-jax": {"status": "ok",
                    "settings": [fake_result(settings[0], 0.6, 2.0), fake_result(settings[1], 0.2, 1.0)]},
      "keras-tf": {"status": "missing", "message": "tensorflow not installed"},
      "torch": {"status": "error", "message": "timed out after 600 s"},
  }
  peak = {"gflops": 100.0}
  results = report.build(quick=True, source="random", n_train=60_000, device={"backend": "cpu", "device": "cpu:x",
                         "jax": "0", "matmul_peak": peak, "status": "ok"}, settings=settings, frameworks=frameworks,
                         cache={"status": "ok", "setting": f"{SMALL}/b128", "cache_files": 3,
                                "first_process": {"compile_seconds": 2.0}, "second_process": {"compile_seconds": 0.4}},
                         vmap={"status": "skipped"},
                         limits={"status": "ok", "settings": [{"model": SMALL, "batch": 128, "seconds": 0.2,
                                                               "optimizer_seconds": 0.02, "gather_seconds": 0.03}]})
  rows = {(r["batch"], r["framework"]): r for r in results["rows"]}
  assert len(rows) == 8  # every framework has a row for every setting, the missing and failed ones included
  assert rows[(128, "keras-jax")]["jaxnn_speedup"] == pytest.approx(2.4)
  assert rows[(1, "keras-jax")]["jaxnn_speedup"] == pytest.approx(2.0)
  assert rows[(1, "jaxnn")]["steady_epoch_seconds"] == pytest.approx(6.0)  # 0.1 s per 1000 samples, x 60
  j = rows[(128, "jaxnn")]
  assert j["gflops"] == pytest.approx(6 * 101_770 * 60_000 / 0.25 / 1e9)  # the issue's 6 x params convention
  assert j["limit_ratio"] == pytest.approx(0.25 / (6 * 101_770 * 60_000 / 100e9))
  assert j["limit_ratio_exact"] == pytest.approx(0.25 / (409_088 * 60_000 / 100e9))
  assert j["matmul_ratio"] == pytest.approx(1.25) and rows[(1, "jaxnn")]["matmul_ratio"] is None  # not measured
  assert j["parts_seconds"] == pytest.approx(0.25) and j["parts_ratio"] == pytest.approx(1.0)
  assert rows[(1, "jaxnn")]["parts_ratio"] is None and "parts_seconds" not in rows[(1, "jaxnn")]
  assert rows[(128, "keras-tf")]["status"] == "missing" and "steady_epoch_seconds" not in rows[(128, "keras-tf")]
  targets = {t["target"]: t for t in results["targets"]}
  by_start = lambda text: next(t for name, t in targets.items() if name.startswith(text))  # noqa: E731
  assert by_start(f"CPU {SMALL} batch 128: jaxnn's steady epoch x faster than keras-jax")["met"] is True
  assert by_start(f"CPU {SMALL} batch 1: jaxnn's steady epoch x faster than keras-jax")["met"] is False  # 2 < 3
  assert by_start(f"CPU {SMALL} batch 128: jaxnn's steady epoch x faster than keras-tf")["met"] is None
  assert by_start("start-up")["value"] == pytest.approx(0.75) and by_start("start-up")["met"] is True
  limit = by_start(f"CPU {SMALL} batch 128: steady epoch / matmul-limit time")
  assert limit["value"] == pytest.approx(1.25) and limit["met"] is True and "(6 x params)" in limit["note"]
  assert "optimizer's update alone 0.020 s" in limit["note"] and "matmuls + both = 0.250 s, 1.00x" in limit["note"]
  assert by_start("persistent cache")["value"] == 0.4
  assert by_start("GPU")["met"] is None and "backend is cpu" in by_start("GPU")["note"]
  text = report.render(results)
  assert "missing: tensorflow not installed" in text and "error: timed out after 600 s" in text
  assert "vmap K models: skipped" in text and "[MISSED]" in text and "[met]" in text


def test_driver_end_to_end_tiny(tmp_path, monkeypatch):
  ghost = driver.Framework("keras-jax", "experiments.bench.worker_keras", (("KERAS_BACKEND", "jax"),),
                           ("no_such_framework_here",))
  monkeypatch.setattr(driver, "FRAMEWORKS", (driver.FRAMEWORKS[0], ghost))
  results = driver.main(["--quick", "--samples", "128", "--batch-sizes", "32", "--frameworks", "jaxnn", "keras-jax",
                         "--vmap-models", "2", "--data-dir", str(tmp_path / "absent"),
                         "--out", str(tmp_path / "out")])
  saved = json.loads((tmp_path / "out" / "results.json").read_text())
  assert saved["data"]["source"] == "random" and saved["matmul_peak_gflops"] > 0
  assert [(r["framework"], r["status"]) for r in saved["rows"]] == [("jaxnn", "ok"), ("keras-jax", "missing")]
  assert saved["rows"][0]["steady_epoch_seconds"] > 0 and saved["rows"][0]["samples"] == 128
  assert len(saved["device"]["matmul_peak"]["runs_gflops"]) == 2  # the device section's and the jaxnn worker's
  assert saved["matmul_peak_gflops"] == max(saved["device"]["matmul_peak"]["runs_gflops"])
  (limit,) = saved["matmul_limit"]["settings"]
  assert (limit["batch"], limit["samples"]) == (32, 128) and 0 < limit["seconds"] <= limit["median_seconds"]
  assert limit["seconds"] == min(limit["runs_seconds"]) and len(limit["runs_seconds"]) == 2  # before and after
  assert saved["rows"][0]["matmul_ratio"] == pytest.approx(saved["rows"][0]["steady_epoch_seconds"] / limit["seconds"])
  assert limit["optimizer_seconds"] > 0 and limit["gather_seconds"] > 0
  parts = limit["seconds"] + limit["optimizer_seconds"] + limit["gather_seconds"]
  assert saved["rows"][0]["parts_seconds"] == pytest.approx(parts)
  assert saved["rows"][0]["parts_ratio"] == pytest.approx(saved["rows"][0]["steady_epoch_seconds"] / parts)
  cache = saved["compilation_cache"]
  assert cache["status"] == "ok" and cache["cache_files"] > 0 and cache["second_process"]["compile_seconds"] > 0
  (vmap_row,) = saved["vmap"]["rows"]
  assert saved["vmap"]["status"] == "ok" and saved["vmap"]["samples"] == 128
  assert len(saved["vmap"]["sequential"]["models"]) == 2
  assert (vmap_row["k"], vmap_row["sequential_scaled"]) == (2, False) and vmap_row["one_program_samples_per_second"] > 0
  assert vmap_row["max_loss_difference"] < 1e-4
  assert dataclasses.asdict(spec_lib.Setting(SMALL, 32, 128, 7)) in saved["settings"]  # QUICK batch 32: 6 steady
  assert results["wall_seconds"] > 0


@pytest.mark.parametrize("args, message", [
    (["--batch-sizes", "0"], r"--batch-sizes: .*0"),
    (["--frameworks", "mxnet"], r"--frameworks: invalid choice: 'mxnet'"),
    (["--samples", "-5"], r"--samples: .*-5"),
    (["--rounds", "0"], r"--rounds: .*0"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
])
def test_bad_bench_arguments_are_one_line(args, message, tmp_path, capsys):
  from experiments.bench import driver
  out = tmp_path / "bench"
  with pytest.raises(SystemExit) as e:
    cli.run(driver.main, [*args, "--out", str(out)], prog="bench")
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "Traceback" not in err[0] and re.search(message, err[0]), err
  assert not out.exists()
