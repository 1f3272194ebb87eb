"""The bench's tables, ratios and targets, from the workers' results (pure: no framework, no timing)."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from experiments.bench import spec as spec_lib
from jaxnn import cli

PEERS = ("keras-jax", "keras-tf", "torch")
SMALL, BIG = "784-128-10", "784-1024-1024-10"


def _rows(settings: Sequence[spec_lib.Setting], frameworks: dict[str, dict[str, Any]],
          peak_gflops: float, limits: dict[str, Any] | None = None) -> list[dict[str, Any]]:
  """One row per (setting, framework), missing and failed frameworks included."""
  rows = []
  measured = {f"{r['model']}/b{r['batch']}": r for r in (limits or {}).get("settings", [])}
  for s in settings:
    timed = measured.get(s.key, {})
    matmul_seconds = timed.get("seconds")
    # The epoch's matmuls + the optimizer's update + the batch gather, each timed alone: the work every
    # framework's epoch of the setting does (worker_jaxnn.epoch_parts_seconds).
    parts = {} if "optimizer_seconds" not in timed else {
        "optimizer_seconds": timed["optimizer_seconds"], "gather_seconds": timed["gather_seconds"],
        "parts_seconds": timed["seconds"] + timed["optimizer_seconds"] + timed["gather_seconds"]}
    # The convention (6 * params per sample) is the headline; the exact matmul count (no gradient with
    # respect to the data: 2/3 of it for 784-128-10) gives the stricter limit, recorded alongside.
    flops = spec_lib.flops_per_sample(s.hidden) * spec_lib.EPOCH_SAMPLES
    exact = spec_lib.train_flops_per_sample(s.hidden) * spec_lib.EPOCH_SAMPLES
    limit, limit_exact = flops / (peak_gflops * 1e9), exact / (peak_gflops * 1e9)
    jaxnn_epoch = None
    for name, fw in frameworks.items():
      row = {"model": s.model, "batch": s.batch, "framework": name, "status": fw["status"], "epoch_flops": flops,
             "matmul_limit_seconds": limit, "epoch_flops_exact": exact, "matmul_limit_seconds_exact": limit_exact,
             "matmul_seconds": matmul_seconds, **parts}
      got = {r["model"] + "/b" + str(r["batch"]): r for r in fw.get("settings", [])}.get(s.key)
      if fw["status"] != "ok" or got is None:
        row["note"] = fw.get("message", "no result for this setting")
        rows.append(row)
        continue
      epoch = got["steady_epoch_seconds"]
      row.update({k: got[k] for k in ("samples", "first_seconds", "first_cpu_seconds", "epoch_seconds",
                                       "steady_epoch_seconds", "steady_epoch_cpu_seconds", "extrapolated",
                                       "final_loss", "final_accuracy")})
      for k in ("compile_seconds", "first_epoch_seconds", "round_steady_epoch_seconds", "round_first_seconds"):
        if k in got:
          row[k] = got[k]
      row.update(samples_per_second=spec_lib.EPOCH_SAMPLES / epoch, gflops=flops / epoch / 1e9,
                 peak_fraction=flops / epoch / 1e9 / peak_gflops, limit_ratio=epoch / limit,
                 limit_ratio_exact=epoch / limit_exact,
                 matmul_ratio=epoch / matmul_seconds if matmul_seconds else None,
                 parts_ratio=epoch / parts["parts_seconds"] if parts else None)
      if got["extrapolated"]:
        row["note"] = f"epoch = rate on {got['samples']} samples x {spec_lib.EPOCH_SAMPLES}"
      if name == "jaxnn":
        jaxnn_epoch = epoch
      elif jaxnn_epoch:
        row["jaxnn_speedup"] = epoch / jaxnn_epoch  # how many times faster jaxnn's steady epoch is
      rows.append(row)
  return rows


def _row(rows, model: str, batch: Any, framework: str) -> dict[str, Any] | None:
  for r in rows:
    if r["model"] == model and r["batch"] == batch and r["framework"] == framework and "steady_epoch_seconds" in r:
      return r
  return None


@dataclasses.dataclass
class _Target:
  name: str
  value: float | None
  threshold: float
  higher_is_better: bool
  note: str = ""

  def as_dict(self) -> dict[str, Any]:
    met = None
    if self.value is not None:
      met = self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold
    return {"target": self.name, "value": self.value, "direction": ">=" if self.higher_is_better else "<=",
            "threshold": self.threshold, "met": met, "note": self.note}


def _vmap_rows(vmap: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per K: model-samples/s (K x samples / steady epoch) both ways, their ratio, the compile seconds."""
  if vmap.get("status") != "ok":
    return []
  rows = []
  for r in vmap["ks"]:
    one = r["one_program"]
    row = {"k": r["k"], "one_program_samples_per_second": one["model_samples_per_second"],
           "sequential_samples_per_second": r["sequential_model_samples_per_second"], "ratio": r["ratio"],
           "compile_seconds": one["compile_seconds"], "steady_epoch_seconds": one["steady_epoch_seconds"],
           # The whole call less its epochs: fit_many's init program, its epoch compile, the input checks.
           "startup_seconds": one["call_seconds"] - sum(one["epoch_seconds"]),
           "sequential_timed": r["sequential_timed"], "sequential_scaled": r["sequential_scaled"],
           "max_loss_difference": r["max_loss_difference"]}
    if "shared_order" in r:
      row.update(shared_order_samples_per_second=r["shared_order"]["model_samples_per_second"],
                 shared_order_ratio=r["shared_order_ratio"],
                 shared_order_compile_seconds=r["shared_order"]["compile_seconds"])
    rows.append(row)
  return rows


