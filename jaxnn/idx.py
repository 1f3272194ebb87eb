"""The IDX file format (MNIST's): parse bytes, read files (raw or .gz), find and check an MNIST-style folder.

Every length is checked before it is used, so malformed bytes raise `DataError` naming the file, what was
expected and what was found, never an IndexError, a struct error or a partial array.
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zlib

import numpy as np

from jaxnn.errors import DataError

# IDX type code -> (big-endian numpy dtype, name used in messages).
_IDX_TYPES = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "int16"),
    0x0C: (np.dtype(">i4"), "int32"),
    0x0D: (np.dtype(">f4"), "float32"),
    0x0E: (np.dtype(">f8"), "float64"),
}


def _idx_code(dtype: np.dtype) -> int:
  """Returns the IDX type code of a numpy dtype (-1 if IDX has none)."""
  for code, (idx_dtype, _) in _IDX_TYPES.items():
    if idx_dtype.kind == dtype.kind and idx_dtype.itemsize == dtype.itemsize:
      return code
  return -1


def _idx_magic_text(code: int, ndim: int) -> str:
  """Returns e.g. '0x00000803 (unsigned byte, 3 dims)'."""
  kind = _IDX_TYPES[code][1] if code in _IDX_TYPES else "no IDX type"
  code_hex = f"{code:02X}" if 0 <= code <= 0xFF else "??"
  return f"0x0000{code_hex}{ndim:02X} ({kind}, {ndim} dim{'s' if ndim != 1 else ''})"


def parse(data: bytes, where: str) -> np.ndarray:
  """Returns the array held in IDX bytes; every length is checked before it is used."""
  if not data:
    raise DataError(f"{where}: expected an IDX file (4-byte magic, sizes, payload), found an empty file")
  if len(data) < 4:
    raise DataError(f"{where}: expected a 4-byte IDX magic, found only {len(data)} bytes")
  code, ndim = data[2], data[3]
  if data[0] or data[1] or code not in _IDX_TYPES or ndim == 0:
    found = int.from_bytes(data[:4], "big")
    hint = " (the file looks gzip-compressed; name it *.gz)" if data[:2] == b"\x1f\x8b" else ""
    raise DataError(f"{where}: expected IDX magic 0x0000TTNN (two zero bytes, a type code in "
                    f"{{08,09,0B,0C,0D,0E}}, at least 1 dim), found 0x{found:08X}{hint}")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise DataError(f"{where}: IDX magic {_idx_magic_text(code, ndim)} needs a {header}-byte header, "
                    f"found only {len(data)} bytes")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  dtype = _IDX_TYPES[code][0]
  expected = math.prod(shape) * dtype.itemsize
  found = len(data) - header
  dims = "x".join(map(str, shape))
  if found < expected:
    raise DataError(f"{where}: payload too short: header says {dims} {_IDX_TYPES[code][1]} = "
                    f"{expected:,} bytes, found {found:,} bytes")
  if found > expected:
    raise DataError(f"{where}: trailing bytes: header says {dims} {_IDX_TYPES[code][1]} = "
                    f"{expected:,} payload bytes, found {found:,} ({found - expected:,} extra)")
  try:
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
  except ValueError as e:
    # Past numpy's own limits: more than 64 dims (32 before numpy 2), or an empty array whose other dims
    # multiply past the largest array size (numpy refuses those even though they hold no element).
    raise DataError(f"{where}: IDX header says {ndim} dims {dims} {_IDX_TYPES[code][1]}, which a numpy array "
                    f"cannot hold ({' '.join(str(e).split())})") from None
  # Copy into native byte order: a writable array that does not keep the file's bytes alive.
  return array.astype(dtype.newbyteorder("="))


def decompress(data: bytes, where: str) -> bytes:
  """Returns the bytes held in a gzip stream (one or more members); a damaged stream raises DataError."""
  try:
    return gzip.decompress(data)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{where}: expected a complete gzip stream, found a truncated or corrupt one ({e})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads one IDX file (the MNIST file format), gzip-compressed if its name ends in .gz.

  Args:
    path: the file; any shape and any of the IDX element types.

  Returns:
    The array in native byte order (uint8 for MNIST-style files).

  Raises:
    DataError: naming the file, for a missing, empty, truncated or malformed file.
  """
  path = pathlib.Path(path)
  try:
    data = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: expected a readable IDX file, found {e.strerror or e}") from None
  if path.name.endswith(".gz"):
    data = decompress(data, str(path))
  return parse(data, str(path))


_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def find_files(directory: pathlib.Path) -> dict[str, pathlib.Path]:
  """Returns the four standard IDX files, raw or .gz (raw preferred when both exist)."""
  found, missing = {}, []
  for key, stem in _IDX_STEMS.items():
    for candidate in (directory / stem, directory / f"{stem}.gz"):
      if candidate.is_file():
        found[key] = candidate
        break
    else:
      missing.append(f"{stem} or {stem}.gz")
  if missing:
    raise DataError(f"{directory}: expected the 4 MNIST-style IDX files (each raw or .gz), "
                    f"found no {'; no '.join(missing)}")
  return found


def check_images(x: np.ndarray, path: pathlib.Path) -> np.ndarray:
  """Returns uint8 images as (N, H, W) or (N, H, W, C), squeezing a trailing channel of 1."""
  if x.dtype != np.uint8 or x.ndim not in (3, 4):
    raise DataError(f"{path}: expected IDX magic {_idx_magic_text(0x08, 3)} or {_idx_magic_text(0x08, 4)}, "
                    f"found {_idx_magic_text(_idx_code(x.dtype), x.ndim)}")
  return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x


def check_labels(y: np.ndarray, path: pathlib.Path, num_classes: int) -> np.ndarray:
  """Returns int32 labels after checking they are 1-D integers in [0, num_classes)."""
  if y.ndim != 1 or y.dtype.kind not in "iu":
    raise DataError(f"{path}: expected IDX magic {_idx_magic_text(0x08, 1)} for labels, "
                    f"found {_idx_magic_text(_idx_code(y.dtype), y.ndim)}")
  bad = np.flatnonzero((y < 0) | (y >= num_classes))
  if bad.size:
    raise DataError(f"{path}: expected labels in [0, {num_classes - 1}] (num_classes={num_classes}), "
                    f"found {int(y[bad[0]])} at index {int(bad[0])} ({bad.size:,} out of range)")
  return y.astype(np.int32)
