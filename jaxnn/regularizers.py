"""Weight penalties by Keras name: pure functions `penalty(w) -> scalar` to add to a loss.

Keras' formulas, with no 1/2 factor: L1 is `l1 * sum(|w|)`, L2 is `l2 * sum(w**2)`.
The penalties are frozen dataclasses so that layers can keep them as static config.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import _registry
from jaxnn.errors import JaxnnError

Regularizer = Callable[[jax.Array], jax.Array]


def _check_strength(owner: str, name: str, value: Any) -> float:
  """Returns `value` as a float after checking it is a finite, non-negative number."""
  if (
      not isinstance(value, numbers.Real)
      or isinstance(value, bool)
      or not math.isfinite(value)
      or value < 0
  ):
    raise JaxnnError(f"{owner} {name}: expected a finite number >= 0; got {value!r}")
  return float(value)


@dataclasses.dataclass(frozen=True)
class L1:
  """`l1 * sum(|w|)` (Keras default l1 = 0.01)."""

  l1: float = 0.01

  def __post_init__(self):
    # Plain floats keep serialize() JSON-ready and equality independent of int/float/numpy input.
    object.__setattr__(self, "l1", _check_strength("L1", "l1", self.l1))

  def __call__(self, w: jax.Array) -> jax.Array:
    return self.l1 * jnp.sum(jnp.abs(w))


@dataclasses.dataclass(frozen=True)
class L2:
  """`l2 * sum(w**2)` (Keras default l2 = 0.01; no 1/2 factor)."""

  l2: float = 0.01

  def __post_init__(self):
    object.__setattr__(self, "l2", _check_strength("L2", "l2", self.l2))

  def __call__(self, w: jax.Array) -> jax.Array:
    return self.l2 * jnp.sum(jnp.square(w))


@dataclasses.dataclass(frozen=True)
class L1L2:
  """`l1 * sum(|w|) + l2 * sum(w**2)` (Keras defaults l1 = l2 = 0.0)."""

  l1: float = 0.0
  l2: float = 0.0

  def __post_init__(self):
    object.__setattr__(self, "l1", _check_strength("L1L2", "l1", self.l1))
    object.__setattr__(self, "l2", _check_strength("L1L2", "l2", self.l2))

  def __call__(self, w: jax.Array) -> jax.Array:
    return self.l1 * jnp.sum(jnp.abs(w)) + self.l2 * jnp.sum(jnp.square(w))


_REGISTRY: dict[str, type] = {"l1": L1, "l1_l2": L1L2, "l2": L2}
_NAMES = {cls: name for name, cls in _REGISTRY.items()}
# Keras class names, and "l1l2" as Keras' snake_case of L1L2.
_ALIASES = {"L1": "l1", "L2": "l2", "L1L2": "l1_l2", "l1l2": "l1_l2"}


def names() -> list[str]:
  """Sorted canonical regularizer names accepted by `get`."""
  return sorted(_REGISTRY)


def get(identifier: str | Mapping[str, Any] | Regularizer | None) -> Regularizer | None:
  """Resolves a regularizer.

  Args:
    identifier: a Keras name ("l2", "L1L2") built with Keras' defaults, a dict
      as written by `serialize` ({"name": "l2", "l2": 0.001}), a callable
      `w -> scalar` (returned as is), or None (no penalty; returns None).

  Returns:
    A hashable penalty `w -> scalar`, or None.

  Raises:
    JaxnnError: unknown name, bad or unknown argument, or unsupported type.
  """
  return _registry.resolve("regularizer", identifier, _REGISTRY, _ALIASES)


def serialize(regularizer: Regularizer | None) -> str | dict[str, Any] | None:
  """Readable form for summaries and results.json; `get(serialize(r)) == r` for built-ins.

  Args:
    regularizer: a regularizer from `get`, any callable, or None.

  Returns:
    A dict with the name and arguments ({"name": "l2", "l2": 0.01}), a foreign
    callable's `__name__`, or None.
  """
  return _registry.serialize(regularizer, _NAMES)