def _targets(rows, backend: str, cache: dict[str, Any], vmap_rows: Sequence[dict[str, Any]] = ()
             ) -> list[dict[str, Any]]:
  out = []
  jx = lambda b: _row(rows, SMALL, b, "jaxnn")  # noqa: E731
  cpu = backend == "cpu"
  cpu_note = "" if cpu else f"a CPU target; this run's backend is {backend}"
  for batch, factor, peer in ((32, 2, "keras-jax"), (128, 2, "keras-jax"), (1, 3, "keras-jax"),
                              (128, 5, "keras-tf"), (128, 5, "torch")):
    p, j = _row(rows, SMALL, batch, peer), jx(batch)
    value = p["steady_epoch_seconds"] / j["steady_epoch_seconds"] if p and j else None
    note = cpu_note or ("" if value is not None else f"{peer} or jaxnn has no result")
    out.append(_Target(f"CPU {SMALL} batch {batch}: jaxnn's steady epoch x faster than {peer}", value, factor,
                       True, note))
  j = jx(128)
  # The matmul-limit time: the epoch's own matmuls, at their shapes, timed on this device (the limit section).
  # Time at the big-matmul peak is a lower bound no epoch of small matmuls reaches; its ratios are in the
  # table (x limit) and in this target's note.
  peak_note = (f"at the {SMALL} epoch's FLOPs / the big-matmul peak instead: {j['limit_ratio']:.2f}x (6 x params), "
               f"{j['limit_ratio_exact']:.2f}x (exact FLOPs)") if j else ""
  parts_note = ""
  if j and j.get("parts_ratio"):
    parts_note = (f"the optimizer's update alone {j['optimizer_seconds']:.3f} s and the shuffled batch gather "
                  f"alone {j['gather_seconds']:.3f} s per epoch: matmuls + both = {j['parts_seconds']:.3f} s, "
                  f"{j['parts_ratio']:.2f}x of it")
  out.append(_Target(f"CPU {SMALL} batch 128: steady epoch / matmul-limit time (the epoch's matmuls alone, "
                     "measured)", j.get("matmul_ratio") if j else None, 1.3, False,
                     "; ".join(n for n in (cpu_note, peak_note, parts_note) if n)))
  k = _row(rows, SMALL, 128, "keras-jax")
  cpu_ratio = f"in CPU seconds {j['first_cpu_seconds'] / k['first_cpu_seconds']:.2f}" if j and k else ""
  out.append(_Target(f"start-up {SMALL} batch 128: jaxnn compile + first epoch / Keras-JAX first epoch (fresh "
                     "processes)", j["first_seconds"] / k["first_seconds"] if j and k else None, 1.0, False, cpu_ratio))
  second = cache.get("second_process", {}).get("compile_seconds") if cache.get("status") == "ok" else None
  out.append(_Target("persistent cache: a second process's compile seconds", second, 1.0, False,
                     "" if second is not None else f"cache section: {cache.get('status')}"))
  gpu_note = "" if backend in ("gpu", "cuda", "rocm") else (
      f"not measured: backend is {backend}; runs as is on an H100/H200 (same command)")
  b = _row(rows, BIG, 128, "jaxnn")
  out.append(_Target(f"GPU {BIG} batch 128: jaxnn ms per epoch",
                     b["steady_epoch_seconds"] * 1e3 if b and not gpu_note else None, 20.0, False, gpu_note))
  f = _row(rows, BIG, "full", "jaxnn")
  out.append(_Target(f"GPU {BIG} full batch: achieved / measured matmul peak",
                     f["peak_fraction"] if f and not gpu_note else None, 0.30, True, gpu_note))
  v = next((r for r in vmap_rows if r["k"] == 256), None)
  vmap_note = (f"GPU target not measured: backend is {backend}" if gpu_note else
               "" if v else "no K = 256 result (vmap section failed or skipped)")
  out.append(_Target(f"GPU {SMALL} batch 128: 256 models in one program, x the model-samples/s of one after "
                     "another", v["ratio"] if v and not gpu_note else None, 50.0, True, vmap_note))
  return [t.as_dict() for t in out]


