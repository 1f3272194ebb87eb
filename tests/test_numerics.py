"""The NaN guard: a non-finite step is skipped to the bit and counted; K in a row stop the run with a named
error and leave the last good checkpoint; NaN / infinity in the data is reported before anything compiles."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import checkpoint
from jaxnn import constraints
from jaxnn import losses
from jaxnn import numerics
from jaxnn import training
from jaxnn.convolutional import BatchNormalization
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dense
from jaxnn.models import Sequential
from jaxnn.recurrent import LSTM
from jaxnn.recurrent import Bidirectional

LOSS = losses.get("sparse_categorical_crossentropy")
MODEL = Sequential([Dense(8, activation="relu"), BatchNormalization(), Dense(3, activation="softmax")], name="bn")


def data(n=40):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 5)).astype(np.float32)
  return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)


def bits(tree):
  """Every leaf's bytes (a PRNG key as its data)."""
  return [np.asarray(leaf).tobytes() for leaf in jax.tree_util.tree_leaves(checkpoint._plain(tree))]


def fresh_state():
  params = MODEL.init(jax.random.key(0), (5,))
  state = training.create_train_state(MODEL, params, "adam", model_state=MODEL.init_state((5,)))
  return jax.tree_util.tree_map(jnp.asarray, state)


STEP = jax.jit(lambda state, x, y: training.train_step(state, x, y, jnp.ones(len(x)), jnp.ones(len(x)), model=MODEL,
                                                       loss=LOSS, metrics=(), max_bad_steps=3))


def test_a_nan_batch_changes_nothing_but_the_counters():
  x, y = data(8)
  state, _ = STEP(fresh_state(), x, y)  # one good step first: the optimizer state is not all zeros
  params = jax.tree_util.tree_map(lambda a: a, state.params)
  params["dense_1"]["bias"] = params["dense_1"]["bias"].at[0].set(-0.0)  # params + 0 would make it +0.0
  state = state.replace(params=params)
  bad_x = x.copy()
  bad_x[5, 2] = np.nan
  skipped, stats = STEP(state, bad_x, y)
  for field in ("params", "opt_state", "model_state", "step", "key", "epoch"):
    assert bits(getattr(skipped, field)) == bits(getattr(state, field)), field
  assert np.signbit(skipped.params["dense_1"]["bias"][0])  # -0.0 kept
  assert jax.device_get(skipped.faults) == {"skipped_steps": 1, "consecutive": 1, "batches": 2}
  assert float(stats["loss"]["count"]) == 0 and float(stats["loss"]["sum"]) == 0  # not in the epoch's mean
  inf_x = x.copy()
  inf_x[0, 0] = np.inf
  inf_grad, _ = STEP(skipped, inf_x, y)
  assert jax.device_get(inf_grad.faults)["consecutive"] == 2 and bits(inf_grad.params) == bits(state.params)
  recovered, _ = STEP(inf_grad, x, y)  # a good step applies and resets the run of bad ones
  assert bits(recovered.params) != bits(state.params)
  assert jax.device_get(recovered.faults) == {"skipped_steps": 2, "consecutive": 0, "batches": 4}


def test_after_k_bad_steps_every_step_is_a_no_op():
  x, y = data(8)
  state = fresh_state()
  bad_x = np.full_like(x, np.nan)
  for _ in range(3):
    state, _ = STEP(state, bad_x, y)
  halted, _ = STEP(state, x, y)  # even a good batch does nothing now
  assert bits(halted) == bits(state)


def test_the_guard_does_not_change_a_finite_step():
  x, y = data(8)
  state = fresh_state()
  guarded, _ = STEP(state, x, y)
  plain, _ = jax.jit(lambda s: training.train_step(s, x, y, jnp.ones(8), jnp.ones(8), model=MODEL, loss=LOSS))(state)
  assert bits((guarded.params, guarded.opt_state, guarded.model_state)) == bits(
      (plain.params, plain.opt_state, plain.model_state))
  counting, _ = jax.jit(lambda s: training.train_step(s, x, y, jnp.ones(8), jnp.ones(8), model=MODEL, loss=LOSS,
                                                      max_bad_steps=3, skip_bad_steps=False))(state)
  assert bits((counting.params, counting.opt_state, counting.model_state, counting.step)) == bits(
      (guarded.params, guarded.opt_state, guarded.model_state, guarded.step))


