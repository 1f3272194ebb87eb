"""Weight constraints by Keras name: pure projections `w -> w` applied after each update.

Norms are taken over `axis` (Keras default 0: for a Dense kernel of shape
(in, out) that is one norm per output unit). As in Keras, the rescaling divides
by `norm + 1e-7`, so a column already inside the bounds is multiplied by
`norm / (norm + 1e-7)`: unchanged up to about 1e-7 relative.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import _checks
from jaxnn import _registry
from jaxnn.errors import JaxnnError

Constraint = Callable[[jax.Array], jax.Array]
Axis = int | tuple[int, ...]

# Keras' backend.epsilon(), added to the norm in the denominator.
_EPSILON = 1e-7


def _check_number(owner: str, name: str, value: Any, low: float = 0.0, high: float = math.inf) -> float:
  """Returns `value` as a float after checking it is a finite number in [low, high]."""
  if (
      not isinstance(value, numbers.Real)
      or isinstance(value, bool)
      or not math.isfinite(value)
      or not low <= value <= high
  ):
    bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
    raise JaxnnError(f"{owner} {name}: expected a finite number {bounds}; got {value!r}")
  return float(value)


def _check_axis(owner: str, axis: Any) -> Axis:
  """Returns `axis` as an int or a tuple of ints (hashable), or raises."""
  if isinstance(axis, Sequence) and not isinstance(axis, str):
    axis = tuple(axis)
    if axis and all(_checks.is_int(a) for a in axis):
      return tuple(int(a) for a in axis)
  elif _checks.is_int(axis):
    return int(axis)
  raise JaxnnError(f"{owner} axis: expected an int or a non-empty sequence of ints; got {axis!r}")


def _norms(w: jax.Array, axis: Axis) -> jax.Array:
  """L2 norms of `w` over `axis`, kept broadcastable against `w`."""
  return jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))


@dataclasses.dataclass(frozen=True)
class MaxNorm:
  """Rescales slices whose L2 norm over `axis` exceeds `max_value` (Keras defaults 2.0, axis 0)."""

  max_value: float = 2.0
  axis: Axis = 0

  def __post_init__(self):
    object.__setattr__(self, "max_value", _check_number("MaxNorm", "max_value", self.max_value))
    object.__setattr__(self, "axis", _check_axis("MaxNorm", self.axis))

  def __call__(self, w: jax.Array) -> jax.Array:
    norms = _norms(w, self.axis)
    desired = jnp.clip(norms, 0.0, self.max_value)
    return w * (desired / (_EPSILON + norms))


@dataclasses.dataclass(frozen=True)
class NonNeg:
  """Zeroes negative entries."""

  def __call__(self, w: jax.Array) -> jax.Array:
    return w * (w >= 0).astype(w.dtype)


@dataclasses.dataclass(frozen=True)
class UnitNorm:
  """Scales slices to unit L2 norm over `axis` (Keras default 0)."""

  axis: Axis = 0

  def __post_init__(self):
    object.__setattr__(self, "axis", _check_axis("UnitNorm", self.axis))

  def __call__(self, w: jax.Array) -> jax.Array:
    return w / (_EPSILON + _norms(w, self.axis))


@dataclasses.dataclass(frozen=True)
class MinMaxNorm:
  """Moves slice norms over `axis` toward [min_value, max_value] by a fraction `rate`.

  The new norm is `rate * clip(norm, min_value, max_value) + (1 - rate) * norm`
  (Keras defaults 0.0, 1.0, rate 1.0, axis 0); rate 1.0 is a strict projection.
  """

  min_value: float = 0.0
  max_value: float = 1.0
  rate: float = 1.0
  axis: Axis = 0

  def __post_init__(self):
    min_value = _check_number("MinMaxNorm", "min_value", self.min_value)
    max_value = _check_number("MinMaxNorm", "max_value", self.max_value, low=min_value)
    object.__setattr__(self, "min_value", min_value)
    object.__setattr__(self, "max_value", max_value)
    object.__setattr__(self, "rate", _check_number("MinMaxNorm", "rate", self.rate, high=1.0))
    object.__setattr__(self, "axis", _check_axis("MinMaxNorm", self.axis))

  def __call__(self, w: jax.Array) -> jax.Array:
    norms = _norms(w, self.axis)
    desired = self.rate * jnp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
    return w * (desired / (_EPSILON + norms))


_REGISTRY: dict[str, type] = {
    "max_norm": MaxNorm,
    "min_max_norm": MinMaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
}
_NAMES = {cls: name for name, cls in _REGISTRY.items()}
# Keras class names ("MaxNorm") resolve too.
_ALIASES = {cls.__name__: name for name, cls in _REGISTRY.items()}


def keeps_nonfinite(constraint: Constraint | None) -> bool:
  """True when `constraint` (as `get` returns it) is known to map weights with a NaN or infinite entry to
  weights with one: None and the four built-ins (each multiplies or divides by a norm or a mask of the
  weights themselves, and inf * 0 and inf / inf are NaN). A foreign callable may not (`jnp.nan_to_num`).

  `fit`'s detecting epoch relies on it: a step with a non-finite gradient marks the params it touches as
  NaN, and the mark must survive the later steps' updates and projections (`numerics.mark_nonfinite`).
  """
  return constraint is None or type(constraint) in _NAMES


def names() -> list[str]:
  """Sorted canonical constraint names accepted by `get`."""
  return sorted(_REGISTRY)


def get(identifier: str | Mapping[str, Any] | Constraint | None) -> Constraint | None:
  """Resolves a constraint.

  Args:
    identifier: a Keras name ("max_norm", "NonNeg") built with Keras' defaults,
      a dict as written by `serialize` ({"name": "max_norm", "max_value": 3.0}),
      a callable `w -> w` (returned as is), or None (no constraint; returns None).

  Returns:
    A hashable projection `w -> w`, or None.

  Raises:
    JaxnnError: unknown name, bad or unknown argument, or unsupported type.
  """
  return _registry.resolve("constraint", identifier, _REGISTRY, _ALIASES)


def serialize(constraint: Constraint | None) -> str | dict[str, Any] | None:
  """Readable form for summaries and results.json; `get(serialize(c)) == c` for built-ins.

  Args:
    constraint: a constraint from `get`, any callable, or None.

  Returns:
    The bare name for argument-free constraints ("non_neg"), a dict with the
    arguments otherwise ({"name": "max_norm", "max_value": 2.0, "axis": 0}), a
    foreign callable's `__name__`, or None.
  """
  return _registry.serialize(constraint, _NAMES)