def build(*, quick: bool, source: str, n_train: int, device: dict[str, Any], settings: Sequence[spec_lib.Setting],
          frameworks: dict[str, dict[str, Any]], cache: dict[str, Any], vmap: dict[str, Any],
          limits: dict[str, Any] | None = None) -> dict[str, Any]:
  """results.json: the run's device, peak, per-framework status, rows, start-up, cache, vmap and targets."""
  peak = device["matmul_peak"]["gflops"]
  rows = _rows(settings, frameworks, peak, limits)
  vmap = dict(vmap, rows=_vmap_rows(vmap))
  fw_info = {name: {k: v for k, v in fw.items() if k != "settings"} for name, fw in frameworks.items()}
  startup = {name: {"first_seconds": r["first_seconds"], "first_cpu_seconds": r["first_cpu_seconds"],
                    **({"compile_seconds": r["compile_seconds"]} if "compile_seconds" in r else {})}
             for name in frameworks if (r := _row(rows, SMALL, 128, name))}
  return {"quick": quick, "data": {"source": source, "n_train": n_train, "epoch_samples": spec_lib.EPOCH_SAMPLES},
          "device": {k: v for k, v in device.items() if k not in ("settings", "status", "framework")},
          "matmul_peak_gflops": peak, "matmul_limit": limits or {"status": "skipped"},
          "settings": [dataclasses.asdict(s) for s in settings], "frameworks": fw_info,
          "rows": rows, "startup": startup, "compilation_cache": cache, "vmap": vmap,
          "targets": _targets(rows, device["backend"], cache, vmap["rows"])}


def _f(value: Any, fmt: str) -> str:
  return "-" if value is None else format(value, fmt)


