"""Initializers by Keras name with Keras default arguments, on top of `jax.nn.initializers`.

Each initializer is a small frozen dataclass (hashable static config) called
jax-style: `init(key, shape, dtype=jnp.float32) -> Array`. Keras' `seed`
argument has no counterpart: randomness comes from the key.

Fans follow Keras: for a kernel of shape (..., fan_in_dim, fan_out_dim) the
leading dims form the receptive field, fan_in = shape[-2] * receptive_field and
fan_out = shape[-1] * receptive_field; a 1-D shape (n,) has fan_in = fan_out = n
and a scalar has fan_in = fan_out = 1.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import _registry
from jaxnn.errors import JaxnnError

Initializer = Callable[..., jax.Array]

_MODES = ("fan_avg", "fan_geo_avg", "fan_in", "fan_out")
# Keras spells the plain normal "untruncated_normal"; jax calls it "normal".
_DISTRIBUTIONS = {
    "truncated_normal": "truncated_normal",
    "untruncated_normal": "normal",
    "normal": "normal",
    "uniform": "uniform",
}


@dataclasses.dataclass(frozen=True)
class VarianceScaling:
  """Draws with variance `scale / n`, n the fan chosen by `mode` (Keras defaults).

  The truncated normal is cut at two standard deviations and rescaled so that
  the draw itself has variance `scale / n`, as in Keras and jax.
  """

  scale: float = 1.0
  mode: str = "fan_in"
  distribution: str = "truncated_normal"

  def __post_init__(self):
    if not isinstance(self.scale, numbers.Real) or isinstance(self.scale, bool) or self.scale <= 0:
      raise JaxnnError(f"VarianceScaling scale: expected a positive number; got {self.scale!r}")
    if self.mode not in _MODES:
      raise JaxnnError(f"VarianceScaling mode: expected one of {list(_MODES)}; got {self.mode!r}")
    if self.distribution not in _DISTRIBUTIONS:
      raise JaxnnError(
          f"VarianceScaling distribution: expected one of {sorted(_DISTRIBUTIONS)}; "
          f"got {self.distribution!r}"
      )

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    shape = tuple(shape)
    distribution = _DISTRIBUTIONS[self.distribution]
    if len(shape) >= 2:
      init = jax.nn.initializers.variance_scaling(self.scale, self.mode, distribution)
    else:
      # jax's default axes (-2, -1) need rank >= 2. Below that every Keras fan is the size
      # (1 for a scalar), which is jax's fan_in with the only axis (or none) as input axis.
      in_axis = 0 if shape else ()
      init = jax.nn.initializers.variance_scaling(
          self.scale, "fan_in", distribution, in_axis=in_axis, out_axis=()
      )
    return init(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class GlorotUniform(VarianceScaling):
  """VarianceScaling(1.0, "fan_avg", "uniform"). Keras' default kernel initializer."""

  scale: float = dataclasses.field(default=1.0, init=False)
  mode: str = dataclasses.field(default="fan_avg", init=False)
  distribution: str = dataclasses.field(default="uniform", init=False)


@dataclasses.dataclass(frozen=True)
class GlorotNormal(VarianceScaling):
  """VarianceScaling(1.0, "fan_avg", "truncated_normal")."""

  scale: float = dataclasses.field(default=1.0, init=False)
  mode: str = dataclasses.field(default="fan_avg", init=False)
  distribution: str = dataclasses.field(default="truncated_normal", init=False)


@dataclasses.dataclass(frozen=True)
class HeNormal(VarianceScaling):
  """VarianceScaling(2.0, "fan_in", "truncated_normal")."""

  scale: float = dataclasses.field(default=2.0, init=False)
  mode: str = dataclasses.field(default="fan_in", init=False)
  distribution: str = dataclasses.field(default="truncated_normal", init=False)


@dataclasses.dataclass(frozen=True)
class HeUniform(VarianceScaling):
  """VarianceScaling(2.0, "fan_in", "uniform")."""

  scale: float = dataclasses.field(default=2.0, init=False)
  mode: str = dataclasses.field(default="fan_in", init=False)
  distribution: str = dataclasses.field(default="uniform", init=False)


@dataclasses.dataclass(frozen=True)
class LecunNormal(VarianceScaling):
  """VarianceScaling(1.0, "fan_in", "truncated_normal")."""

  scale: float = dataclasses.field(default=1.0, init=False)
  mode: str = dataclasses.field(default="fan_in", init=False)
  distribution: str = dataclasses.field(default="truncated_normal", init=False)


@dataclasses.dataclass(frozen=True)
class LecunUniform(VarianceScaling):
  """VarianceScaling(1.0, "fan_in", "uniform")."""

  scale: float = dataclasses.field(default=1.0, init=False)
  mode: str = dataclasses.field(default="fan_in", init=False)
  distribution: str = dataclasses.field(default="uniform", init=False)