def test_the_detecting_step_applies_a_bad_step_and_flags_it():
  x, y = data(8)
  bad_x = x.copy()
  bad_x[5, 2] = np.nan
  detecting = jax.jit(lambda s, x: training.train_step(s, x, y, jnp.ones(8), jnp.ones(8), model=MODEL, loss=LOSS,
                                                      max_bad_steps=3, skip_bad_steps=False))
  state, stats = detecting(fresh_state(), bad_x)
  assert not numerics.all_finite(state.params) and not np.isfinite(float(stats["loss"]["sum"]))
  assert int(numerics.probe_flag(stats["nonfinite"])) == 1
  assert jax.device_get(state.faults) == jax.device_get(numerics.initial_faults())
  _, stats = detecting(fresh_state(), x)
  assert int(numerics.probe_flag(stats["nonfinite"])) == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_summed_probe_keeps_one_bad_entry_of_one_step(bad):
  """The detecting epoch sums each step's probe: one bad gradient entry in one of many steps, or a bad loss,
  still flags the sum; finite values as large as float32 goes never do, and integer leaves are left out."""
  rng = np.random.default_rng(0)
  grads = [{"kernel": (rng.uniform(-1, 1, size=(6, 4)) * 3.4e38).astype(np.float32), "bias": np.float32([1e-30, -0.0]),
            "count": np.int32([7])} for _ in range(20)]
  losses_ = [np.float32(3e38)] * 20

  def summed(losses_, grads):
    probes = [numerics.nonfinite_probe(jnp.asarray(l), jax.tree_util.tree_map(jnp.asarray, g))
              for l, g in zip(losses_, grads)]
    return jax.tree_util.tree_map(lambda *a: sum(a), *probes)

  clean = summed(losses_, grads)
  assert len(clean) == 3 and int(numerics.probe_flag(clean)) == 0  # loss, bias, kernel: the int leaf left out
  assert all(np.all(np.asarray(a) == 0) for a in clean)
  grads[13]["kernel"][4, 1] = bad
  assert int(numerics.probe_flag(summed(losses_, grads))) == 1
  grads[13]["kernel"][4, 1] = 0.0
  losses_[19] = np.float32(bad)
  assert int(numerics.probe_flag(summed(losses_, grads))) == 1


def test_a_detecting_epoch_flags_a_bad_step_in_its_middle():
  """train_epoch with skip_bad_steps=False: a NaN row in the 3rd of 4 batches flags the epoch (1), a clean epoch
  gives 0, and in both the fault counters move as for a clean epoch."""
  x, y = data()
  detect = jax.jit(lambda s, x: training.train_epoch(s, x, y, jnp.ones(len(x)), jnp.arange(len(x)), model=MODEL,
                                                     loss=LOSS, metrics=(), batch_size=10, max_bad_steps=3,
                                                     skip_bad_steps=False))
  state, totals = detect(fresh_state(), x)
  assert int(totals["nonfinite"]) == 0 and int(state.faults["batches"]) == 4
  bad_x = x.copy()
  bad_x[25, 3] = np.inf
  state, totals = detect(fresh_state(), bad_x)
  assert int(totals["nonfinite"]) == 1 and int(state.faults["batches"]) == 4
  assert int(state.faults["skipped_steps"]) == 0


def test_mark_nonfinite_sets_nan_where_a_gradient_is_not_finite_and_keeps_every_other_bit():
  params = {"kernel": np.float32([[-0.0, 1e-40, 3.4e38], [2.5, -1e-42, 7.0]]), "bias": np.float32([0.0, -3.0]),
            "count": np.int32([4])}
  grads = {"kernel": np.float32([[1.0, -0.0, np.nan], [np.inf, 2.0, -np.inf]]), "bias": np.float32([-1e-45, 5.0]),
           "count": np.int32([9])}
  marked = jax.device_get(jax.jit(numerics.mark_nonfinite)(params, grads))
  kernel_bad = ~np.isfinite(grads["kernel"])
  assert np.all(np.isnan(marked["kernel"][kernel_bad]))
  # Selected, not computed: -0.0 and the subnormals keep their bits (a multiply by 1 would flush these on XLA's CPU).
  assert marked["kernel"][~kernel_bad].tobytes() == params["kernel"][~kernel_bad].tobytes()
  assert marked["bias"].tobytes() == params["bias"].tobytes()
  assert marked["count"].tobytes() == params["count"].tobytes()  # an integer leaf is left alone


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", constraints.names())
def test_the_builtin_constraints_keep_a_nonfinite_entry(name, bad):
  """What `constraints.keeps_nonfinite` promises for the built-ins: one bad entry in, a bad entry out (so a
  detecting epoch's mark survives the projection after every later update)."""
  constraint = constraints.get(name)
  w = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
  w[2, 1] = bad
  assert constraints.keeps_nonfinite(constraint)
  assert not bool(numerics.all_finite(constraint(jnp.asarray(w))))


