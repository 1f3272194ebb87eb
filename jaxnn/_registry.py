"""Name registries shared by initializers, regularizers and constraints: resolve and serialize."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxnn.errors import JaxnnError


def resolve(kind: str, identifier: Any, registry: Mapping[str, type], aliases: Mapping[str, str]) -> Any:
  """None -> None; a callable -> itself; a name or {"name": ..., **arguments} -> the registered config.

  Args:
    kind: what is resolved, for error messages ("initializer", "constraint", ...).
    identifier: None, a callable, a registered name or alias, or a dict as written by `serialize`.
    registry: canonical name -> frozen dataclass.
    aliases: other accepted names (Keras class names, ...) -> canonical name.

  Raises:
    JaxnnError: unknown name (listing the valid ones), unknown argument, or unsupported type.
  """
  if identifier is None:
    return None
  if isinstance(identifier, str):
    name, kwargs = identifier, {}
  elif isinstance(identifier, Mapping):
    kwargs = dict(identifier)
    name = kwargs.pop("name", None)
    if not isinstance(name, str):
      raise JaxnnError(f"{kind}: expected a dict with a 'name' string; got {identifier!r}")
  elif callable(identifier):
    return identifier
  else:
    raise JaxnnError(f"{kind}: expected a name, a dict, a callable or None; "
                     f"got {type(identifier).__name__} {identifier!r}")
  canonical = aliases.get(name, name)
  if canonical not in registry:
    raise JaxnnError(f"{kind}: expected one of {sorted(registry)}; got {name!r}")
  cls = registry[canonical]
  valid = sorted(f.name for f in dataclasses.fields(cls) if f.init)
  unknown = sorted(set(kwargs) - set(valid))
  if unknown:
    raise JaxnnError(f"{kind} {canonical!r}: expected arguments among {valid}; got {unknown}")
  return cls(**kwargs)


def serialize(obj: Any, names: Mapping[type, str]) -> str | dict[str, Any] | None:
  """The bare name for an argument-free config, else {"name": ..., **arguments}; a foreign callable's name."""
  if obj is None:
    return None
  name = names.get(type(obj))
  if name is None:
    return getattr(obj, "__name__", repr(obj))
  # Tuples become lists so that the dict round-trips through JSON unchanged.
  config = {f.name: list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(obj) if f.init for v in [getattr(obj, f.name)]}
  return {"name": name, **config} if config else name