@dataclasses.dataclass(frozen=True)
class RandomNormal:
  """Normal draws with `mean` and `stddev` (Keras defaults 0.0, 0.05)."""

  mean: float = 0.0
  stddev: float = 0.05

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jax.nn.initializers.normal(self.stddev)(key, shape, dtype) + jnp.asarray(self.mean, dtype)


@dataclasses.dataclass(frozen=True)
class RandomUniform:
  """Uniform draws in [minval, maxval) (Keras defaults -0.05, 0.05)."""

  minval: float = -0.05
  maxval: float = 0.05

  def __post_init__(self):
    if not self.minval < self.maxval:
      raise JaxnnError(
          f"RandomUniform: expected minval < maxval; got minval={self.minval!r}, maxval={self.maxval!r}"
      )

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, minval=self.minval, maxval=self.maxval)


@dataclasses.dataclass(frozen=True)
class TruncatedNormal:
  """Normal(mean, stddev) redrawn beyond two stddevs (Keras defaults 0.0, 0.05).

  As in Keras, `stddev` is that of the normal *before* truncation; the draw's
  own standard deviation is about 0.88 * stddev.
  """

  mean: float = 0.0
  stddev: float = 0.05

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    draw = jax.nn.initializers.truncated_normal(self.stddev)(key, shape, dtype)
    return draw + jnp.asarray(self.mean, dtype)


@dataclasses.dataclass(frozen=True)
class Orthogonal:
  """A random orthogonal matrix (over the last axis vs. the rest) times `gain`."""

  gain: float = 1.0

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    shape = tuple(shape)
    if len(shape) < 2:
      raise JaxnnError(f"Orthogonal shape: expected at least 2 dimensions; got {shape}")
    return jax.nn.initializers.orthogonal(scale=self.gain)(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class Identity:
  """`gain` times the (possibly rectangular) identity matrix; 2-D shapes only, as in Keras."""

  gain: float = 1.0

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    del key  # Deterministic.
    shape = tuple(shape)
    if len(shape) != 2:
      raise JaxnnError(f"Identity shape: expected 2 dimensions; got {shape}")
    return self.gain * jnp.eye(*shape, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class Constant:
  """Every entry equal to `value` (Keras default 0.0)."""

  value: float = 0.0

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jax.nn.initializers.constant(self.value, dtype)(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class Zeros:
  """All zeros."""

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jax.nn.initializers.zeros(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class Ones:
  """All ones."""

  def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jax.nn.initializers.ones(key, shape, dtype)


_REGISTRY: dict[str, type] = {
    "constant": Constant,
    "glorot_normal": GlorotNormal,
    "glorot_uniform": GlorotUniform,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "identity": Identity,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
    "ones": Ones,
    "orthogonal": Orthogonal,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "zeros": Zeros,
}
_NAMES = {cls: name for name, cls in _REGISTRY.items()}
# Keras class names ("GlorotUniform") resolve too.
_ALIASES = {cls.__name__: name for name, cls in _REGISTRY.items()}
# Keras' short aliases (Embedding's default embeddings_initializer is "uniform").
_ALIASES.update({"uniform": "random_uniform", "normal": "random_normal", "one": "ones", "zero": "zeros"})


def names() -> list[str]:
  """Sorted canonical initializer names accepted by `get`."""
  return sorted(_REGISTRY)


def get(identifier: str | Mapping[str, Any] | Initializer | None) -> Initializer | None:
  """Resolves an initializer.

  Args:
    identifier: a Keras name ("glorot_uniform", "HeNormal"), a dict as written
      by `serialize` ({"name": "random_normal", "stddev": 0.1}), a callable
      `init(key, shape, dtype)` (returned as is), or None (returned as None,
      as in Keras; layers pick their own default).

  Returns:
    A hashable initializer `init(key, shape, dtype=jnp.float32) -> Array`, or None.

  Raises:
    JaxnnError: unknown name, unknown argument, or unsupported type.
  """
  return _registry.resolve("initializer", identifier, _REGISTRY, _ALIASES)


def serialize(initializer: Initializer) -> str | dict[str, Any]:
  """Readable name for summaries and results.json; `get(serialize(i)) == i` for built-ins.

  Args:
    initializer: an initializer from `get`, or any callable.

  Returns:
    The bare name for argument-free initializers ("glorot_uniform"), a dict
    with the arguments otherwise ({"name": "random_normal", "mean": 0.0,
    "stddev": 0.05}), or a foreign callable's `__name__`.
  """
  return _registry.serialize(initializer, _NAMES)