def _heal(w):
  return jnp.nan_to_num(w)


def test_which_models_get_their_gradients_marked_in_the_params():
  assert constraints.keeps_nonfinite(None) and not constraints.keeps_nonfinite(_heal)
  assert Sequential([Dense(3, kernel_constraint="max_norm", bias_constraint=constraints.NonNeg()),
                     BatchNormalization(gamma_constraint="unit_norm"),
                     Bidirectional(LSTM(2, recurrent_constraint="min_max_norm"))]).constraints_keep_nonfinite()
  assert not Sequential([Dense(3), Dense(2, bias_constraint=_heal)]).constraints_keep_nonfinite()
  # A wrapped layer's constraints count too.
  assert not Sequential([Bidirectional(LSTM(2, recurrent_constraint=_heal))]).constraints_keep_nonfinite()
  # So does a layer's own `constrain`: unknown, so not trusted, unless the layer says otherwise.
  assert not Sequential([_HealingDense(3)]).constraints_keep_nonfinite()
  assert Sequential([_ScaledDense(3)]).constraints_keep_nonfinite()


@dataclasses.dataclass(frozen=True)
class _HealingDense(Dense):
  def constrain(self, params):
    return jax.tree_util.tree_map(jnp.nan_to_num, params)


@dataclasses.dataclass(frozen=True)
class _ScaledDense(Dense):
  def apply(self, params, x, **kwargs):
    return 2.0 * super().apply(params, x, **kwargs)


def _sqrt_abs(z):
  """Finite everywhere, with a NaN derivative at 0 (sign(0) * inf): in a layer without bias, a row of zeros has
  a finite loss and NaN gradients at every step."""
  return jnp.sqrt(jnp.abs(z))


@pytest.mark.parametrize("constraint", [None, "max_norm", "unit_norm", _heal])
@pytest.mark.parametrize("bad_batch", [1, 3])
def test_a_detecting_epoch_flags_a_finite_loss_with_nonfinite_gradients(constraint, bad_batch):
  """Only the gradients are bad (the loss is finite), in the 2nd or in the last of 4 batches: the epoch is
  flagged both ways the detecting step can mark it: in the params (built-in or no constraints; the mark must
  survive the later steps and their projections) or in the summed statistics (a constraint that turns NaN
  into numbers)."""
  model = Sequential([Dense(4, activation=_sqrt_abs, use_bias=False, kernel_constraint=constraint), Dense(3, activation="softmax")])
  x, y = data()
  x[bad_batch * 10 + 4] = 0.0
  state = training.create_train_state(model, model.init(jax.random.key(0), (5,)), "adam")
  step = jax.jit(lambda s, x, y: training.train_step(s, x, y, jnp.ones(10), jnp.ones(10), model=model, loss=LOSS,
                                                     max_bad_steps=3, skip_bad_steps=False))
  _, stats = step(state, x[bad_batch * 10:][:10], y[bad_batch * 10:][:10])
  assert np.isfinite(float(stats["loss"]["sum"]))
  marked = model.constraints_keep_nonfinite()
  assert marked == (constraint is not _heal)
  assert len(stats["nonfinite"]) == (1 if marked else 4)  # the loss alone, or the loss and the 3 gradients
  grads = jax.grad(lambda p: LOSS(jnp.asarray(y[:10]), model.apply(p, jnp.asarray(x[bad_batch * 10:][:10]))))(
      state.params)
  assert not bool(numerics.all_finite(grads))
  detect = jax.jit(lambda s, x: training.train_epoch(s, x, y, jnp.ones(len(x)), jnp.arange(len(x)), model=model,
                                                     loss=LOSS, metrics=(), batch_size=10, max_bad_steps=3,
                                                     skip_bad_steps=False))
  _, totals = detect(state, x)
  assert int(totals["nonfinite"]) == 1
  _, totals = detect(state, data()[0])
  assert int(totals["nonfinite"]) == 0


