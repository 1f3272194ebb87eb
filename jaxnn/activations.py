"""Activation functions by Keras name, on top of `jax.nn`.

Plain activations are functions (`relu`, `tanh`, ...); those with arguments are
small frozen dataclasses (`Softmax(axis=-1)`, `LeakyReLU(negative_slope=0.2)`)
so that layers can keep them as hashable, comparable static config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn.errors import JaxnnError

Activation = Callable[[jax.Array], jax.Array]


def linear(x: jax.Array) -> jax.Array:
  """Identity: Keras' default activation (`activation=None`)."""
  return x


def step(x: jax.Array) -> jax.Array:
  """Heaviside step for the perceptron: 1.0 where x >= 0, else 0.0.

  At x == 0 the output is 1.0 (the perceptron fires on the boundary, matching
  `sign(0) = +1` conventions). The gradient is 0 everywhere, so `step` is for
  perceptron-rule updates, not for gradient descent.

  Args:
    x: input array.

  Returns:
    An array of 0.0 and 1.0, with the dtype of `x` if it is floating, else float32.
  """
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  return jnp.where(x >= 0, 1.0, 0.0).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Softmax:
  """Softmax over `axis` (Keras default -1)."""

  axis: int = -1

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.softmax(x, axis=self.axis)


@dataclasses.dataclass(frozen=True)
class LogSoftmax:
  """Log-softmax over `axis` (Keras default -1)."""

  axis: int = -1

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(x, axis=self.axis)


@dataclasses.dataclass(frozen=True)
class LeakyReLU:
  """x where x >= 0, else negative_slope * x (Keras 3 default slope 0.2)."""

  negative_slope: float = 0.2

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x, negative_slope=self.negative_slope)


@dataclasses.dataclass(frozen=True)
class ELU:
  """x where x > 0, else alpha * (exp(x) - 1) (Keras default alpha 1.0)."""

  alpha: float = 1.0

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.elu(x, alpha=self.alpha)


@dataclasses.dataclass(frozen=True)
class GELU:
  """Gaussian error linear unit; exact erf form by default as in Keras 3."""

  approximate: bool = False

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=self.approximate)


# Module-level names so that `activations.relu` reads like Keras.
sigmoid = jax.nn.sigmoid
tanh = jnp.tanh
relu = jax.nn.relu
relu6 = jax.nn.relu6
selu = jax.nn.selu
silu = jax.nn.silu
swish = silu
softplus = jax.nn.softplus
softsign = jax.nn.soft_sign
hard_sigmoid = jax.nn.hard_sigmoid  # relu6(x + 3) / 6, the Keras 3 definition.
hard_silu = jax.nn.hard_silu
hard_swish = hard_silu
exponential = jnp.exp
mish = jax.nn.mish
log_sigmoid = jax.nn.log_sigmoid

# Parameterized activations map to their class; get() instantiates it.
_REGISTRY: dict[str, Any] = {
    "elu": ELU,
    "exponential": exponential,
    "gelu": GELU,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu,
    "leaky_relu": LeakyReLU,
    "linear": linear,
    "log_sigmoid": log_sigmoid,
    "log_softmax": LogSoftmax,
    "mish": mish,
    "relu": relu,
    "relu6": relu6,
    "selu": selu,
    "sigmoid": sigmoid,
    "silu": silu,
    "softmax": Softmax,
    "softplus": softplus,
    "softsign": softsign,
    "step": step,
    "tanh": tanh,
}
# Aliases: Keras' alternative names and its activation-layer class names.
_ALIASES = {
    "swish": "silu",
    "hard_swish": "hard_silu",
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "Softmax": "softmax",
}
_CLASS_NAMES = {cls: name for name, cls in _REGISTRY.items() if isinstance(cls, type)}
_FUNCTION_NAMES = {id(fn): name for name, fn in _REGISTRY.items() if not isinstance(fn, type)}


def names() -> list[str]:
  """Sorted canonical activation names accepted by `get`."""
  return sorted(_REGISTRY)


def _from_name(name: str, kwargs: Mapping[str, Any]) -> Activation:
  """Builds the activation registered under `name` (or an alias) with `kwargs`."""
  canonical = _ALIASES.get(name, name)
  if canonical not in _REGISTRY:
    raise JaxnnError(f"activation: expected one of {names()}; got {name!r}")
  entry = _REGISTRY[canonical]
  if isinstance(entry, type):
    valid = sorted(f.name for f in dataclasses.fields(entry))
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
      raise JaxnnError(f"activation {canonical!r}: expected arguments among {valid}; got {unknown}")
    return entry(**kwargs)
  if kwargs:
    raise JaxnnError(f"activation {canonical!r}: expected no arguments; got {sorted(kwargs)}")
  return entry


def get(identifier: str | Mapping[str, Any] | Activation | None) -> Activation:
  """Resolves an activation.

  Args:
    identifier: a Keras name ("relu", "softmax", "LeakyReLU"), a dict as
      written by `serialize` ({"name": "leaky_relu", "negative_slope": 0.1}),
      a callable (returned as is), or None (linear).

  Returns:
    A hashable callable `x -> activation(x)`.

  Raises:
    JaxnnError: unknown name, unknown argument, or unsupported type.
  """
  if identifier is None:
    return linear
  if isinstance(identifier, str):
    return _from_name(identifier, {})
  if isinstance(identifier, Mapping):
    config = dict(identifier)
    name = config.pop("name", None)
    if not isinstance(name, str):
      raise JaxnnError(f"activation: expected a dict with a 'name' string; got {identifier!r}")
    return _from_name(name, config)
  if callable(identifier):
    return identifier
  raise JaxnnError(
      f"activation: expected a name, a dict, a callable or None; got {type(identifier).__name__} {identifier!r}"
  )


def serialize(activation: Activation) -> str | dict[str, Any]:
  """Readable name for summaries and results.json; `get(serialize(a)) == a` for built-ins.

  Args:
    activation: an activation from `get`, or any callable.

  Returns:
    The name ("relu"), a dict with the arguments of a parameterized activation
    ({"name": "softmax", "axis": -1}), or a foreign callable's `__name__`.
  """
  if type(activation) in _CLASS_NAMES:
    config = dataclasses.asdict(activation)
    return {"name": _CLASS_NAMES[type(activation)], **config}
  if id(activation) in _FUNCTION_NAMES:
    return _FUNCTION_NAMES[id(activation)]
  return getattr(activation, "__name__", repr(activation))
