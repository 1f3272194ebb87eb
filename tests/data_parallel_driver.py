"""Run by tests/test_parallel.py in a subprocess: XLA must see 8 host devices before jax is imported.

Trains the same model on one device and data-parallel on 8 simulated CPU devices and prints a JSON report
(differences, shardings, what the compiled program does) for the test to check.
"""

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ["JAX_PLATFORMS"] = "cpu"

import json  # noqa: E402
import re  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxnn import parallel  # noqa: E402
from jaxnn import training  # noqa: E402
from jaxnn.errors import JaxnnError  # noqa: E402
from jaxnn.layers import Dense, Dropout  # noqa: E402
from jaxnn.models import Sequential  # noqa: E402


def max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
             for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def main():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 12)).astype(np.float32)
  y = (x[:, :3].argmax(-1)).astype(np.int32)  # learnable labels
  model = Sequential([Dense(16, activation="relu"), Dropout(0.2), Dense(3, activation="softmax")])
  params = model.init(jax.random.key(0), (12,))
  loss = "sparse_categorical_crossentropy"
  kw = dict(loss=loss, metrics=["accuracy"], epochs=4, batch_size=32, key=jax.random.key(1), verbose=0,
            validation_split=0.1)
  single, h_single = training.fit(model, params, x, y, **kw)
  training._COMPILED.clear()  # only the data-parallel programs below
  multi, h_multi = training.fit(model, params, x, y, data_parallel=True, **kw)
  (epoch_prog,) = [p for k, p in training._COMPILED.items() if k[0] is training._train_epoch_jit]
  hlo = epoch_prog.as_text()
  # Continue the data-parallel run for one more epoch (the state is already on the mesh).
  more, _ = training.fit(model, multi, x, y, data_parallel=True, **dict(kw, epochs=1))
  more_single, _ = training.fit(model, single, x, y, **dict(kw, epochs=1))
  try:
    training.fit(model, params, x, y, data_parallel=True, **dict(kw, batch_size=30))
    batch_error = None
  except JaxnnError as e:
    batch_error = str(e)
  report = {
      "devices": jax.device_count(),
      "params_max_diff": max_diff(single.params, multi.params),
      "opt_state_max_diff": max_diff(single.opt_state, multi.opt_state),
      "continued_max_diff": max_diff(more_single.params, more.params),
      "history_single": h_single.history, "history_multi": h_multi.history,
      "params_sharding": str(multi.params["dense_0"]["kernel"].sharding),
      "params_replicated": all(a.sharding.is_fully_replicated and len(a.sharding.device_set) == 8
                               for a in jax.tree_util.tree_leaves(multi.params)),
      # The compiled epoch sees a per-device batch of 32 / 8 = 4 rows and all-reduces the gradients.
      "hlo_per_device_batch": bool(re.search(r"f32\[4,12\]", hlo)),
      "hlo_full_batch": bool(re.search(r"f32\[32,12\]", hlo)),
      "hlo_all_reduces": hlo.count("all-reduce("),
      "input_shardings": [str(s) for s in jax.tree_util.tree_leaves(epoch_prog.input_shardings[0][1:])],
      "evaluate_single": training.evaluate(model, single, x, y, loss=loss, metrics=["accuracy"]),
      "evaluate_multi": training.evaluate(model, multi, x, y, loss=loss, metrics=["accuracy"]),
      "predict_max_diff": float(np.max(np.abs(training.predict(model, single, x) - training.predict(model, multi, x)))),
      "batch_error": batch_error,
      "mesh_axis": parallel.data_mesh().axis_names,
  }
  print("REPORT " + json.dumps(report))


if __name__ == "__main__":
  main()
