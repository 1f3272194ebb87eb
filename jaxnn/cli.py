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


def run(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None, *, prog: str = "") -> None:
  """Runs an experiment's `main`; a JaxnnError becomes one line on stderr and exit status 2."""
  try:
    main(argv)
  except JaxnnError as e:
    message = " ".join(str(e).split())
    sys.stderr.write(f"{prog + ': ' if prog else ''}error: {message}\n")
    sys.exit(2)
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
