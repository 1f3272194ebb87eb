"""JAX's persistent compilation cache, switched on with the settings small programs need.

XLA compiles each of jaxnn's programs (a whole training epoch, a validation pass) once per process; the
persistent cache writes the compiled executable to disk, so a second process with the same program (same
model, shapes, optimizer config, jax version and flags) loads it instead of compiling. JAX's defaults only
cache programs that took over a second to compile; jaxnn caches every program.

The cache is trusted code: do not point it at a folder other people can write to.
"""

from __future__ import annotations

import os

import jax
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from jaxnn.errors import JaxnnError

ENV_VAR = "JAXNN_COMPILATION_CACHE"
_OFF = ("", "0", "off", "none", "false", "no")


def default_cache_dir() -> str:
  """$XDG_CACHE_HOME/jaxnn/jax (default ~/.cache/jaxnn/jax): where `enable_compilation_cache()` writes."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxnn", "jax")


def is_off(value: str | None) -> bool:
  """Whether a cache setting (a flag or $JAXNN_COMPILATION_CACHE) means 'no persistent cache'."""
  return value is not None and value.strip().lower() in _OFF


def enable_compilation_cache(path: str | os.PathLike | None = None, *, min_compile_seconds: float = 0.0) -> str:
  """Turns on JAX's persistent compilation cache in `path` for the rest of the process.

  Works before or after the first compilation (JAX decides once per process whether it uses the cache;
  this resets that decision).

  Args:
    path: the cache folder, created if missing; default $JAXNN_COMPILATION_CACHE, else
      `default_cache_dir()`.
    min_compile_seconds: programs that compiled faster than this are not written (JAX's default is 1 s,
      which would skip most of jaxnn's programs on a CPU).

  Returns:
    The absolute cache folder.
  """
  if path is None:
    env = os.environ.get(ENV_VAR)
    path = env if env and not is_off(env) else default_cache_dir()
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if min_compile_seconds < 0:
    raise JaxnnError(f"enable_compilation_cache: min_compile_seconds must be >= 0, got {min_compile_seconds}")
  if os.path.exists(path) and not os.path.isdir(path):
    raise JaxnnError(f"compilation cache {path}: expected a folder, found a file")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise JaxnnError(f"compilation cache {path}: cannot create the folder ({e.strerror})") from None
  if not os.access(path, os.W_OK):
    raise JaxnnError(f"compilation cache {path}: the folder is not writable")
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # no size floor: small programs too
  jax_cache.reset_cache()  # JAX checks once per process whether the cache is on; ask again
  return path


def disable_compilation_cache() -> None:
  """Turns the persistent compilation cache off for the rest of the process (programs compile afresh)."""
  jax.config.update("jax_enable_compilation_cache", False)  # else JAX still looks (in no folder) for each program
  jax.config.update("jax_compilation_cache_dir", None)
  jax_cache.reset_cache()


def compilation_cache_dir() -> str | None:
  """The persistent cache folder in use, or None when it is off."""
  return jax.config.jax_compilation_cache_dir
