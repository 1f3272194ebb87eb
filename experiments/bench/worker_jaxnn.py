"""Bench worker: jaxnn's `fit`, on whatever device JAX picks; also the device's matmul peak and each setting's
measured matmul-limit time (the epoch's matmuls alone).

Run by the driver as a fresh process: python -m experiments.bench.worker_jaxnn --spec SPEC --out RESULT.json
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

from experiments.bench import spec as spec_lib


def device_info() -> dict[str, Any]:
  import jax
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
          "device_count": jax.device_count(), "jax": jax.__version__,
          "matmul_precision": str(jax.config.jax_default_matmul_precision)}


# The matmul-limit and parts timings run at least this long each (a QUICK batch-1 part is ~20 ms a run).
PART_MIN_SECONDS = 0.5


def _timed_runs(fn: Callable[[], Any], repeats: int, min_seconds: float = 0.0, max_repeats: int = 50) -> list[float]:
  """Seconds of runs of `fn` (its result waited for), after one untimed warm-up run: `repeats` runs, and more
  (up to `max_repeats`) until they add up to `min_seconds`, so that the fastest of a short program's runs is
  drawn from a span long enough to outlast this shared machine's slow stretches."""
  import jax
  jax.block_until_ready(fn())
  times: list[float] = []
  while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return times


def matmul_peak(sizes: Sequence[int] | None = None, repeats: int = 10) -> dict[str, Any]:
  """The device's dense float32 matmul throughput: a jitted n x n @ n x n, the fastest of `repeats` timed runs
  per size after a warm-up (a peak: on a shared machine the fastest run is the one least disturbed), best
  size; the median run is recorded too."""
  import jax
  import jax.numpy as jnp
  if sizes is None:
    sizes = (1024, 2048) if jax.default_backend() == "cpu" else (4096, 8192)
  matmul = jax.jit(jnp.matmul)
  by_size, median_by_size = {}, {}
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    times = _timed_runs(lambda: matmul(a, b), repeats)
    by_size[str(n)] = 2 * n**3 / min(times) / 1e9
    median_by_size[str(n)] = 2 * n**3 / statistics.median(times) / 1e9
  return {"gflops": max(by_size.values()), "gflops_by_size": by_size, "median_gflops_by_size": median_by_size}


