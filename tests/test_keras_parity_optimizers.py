"""jaxnn's optimizers against Keras 3's own, step for step, where Keras is installed.

test_optimizers.py checks that every name converges and that bad arguments raise; this checks that
`optimizers.get(name, **kwargs)` and `keras.optimizers.<Name>(**kwargs)`, given the same arguments (Keras'
names: jaxnn accepts them), the same float32 variables and the same gradients, take the same 20 steps.
The gradients mix entries from 1e-8 to 1e2 so that where epsilon sits shows. Where jaxnn (optax) computes
something else, the case stays, marked xfail(strict=True) with what differs; an `epsilon=0.0` twin shows
that epsilon's placement is then the only difference.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

from jaxnn import optimizers  # noqa: E402

keras = pytest.importorskip("keras")

# Keras' own Variable reading its value through numpy 2's __array__ protocol, once per step: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

STEPS = 20
RTOL, ATOL = 1e-5, 1e-6
SHAPES = {"kernel": (4, 3), "bias": (3,), "scale": (2, 2)}
_RNG = np.random.default_rng(0)
INIT = {k: _RNG.normal(0, 0.1, s).astype(np.float32) for k, s in SHAPES.items()}
# Each entry keeps its magnitude (log-uniform in [1e-8, 1e2]) over the steps; its value changes each step.
_MAGNITUDE = {k: 10.0 ** _RNG.uniform(-8, 2, s) for k, s in SHAPES.items()}
GRADS = [{k: (m * _RNG.normal(0, 1, m.shape)).astype(np.float32) for k, m in _MAGNITUDE.items()}
         for _ in range(STEPS)]
# A learning rate per optimizer that makes 20 steps move the variables well past the tolerance
# (Adadelta's steps are ~sqrt(epsilon) * lr).
LR = {"SGD": 0.01, "Adam": 0.01, "AdamW": 0.01, "RMSprop": 0.01, "Adagrad": 0.1, "Adadelta": 1.0,
      "Adamax": 0.01, "Nadam": 0.01, "Lion": 0.01}


class Sched:
  """A schedule by its Keras class name, built by each library."""

  def __init__(self, name, **kwargs):
    self.name, self.kwargs = name, kwargs

  def __repr__(self):
    return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.kwargs.items())})"


def _build(kwargs, make_schedule):
  return {k: make_schedule(v) if isinstance(v, Sched) else v for k, v in kwargs.items()}


def run_jaxnn(name, kwargs):
  """Variables after each step, from `optimizers.get(name, **kwargs)` and optax.apply_updates."""
  tx = optimizers.get(name, **_build(kwargs, lambda s: optimizers.schedule(s.name, **s.kwargs)))
  params = {k: np.array(v) for k, v in INIT.items()}
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for grads in GRADS:
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    out.append({k: np.asarray(v) for k, v in params.items()})
  return out


def run_keras(name, kwargs):
  """Variables after each step, from `keras.optimizers.<name>(**kwargs).apply_gradients`."""
  opt = getattr(keras.optimizers, name)(
      **_build(kwargs, lambda s: getattr(keras.optimizers.schedules, s.name)(**s.kwargs)))
  variables = {k: keras.Variable(v, name=k) for k, v in INIT.items()}
  out = []
  for grads in GRADS:
    opt.apply_gradients([(grads[k], variables[k]) for k in SHAPES])
    out.append({k: np.asarray(v.numpy()) for k, v in variables.items()})
  return out


def assert_same_steps(ours, theirs, rtol=RTOL, atol=ATOL):
  for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
    for k in SHAPES:
      np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=f"{k} after step {step + 1}")


def _case(name, marks=(), **kwargs):
  kwargs = {"learning_rate": LR[name], **kwargs}
  shown = ",".join(f"{k}={v}" for k, v in kwargs.items()
                   if k != "learning_rate" or isinstance(v, Sched)) or "defaults"
  return pytest.param(name, kwargs, marks=marks, id=f"{name}-{shown}")


def _differs(reason):
  return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


# What differs, and the largest |jaxnn - keras| / |keras| over the variables after 20 steps.
_ADAM_EPS = ("Keras adds epsilon to sqrt(v) before the bias correction, "
             "lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps), optax.adam after it, lr * m_hat / (sqrt(v_hat) + eps), "
             "so Keras' effective epsilon is eps / sqrt(1-b2^t); gradients near epsilon take O(1)-different steps")
_ADAMAX_EPS = ("Keras divides by max(b2*u, |g|) + eps, optax.adamax by u = max(b2*u, |g| + eps), which carries eps "
               "into the decayed maximum")
_NADAM = ("Keras' Nadam is Dozat's, with the momentum schedule mu_t = b1 * (1 - 0.5 * 0.96**t) and its product in the "
          "bias correction; optax.nadam is Adam with a Nesterov step and constant b1")

DEFAULT_CASES = [
    _case("SGD"),
    _case("Adam", marks=_differs(f"{_ADAM_EPS}: max rel diff 3.3 (abs 0.034) after 20 steps")),
    _case("AdamW", marks=_differs(f"{_ADAM_EPS}: max rel diff 3.3 (abs 0.034) after 20 steps")),
    _case("RMSprop"),
    _case("Adagrad"),
    _case("Adadelta"),
    _case("Adamax", marks=_differs(f"{_ADAMAX_EPS}: max rel diff 2.8e-3 (abs 2.7e-5) after 20 steps")),
    _case("Nadam", marks=_differs(f"{_NADAM}: max rel diff 7.5 (abs 0.029) after 20 steps")),
    _case("Lion"),
]

HYPERPARAMETER_CASES = [
    _case("SGD", momentum=0.9),
    _case("SGD", momentum=0.9, nesterov=True),
    _case("Adam", beta_1=0.8, beta_2=0.99, epsilon=1e-4,
          marks=_differs(f"{_ADAM_EPS}: max rel diff 2.3 (abs 0.026) after 20 steps")),
    _case("Adam", epsilon=0.0),
    _case("AdamW", weight_decay=0.1, marks=_differs(f"{_ADAM_EPS}: max rel diff 3.4 (abs 0.034) after 20 steps")),
    _case("AdamW", weight_decay=0.1, epsilon=0.0),
    _case("RMSprop", rho=0.8, epsilon=1e-4),
    _case("RMSprop", momentum=0.9),
    _case("RMSprop", centered=True),
    _case("RMSprop", momentum=0.5, centered=True, rho=0.95),
    _case("Adagrad", initial_accumulator_value=0.5, epsilon=1e-3),
    _case("Adagrad", initial_accumulator_value=0.0),
    _case("Adadelta", rho=0.8, epsilon=1e-4),
    _case("Adamax", beta_1=0.8, beta_2=0.99, epsilon=1e-3,
          marks=_differs(f"{_ADAMAX_EPS}: max rel diff 0.073 (abs 1.8e-4) after 20 steps")),
    _case("Adamax", epsilon=0.0),
    _case("Nadam", beta_1=0.8, beta_2=0.99, epsilon=1e-4,
          marks=_differs(f"{_NADAM}: max rel diff 6.8 (abs 0.017) after 20 steps")),
    _case("Lion", beta_1=0.95, beta_2=0.98),
]

OPTION_CASES = [
    _case("SGD", clipnorm=1.0),
    _case("SGD", global_clipnorm=5.0),
    _case("SGD", clipvalue=0.5),
    _case("RMSprop", clipnorm=1.0),
    _case("RMSprop", global_clipnorm=5.0),
    _case("RMSprop", clipvalue=0.5),
    _case("SGD", weight_decay=0.05),
    _case("SGD", momentum=0.9, weight_decay=0.05),
    _case("Adam", weight_decay=0.05, marks=_differs(f"{_ADAM_EPS}: max rel diff 3.4 (abs 0.034) after 20 steps")),
    _case("Adam", weight_decay=0.05, epsilon=0.0),
    _case("Lion", weight_decay=0.1),
]

_EXPONENTIAL = Sched("ExponentialDecay", initial_learning_rate=0.01, decay_steps=5, decay_rate=0.5)
SCHEDULE_CASES = [
    _case("SGD", learning_rate=_EXPONENTIAL),
    _case("SGD", learning_rate=Sched("ExponentialDecay", initial_learning_rate=0.01, decay_steps=5, decay_rate=0.5,
                                     staircase=True)),
    # Keras' velocity accumulates lr_t * g: jaxnn scales before its momentum trace (optax.sgd after it:
    # max rel diff 1.4 after 20 steps here).
    _case("SGD", learning_rate=_EXPONENTIAL, momentum=0.9),
    _case("SGD", learning_rate=_EXPONENTIAL, momentum=0.9, nesterov=True),
    # optax.rmsprop scales by the learning rate before its momentum trace, as Keras does.
    _case("RMSprop", learning_rate=_EXPONENTIAL, momentum=0.9),
    _case("RMSprop", learning_rate=Sched("CosineDecay", initial_learning_rate=0.01, decay_steps=15, alpha=0.1)),
    _case("Adagrad", learning_rate=Sched("CosineDecay", initial_learning_rate=0.1, decay_steps=30)),
    _case("Adam", learning_rate=Sched("CosineDecay", initial_learning_rate=0.01, decay_steps=15), epsilon=0.0),
]


@pytest.mark.parametrize("name, kwargs", DEFAULT_CASES + HYPERPARAMETER_CASES + OPTION_CASES + SCHEDULE_CASES)
def test_steps_match_keras(name, kwargs):
  ours, theirs = run_jaxnn(name, kwargs), run_keras(name, kwargs)
  assert_same_steps(ours, theirs)


_KERAS_NAMES = {"b1": "beta_1", "b2": "beta_2", "eps": "epsilon"}


@pytest.mark.parametrize("name", list(LR))
def test_defaults_are_keras_defaults(name):
  ours = optimizers.OptimizerConfig(name).resolved()
  theirs = getattr(keras.optimizers, name)().get_config()
  for key, value in ours.items():
    expected = theirs[_KERAS_NAMES.get(key, key)]
    if isinstance(value, float):  # Keras keeps the learning rate in a float32 variable.
      assert value == pytest.approx(expected, rel=1e-7), key
    else:
      assert value == expected, key


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adagrad", "Adadelta", "Lion"])
def test_comparison_sees_a_tenth_of_a_percent_in_the_learning_rate(name):
  """The tolerance and learning rates above are tight enough to catch a small error in the step."""
  theirs = run_keras(name, {"learning_rate": LR[name]})
  assert_same_steps(run_jaxnn(name, {"learning_rate": LR[name]}), theirs)
  with pytest.raises(AssertionError):
    assert_same_steps(run_jaxnn(name, {"learning_rate": LR[name] * 1.001}), theirs)
