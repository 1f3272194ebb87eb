"""Learning-rate schedules with Keras' names and semantics, built from optax: name -> `step -> lr`.

A `Schedule` is a hashable config (so an optimizer config holding one stays a static jit argument) that
is callable like an optax schedule. Accepted wherever jaxnn takes a learning rate.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import optax

from jaxnn import _checks
from jaxnn.errors import JaxnnError


def _constant(learning_rate: float) -> optax.Schedule:
  return optax.constant_schedule(learning_rate)


def _exponential_decay(
    initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False
) -> optax.Schedule:
  # Keras: initial * decay_rate ** (step / decay_steps), floored exponent if staircase.
  return optax.exponential_decay(initial_learning_rate, decay_steps, decay_rate, staircase=staircase)


def _cosine_decay(
    initial_learning_rate: float,
    decay_steps: int,
    alpha: float = 0.0,
    warmup_target: float | None = None,
    warmup_steps: int = 0,
) -> optax.Schedule:
  if warmup_target is None:
    if warmup_steps:
      # Keras silently ignores warmup_steps without a target; that is almost surely a mistake.
      raise JaxnnError(
          f"schedule 'cosine_decay' warmup_steps: needs warmup_target; got warmup_steps={warmup_steps}"
      )
    return optax.cosine_decay_schedule(initial_learning_rate, decay_steps, alpha=alpha)
  # Keras counts decay_steps after the warmup and ends at warmup_target * alpha; optax's
  # decay_steps is the whole length, warmup included.
  return optax.warmup_cosine_decay_schedule(
      initial_learning_rate,
      warmup_target,
      warmup_steps,
      warmup_steps + decay_steps,
      end_value=warmup_target * alpha,
  )


def _warmup_cosine_decay(
    peak_learning_rate: float,
    warmup_steps: int,
    decay_steps: int,
    initial_learning_rate: float = 0.0,
    end_learning_rate: float = 0.0,
) -> optax.Schedule:
  # Same convention as cosine_decay: decay_steps counts the steps after the warmup.
  return optax.warmup_cosine_decay_schedule(
      initial_learning_rate,
      peak_learning_rate,
      warmup_steps,
      warmup_steps + decay_steps,
      end_value=end_learning_rate,
  )


def _piecewise_constant(boundaries: tuple[int, ...], values: tuple[float, ...]) -> optax.Schedule:
  if len(values) != len(boundaries) + 1:
    raise JaxnnError(
        f"schedule 'piecewise_constant' values: expected len(boundaries) + 1 = {len(boundaries) + 1} "
        f"values; got {len(values)}"
    )
  if any(not _checks.is_int(b) for b in boundaries) or list(boundaries) != sorted(
      set(boundaries)
  ):
    raise JaxnnError(
        f"schedule 'piecewise_constant' boundaries: expected strictly increasing ints; got {list(boundaries)}"
    )
  # Keras keeps values[i] while step <= boundaries[i]; join_schedules switches once step >= its
  # boundary, hence b + 1. Joining constants (rather than optax.piecewise_constant_schedule's
  # multiplicative scales) keeps zero values and exact floats.
  return optax.join_schedules(
      [optax.constant_schedule(v) for v in values], [b + 1 for b in boundaries]
  )


def _polynomial_decay(
    initial_learning_rate: float,
    decay_steps: int,
    end_learning_rate: float = 0.0001,
    power: float = 1.0,
    cycle: bool = False,
) -> optax.Schedule:
  if cycle:
    raise JaxnnError("schedule 'polynomial_decay' cycle: optax has no cycling polynomial schedule; got True")
  return optax.polynomial_schedule(initial_learning_rate, end_learning_rate, power, decay_steps)


def _linear_decay(
    initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0
) -> optax.Schedule:
  return optax.linear_schedule(initial_learning_rate, end_learning_rate, decay_steps)


_SCHEDULES: dict[str, Callable[..., optax.Schedule]] = {
    "constant": _constant,
    "cosine_decay": _cosine_decay,
    "exponential_decay": _exponential_decay,
    "linear_decay": _linear_decay,
    "piecewise_constant": _piecewise_constant,
    "polynomial_decay": _polynomial_decay,
    "warmup_cosine_decay": _warmup_cosine_decay,
}
# Arguments that are learning rates (piecewise_constant's values are a list of them).
_RATE_ARGS = frozenset({"learning_rate", "initial_learning_rate", "peak_learning_rate", "end_learning_rate",
                        "warmup_target", "values"})
# Keras class names.
_SCHEDULE_ALIASES = {
    "CosineDecay": "cosine_decay",
    "ExponentialDecay": "exponential_decay",
    "PiecewiseConstantDecay": "piecewise_constant",
    "PolynomialDecay": "polynomial_decay",
}


def schedule_names() -> list[str]:
  """Sorted schedule names accepted by `schedule`."""
  return sorted(_SCHEDULES)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A named learning-rate schedule: hashable config, callable as `step -> learning rate`.

  Build with `schedule(name, **kwargs)`, which checks the arguments.
  """

  name: str
  kwargs: tuple[tuple[str, Any], ...] = ()

  @functools.cached_property
  def _fn(self) -> optax.Schedule:
    return _SCHEDULES[self.name](**dict(self.kwargs))

  def __call__(self, step: jax.Array | int) -> jax.Array:
    return self._fn(step)


