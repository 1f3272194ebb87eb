"""Data parallelism through jax.sharding: a Mesh with one "data" axis, params replicated, batches split.

`fit(..., data_parallel=True)` builds `data_mesh()` over every device JAX sees, replicates the train state
and the dataset on it (`NamedSharding(mesh, P())`), and compiles the epoch with each gathered batch
constrained to `NamedSharding(mesh, P("data"))`. XLA's SPMD partitioner then runs each device on its slice
of the batch and inserts the all-reduce of the gradients; the update is computed identically everywhere,
so the params stay replicated. Nothing else in `fit` changes.

Multi-host: after `jax.distributed.initialize(...)`, `jax.devices()` lists every process's devices, so the
mesh is global. Each process must call `fit` with the same full dataset and the same arguments: the
replicated arrays are built from each process's own copy (`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.errors import JaxnnError

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D Mesh named "data" over `devices` (default: `jax.devices()`, every process's devices).

  Args:
    devices: the devices to split batches over.

  Returns:
    The Mesh.
  """
  devices = jax.devices() if devices is None else list(devices)
  if not devices:
    raise JaxnnError("data_mesh: expected at least one device, got none")
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def resolve_mesh(data_parallel: Any) -> Mesh | None:
  """`fit`'s `data_parallel` option as a Mesh: False/None -> None, True -> `data_mesh()`, a Mesh as is."""
  if data_parallel is None or data_parallel is False:
    return None
  if data_parallel is True:
    return data_mesh()
  if isinstance(data_parallel, Mesh):
    if DATA_AXIS not in data_parallel.axis_names:
      raise JaxnnError(f"data_parallel: the Mesh must have an axis named {DATA_AXIS!r}, "
                       f"got axes {data_parallel.axis_names}")
    return data_parallel
  raise JaxnnError(f"data_parallel: expected True, False or a jax.sharding.Mesh, got {data_parallel!r}")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batch axis split over the mesh's "data" axis (replicated over any other axis)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device of the mesh."""
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "fit") -> None:
  """Raises JaxnnError unless `batch_size` splits evenly over the mesh's "data" axis."""
  devices = mesh.shape[DATA_AXIS]
  if batch_size % devices:
    raise JaxnnError(f"{what}: batch_size must be divisible by the {devices} devices of the data-parallel mesh, "
                     f"got {batch_size}")


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Every array of `tree` copied to every device of `mesh` (multi-host: from each process's own copy)."""
  sharding = replicated(mesh)

  def leaf(a: Any) -> Any:
    if isinstance(a, jax.Array) and a.sharding == sharding:
      return a  # already there (e.g. continuing a data-parallel run)
    if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(leaf(jax.random.key_data(a)), impl=jax.random.key_impl(a))
    a = np.asarray(a)
    return jax.make_array_from_process_local_data(sharding, a, a.shape)

  return jax.tree_util.tree_map(leaf, tree)