def epoch_matmul_seconds(s: spec_lib.Setting, repeats: int = 5) -> dict[str, Any]:
  """The matmul-limit time of one setting's epoch, measured: the epoch's matmuls alone, at its shapes.

  One jitted lax.scan over the epoch's batches (random data, batch-major, sliced by the scan) doing for each
  exactly the matmuls a training step of the MLP does: the forward x @ W per layer, the weight gradient
  a^T @ g per layer and the input gradient g @ W^T for every layer but the first; no bias, activation, loss or
  optimizer work. The weights stay fixed and the weight gradients are carried out of the loop (nothing can be
  hoisted or dropped). Fastest of `repeats` timed runs (more for a short program: `_timed_runs`) after a
  warm-up, scaled to EPOCH_SAMPLES like the epoch it bounds; the median too.
  """
  import jax
  import jax.numpy as jnp
  sizes = [spec_lib.INPUTS, *s.hidden, spec_lib.CLASSES]
  batches = -(-s.samples // s.batch_size)
  keys = jax.random.split(jax.random.key(0), len(sizes))
  xs = jax.random.normal(keys[0], (batches, s.batch_size, sizes[0]), jnp.float32)
  ws = [jax.random.normal(k, (i, o), jnp.float32) / i**0.5 for k, i, o in zip(keys[1:], sizes[:-1], sizes[1:])]

  def step(carry, xb):
    ws, _ = carry
    acts = [xb]
    for w in ws:
      acts.append(acts[-1] @ w)
    g, grads = acts[-1], []
    for layer in reversed(range(len(ws))):
      grads.insert(0, acts[layer].T @ g)
      if layer:
        g = g @ ws[layer].T
    return (ws, grads), None

  epoch = jax.jit(lambda ws, xs: jax.lax.scan(step, (ws, [jnp.zeros_like(w) for w in ws]), xs)[0][1])
  times = _timed_runs(lambda: epoch(ws, xs), repeats, PART_MIN_SECONDS)
  scale = spec_lib.EPOCH_SAMPLES / s.samples
  return {"model": s.model, "batch": s.batch, "samples": s.samples, "seconds": min(times) * scale,
          "median_seconds": statistics.median(times) * scale}


def epoch_parts_seconds(s: spec_lib.Setting, repeats: int = 3) -> dict[str, float]:
  """Two parts of a training epoch besides its matmuls, each timed alone like `epoch_matmul_seconds` (a jitted
  lax.scan over the epoch's batches, fastest of `repeats` runs or more, scaled to EPOCH_SAMPLES):

  - "optimizer_seconds": the optimizer's update of the MLP's parameters, one per batch: the same optax Adam
    `fit` builds (`jaxnn.optimizers.make`), on a fixed gradient scaled by the step (nothing can be hoisted);
  - "gather_seconds": gathering each batch's rows of a (samples, 784) float32 array in a shuffled order, as
    `fit` reads its batches, summed so that every row is read.

  With the matmul-limit time these are work every epoch of this setting does, whatever the framework: their
  sum tells how much of a steady epoch is left to everything else (bias, activations, loss, the guard's
  probe, the loop).
  """
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from jaxnn import optimizers
  sizes = [spec_lib.INPUTS, *s.hidden, spec_lib.CLASSES]
  batches = -(-s.samples // s.batch_size)
  params = [{"kernel": jnp.full((i, o), 0.01, jnp.float32), "bias": jnp.zeros((o,), jnp.float32)}
            for i, o in zip(sizes[:-1], sizes[1:])]
  grads = jax.tree_util.tree_map(lambda a: jnp.full(a.shape, 1e-3, a.dtype), params)
  tx = optimizers.make(optimizers.OptimizerConfig("adam", learning_rate=spec_lib.LEARNING_RATE,
                                                  kwargs={"eps": spec_lib.ADAM_EPSILON}))

  def update(carry, scale):
    p, opt_state = carry
    updates, opt_state = tx.update(jax.tree_util.tree_map(lambda g: g * scale, grads), opt_state, p)
    return (optax.apply_updates(p, updates), opt_state), None

  scales = jnp.linspace(1.0, 2.0, batches, dtype=jnp.float32)
  # In this loop alone XLA's CPU compiler fuses the cheap scaled gradient into both the moments' and the
  # parameters' update, so its default copy insertion copies mu and nu every step (~45 instead of ~34 us a step
  # for 784-128-10); fit's step, whose gradients come from dots, gets no such copies. Region analysis keeps
  # them out, so the part times the update fit runs, not the copies.
  options = {"xla_cpu_copy_insertion_use_region_analysis": True} if jax.default_backend() == "cpu" else None
  optimizer = jax.jit(lambda p, sc: jax.lax.scan(update, (p, tx.init(p)), sc)[0][0], compiler_options=options)
  x = jnp.asarray(np.random.default_rng(0).random((s.samples, spec_lib.INPUTS), np.float32))
  order = np.resize(np.random.default_rng(1).permutation(s.samples), batches * s.batch_size)
  idx = jnp.asarray(order.reshape(batches, s.batch_size).astype(np.int32))
  gather = jax.jit(lambda x, idx: jax.lax.scan(lambda c, i: (c + jnp.sum(jnp.take(x, i, axis=0)), None),
                                               jnp.float32(0), idx)[0])
  scale = spec_lib.EPOCH_SAMPLES / s.samples

  def fastest(fn: Callable[[], Any]) -> float:
    return min(_timed_runs(fn, repeats, PART_MIN_SECONDS)) * scale

  return {"optimizer_seconds": fastest(lambda: optimizer(params, scales)),
          "gather_seconds": fastest(lambda: gather(x, idx))}


def _model(hidden: Sequence[int]):
  from jaxnn import Dense, Sequential
  return Sequential([*(Dense(h, activation="relu") for h in hidden), Dense(spec_lib.CLASSES)])


def _params(weights) -> dict[str, Any]:
  import jax.numpy as jnp
  return {f"dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)} for i, (k, b) in enumerate(weights)}


def run_setting(s: spec_lib.Setting, x, y, weights) -> dict[str, Any]:
  """`fit` one epoch from the shared initial weights (timed whole: compile + first epoch), then the steady
  epochs in a second `fit` that continues from the returned state (the compiled program is reused)."""
  import jax
  from jaxnn import losses, optimizers, training
  model = _model(s.hidden)
  loss = losses.get("sparse_categorical_crossentropy", from_logits=True)
  optimizer = optimizers.OptimizerConfig("adam", learning_rate=spec_lib.LEARNING_RATE,
                                        kwargs={"eps": spec_lib.ADAM_EPSILON})
  x, y = x[:s.samples], y[:s.samples]
  kw = dict(loss=loss, metrics=["accuracy"], batch_size=s.batch_size, verbose=0)
  params = _params(weights)
  jax.block_until_ready(params)
  t0 = time.perf_counter()
  c0 = time.process_time()
  state, first = training.fit(model, params, x, y, optimizer=optimizer, epochs=1, key=jax.random.key(0), **kw)
  jax.block_until_ready(state.params)
  first_seconds = time.perf_counter() - t0
  first_cpu_seconds = time.process_time() - c0
  last = first
  cpu = time.process_time()
  if s.epochs > 1:
    state, last = training.fit(model, state, x, y, epochs=s.epochs - 1, **kw)
  cpu = time.process_time() - cpu
  return spec_lib.setting_result(
      s, first_seconds=first_seconds, first_cpu_seconds=first_cpu_seconds,
      epoch_seconds=last["seconds"] if s.epochs > 1 else [], steady_cpu_seconds=cpu,
      loss=last["loss"][-1], accuracy=last["accuracy"][-1], compile_seconds=first.compile_seconds,
      first_epoch_seconds=first["seconds"][0], recompile_seconds=last.compile_seconds if s.epochs > 1 else None)


def run(work: spec_lib.Work) -> dict[str, Any]:
  import jax.numpy as jnp
  import jaxnn
  cache = work.options.get("compilation_cache")
  if cache:
    jaxnn.enable_compilation_cache(cache)
  else:  # cold compiles unless the driver asks for the cache: the figure the table reports
    jaxnn.disable_compilation_cache()
  info = device_info()
  jnp.zeros(1).block_until_ready()  # start the backend outside every timed region, as the peers do
  out: dict[str, Any] = {"version": jaxnn.__version__, **info, "compilation_cache": cache}
  out["settings"] = []
  for s in work.settings:
    # The setting's matmul-limit time is timed just before and just after it (the same minutes of a shared
    # machine), and the faster of the two is the limit: a floor, never flattered by a disturbed run.
    before = epoch_matmul_seconds(s) if work.options.get("matmul_limit") else None
    result = run_setting(s, work.x, work.y, work.weights[s.model])
    if before is not None:
      after = epoch_matmul_seconds(s)
      result["matmul_limit"] = dict(min(before, after, key=lambda r: r["seconds"]),
                                    runs_seconds=[before["seconds"], after["seconds"]], **epoch_parts_seconds(s))
    out["settings"].append(result)
  if work.options.get("peak"):
    out["matmul_peak"] = matmul_peak()
  return out


if __name__ == "__main__":
  spec_lib.worker_main("jaxnn", run)
