"""Data-parallel training on every device JAX sees, on one host or several (jax.distributed).

One host (all its GPUs; on a CPU, simulate 8 devices with XLA_FLAGS=--xla_force_host_platform_device_count=8):
  python scripts/data_parallel.py
Two hosts: run the same command on each, with its own process id (host 0's address is the coordinator's):
  python scripts/data_parallel.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0   # on host 0
  python scripts/data_parallel.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1   # on host 1
Every process loads the same full dataset and calls `fit(..., data_parallel=True)` with the same arguments;
each batch is split over the global mesh of all processes' devices. Only process 0 prints.
"""

from __future__ import annotations

import argparse

import jax


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--coordinator", help="host:port of process 0 (multi-host only)")
  p.add_argument("--num-processes", type=int, help="number of processes (multi-host only)")
  p.add_argument("--process-id", type=int, help="this process's index, 0 .. num-processes - 1")
  p.add_argument("--epochs", type=int, default=5)
  p.add_argument("--batch-size", type=int, default=128, help="global batch, divisible by the device count")
  a = p.parse_args(argv)
  if a.coordinator:
    # Before any other JAX call: afterwards jax.devices() lists every process's devices.
    jax.distributed.initialize(coordinator_address=a.coordinator, num_processes=a.num_processes,
                               process_id=a.process_id)
  import jaxnn  # noqa: E402  (after initialize)
  from jaxnn import data, training
  from jaxnn.layers import Dense, Dropout

  ds = data.load("mnist", verbose=jax.process_index() == 0)
  x_train, x_test = data.flatten(data.scale(ds.x_train)), data.flatten(data.scale(ds.x_test))
  model = jaxnn.Sequential([Dense(512, activation="relu", kernel_initializer="he_uniform"), Dropout(0.4),
                            Dense(256, activation="relu", kernel_initializer="he_uniform"), Dropout(0.4),
                            Dense(10, activation="softmax")])
  params = model.init(jax.random.key(0), x_train.shape[1:])
  state, history = training.fit(model, params, x_train, ds.y_train, loss="sparse_categorical_crossentropy",
                                metrics=["accuracy"], epochs=a.epochs, batch_size=a.batch_size,
                                validation_split=0.1, key=jax.random.key(1), data_parallel=True,
                                verbose=int(jax.process_index() == 0))
  test = training.evaluate(model, state, x_test, ds.y_test, loss="sparse_categorical_crossentropy",
                           metrics=["accuracy"])
  if jax.process_index() == 0:
    print(f"{jax.process_count()} process(es), {jax.device_count()} devices: test accuracy {test['accuracy']:.4f}, "
          f"{sum(history['seconds']):.1f}s over {a.epochs} epochs (compile {history.compile_seconds:.1f}s)")
  return test


if __name__ == "__main__":
  main()
