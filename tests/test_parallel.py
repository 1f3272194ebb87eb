"""Data-parallel fit on 8 simulated CPU devices (in a subprocess: the device count is fixed when jax starts)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxnn import parallel
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def report():
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
  done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "data_parallel_driver.py")], env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  (line,) = [l for l in done.stdout.splitlines() if l.startswith("REPORT ")]
  return json.loads(line[len("REPORT "):])


def test_data_parallel_equals_single_device(report):
  assert report["devices"] == 8
  assert report["params_max_diff"] < 1e-5
  assert report["opt_state_max_diff"] < 1e-5
  assert report["continued_max_diff"] < 1e-5  # a second fit from the data-parallel state
  for name, single in report["history_single"].items():
    if name != "seconds":
      np.testing.assert_allclose(report["history_multi"][name], single, rtol=1e-5, atol=1e-6, err_msg=name)


def test_batch_is_split_and_params_replicated(report):
  # Each device's step works on 32 / 8 = 4 rows, never the whole batch, and the gradients are all-reduced.
  assert report["hlo_per_device_batch"] and not report["hlo_full_batch"]
  assert report["hlo_all_reduces"] >= 1
  assert report["params_replicated"]
  assert "spec=P()" in report["params_sharding"]
  assert report["mesh_axis"] == ["data"]


def test_evaluate_and_predict_after_data_parallel_fit(report):
  assert report["evaluate_multi"]["accuracy"] == report["evaluate_single"]["accuracy"]
  assert report["evaluate_multi"]["loss"] == pytest.approx(report["evaluate_single"]["loss"], rel=1e-5)
  assert report["predict_max_diff"] < 1e-5


def test_batch_size_must_split_over_devices(report):
  assert report["batch_error"] == "fit: batch_size must be divisible by the 8 devices of the data-parallel mesh, got 30"


def test_data_parallel_option_values():
  assert parallel.resolve_mesh(False) is None and parallel.resolve_mesh(None) is None
  mesh = parallel.resolve_mesh(True)
  assert mesh.axis_names == ("data",) and mesh.shape["data"] == jax.device_count()
  assert parallel.resolve_mesh(mesh) is mesh
  other = jax.sharding.Mesh(np.asarray(jax.devices()), ("batch",))
  with pytest.raises(JaxnnError, match="the Mesh must have an axis named 'data', got axes \\('batch',\\)"):
    parallel.resolve_mesh(other)
  with pytest.raises(JaxnnError, match="data_parallel: expected True, False or a jax.sharding.Mesh, got 'yes'"):
    parallel.resolve_mesh("yes")
  model = Sequential([Dense(2)])
  x, y = np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32)
  with pytest.raises(JaxnnError, match="data_parallel: expected"):
    training.fit(model, model.init(jax.random.key(0), (3,)), x, y, loss="mse", batch_size=4, data_parallel=2,
                 verbose=0)
