"""No retracing: fit's epoch, evaluate, predict and a jitted train_step compile once per (model, batch size) /
input shape. Counted with JAX's own backend-compile events and a trace counter; a control shows that the
counters do see a recompilation when the caches are dropped."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import losses, training
from jaxnn.layers import Dense
from jaxnn.models import Sequential

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"  # recorded by JAX for every XLA compile
LOSS = "sparse_categorical_crossentropy"


@contextlib.contextmanager
def counting_compiles():
  """Yields a list that receives one entry per XLA compilation inside the block."""
  seen = []

  def listener(event, duration_secs, **kwargs):
    if event == BACKEND_COMPILE:
      seen.append(duration_secs)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield seen
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def data(n=40, d=5, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n).astype(np.int32)


def model_():
  # Sizes no other test uses, so nothing compiled earlier in this process can stand in for these programs.
  return Sequential([Dense(11, activation="relu"), Dense(3)])


def fit_counts(traces, model, params, x, y, **kw):
  traces.clear()
  with counting_compiles() as compiles:
    training.fit(model, params, x, y, loss=LOSS, metrics=["accuracy"], verbose=0, **kw)
  return len(traces), len(compiles)


def test_fit_compiles_the_epoch_once_per_model_and_batch_size(traces):
  x, y = data()
  model = model_()
  params = model.init(jax.random.key(0), (5,))
  first = fit_counts(traces, model, params, x, y, epochs=2, batch_size=8)
  assert first[0] > 0 and first[1] > 0  # the epoch was traced and compiled
  # More epochs, new params of the same shapes, another run key: nothing is traced or compiled again.
  assert fit_counts(traces, model, params, x, y, epochs=3, batch_size=8) == (0, 0)
  other = model.init(jax.random.key(1), (5,))
  assert fit_counts(traces, model, other, x, y, epochs=1, batch_size=8, key=jax.random.key(7)) == (0, 0)
  # A new batch size is a new program, compiled once too.
  new_batch = fit_counts(traces, model, params, x, y, epochs=1, batch_size=16)
  assert new_batch[0] > 0 and new_batch[1] > 0
  assert fit_counts(traces, model, params, x, y, epochs=2, batch_size=16) == (0, 0)
  assert fit_counts(traces, model, params, x, y, epochs=1, batch_size=8) == (0, 0)


def test_continuing_from_a_train_state_reuses_the_program(traces):
  x, y = data()
  model = model_()
  params = model.init(jax.random.key(0), (5,))
  state, _ = training.fit(model, params, x, y, loss=LOSS, metrics=["accuracy"], epochs=1, batch_size=10, verbose=0)
  assert fit_counts(traces, model, state, x, y, epochs=2, batch_size=10) == (0, 0)


def test_the_counters_see_a_recompile_when_the_caches_are_dropped(traces):
  """The control: without it, a (0, 0) above could mean the counters count nothing."""
  x, y = data()
  model = model_()
  params = model.init(jax.random.key(0), (5,))
  fit_counts(traces, model, params, x, y, epochs=1, batch_size=8)
  training._COMPILED.clear()
  jax.clear_caches()
  again = fit_counts(traces, model, params, x, y, epochs=1, batch_size=8)
  assert again[0] > 0 and again[1] > 0


def test_evaluate_and_predict_compile_once_per_shape():
  x, y = data(n=30)
  model = model_()
  params = model.init(jax.random.key(0), (5,))
  with counting_compiles() as first:
    training.evaluate(model, params, x, y, loss=LOSS, metrics=["accuracy"], batch_size=8)
    training.predict(model, params, x, batch_size=8)
  assert first
  other = model.init(jax.random.key(3), (5,))
  with counting_compiles() as again:
    training.evaluate(model, other, x + 1, y, loss=LOSS, metrics=["accuracy"], batch_size=8)
    training.predict(model, other, x - 1, batch_size=8)
  assert again == []
  with counting_compiles() as new_shape:
    training.evaluate(model, params, x[:20], y[:20], loss=LOSS, metrics=["accuracy"], batch_size=8)
  assert new_shape


def test_jitted_train_step_traces_once_per_batch_size():
  model = model_()
  loss = losses.get(LOSS, from_logits=True)
  params = model.init(jax.random.key(0), (5,))
  state = training.create_train_state(model, params, "adam")
  seen = []

  def step(state, x, y, w, mask):
    seen.append(x.shape[0])
    return training.train_step(state, x, y, w, mask, model=model, loss=loss)

  jitted = jax.jit(step)
  x, y = data(n=24)
  for start in (0, 8, 16):
    batch = (jnp.asarray(x[start:start + 8]), jnp.asarray(y[start:start + 8]), jnp.ones(8), jnp.ones(8))
    state, _ = jitted(state, *batch)
  assert seen == [8]
  state, _ = jitted(state, jnp.asarray(x[:4]), jnp.asarray(y[:4]), jnp.ones(4), jnp.ones(4))
  assert seen == [8, 4]
