"""Tests for jaxnn.optimizers: convergence of every name, schedules, clipping, decay, config."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import optimizers
from jaxnn.errors import JaxnnError

# A well-conditioned quadratic (eigenvalues ~0.81, 1.36, 2.33) with its minimum 0 at W_STAR.
H = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.5, 0.3], [0.0, 0.3, 1.0]])
W_STAR = jnp.array([1.0, -2.0, 0.5])


def _loss(w):
  d = w - W_STAR
  return 0.5 * d @ H @ d


def _final_loss(tx, steps):
  """Loss after `steps` full-gradient updates from 0, compiled as one scan."""

  def body(carry, _):
    w, state = carry
    updates, state = tx.update(jax.grad(_loss)(w), state, w)
    return (optax.apply_updates(w, updates), state), None

  w0 = jnp.zeros(3)
  (w, _), _ = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
  return _loss(w)


def _cosine(peak, steps):
  return optimizers.schedule("cosine_decay", initial_learning_rate=peak, decay_steps=steps)


# Learning rates chosen per optimizer: Keras' defaults (1e-3 for most) need thousands of steps
# here. rmsprop and lion take steps of about lr in size whatever the gradient, so a constant lr
# leaves them oscillating at that scale: they get a cosine decay to 0. adadelta's step starts
# near sqrt(eps); eps 1e-4 instead of Keras' 1e-7 lets it get going within the budget. adamw
# keeps Keras' default weight_decay 0.004, which moves its fixed point slightly off W_STAR.
STEPS = 300
CONVERGENCE = {
    "sgd": ({"learning_rate": 0.3}, 1e-6),
    "adam": ({"learning_rate": 0.05}, 1e-6),
    "adamw": ({"learning_rate": 0.05}, 1e-4),
    "rmsprop": ({"learning_rate": _cosine(0.05, STEPS)}, 1e-6),
    "adagrad": ({"learning_rate": 0.5}, 1e-6),
    "adadelta": ({"learning_rate": 1.0, "eps": 1e-4}, 1e-6),
    "adamax": ({"learning_rate": 0.05}, 1e-6),
    "nadam": ({"learning_rate": 0.05}, 1e-6),
    "lion": ({"learning_rate": _cosine(0.05, STEPS)}, 1e-6),
}


def test_convergence_table_covers_every_name():
  assert sorted(CONVERGENCE) == optimizers.names()


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_every_optimizer_converges_on_a_quadratic(name):
  kwargs, tol = CONVERGENCE[name]
  tx = optimizers.get(name, **kwargs)
  initial = float(_loss(jnp.zeros(3)))
  final = float(jax.jit(functools.partial(_final_loss, tx, STEPS))())
  assert final < tol, f"{name}: loss {initial:.3g} -> {final:.3g} after {STEPS} steps, expected < {tol}"


def test_keras_defaults_decrease_the_loss():
  # All names at Keras' defaults, in one compiled function: the loss goes down within 50 steps.
  txs = {name: optimizers.get(name) for name in optimizers.names()}
  finals = jax.jit(lambda: {name: _final_loss(tx, 50) for name, tx in txs.items()})()
  initial = float(_loss(jnp.zeros(3)))
  for name, final in finals.items():
    assert float(final) < initial, name


def test_keras_default_hyperparameters():
  expected_lr = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001, "adagrad": 0.001,
                 "adadelta": 0.001, "adamax": 0.001, "nadam": 0.001, "lion": 0.001}
  for name, lr in expected_lr.items():
    assert optimizers.serialize(optimizers.OptimizerConfig(name))["learning_rate"] == lr
  assert optimizers.serialize(optimizers.OptimizerConfig("sgd")) == {
      "name": "sgd", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False}
  assert optimizers.serialize(optimizers.OptimizerConfig("adamw")) == {
      "name": "adamw", "learning_rate": 0.001, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "weight_decay": 0.004}
  assert optimizers.serialize(optimizers.OptimizerConfig("rmsprop"))["rho"] == 0.9
  assert optimizers.serialize(optimizers.OptimizerConfig("adadelta"))["rho"] == 0.95
  assert optimizers.serialize(optimizers.OptimizerConfig("adagrad"))["initial_accumulator_value"] == 0.1
  assert optimizers.serialize(optimizers.OptimizerConfig("lion"))["b2"] == 0.99
  assert "weight_decay" not in optimizers.serialize(optimizers.OptimizerConfig("lion"))


def _updates(tx, grads, params, steps=1):
  """The updates of the last of `steps` calls with the same gradients."""
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
  return updates, state


def test_single_steps_by_hand():
  w, g = jnp.array([1.0]), jnp.array([2.0])
  # sgd with momentum 0.9: velocity 2 then 0.9 * 2 + 2 = 3.8; update -lr * velocity.
  u, _ = _updates(optimizers.get("sgd", 0.1, momentum=0.9), g, w, steps=2)
  np.testing.assert_allclose(u, [-0.38], rtol=1e-6)
  # Nesterov: -lr * (g + momentum * velocity) = -0.1 * (2 + 0.9 * 3.8).
  u, _ = _updates(optimizers.get("sgd", 0.1, momentum=0.9, nesterov=True), g, w, steps=2)
  np.testing.assert_allclose(u, [-0.542], rtol=1e-6)
  # rmsprop (rho 0.9): v = 0.1 * g**2 = 0.4; update -lr * g / sqrt(v + eps).
  u, _ = _updates(optimizers.get("rmsprop", 0.01), g, w)
  np.testing.assert_allclose(u, [-0.01 * 2.0 / math.sqrt(0.4 + 1e-7)], rtol=1e-6)
  # adagrad: accumulator 0.1 + g**2 = 4.1; update -lr * g / sqrt(4.1 + eps).
  u, _ = _updates(optimizers.get("adagrad", 0.1), g, w)
  np.testing.assert_allclose(u, [-0.1 * 2.0 / math.sqrt(4.1 + 1e-7)], rtol=1e-6)
  # adam's first step is -lr * sign(g) (bias-corrected m / sqrt(v) = g / |g|).
  u, _ = _updates(optimizers.get("adam", 0.1), g, w)
  np.testing.assert_allclose(u, [-0.1], rtol=1e-5)


def test_schedules_match_hand_values():
  def at(sched, steps):
    return [float(sched(s)) for s in steps]

  sched = optimizers.schedule("exponential_decay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)
  np.testing.assert_allclose(at(sched, [0, 5, 10, 20]), [0.1, 0.1 * 0.5**0.5, 0.05, 0.025], rtol=1e-6)
  sched = optimizers.schedule(
      "exponential_decay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True)
  np.testing.assert_allclose(at(sched, [9, 10, 19, 20]), [0.1, 0.05, 0.05, 0.025], rtol=1e-6)

  # Keras' CosineDecay: initial * ((1 - alpha) * 0.5 * (1 + cos(pi * step / decay_steps)) + alpha).
  sched = optimizers.schedule("cosine_decay", initial_learning_rate=0.1, decay_steps=20, alpha=0.1)
  np.testing.assert_allclose(at(sched, [0, 10, 20, 30]), [0.1, 0.055, 0.01, 0.01], rtol=1e-5)
  # With warmup: linear 0 -> 0.2 over 10 steps, then 20 steps of cosine down to 0.2 * alpha.
  sched = optimizers.schedule("CosineDecay", initial_learning_rate=0.0, decay_steps=20, alpha=0.1,
                              warmup_target=0.2, warmup_steps=10)
  np.testing.assert_allclose(at(sched, [0, 5, 10, 20, 30, 40]), [0.0, 0.1, 0.2, 0.11, 0.02, 0.02],
                             rtol=1e-5, atol=1e-8)
  sched = optimizers.schedule("warmup_cosine_decay", peak_learning_rate=1.0, warmup_steps=10, decay_steps=10)
  np.testing.assert_allclose(at(sched, [0, 5, 10, 15, 20]), [0.0, 0.5, 1.0, 0.5, 0.0], rtol=1e-5, atol=1e-7)

  # Keras' PiecewiseConstantDecay: a boundary step still gets the earlier value.
  sched = optimizers.schedule("piecewise_constant", boundaries=[10, 20], values=[1.0, 0.5, 0.0])
  np.testing.assert_allclose(at(sched, [0, 10, 11, 20, 21, 100]), [1.0, 1.0, 0.5, 0.5, 0.0, 0.0])

  sched = optimizers.schedule("polynomial_decay", initial_learning_rate=0.1, decay_steps=20,
                              end_learning_rate=0.01, power=2.0)
  np.testing.assert_allclose(at(sched, [0, 10, 20, 30]), [0.1, 0.09 * 0.25 + 0.01, 0.01, 0.01], rtol=1e-6)
  sched = optimizers.schedule("linear_decay", initial_learning_rate=0.1, decay_steps=10)
  np.testing.assert_allclose(at(sched, [0, 5, 10, 15]), [0.1, 0.05, 0.0, 0.0], rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(at(optimizers.schedule("constant", learning_rate=0.3), [0, 99]), [0.3, 0.3])


def test_schedule_drives_the_learning_rate_in_the_state():
  # learning_rate_of reports the rate of the latest update: schedule(0), schedule(1), ...
  # Keras' boundaries: 0.3 while step <= 1, 0.2 at step 2, then 0.1.
  sched = optimizers.schedule("piecewise_constant", boundaries=[1, 2], values=[0.3, 0.2, 0.1])
  tx = optimizers.get("sgd", sched)
  w = jnp.array([1.0])

  def body(state, _):
    updates, state = tx.update(jnp.array([1.0]), state, w)
    return state, (optimizers.learning_rate_of(state), updates[0])

  _, (lrs, updates) = jax.jit(lambda: jax.lax.scan(body, tx.init(w), None, length=4))()
  np.testing.assert_allclose(lrs, [0.3, 0.3, 0.2, 0.1], rtol=1e-6)
  np.testing.assert_allclose(updates, [-0.3, -0.3, -0.2, -0.1], rtol=1e-6)


def test_schedule_is_hashable_config():
  a = optimizers.schedule("piecewise_constant", boundaries=[10], values=[1.0, 0.1])
  b = optimizers.schedule("PiecewiseConstantDecay", boundaries=(10,), values=(1.0, 0.1))
  assert a == b and hash(a) == hash(b)
  assert optimizers.serialize(a) == {"name": "piecewise_constant", "boundaries": [10], "values": [1.0, 0.1]}
  config = optimizers.OptimizerConfig("sgd", schedule={"name": "piecewise_constant", "boundaries": [10],
                                                        "values": [1.0, 0.1]})
  assert config.schedule == a
  assert hash(config) == hash(optimizers.OptimizerConfig("sgd", schedule=a))


def test_schedule_errors():
  with pytest.raises(JaxnnError, match=r"schedule: expected one of \['constant', 'cosine_decay', .*\]; got 'cosine'"):
    optimizers.schedule("cosine", initial_learning_rate=0.1)
  with pytest.raises(JaxnnError, match=r"schedule 'exponential_decay': expected arguments among .*; got \['decay'\]"):
    optimizers.schedule("exponential_decay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, decay=1)
  with pytest.raises(JaxnnError, match=r"schedule 'cosine_decay': missing required arguments \['decay_steps'\]"):
    optimizers.schedule("cosine_decay", initial_learning_rate=0.1)
  with pytest.raises(JaxnnError, match=r"schedule 'cosine_decay' decay_steps: expected an int >= 1; got 0"):
    optimizers.schedule("cosine_decay", initial_learning_rate=0.1, decay_steps=0)
  with pytest.raises(JaxnnError, match=r"schedule 'cosine_decay' warmup_steps: needs warmup_target"):
    optimizers.schedule("cosine_decay", initial_learning_rate=0.1, decay_steps=10, warmup_steps=5)
  with pytest.raises(JaxnnError, match=r"values: expected len\(boundaries\) \+ 1 = 3 values; got 2"):
    optimizers.schedule("piecewise_constant", boundaries=[1, 2], values=[1.0, 0.5])
  with pytest.raises(JaxnnError, match=r"boundaries: expected strictly increasing ints; got \[5, 2\]"):
    optimizers.schedule("piecewise_constant", boundaries=[5, 2], values=[1.0, 0.5, 0.1])
  with pytest.raises(JaxnnError, match=r"schedule 'polynomial_decay' cycle: optax has no cycling"):
    optimizers.schedule("polynomial_decay", initial_learning_rate=0.1, decay_steps=10, cycle=True)


GRADS = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}  # norms 5 and 12, global norm 13.
PARAMS = {"a": jnp.zeros(2), "b": jnp.zeros(1)}


def test_global_clipnorm_clips_the_global_norm():
  u, _ = _updates(optimizers.get("sgd", 1.0, global_clipnorm=1.0), GRADS, PARAMS)
  np.testing.assert_allclose(optax.tree.norm(u), 1.0, rtol=1e-6)
  np.testing.assert_allclose(u["a"], [-3.0 / 13, -4.0 / 13], rtol=1e-6)
  u, _ = _updates(optimizers.get("sgd", 1.0, global_clipnorm=100.0), GRADS, PARAMS)
  np.testing.assert_allclose(u["b"], [-12.0], rtol=1e-6)


def test_clipnorm_clips_each_array_on_its_own():
  # Keras' clipnorm: each gradient array is clipped to the bound separately.
  u, _ = _updates(optimizers.get("sgd", 1.0, clipnorm=1.0), GRADS, PARAMS)
  np.testing.assert_allclose(u["a"], [-0.6, -0.8], rtol=1e-6)
  np.testing.assert_allclose(u["b"], [-1.0], rtol=1e-6)
  # Arrays under the bound are left alone.
  u, _ = _updates(optimizers.get("sgd", 1.0, clipnorm=10.0), GRADS, PARAMS)
  np.testing.assert_allclose(u["a"], [-3.0, -4.0], rtol=1e-6)
  np.testing.assert_allclose(u["b"], [-10.0], rtol=1e-6)


def test_clipvalue_clips_each_entry():
  grads = {"a": jnp.array([3.0, -4.0]), "b": jnp.array([1.0])}
  u, _ = _updates(optimizers.get("sgd", 1.0, clipvalue=2.0), grads, PARAMS)
  np.testing.assert_allclose(u["a"], [-2.0, 2.0])
  np.testing.assert_allclose(u["b"], [-1.0])


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_weight_decay_is_decoupled_for_every_optimizer(name):
  # With zero gradients every optimizer's own step is 0, so w <- w - lr * wd * w exactly.
  w = jnp.array([1.0, -2.0])
  u, _ = _updates(optimizers.get(name, 0.1, weight_decay=0.5), jnp.zeros(2), w)
  np.testing.assert_allclose(optax.apply_updates(w, u), w * (1 - 0.1 * 0.5), rtol=1e-6)


def test_weight_decay_defaults_and_sum_with_the_step():
  w = jnp.array([1.0, -2.0])
  u, _ = _updates(optimizers.get("adamw", 0.1), jnp.zeros(2), w)  # Keras' default 0.004.
  np.testing.assert_allclose(u, -0.1 * 0.004 * w, rtol=1e-5)
  u, state = _updates(optimizers.get("sgd", 0.1), jnp.zeros(2), w)  # No decay by default.
  np.testing.assert_array_equal(u, [0.0, 0.0])
  assert "weight_decay" not in state.hyperparams
  # sgd: -lr * g - lr * wd * w; the decay uses the weights, not the gradient.
  u, _ = _updates(optimizers.get("sgd", 0.1, weight_decay=0.5), jnp.array([1.0, 1.0]), w)
  np.testing.assert_allclose(u, [-0.1 - 0.05, -0.1 + 0.1], rtol=1e-6)


def test_hyperparameters_live_in_the_state():
  w = jnp.zeros(2)
  state = optimizers.get("adam", 0.01).init(w)
  np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.01)
  np.testing.assert_allclose(optimizers.learning_rate_of(state), 0.01)
  assert {"learning_rate", "b1", "b2", "eps"} <= set(state.hyperparams)
  state = optimizers.get("sgd", 0.1, momentum=0.9, clipnorm=1.0).init(w)
  assert {"learning_rate", "momentum", "clipnorm"} == set(state.hyperparams)
  # Found when nested inside other optax states; None when absent.
  np.testing.assert_allclose(optimizers.learning_rate_of((optax.EmptyState(), state)), 0.1)
  assert optimizers.learning_rate_of(optax.sgd(0.1).init(w)) is None
  # Changing the learning rate in the state changes the step.
  tx = optimizers.get("sgd", 0.1)
  state = tx.init(w)
  state.hyperparams["learning_rate"] = jnp.asarray(0.5)
  u, _ = tx.update(jnp.ones(2), state, w)
  np.testing.assert_allclose(u, [-0.5, -0.5])


def test_learning_rate_sweep_under_vmap():
  w, g = jnp.zeros(2), jnp.array([1.0, -2.0])
  lrs = jnp.array([0.1, 0.01, 0.5])

  @jax.jit
  @jax.vmap
  def step(lr):
    tx = optimizers.get("sgd", lr, momentum=0.9)  # A traced learning rate.
    updates, state = tx.update(g, tx.init(w), w)
    return updates, optimizers.learning_rate_of(state)

  updates, seen = step(lrs)
  np.testing.assert_allclose(updates, -lrs[:, None] * g[None, :], rtol=1e-6)
  np.testing.assert_allclose(seen, lrs, rtol=1e-6)


def test_get_config_dict_and_passthrough():
  config = optimizers.OptimizerConfig("SGD", 0.1, clipnorm=1.0, kwargs={"momentum": 0.9})
  assert config.name == "sgd" and config.kwargs == (("momentum", 0.9),)
  assert config == optimizers.OptimizerConfig("sgd", 0.1, clipnorm=1.0, kwargs=(("momentum", 0.9),))
  assert hash(config) == hash(optimizers.OptimizerConfig("sgd", 0.1, clipnorm=1.0, kwargs={"momentum": 0.9}))
  from_config, _ = _updates(optimizers.make(config), GRADS, PARAMS, steps=2)
  from_get, _ = _updates(optimizers.get("sgd", 0.1, clipnorm=1.0, momentum=0.9), GRADS, PARAMS, steps=2)
  from_dict, _ = _updates(optimizers.get(optimizers.serialize(config)), GRADS, PARAMS, steps=2)
  from_obj, _ = _updates(optimizers.get(config), GRADS, PARAMS, steps=2)
  for other in (from_get, from_dict, from_obj):
    jax.tree.map(np.testing.assert_array_equal, other, from_config)
  tx = optax.adam(1e-3)
  assert optimizers.get(tx) is tx
  # Keras' argument names are synonyms of optax's.
  assert optimizers.OptimizerConfig("adam", kwargs={"beta_1": 0.8, "epsilon": 1e-6}).kwargs == (
      ("b1", 0.8), ("eps", 1e-6))
  # A schedule round-trips through serialize too.
  config = optimizers.OptimizerConfig("adam", _cosine(0.1, 100))
  assert optimizers.serialize(config)["learning_rate"] == {
      "name": "cosine_decay", "decay_steps": 100, "initial_learning_rate": 0.1}
  state = optimizers.get(optimizers.serialize(config)).init(jnp.zeros(1))
  np.testing.assert_allclose(optimizers.learning_rate_of(state), 0.1)


def test_errors_name_the_argument():
  with pytest.raises(JaxnnError, match=r"optimizer: expected one of \['adadelta', 'adagrad', 'adam', 'adamax', "
                                       r"'adamw', 'lion', 'nadam', 'rmsprop', 'sgd'\]; got 'adamz'"):
    optimizers.get("adamz")
  with pytest.raises(JaxnnError, match=r"optimizer 'sgd' learning_rate: expected a number in \[0.0, inf\); got -0.1"):
    optimizers.get("sgd", -0.1)
  with pytest.raises(JaxnnError, match=r"optimizer 'sgd': expected arguments among \[.*'momentum', 'nesterov'.*\]; "
                                       r"got unknown \['b1'\]"):
    optimizers.get("sgd", b1=0.9)
  with pytest.raises(JaxnnError, match=r"optimizer 'adam' b2: expected a number in \[0.0, 1.0\); got 1.0"):
    optimizers.get("adam", b2=1.0)
  with pytest.raises(JaxnnError, match=r"optimizer 'sgd' nesterov: expected a bool; got 1"):
    optimizers.get("sgd", nesterov=1)
  with pytest.raises(JaxnnError, match=r"optimizer 'sgd' clipnorm: expected a number in \(0.0, inf\); got 0.0"):
    optimizers.get("sgd", clipnorm=0.0)
  with pytest.raises(JaxnnError, match=r"optimizer 'adam' weight_decay: expected a finite number; got nan"):
    optimizers.get("adam", weight_decay=float("nan"))
  with pytest.raises(JaxnnError, match=r"optimizer 'adam': expected at most one of \['clipnorm', 'global_clipnorm', "
                                       r"'clipvalue'\], as in Keras; got \{'clipnorm': 1.0, 'clipvalue': 0.5\}"):
    optimizers.get("adam", clipnorm=1.0, clipvalue=0.5)
  with pytest.raises(JaxnnError, match=r"optimizer 'adam': expected at most one of learning_rate and schedule"):
    optimizers.OptimizerConfig("adam", 0.1, schedule=_cosine(0.1, 10))
  with pytest.raises(JaxnnError, match=r"optimizer 'adam': expected each argument once"):
    optimizers.get("adam", b1=0.9, beta_1=0.9)
  with pytest.raises(JaxnnError, match=r"optimizer: expected no extra arguments with a OptimizerConfig; got \['learning_rate'\]"):
    optimizers.get(optimizers.OptimizerConfig("adam"), 0.1)
  with pytest.raises(JaxnnError, match=r"optimizer: expected a name, a dict, an OptimizerConfig or an optax transformation; got int 3"):
    optimizers.get(3)
  with pytest.raises(JaxnnError, match=r"make config: expected an OptimizerConfig; got str 'adam'"):
    optimizers.make("adam")