def test_a_bad_gradient_in_the_last_step_is_replayed_by_the_skipping_program(monkeypatch):
  """fit, the bad step last in the epoch (the loss finite): only the params' mark tells; the run equals the
  skipping program's, to the bit."""
  monkeypatch.setattr(training, "_COMPILED", {})
  model = Sequential([Dense(4, activation=_sqrt_abs, use_bias=False), Dense(3, activation="softmax")])
  x, y = data()
  x[35] = 0.0
  state, history = training.fit(model, model.init(jax.random.key(0), (5,)), x, y, loss=LOSS, batch_size=10,
                                shuffle=False, epochs=2, verbose=0)
  assert history["skipped_steps"] == [1, 1] and guard_programs() == [False, True]
  assert bits(state) == bits(skipping_epochs(x, y, 2, model=model)) and numerics.all_finite(state.params)


def fit_with_nan_rows(rows, monkeypatch, **kwargs):
  """fit on data whose `rows` are NaN, the up-front data check bypassed: a NaN that shows up mid-run."""
  monkeypatch.setattr(numerics, "check_finite", lambda *args, **kw: None)
  x, y = data()
  x[rows] = np.nan
  params = MODEL.init(jax.random.key(0), (5,))
  return training.fit(MODEL, params, x, y, loss=LOSS, batch_size=10, shuffle=False, verbose=0, **kwargs)


def test_isolated_nan_batches_are_skipped_and_logged(monkeypatch):
  state, history = fit_with_nan_rows([13], monkeypatch, epochs=3)  # batch 2 of 4; the default guard
  assert history["skipped_steps"] == [1, 1, 1]
  assert int(state.step) == 9 and jax.device_get(state.faults)["skipped_steps"] == 3
  assert all(np.isfinite(history["loss"])) and numerics.all_finite(state.params)


def test_k_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
  # Batches 1, 3 and 4 of each epoch are bad: epoch 1 ends with 2 bad steps in a row, the first batch of
  # epoch 2 makes 3.
  ckpt = checkpoint.Checkpointing(str(tmp_path), every=1)
  with pytest.raises(numerics.NonFiniteError) as e:
    fit_with_nan_rows(list(range(10)) + list(range(20, 40)), monkeypatch, epochs=5, max_bad_steps=3,
                      checkpoint=ckpt)
  path = str(tmp_path / "ckpt_00000001.msgpack")
  assert str(e.value) == (
      "fit: training stopped at epoch 2, step 1 of the epoch (batch 5 of the run): 3 consecutive steps had a "
      f"non-finite loss or gradients (4 skipped steps in all); the last checkpoint, {path}, is kept")
  assert checkpoint.checkpoints(tmp_path) == [path]  # nothing saved after the failed epoch
  target = training.create_train_state(MODEL, MODEL.init(jax.random.key(0), (5,)), "adam",
                                       model_state=MODEL.init_state((5,)))
  good = checkpoint.load(path, target)
  assert int(good.state.step) == 1 and numerics.all_finite(good.state.params)
  assert jax.device_get(good.state.faults) == {"skipped_steps": 3, "consecutive": 2, "batches": 4}


def skipping_epochs(x, y, epochs, batch_size=10, model=MODEL):
  """`epochs` epochs of the skipping program alone, the way fit orders them (shuffle off)."""
  state = jax.device_put(training.create_train_state(model, model.init(jax.random.key(0), (5,)), "adam",
                                                     key=jax.random.key(0), model_state=model.init_state((5,))))
  for epoch in range(epochs):
    state, _ = training._train_epoch_jit(state, x, y, jnp.ones(len(x)), training.epoch_order(state.key, epoch, len(x),
                                                                                              False),
                                         model=model, loss=LOSS, metrics=(), batch_size=batch_size, max_bad_steps=10)
  return state


