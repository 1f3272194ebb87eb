"""Datasets as numpy arrays: TFDS, IDX directories and an embedded MNIST sample; scaling and splits.

Images come back as uint8, (N, H, W) for grayscale and (N, H, W, C) for color; labels as int32. Scaling
to [0, 1] and flattening are separate, explicit steps (`scale`, `flatten`).

`load` picks the source: an IDX directory when `data_dir` is given; otherwise TFDS data already
prepared, then a TFDS download if the download hosts answer within seconds, then (for "mnist" only) the
embedded sample. It says on stderr which source it used and why, and `Dataset.source` records it.
Set the environment variable `JAXNN_OFFLINE=1` to skip the network probe (and any download) entirely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import io
import math
import os
import pathlib
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxnn import _checks
from jaxnn import idx
from jaxnn.errors import DataError
from jaxnn.idx import read_idx  # noqa: F401  (part of this module's API)

__all__ = [
    "Dataset", "read_idx", "load_idx_dir", "load_embedded_sample", "load_tfds", "load",
    "scale", "flatten", "one_hot", "pad_sequences", "train_val_split", "subset",
]

# jaxnn/_data/mnist_sample.npz as written by scripts/build_mnist_sample.py (its docstring says how).
_SAMPLE_PATH = pathlib.Path(__file__).resolve().parent / "_data" / "mnist_sample.npz"
_SAMPLE_SHA256 = "4102a004f61b43ea95784c0fc15f5a6bfa3c0e01608e4f8140c4fa0e8ddfea73"
_SAMPLE_DESCRIPTION = "8,000 train / 2,000 test of the first 10,000 MNIST training digits"
_SAMPLE_ALIASES = ("sample", "mnist_sample")

_PROBE_TIMEOUT_S = 3.0
_OFFLINE_ENV = "JAXNN_OFFLINE"
# TFDS tries its GCS mirror before the original URLs, so that host must answer too.
_TFDS_MIRROR = ("storage.googleapis.com", 443)
# (module, what needs it): checked before importing tensorflow_datasets.
_TFDS_REQUIREMENTS = (("tensorflow", "TFDS prepares data through TensorFlow"),
                      ("PIL", "TFDS decodes images with Pillow"))


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Train and test arrays plus where they came from.

  Attributes:
    x_train: uint8 images, (N, H, W) or (N, H, W, C).
    y_train: int32 labels, (N,).
    x_test: uint8 images, (M, H, W) or (M, H, W, C).
    y_test: int32 labels, (M,).
    name: dataset name, e.g. "mnist".
    source: where the arrays came from, e.g. "tfds:prepared", "idx:/path", "embedded-sample".
    num_classes: number of label values; labels lie in [0, num_classes).
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  name: str
  source: str
  num_classes: int

  def __post_init__(self):
    for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
      if len(x) != len(y):
        raise DataError(f"Dataset {self.name!r}: expected as many {split} labels as images, "
                        f"found {len(x)} images and {len(y)} labels")

  @property
  def n_train(self) -> int:
    return len(self.x_train)

  @property
  def n_test(self) -> int:
    return len(self.x_test)

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.x_train.shape[1:])

  def describe(self) -> str:
    """Returns a one-line summary: name, source, sizes, image shape and dtype, classes."""
    shape = "x".join(str(d) for d in self.image_shape)
    return (f"{self.name} ({self.source}): {self.n_train:,} train / {self.n_test:,} test, "
            f"{shape} {self.x_train.dtype}, {self.num_classes} classes")


def load_idx_dir(path: str | os.PathLike, *, num_classes: int | None = None,
                 name: str | None = None) -> Dataset:
  """Loads an MNIST-style directory of IDX files.

  Args:
    path: directory with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
      t10k-labels-idx1-ubyte, each raw or .gz.
    num_classes: labels must lie in [0, num_classes); default 10.
    name: dataset name to record; default the directory's name.

  Returns:
    A Dataset with source "idx:<absolute directory>".

  Raises:
    DataError: for a missing directory or file, a malformed file, mismatched counts or bad labels.
  """
  directory = pathlib.Path(path).expanduser().resolve()
  if num_classes is None:
    num_classes = 10
  if not _checks.is_int(num_classes) or num_classes < 1:
    raise DataError(f"num_classes: expected a positive int, found {num_classes!r}")
  num_classes = int(num_classes)
  if not directory.exists():
    raise DataError(f"{directory}: expected a directory of IDX files, found nothing there")
  if not directory.is_dir():
    raise DataError(f"{directory}: expected a directory of IDX files, found a file")
  files = idx.find_files(directory)
  arrays = {}
  for split in ("train", "test"):
    images_file, labels_file = files[f"{split}_images"], files[f"{split}_labels"]
    x = idx.check_images(read_idx(images_file), images_file)
    y = idx.check_labels(read_idx(labels_file), labels_file, num_classes)
    if len(x) != len(y):
      raise DataError(f"{images_file.name} and {labels_file.name} in {directory}: expected equal counts, "
                      f"found {len(x):,} images and {len(y):,} labels")
    arrays[split] = (x, y)
  if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
    raise DataError(f"{files['test_images']}: expected images shaped like the training images "
                    f"{arrays['train'][0].shape[1:]}, found {arrays['test'][0].shape[1:]}")
  return Dataset(*arrays["train"], *arrays["test"], name=name or directory.name,
                 source=f"idx:{directory}", num_classes=num_classes)


# -------------------------------------------------------------------------------------- embedded sample

def load_embedded_sample() -> Dataset:
  """Loads the MNIST sample shipped with jaxnn (8,000 train / 2,000 test, 28x28 uint8).

  Returns:
    A Dataset named "mnist" with source "embedded-sample".

  Raises:
    DataError: if the file is missing or its sha256 differs from the pinned one.
  """
  path = _SAMPLE_PATH
  regenerate = "regenerate it with scripts/build_mnist_sample.py"
  try:
    data = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: expected the embedded MNIST sample, found {e.strerror or e}; {regenerate}"
                    ) from None
  found = hashlib.sha256(data).hexdigest()
  if found != _SAMPLE_SHA256:
    raise DataError(f"{path}: expected sha256 {_SAMPLE_SHA256}, found {found}; {regenerate}")
  with np.load(io.BytesIO(data), allow_pickle=False) as z:
    arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
  return Dataset(**arrays, name="mnist", source="embedded-sample", num_classes=10)


# ------------------------------------------------------------------------------------------------- TFDS

def _missing_tfds_requirements() -> list[str]:
  """Returns 'module (why)' for each module TFDS needs here that is not installed."""
  return [f"{module} ({why})" for module, why in _TFDS_REQUIREMENTS
          if importlib.util.find_spec(module) is None]


def _import_tfds() -> Any:
  """Imports tensorflow_datasets (slow, hence lazily), or raises DataError saying what to install."""
  missing = _missing_tfds_requirements()
  if missing:
    raise DataError(f"tfds: expected TensorFlow and Pillow for TFDS, found missing: {', '.join(missing)}; "
                    f"pip install 'jaxnn[tfds]'")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def _builder(tfds: Any, name: str, data_dir: str | os.PathLike | None) -> Any:
  """Returns tfds.builder(name); an unknown name becomes a DataError. Never downloads."""
  try:
    return tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
  except Exception as e:  # TFDS raises its own DatasetNotFoundError, a few others for bad names.
    raise DataError(f"tfds: expected a registered TFDS dataset name, found {name!r} "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _is_prepared(builder: Any) -> bool:
  """Returns whether the builder's data is prepared, without a download and without TFDS' warning."""
  # is_prepared() logs an absl warning for a missing variant folder; the info file check is silent.
  return builder.data_path.joinpath("dataset_info.json").exists() and builder.is_prepared()


def _read_source(source: Sequence[Any], where: str) -> tuple[np.ndarray, np.ndarray]:
  """Returns (uint8 images, int32 labels) read from a TFDS random-access data source."""
  images, labels = [], []
  # One example at a time: under tfds.testing.mock_data the batched __getitems__ is broken.
  for i in range(len(source)):
    ex = source[i]
    if "image" not in ex or "label" not in ex:
      raise DataError(f"{where}: expected features 'image' and 'label', found {sorted(ex)}")
    images.append(ex["image"])
    labels.append(ex["label"])
  if not images:
    raise DataError(f"{where}: expected at least one example, found none")
  try:
    x = np.stack(images)
  except ValueError:
    raise DataError(f"{where}: expected images of one shape, found several, e.g. "
                    f"{images[0].shape} and {next(i.shape for i in images if i.shape != images[0].shape)}"
                    ) from None
  if x.dtype != np.uint8:
    raise DataError(f"{where}: expected uint8 images, found {x.dtype}")
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]  # TFDS stores grayscale as (H, W, 1); IDX and the sample use (H, W).
  return x, np.asarray(labels).astype(np.int32)


def load_tfds(name: str, *, data_dir: str | os.PathLike | None = None, download: bool = True,
              split: Sequence[str] = ("train", "test")) -> Dataset:
  """Loads a TFDS image classification dataset through `tfds.data_source` (random access, no tf.data).

  Args:
    name: TFDS name, e.g. "mnist", "fashion_mnist", "cifar10".
    data_dir: TFDS data directory; default TFDS' own (TFDS_DATA_DIR or ~/tensorflow_datasets).
    download: whether TFDS may download and prepare the data if it is not prepared yet. Offline this
      can retry for minutes; `load` probes the network first.
    split: the (train, test) split names.

  Returns:
    A Dataset with source "tfds:prepared" or "tfds:download".

  Raises:
    DataError: if TFDS is not installed, the name is unknown, the data is absent and `download` is
      false, the download fails, or the examples are not uint8 images with integer labels.
  """
  if isinstance(split, str) or len(split) != 2:
    raise DataError(f"split: expected (train_split, test_split), found {split!r}")
  tfds = _import_tfds()
  builder = _builder(tfds, name, data_dir)
  prepared = _is_prepared(builder)
  if not prepared and not download:
    raise DataError(f"tfds:{name}: expected prepared data at {builder.data_path}, found none "
                    f"(download=False)")
  try:
    sources = tfds.data_source(name, split=list(split), data_dir=data_dir, download=download)
  except ImportError as e:
    # E.g. tensorflow-datasets 4.9.10 on Python >= 3.11 imports importlib_resources to download
    # but does not declare it.
    raise DataError(f"tfds:{name}: expected module {e.name or e} for a TFDS download, found it missing; "
                    f"pip install {e.name or 'it'}") from None
  except Exception as e:  # TFDS and its downloader raise many types; keep one line and the cause.
    action = "read the prepared data in" if prepared else "download and prepare the data into"
    raise DataError(f"tfds:{name}: expected TFDS to {action} {builder.data_path}, found an error: "
                    f"{type(e).__name__}: {_first_line(e)}") from e
  info = getattr(sources[0], "dataset_info", None) or builder.info
  label = info.features["label"] if "label" in info.features else None
  if label is None or not hasattr(label, "num_classes"):
    raise DataError(f"tfds:{name}: expected a ClassLabel feature 'label', found features "
                    f"{sorted(info.features)}")
  (x_train, y_train), (x_test, y_test) = (
      _read_source(s, f"tfds:{name}[{sp}]") for s, sp in zip(sources, split))
  return Dataset(x_train, y_train, x_test, y_test, name=name,
                 source="tfds:prepared" if prepared else "tfds:download", num_classes=label.num_classes)


def _first_line(e: BaseException, limit: int = 200) -> str:
  """Returns the first line of an exception's message, shortened."""
  text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------- network probe