def render(results: dict[str, Any]) -> str:
  """The printed report: the table, start-up and cache lines, the vmap section and the targets."""
  d = results["device"]
  lines = [f"device: {d['device']} ({d['backend']}, jax {d['jax']}); measured float32 matmul peak "
           f"{results['matmul_peak_gflops']:.1f} GFLOP/s; data: {results['data']['source']}; "
           f"{'QUICK' if results['quick'] else 'full'} mode"]
  for name, fw in results["frameworks"].items():
    if fw["status"] == "ok":
      lines.append(f"  {name}: {fw.get('version', '?')} on {fw.get('device', '?')}")
  lines.append("")
  header = ("model", "batch", "framework", "first_s", "epoch_s", "cpu_s", "samples/s", "GFLOP/s", "%peak",
            "x matmuls", "x parts", "x limit", "x limit exact", "jaxnn x faster", "note")
  table = []
  for r in results["rows"]:
    if "steady_epoch_seconds" not in r:
      table.append((r["model"], r["batch"], r["framework"], *["-"] * 11, r["status"] + ": " + r.get("note", "")))
      continue
    table.append((r["model"], r["batch"], r["framework"], _f(r["first_seconds"], ".2f"),
                  _f(r["steady_epoch_seconds"], ".3f"), _f(r["steady_epoch_cpu_seconds"], ".3f"),
                  _f(r["samples_per_second"], ",.0f"), _f(r["gflops"], ".1f"),
                  _f(100 * r["peak_fraction"], ".0f"), _f(r.get("matmul_ratio"), ".2f"),
                  _f(r.get("parts_ratio"), ".2f"), _f(r["limit_ratio"], ".2f"), _f(r["limit_ratio_exact"], ".2f"),
                  _f(r.get("jaxnn_speedup"), ".2f"),
                  r.get("note", "")))
  rounds = results.get("rounds", 1)
  best_of = (f" (each framework's worker ran {rounds} times, in turn: per setting its fastest round's epoch_s "
             "and first_s)") if rounds > 1 else ""
  lines += [cli.table(table, header), "",
            "first_s: the first fit call in a fresh process (jaxnn: compile + first epoch; peers: first epoch, "
            "which traces/compiles); epoch_s: median steady epoch over 60k samples; cpu_s: the process's CPU "
            "seconds per steady epoch (above epoch_s: several cores at work; it moves less than epoch_s when other "
            "jobs share the machine); GFLOP/s and %peak count 6 x params FLOPs per sample; x matmuls: epoch_s / "
            "the measured time of the epoch's matmuls alone at its shapes (the matmul-limit time); x parts: epoch_s "
            "/ (that + the optimizer's update alone + the shuffled batch gather alone, each measured the same way: "
            "work every framework's epoch does); x limit: epoch_s / "
            "(those FLOPs / measured peak); x limit exact: the same with the exact matmul FLOPs (no gradient "
            f"with respect to the data){best_of}", ""]
  m = results.get("matmul_limit", {})
  if m.get("status") != "ok":
    lines.append(f"matmul-limit times: {m.get('status')} {m.get('message', '')}".rstrip())
  for name, s in results["startup"].items():
    extra = f", compile {s['compile_seconds']:.2f} s" if "compile_seconds" in s else ""
    lines.append(f"start-up {SMALL} batch 128, {name}: {s['first_seconds']:.2f} s (CPU {s['first_cpu_seconds']:.2f} s"
                 f"{extra})")
  c = results["compilation_cache"]
  if c.get("status") == "ok":
    lines.append(f"persistent compilation cache ({c['setting']}): compile {c['first_process']['compile_seconds']:.2f} s"
                 f" in a first process, {c['second_process']['compile_seconds']:.2f} s in a second "
                 f"({c['cache_files']} cache files)")
  else:
    lines.append(f"persistent compilation cache: {c.get('status')} {c.get('message', '')}")
  lines += _render_vmap(results["vmap"])
  lines += ["", "targets:"]
  for t in results["targets"]:
    mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
    value = "-" if t["value"] is None else f"{t['value']:.3g}"
    note = f" - {t['note']}" if t["note"] else ""
    lines.append(f"  [{mark}] {t['target']}: {value} (target {t['direction']} {t['threshold']:g}){note}")
  return "\n".join(lines)


def _render_vmap(v: dict[str, Any]) -> list[str]:
  if not v.get("rows"):
    return ["", f"vmap K models: {v.get('status')} {v.get('message', '')}".rstrip()]
  shared = any("shared_order_ratio" in r for r in v["rows"])
  header = ("K", "one program samples/s", "one after another samples/s", "x", *(("shared order x",) if shared else ()),
            "compile_s", "start_s", "max loss diff", "note")
  table = []
  for r in v["rows"]:
    note = (f"one after another: {r['sequential_timed']} of {r['k']} models timed, rate scaled"
            if r["sequential_scaled"] else "")
    table.append((r["k"], _f(r["one_program_samples_per_second"], ",.0f"),
                  _f(r["sequential_samples_per_second"], ",.0f"), _f(r["ratio"], ".2f"),
                  *((_f(r.get("shared_order_ratio"), ".2f"),) if shared else ()),
                  _f(r["compile_seconds"], ".2f"), _f(r["startup_seconds"], ".2f"), _f(r["max_loss_difference"], ".1e"),
                  note))
  seq = v["sequential"]
  first = seq["models"][0]
  calls = seq.get("call_model_samples_per_second")
  return ["", f"vmap: K models of {v['model']} (batch {v['batch']}, {v['samples']} samples, {v['epochs']} epochs, "
          f"seeds 0..K-1) in one program (jaxnn.fit_many) vs one after another (jaxnn.fit, each reusing the compiled "
          "epoch); samples/s = model-samples per second over steady epochs (median after the first)",
          cli.table(table, header),
          f"one after another: compile {first['compile_seconds']:.2f} s once"
          + (f"; whole fit calls once compiled: {calls:,.0f} model-samples/s" if calls else "")
          + ("; shared order: fit_many(data_seed=0), every model on the same batches" if shared else "")
          + "; compile_s: fit_many's compile_seconds (the epoch program); start_s: the whole fit_many call less its "
          "epochs (also its init program's compile); max loss diff: the largest final-loss difference between a "
          "model's two ways (the same run)"]