def schedule(name: str, **kwargs: Any) -> Schedule:
  """Builds a learning-rate schedule with Keras' argument names and semantics.

  Names and arguments (step counts from 0, the first update):
    constant(learning_rate)
    exponential_decay(initial_learning_rate, decay_steps, decay_rate, staircase=False):
      initial * decay_rate ** (step / decay_steps), exponent floored if staircase.
    cosine_decay(initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
      warmup_steps=0): Keras' CosineDecay; with a warmup_target, a linear warmup from
      initial_learning_rate to warmup_target, then decay_steps of cosine to warmup_target * alpha.
    warmup_cosine_decay(peak_learning_rate, warmup_steps, decay_steps, initial_learning_rate=0.0,
      end_learning_rate=0.0): the same shape, ending at end_learning_rate.
    piecewise_constant(boundaries, values): Keras' PiecewiseConstantDecay: values[0] while
      step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i], then values[-1].
    polynomial_decay(initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0)
    linear_decay(initial_learning_rate, decay_steps, end_learning_rate=0.0)

  Args:
    name: a schedule name above, or a Keras class name ("CosineDecay").
    **kwargs: the schedule's arguments.

  Returns:
    A hashable `Schedule`, accepted wherever a learning rate is.

  Raises:
    JaxnnError: unknown name, missing, unknown or bad argument.
  """
  canonical = _SCHEDULE_ALIASES.get(name, name)
  if canonical not in _SCHEDULES:
    raise JaxnnError(f"schedule: expected one of {schedule_names()}; got {name!r}")
  builder = _SCHEDULES[canonical]
  params = inspect.signature(builder).parameters
  unknown = sorted(set(kwargs) - set(params))
  if unknown:
    raise JaxnnError(f"schedule {canonical!r}: expected arguments among {sorted(params)}; got {unknown}")
  missing = [p for p in params if params[p].default is inspect.Parameter.empty and p not in kwargs]
  if missing:
    raise JaxnnError(f"schedule {canonical!r}: missing required arguments {missing}")
  for key, value in kwargs.items():
    low = 1 if key == "decay_steps" else 0
    if key.endswith("steps") and (not _checks.is_int(value) or value < low):
      raise JaxnnError(f"schedule {canonical!r} {key}: expected an int >= {low}; got {value!r}")
    # Learning rates: a negative one climbs the loss and a NaN one poisons every update, silently.
    rates = value if key == "values" and isinstance(value, (list, tuple)) else [value]
    # (Arrays, e.g. traced in a vmapped sweep, are left to optax.)
    bad = [v for v in rates if isinstance(v, bool) or isinstance(v, numbers.Real) and not (math.isfinite(v) and v >= 0)]
    if key in _RATE_ARGS and bad:
      raise JaxnnError(f"schedule {canonical!r} {key}: expected a finite learning rate >= 0; got {value!r}")
  # Lists (boundaries, values) become tuples so that the schedule stays hashable; numpy ints (steps, boundaries)
  # Python ints, so that the schedule's config stays JSON-clean.
  def plain(v):
    return int(v) if _checks.is_int(v) else v
  frozen = tuple(sorted((k, tuple(plain(e) for e in v) if isinstance(v, (list, tuple)) else plain(v))
                        for k, v in kwargs.items()))
  result = Schedule(canonical, frozen)
  try:
    result(0)  # Builds the optax schedule now, so bad arguments fail here and not in training.
  except JaxnnError:
    raise
  except (TypeError, ValueError) as e:
    raise JaxnnError(f"schedule {canonical!r}: bad arguments {dict(frozen)}: {e}") from e
  return result
