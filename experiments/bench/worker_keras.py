"""Bench worker: Keras 3's `model.fit`, on the backend named by $KERAS_BACKEND (jax or tensorflow).

Run by the driver as a fresh process with KERAS_BACKEND set:
  KERAS_BACKEND=jax python -m experiments.bench.worker_keras --spec SPEC --out RESULT.json
Keras is used as its users would: numpy arrays into `fit`, default `jit_compile` and `steps_per_execution`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from experiments.bench import spec as spec_lib


class _EpochTimer:
  """Seconds of each epoch, from Keras' epoch-begin to epoch-end callbacks (the epoch's last step has
  finished: Keras reads the logs back to the host)."""

  def __init__(self, keras):
    timer = self

    class Callback(keras.callbacks.Callback):
      def on_epoch_begin(self, epoch, logs=None):
        timer.start = time.perf_counter()

      def on_epoch_end(self, epoch, logs=None):
        timer.seconds.append(time.perf_counter() - timer.start)

    self.seconds: list[float] = []
    self.start = 0.0
    self.callback = Callback()


def run_setting(keras, s: spec_lib.Setting, x, y, weights) -> dict[str, Any]:
  """`fit` one epoch from the shared initial weights, timed whole (Keras traces and compiles its train step
  in it), then the steady epochs in a second `fit` (Keras keeps the compiled train function)."""
  keras.utils.set_random_seed(0)
  layers = [keras.Input((spec_lib.INPUTS,))]
  layers += [keras.layers.Dense(h, activation="relu") for h in s.hidden] + [keras.layers.Dense(spec_lib.CLASSES)]
  model = keras.Sequential(layers)
  model.set_weights([a for layer in weights for a in layer])
  model.compile(optimizer=keras.optimizers.Adam(spec_lib.LEARNING_RATE, epsilon=spec_lib.ADAM_EPSILON),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
  x, y = x[:s.samples], y[:s.samples]
  t0 = time.perf_counter()
  c0 = time.process_time()
  model.fit(x, y, batch_size=s.batch_size, epochs=1, shuffle=True, verbose=0)
  first_seconds = time.perf_counter() - t0
  first_cpu_seconds = time.process_time() - c0
  timer = _EpochTimer(keras)
  cpu = time.process_time()
  history = model.fit(x, y, batch_size=s.batch_size, epochs=s.epochs - 1, shuffle=True, verbose=0,
                      callbacks=[timer.callback])
  cpu = time.process_time() - cpu
  return spec_lib.setting_result(s, first_seconds=first_seconds, first_cpu_seconds=first_cpu_seconds,
                                 epoch_seconds=timer.seconds, steady_cpu_seconds=cpu,
                                 loss=float(history.history["loss"][-1]),
                                 accuracy=float(history.history["accuracy"][-1]))


def run(work: spec_lib.Work) -> dict[str, Any]:
  backend = os.environ.get("KERAS_BACKEND", "")
  if backend == "tensorflow":
    import tensorflow  # noqa: F401  (a missing TensorFlow is a missing peer, not an error)
  import keras
  if keras.backend.backend() != backend:
    raise RuntimeError(f"KERAS_BACKEND={backend!r} but Keras runs on {keras.backend.backend()!r}")
  info: dict[str, Any] = {"version": keras.__version__, "backend": backend}
  if backend == "jax":
    import jax
    info.update(jax=jax.__version__, device=f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}")
  else:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    info.update(tensorflow=tf.__version__, device="gpu" if gpus else "cpu")
  keras.ops.convert_to_tensor([0.0])  # start the backend outside every timed region
  info["settings"] = [run_setting(keras, s, work.x, work.y, work.weights[s.model]) for s in work.settings]
  return info


if __name__ == "__main__":
  spec_lib.worker_main(f"keras-{os.environ.get('KERAS_BACKEND', 'unset')}", run)