def guard_programs():
  """The epoch programs fit compiled (from `training._COMPILED`), by whether they skip bad steps."""
  return sorted(dict(static).get("skip_bad_steps", True) for fn, _, _, static in training._COMPILED
                if fn is training._train_epoch_jit)


def test_an_epoch_with_a_bad_step_is_replayed_by_the_skipping_program(monkeypatch):
  # fit runs each epoch with the counting program; the epochs that had a bad step are rerun from their
  # start by the skipping one: the run equals the skipping program's own, to the bit.
  monkeypatch.setattr(training, "_COMPILED", {})
  state, history = fit_with_nan_rows([13], monkeypatch, epochs=3)
  x, y = data()
  x[13] = np.nan
  assert bits(state) == bits(skipping_epochs(x, y, 3))
  assert history["skipped_steps"] == [1, 1, 1] and guard_programs() == [False, True]  # compiled once


def test_a_finite_run_never_compiles_the_skipping_program(monkeypatch):
  monkeypatch.setattr(training, "_COMPILED", {})
  x, y = data()
  state, history = training.fit(MODEL, MODEL.init(jax.random.key(0), (5,)), x, y, loss=LOSS, batch_size=10,
                                shuffle=False, epochs=3, verbose=0)
  assert guard_programs() == [False] and history["skipped_steps"] == [0, 0, 0]
  assert bits(state) == bits(skipping_epochs(x, y, 3))  # the same result as the skipping program's


def test_a_run_halted_before_the_epoch_goes_to_the_skipping_program(monkeypatch):
  # A TrainState whose last 3 steps were bad, continued with max_bad_steps=2: the skipping program does
  # nothing and fit raises; the detecting program (which would train on) never runs.
  state, _ = fit_with_nan_rows(list(range(10, 40)), monkeypatch, epochs=1)
  assert jax.device_get(state.faults)["consecutive"] == 3
  x, y = data()
  with pytest.raises(numerics.NonFiniteError, match="stopped at epoch 2, step 0 of the epoch"):
    training.fit(MODEL, state, x, y, loss=LOSS, batch_size=10, shuffle=False, verbose=0, max_bad_steps=2)


def test_no_guard_lets_the_nan_through(monkeypatch):
  state, history = fit_with_nan_rows([13], monkeypatch, epochs=1, max_bad_steps=None)
  assert "skipped_steps" not in history.history and not numerics.all_finite(state.params)


@pytest.mark.parametrize("arg, message", [
    ("x", r"fit: x contains 2 NaN or infinite values, the first at x\[3, 1\] = nan"),
    ("y", r"fit: y contains 1 NaN or infinite value, the first at y\[7, 0\] = inf"),
    ("sample_weight", r"fit: sample_weight must be finite and >= 0, found nan at sample_weight\[4\] \(1 such values\)"),
    ("validation_data", r"fit: validation_data x contains 1 NaN or infinite value, the first at "
                        r"validation_data x\[2, 0\] = -inf"),
])
def test_nan_in_the_data_is_reported_before_compiling(arg, message):
  x, _ = data()
  y = x[:, :2].copy()
  kwargs = {}
  if arg == "x":
    x[3, 1] = x[9, 0] = np.nan
  elif arg == "y":
    y[7, 0] = np.inf
  elif arg == "sample_weight":
    kwargs["sample_weight"] = np.where(np.arange(40) == 4, np.nan, 1.0)
  else:
    x_val = x[:5].copy()
    x_val[2, 0] = -np.inf
    kwargs["validation_data"] = (x_val, y[:5])
  model = Sequential([Dense(2)])
  compiled = len(training._COMPILED)
  with pytest.raises(JaxnnError, match=message):
    training.fit(model, model.init(jax.random.key(0), (5,)), x, y, loss="mse", verbose=0, **kwargs)
  assert len(training._COMPILED) == compiled


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_max_bad_steps_argument(value):
  x, y = data()
  with pytest.raises(JaxnnError, match="max_bad_steps must be an int >= 1 or None"):
    training.fit(MODEL, MODEL.init(jax.random.key(0), (5,)), x, y, loss=LOSS, max_bad_steps=value, verbose=0)
