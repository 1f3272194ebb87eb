"""Command-line plumbing shared by the experiments: one-line errors, no tracebacks, atomic result files."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from typing import Any, Callable, Sequence

from jaxnn.errors import JaxnnError


class ArgumentParser(argparse.ArgumentParser):
  """argparse with a one-line error (the usage is available with --help)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if value <= 0:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
  return value


def nonnegative_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
  if value < 0:
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
  return value


def int_at_least(low: int) -> Callable[[str], int]:
  """An argparse type: an integer >= low (a grid needs at least 3 points to have a middle)."""

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
      raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value

  parse.__name__ = f"int_at_least_{low}"
  return parse


def _finite_float(text: str, expected: str, ok: Callable[[float], bool]) -> float:
  """A finite float for which `ok` holds; nan and inf are refused (they parse as floats)."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
  if not math.isfinite(value) or not ok(value):
    raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
  return value


def positive_float(text: str) -> float:
  return _finite_float(text, "a finite number > 0", lambda v: v > 0)


def nonnegative_float(text: str) -> float:
  return _finite_float(text, "a finite number >= 0", lambda v: v >= 0)


def fraction(text: str) -> float:
  """A number in [0, 1): a dropout rate, a validation split."""
  return _finite_float(text, "a number in [0, 1)", lambda v: 0 <= v < 1)


def output_folder(text: str) -> str:
  """A folder that exists or can be made: checked when the flags are read, before any work.

  Nothing is created here (a failed run leaves nothing behind); only an existing non-folder in the way or a
  nearest existing parent that is not a writable folder is refused.
  """
  if not text:
    raise argparse.ArgumentTypeError("expected a folder path, got ''")
  path = os.path.abspath(text)
  if os.path.exists(path) and not os.path.isdir(path):
    raise argparse.ArgumentTypeError(f"expected a folder, found a file at {text!r}")
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise argparse.ArgumentTypeError(f"expected a folder path, but {parent!r} is a file")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise argparse.ArgumentTypeError(f"expected a writable folder, but {parent!r} is not writable")
  return text


def run(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None, *, prog: str = "") -> None:
  """Runs an experiment's `main`; a JaxnnError becomes one line on stderr and exit status 2, an OSError
  (disk full, permission denied) one line and exit status 1."""
  try:
    main(argv)
  except JaxnnError as e:
    message = " ".join(str(e).split())
    sys.stderr.write(f"{prog + ': ' if prog else ''}error: {message}\n")
    sys.exit(2)
  except OSError as e:  # a disk or permission failure while writing results: one line, not a traceback
    sys.stderr.write(f"{prog + ': ' if prog else ''}error: {e}\n")
    sys.exit(1)
  except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    sys.exit(130)


def write_json(path: str, obj: Any) -> str:
  """Writes JSON atomically: a temporary file in the same folder, then a rename."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; results are ordinary files
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(_finite(obj), f, indent=2, sort_keys=False, allow_nan=False)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def _finite(obj: Any) -> Any:
  """NaN and infinities become null: strict JSON has no spelling for them."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  return obj


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
  """A plain aligned text table."""
  cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)
