"""The persistent compilation cache: on with one call, used by fit's ahead-of-time compiles, off again."""

import os

import jax
import numpy as np
import pytest

import jaxnn
from experiments import common
from jaxnn import compilation_cache, training
from jaxnn.layers import Dense
from jaxnn.models import Sequential
from tests.test_retrace import counting_compiles

CACHE_REQUESTS = "/jax/compilation_cache/compile_requests_use_cache"  # programs not found in memory
CACHE_HITS = "/jax/compilation_cache/cache_hits"  # ... and loaded from the cache folder instead of compiled


@pytest.fixture
def cache_off_afterwards():
  yield
  jaxnn.disable_compilation_cache()


def count_cache_events():
  seen = []

  def listener(event, **kwargs):
    if event in (CACHE_REQUESTS, CACHE_HITS):
      seen.append(event)

  jax.monitoring.register_event_listener(listener)
  return seen, lambda: jax.monitoring.unregister_event_listener(listener)


def tiny_fit():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 3, 30).astype(np.int32)
  model = Sequential([Dense(13, activation="tanh"), Dense(3)])  # sizes no other test compiles
  params = model.init(jax.random.key(0), (4,))
  return model, params, x, y, dict(loss="sparse_categorical_crossentropy", epochs=1, batch_size=8,
                                   validation_split=0.2, verbose=0)


def test_fit_loads_its_programs_from_the_cache_in_a_fresh_start(tmp_path, cache_off_afterwards):
  path = jaxnn.enable_compilation_cache(tmp_path / "cache")
  assert path == str(tmp_path / "cache") and compilation_cache.compilation_cache_dir() == path
  model, params, x, y, kw = tiny_fit()
  training._COMPILED.clear()
  jax.clear_caches()  # programs earlier tests compiled in this process would not be written to the folder
  training.fit(model, params, x, y, **kw)
  assert os.listdir(path)  # programs were written, small ones included
  # What a second process sees: no program in memory, only the files.
  training._COMPILED.clear()
  jax.clear_caches()
  events, stop = count_cache_events()
  try:
    training.fit(model, params, x, y, **kw)
  finally:
    stop()
  requests, hits = events.count(CACHE_REQUESTS), events.count(CACHE_HITS)
  # Every program fit needed, the ahead-of-time compiled epoch and validation pass included, came from disk.
  assert requests >= 2 and hits == requests


def test_without_the_cache_the_same_fit_compiles_again(cache_off_afterwards):
  """The control for the test above: with no cache folder the same steps do compile, and the cache is not asked."""
  jaxnn.disable_compilation_cache()
  assert compilation_cache.compilation_cache_dir() is None
  model, params, x, y, kw = tiny_fit()
  training.fit(model, params, x, y, **kw)
  training._COMPILED.clear()
  jax.clear_caches()
  events, stop = count_cache_events()
  try:
    with counting_compiles() as compiles:
      training.fit(model, params, x, y, **kw)
  finally:
    stop()
  assert len(compiles) >= 2 and events == []


def test_default_folder_comes_from_the_environment(tmp_path, monkeypatch, cache_off_afterwards):
  monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "from-env"))
  assert jaxnn.enable_compilation_cache() == str(tmp_path / "from-env")
  monkeypatch.setenv(compilation_cache.ENV_VAR, "off")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert jaxnn.enable_compilation_cache() == str(tmp_path / "xdg" / "jaxnn" / "jax")


def test_a_file_in_the_way_is_a_clear_error(tmp_path, cache_off_afterwards):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  with pytest.raises(jaxnn.JaxnnError, match=r"compilation cache .*file: expected a folder, found a file"):
    jaxnn.enable_compilation_cache(blocker)
  with pytest.raises(jaxnn.JaxnnError, match="min_compile_seconds must be >= 0, got -1"):
    jaxnn.enable_compilation_cache(tmp_path / "ok", min_compile_seconds=-1)


def test_experiments_turn_it_on_unless_told_off(tmp_path, monkeypatch, cache_off_afterwards):
  p = common.parser("demo", None)
  p.parse_args(["--compilation-cache", str(tmp_path / "exp")])
  assert compilation_cache.compilation_cache_dir() == str(tmp_path / "exp")
  jaxnn.disable_compilation_cache()
  p.parse_args(["--compilation-cache", "off"])
  assert compilation_cache.compilation_cache_dir() is None
  monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "env"))
  common.parser("demo", None).parse_args([])
  assert compilation_cache.compilation_cache_dir() == str(tmp_path / "env")
