"""Bench worker: K models of one architecture trained in one program (`jaxnn.fit_many`) against the same K
runs trained one after another (`jaxnn.fit`), in model-samples per second.

Run by the driver as a fresh process: python -m experiments.bench.worker_vmap --spec SPEC --out RESULT.json
The spec holds one setting (model, batch, samples, epochs) and the options `ks` (the K values),
`sequential_models` (at most this many sequential fits are timed; a larger K uses their rate, labelled
`sequential_scaled`) and `shared_order` (also time `fit_many(data_seed=0)`, every model on the same batches).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

from experiments.bench import spec as spec_lib
from experiments.bench import worker_jaxnn


def _steady(seconds: Sequence[float]) -> float:
  """The median epoch after the first (the whole run when there is a single epoch)."""
  return spec_lib.steady_seconds(seconds) or seconds[0]


def _common(s: spec_lib.Setting):
  from jaxnn import losses, optimizers
  loss = losses.get("sparse_categorical_crossentropy", from_logits=True)
  optimizer = optimizers.OptimizerConfig("adam", learning_rate=spec_lib.LEARNING_RATE,
                                        kwargs={"eps": spec_lib.ADAM_EPSILON})
  return worker_jaxnn._model(s.hidden), loss, optimizer


def sequential(s: spec_lib.Setting, x, y, num_models: int) -> dict[str, Any]:
  """`num_models` separate fits, model k exactly the run `fit_many` makes of seed k. The first fit compiles
  the epoch; the others reuse it (their compile_seconds shows it)."""
  import jax
  import jaxnn
  model, loss, optimizer = _common(s)
  models = []
  for k in range(num_models):
    init_key, fit_key = jaxnn.sweep.seed_keys(k)
    t0 = time.perf_counter()
    params = model.init(init_key, x.shape[1:])
    # No NaN guard: fit_many's steps have none, so both ways run the same step.
    state, history = jaxnn.fit(model, params, x, y, loss=loss, optimizer=optimizer, epochs=s.epochs,
                               batch_size=s.batch_size, key=fit_key, verbose=0, max_bad_steps=None)
    jax.block_until_ready(state.params)
    models.append({"call_seconds": time.perf_counter() - t0, "compile_seconds": history.compile_seconds,
                   "epoch_seconds": list(history["seconds"]), "steady_seconds": _steady(history["seconds"]),
                   "final_loss": history["loss"][-1]})
  steady = statistics.mean(m["steady_seconds"] for m in models)
  out = {"models": models, "steady_model_epoch_seconds": steady, "model_samples_per_second": s.samples / steady}
  later = [m["call_seconds"] for m in models[1:]]  # whole fit calls once compiled: init, checks, transfers
  if later:
    out["call_model_samples_per_second"] = s.samples * s.epochs / statistics.mean(later)
  return out


def one_program(s: spec_lib.Setting, x, y, k: int, data_seed: int | None = None) -> dict[str, Any]:
  """One `fit_many` of k models (seeds 0..k-1)."""
  import jax
  import jaxnn
  model, loss, optimizer = _common(s)
  t0 = time.perf_counter()
  states, histories = jaxnn.fit_many(model, x, y, loss=loss, optimizer=optimizer, seeds=list(range(k)),
                                     epochs=s.epochs, batch_size=s.batch_size, data_seed=data_seed, verbose=0)
  jax.block_until_ready(states.params)
  seconds = list(histories[0]["seconds"])
  steady = _steady(seconds)
  return {"call_seconds": time.perf_counter() - t0, "compile_seconds": histories[0].compile_seconds,
          "epoch_seconds": seconds, "steady_epoch_seconds": steady, "model_samples_per_second": k * s.samples / steady,
          "final_losses": [h["loss"][-1] for h in histories]}


def run(work: spec_lib.Work) -> dict[str, Any]:
  import jax.numpy as jnp
  import jaxnn
  jaxnn.disable_compilation_cache()  # cold compiles, as in the frameworks section
  (s,) = work.settings
  ks = [int(k) for k in work.options["ks"]]
  cap = int(work.options.get("sequential_models", 8))
  x, y = work.x[:s.samples], work.y[:s.samples]
  info = worker_jaxnn.device_info()
  jnp.zeros(1).block_until_ready()
  seq = sequential(s, x, y, min(max(ks), cap))
  seq_losses = [m["final_loss"] for m in seq["models"]]
  rows = []
  for k in ks:
    many = one_program(s, x, y, k)
    row = {"k": k, "one_program": many, "sequential_timed": min(k, cap), "sequential_scaled": k > cap,
           "sequential_model_samples_per_second": seq["model_samples_per_second"],
           "ratio": many["model_samples_per_second"] / seq["model_samples_per_second"],
           # The same runs both ways: how far apart their final losses end (float rounding, which grows with
           # the steps: 1e-7 after 96 steps, 1e-3 after 1876, measured on a CPU).
           "max_loss_difference": max(abs(a - b) for a, b in zip(many["final_losses"], seq_losses))}
    if work.options.get("shared_order") and k > 1:
      shared = one_program(s, x, y, k, data_seed=0)
      row["shared_order"] = shared
      row["shared_order_ratio"] = shared["model_samples_per_second"] / seq["model_samples_per_second"]
    rows.append(row)
  return {"version": jaxnn.__version__, **info, "model": s.model, "batch": s.batch, "samples": s.samples,
          "epochs": s.epochs, "sequential": seq, "ks": rows}


if __name__ == "__main__":
  spec_lib.worker_main("vmap", run)