def _download_hosts(tfds: Any, builder: Any) -> list[tuple[str, int]]:
  """Returns the (host, port) pairs a TFDS download of this builder would contact."""
  urls: list[str] = []
  try:
    urls = list((builder.url_infos or {}).keys())
  except Exception:  # pylint: disable=broad-except
    # url_infos imports importlib_resources, which some installs lack; the checksum files are plain text.
    candidates = [pathlib.Path(tfds.__file__).parent / "url_checksums" / f"{builder.name}.txt"]
    try:
      candidates.append(pathlib.Path(inspect.getfile(type(builder))).parent / "checksums.tsv")
    except (TypeError, OSError):
      pass
    for path in candidates:
      if path.is_file():
        urls = [line.split("\t")[0] for line in path.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
        break
  hosts = [_TFDS_MIRROR]
  for url in urls:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname:
      host = (parts.hostname, parts.port or (80 if parts.scheme == "http" else 443))
      if host not in hosts:
        hosts.append(host)
  return hosts


def _probe_network(hosts: Sequence[tuple[str, int]], timeout: float = _PROBE_TIMEOUT_S) -> str | None:
  """Returns None if every host accepts a TCP connection within `timeout`, else why not (one line)."""
  results: dict[tuple[str, int], str | None] = {}

  def connect(host: str, port: int) -> None:
    try:
      # getaddrinfo has no timeout of its own, hence the thread joined with one below.
      with socket.create_connection((host, port), timeout=timeout):
        results[(host, port)] = None
    except OSError as e:
      results[(host, port)] = f"{type(e).__name__}: {e}"

  threads = [threading.Thread(target=connect, args=h, daemon=True) for h in hosts]
  for t in threads:
    t.start()
  deadline = time.monotonic() + timeout
  for t, host in zip(threads, hosts):
    t.join(max(0.0, deadline - time.monotonic()))  # Probed in parallel: `timeout` bounds the total wait.
    if t.is_alive() and host not in results:
      return f"{host[0]}:{host[1]}: timed out after {timeout:.1f}s"
    if results.get(host) is not None:
      return f"{host[0]}:{host[1]}: {results[host]}"
  return None


def _offline() -> bool:
  """Returns whether JAXNN_OFFLINE asks to skip the network."""
  return os.environ.get(_OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


# ------------------------------------------------------------------------------------------- resolver

def _notice(verbose: bool, dataset: str, message: str) -> None:
  """Prints the one-line source notice on stderr."""
  if verbose:
    print(f"jaxnn.data: {dataset}: {message}", file=sys.stderr, flush=True)


def load(dataset: str = "mnist", data_dir: str | os.PathLike | None = None, *,
         tfds_data_dir: str | os.PathLike | None = None, download: bool = True,
         verbose: bool = True) -> Dataset:
  """Loads a dataset from the best source available, and says which one on stderr.

  Order: `data_dir` given -> IDX files there. "sample" / "mnist_sample" -> the embedded sample.
  Otherwise `dataset` is a TFDS name: prepared TFDS data -> that; else a TFDS download if `download`
  and the download hosts accept a connection within seconds (skipped when JAXNN_OFFLINE=1); else, for
  "mnist" only, the embedded sample. Nothing is substituted silently: `Dataset.source` records it.

  Args:
    dataset: TFDS name ("mnist", "fashion_mnist", ...), "sample", or a label for `data_dir`'s data.
    data_dir: a directory of MNIST-style IDX files.
    tfds_data_dir: TFDS data directory; default TFDS' own.
    download: whether a TFDS download may be attempted.
    verbose: print the one-line notice on stderr.

  Returns:
    The Dataset.

  Raises:
    DataError: if no source has the data.
  """
  if data_dir is not None:
    ds = load_idx_dir(data_dir, name=dataset)
    _notice(verbose, dataset, f"reading IDX files from {ds.source[len('idx:'):]} (data_dir given)")
    return ds
  if dataset in _SAMPLE_ALIASES:
    ds = load_embedded_sample()
    _notice(verbose, dataset, f"using the embedded sample ({_SAMPLE_DESCRIPTION}), as requested")
    return ds

  is_mnist = dataset.split(":")[0].split("/")[0] == "mnist"
  try:
    tfds = _import_tfds()
  except DataError as e:
    if not is_mnist:
      raise
    reason = str(e)
  else:
    builder = _builder(tfds, dataset, tfds_data_dir)
    if _is_prepared(builder):
      ds = load_tfds(dataset, data_dir=tfds_data_dir, download=False)
      _notice(verbose, dataset, f"using prepared TFDS data at {builder.data_path}")
      return ds
    where = f"no prepared TFDS data in {builder.data_path}"
    if not download:
      why = "download=False"
    elif _offline():
      why = f"{_OFFLINE_ENV}=1 skips the download"
    else:
      unreachable = _probe_network(_download_hosts(tfds, builder))
      if unreachable is None:
        try:
          ds = load_tfds(dataset, data_dir=tfds_data_dir, download=True)
        except DataError as e:
          if not is_mnist:
            raise
          why = f"the download failed ({e})"
        else:
          _notice(verbose, dataset, f"{where}; downloaded it with TFDS")
          return ds
      else:
        why = f"download unreachable ({unreachable})"
    reason = f"{where} and {why}"

  if not is_mnist:
    raise DataError(f"{dataset}: {reason}; pass data_dir (--data-dir) with its IDX files, prepare it with "
                    f"TFDS into tfds_data_dir, or run where the download hosts are reachable")
  ds = load_embedded_sample()
  _notice(verbose, dataset, f"{reason}; using the embedded sample ({_SAMPLE_DESCRIPTION})")
  return ds


# -------------------------------------------------------------------------------------------- helpers

def scale(x: np.ndarray) -> np.ndarray:
  """Scales uint8 images to float32 in [0, 1].

  Args:
    x: uint8 array of any shape.

  Returns:
    float32 array x / 255.

  Raises:
    DataError: if x is not uint8 (scaling twice is a common bug).
  """
  x = np.asarray(x)
  if x.dtype != np.uint8:
    raise DataError(f"scale: expected uint8 pixels in [0, 255], found dtype {x.dtype}")
  return x.astype(np.float32) / np.float32(255)


def flatten(x: np.ndarray) -> np.ndarray:
  """Reshapes (N, ...) to (N, prod(...)).

  Args:
    x: array with a leading batch axis.

  Returns:
    A 2-D array with the same dtype.
  """
  x = np.asarray(x)
  if x.ndim < 1:
    raise DataError("flatten: expected an array with a leading batch axis, found a scalar")
  return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
  """One-hot encodes integer labels.

  Args:
    y: integer labels of any shape, each in [0, num_classes).
    num_classes: number of classes.

  Returns:
    float32 array of shape y.shape + (num_classes,).
  """
  y = np.asarray(y)
  if not _checks.is_int(num_classes) or num_classes < 1:
    raise DataError(f"one_hot: expected num_classes a positive int, found {num_classes!r}")
  if y.dtype.kind not in "iu":
    raise DataError(f"one_hot: expected integer labels, found dtype {y.dtype}")
  bad = (y < 0) | (y >= num_classes)
  if bad.any():
    raise DataError(f"one_hot: expected labels in [0, {num_classes - 1}], found {int(y[bad].flat[0])}")
  return (y[..., None] == np.arange(num_classes)).astype(np.float32)


def pad_sequences(sequences: Sequence[Any], maxlen: int | None = None, dtype: Any = "int32", padding: str = "pre",
                  truncating: str = "pre", value: float = 0) -> np.ndarray:
  """Sequences of different lengths as one (N, maxlen, ...) array, as `keras.utils.pad_sequences` builds it.

  Args:
    sequences: N sequences (lists or arrays) of ids, or of equally shaped vectors; empty ones are allowed.
    maxlen: the length of the result; longer sequences are cut. Default: the longest sequence's length.
    dtype: the result's dtype (int32 by default, for Embedding ids).
    padding: "pre" (Keras' default) or "post": where the `value` entries go.
    truncating: "pre" (drop the start of a long sequence, Keras' default) or "post" (drop its end).
    value: the padding value (0: the id Embedding(mask_zero=True) masks).

  Returns:
    An array of shape (N, maxlen) + the shape of one step.

  Raises:
    DataError: for an unknown padding / truncating, a bad maxlen, steps of different shapes, or a value
      that does not fit `dtype`.
  """
  for arg, mode in (("padding", padding), ("truncating", truncating)):
    if mode not in ("pre", "post"):
      raise DataError(f"pad_sequences: expected {arg} 'pre' or 'post', found {mode!r}")
  if maxlen is not None and (not _checks.is_int(maxlen) or maxlen < 1):
    raise DataError(f"pad_sequences: expected maxlen a positive int or None, found {maxlen!r}")
  try:
    rows = [np.asarray(seq) for seq in sequences]
  except (TypeError, ValueError) as e:
    raise DataError(f"pad_sequences: expected a list of sequences, each an array or list of numbers ({e})") from None
  step_shapes = {row.shape[1:] for row in rows if row.ndim >= 1 and len(row)}
  for i, row in enumerate(rows):
    if row.ndim == 0:
      raise DataError(f"pad_sequences: sequence {i} is a scalar ({row!r}); expected a list or array of steps")
  if len(step_shapes) > 1:
    raise DataError(f"pad_sequences: expected every step of the same shape, found step shapes "
                    f"{sorted(step_shapes)}")
  step_shape = step_shapes.pop() if step_shapes else ()
  length = int(maxlen) if maxlen is not None else max((len(row) for row in rows), default=0)
  dtype = np.dtype(dtype)
  if dtype.kind in "iu":
    info = np.iinfo(dtype)
    try:
      whole = float(value) == int(value)
    except (OverflowError, ValueError):  # inf, nan
      whole = False
    if not whole or not info.min <= int(value) <= info.max:
      raise DataError(f"pad_sequences: value {value!r} does not fit dtype {dtype} (whole numbers in "
                      f"[{info.min}, {info.max}])")
  out = np.full((len(rows), length, *step_shape), value, dtype)
  for i, row in enumerate(rows):
    if not len(row) or not length:
      continue
    row = row[-length:] if truncating == "pre" else row[:length]
    if padding == "post":
      out[i, :len(row)] = row
    else:
      out[i, length - len(row):] = row
  return out


def train_val_split(x: np.ndarray, y: np.ndarray, validation_fraction: float, *,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Shuffles deterministically and holds out a validation set.

  Args:
    x: inputs, (N, ...).
    y: labels, (N, ...).
    validation_fraction: in (0, 1); round(N * fraction) examples go to validation.
    seed: shuffling seed; the same seed gives the same split.

  Returns:
    (x_train, y_train, x_val, y_val).

  Raises:
    DataError: for a fraction outside (0, 1), mismatched lengths, or an empty side.
  """
  if len(x) != len(y):
    raise DataError(f"train_val_split: expected as many labels as inputs, found {len(x)} inputs and "
                    f"{len(y)} labels")
  if not 0 < validation_fraction < 1:
    raise DataError(f"validation_fraction: expected a value in (0, 1), found {validation_fraction!r}")
  n = len(x)
  n_val = int(round(n * validation_fraction))
  if n_val == 0 or n_val == n:
    raise DataError(f"validation_fraction={validation_fraction}: expected both sides non-empty, found "
                    f"{n - n_val} train and {n_val} validation examples of {n}")
  order = np.random.default_rng(seed).permutation(n)
  train, val = order[n_val:], order[:n_val]
  return x[train], y[train], x[val], y[val]


def subset(dataset: Dataset, n_train: int | None = None, n_test: int | None = None) -> Dataset:
  """Returns the first n_train training and n_test test examples (None keeps all), for tiny runs.

  Asking for more examples than the split holds is an error rather than a silent "all of them", so a run is
  never recorded under a size it did not have.
  """
  for arg, n, have in (("n_train", n_train, dataset.n_train), ("n_test", n_test, dataset.n_test)):
    if n is not None and (not _checks.is_int(n) or n < 1):
      raise DataError(f"{arg}: expected a positive int or None, found {n!r}")
    if n is not None and n > have:
      raise DataError(f"{arg}: expected at most the {have:,} {arg[2:]} examples of {dataset.name!r}, found {n:,}")
  return dataclasses.replace(dataset, x_train=dataset.x_train[:n_train], y_train=dataset.y_train[:n_train],
                             x_test=dataset.x_test[:n_test], y_test=dataset.y_test[:n_test])
