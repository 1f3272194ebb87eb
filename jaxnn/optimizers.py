"""Optimizers by Keras name, built from optax: name / config -> `optax.GradientTransformation`.

One function (`make`) builds clipping + optimizer + weight decay from a frozen
`OptimizerConfig`, with Keras' default hyperparameters. Everything is wrapped
in `optax.inject_hyperparams`, so the learning rate (and every other numeric
hyperparameter) lives in the optimizer state: `opt_state.hyperparams` can be
read for logging (`learning_rate_of`) or replaced by traced values in sweeps.

Checked step by step against Keras 3 (jax backend; tests/test_keras_parity_optimizers.py,
20 steps, gradients from 1e-8 to 1e2): sgd (momentum, nesterov), rmsprop (momentum,
centered, also with a schedule), adagrad, adadelta and lion agree to float32 rounding,
and so do clipnorm, global_clipnorm, clipvalue, weight_decay and the schedules. How,
and where they differ (the test keeps each as a strict xfail with its measured size):

* adam / adamw: Keras adds `epsilon` to sqrt(v) before the bias correction, optax
  after it, so Keras' effective epsilon is eps / sqrt(1 - b2**t) (3.2e-6 at step 1
  for eps = 1e-7, falling to eps over thousands of steps). Entries whose sqrt(v_hat)
  is near that take steps different at O(1); for gradients well above it the steps
  agree to ~1e-6 relative. With epsilon = 0 they agree to rounding.
* adamax: Keras divides by max(b2 * u, |g|) + eps, optax keeps u = max(b2 * u,
  |g| + eps), carrying eps into the decayed maximum: a relative difference of the
  order of eps / |g| (0.3 % for eps = 1e-3 on these gradients); none at epsilon = 0.
* nadam: Keras implements Dozat's momentum schedule (mu_t = b1 (1 - 0.5 * 0.96**t),
  its running product in the bias correction); optax.nadam is Adam with a Nesterov
  step. Same family, not the same numbers; optax has no Keras-style Nadam to map onto.
* sgd with momentum is built as Keras' (`_keras_sgd`: scale by the learning rate,
  then the momentum trace), not as optax.sgd (trace, then scale), which differs once a
  schedule moves the learning rate. Momentum 0 builds no momentum buffer, as in Keras.
* `weight_decay`: Keras 3 decays every optimizer's weights decoupled from the
  gradient, w <- w - lr * wd * w. adamw and lion do this inside optax; for the
  others jaxnn chains `optax.add_decayed_weights(-lr * wd)` after the step.
* `clipnorm`: Keras clips each gradient array to the norm on its own; optax
  has no per-array norm clip (`clip_by_block_rms` bounds the RMS, i.e. a
  different norm per array size), so jaxnn applies `optax.clip_by_global_norm`
  to each array separately. As in Keras, at most one of the three clips is set.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from jaxnn.errors import JaxnnError
from jaxnn.schedules import Schedule, schedule, schedule_names  # noqa: F401  (re-exported)

ScheduleFn = Callable[[jax.Array | int], jax.Array | float]
LearningRate = float | jax.Array | ScheduleFn

# ---------------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Spec:
  """How one Keras optimizer maps onto an optax alias."""

  alias: Callable[..., optax.GradientTransformation]
  learning_rate: float  # Keras' default.
  defaults: Mapping[str, Any]  # Keras' defaults, under jaxnn's argument names.
  renames: Mapping[str, str] = dataclasses.field(default_factory=dict)  # jaxnn name -> optax name.
  weight_decay: float | None = None  # Keras' default.
  decay_in_alias: bool = False  # The optax alias applies decoupled, lr-scaled decay itself.


def _keras_sgd(learning_rate: Any, momentum: Any = None, nesterov: bool = False) -> optax.GradientTransformation:
  """Keras' SGD from optax's parts: the gradient is scaled by the learning rate *before* the momentum trace,
  so the velocity accumulates lr_t * g as Keras' does (v = momentum * v - lr_t * g; nesterov steps
  momentum * v - lr_t * g). optax.sgd traces g and scales the sum by the current lr, which differs from
  Keras once a schedule moves the learning rate. Without momentum it is optax.sgd."""
  if momentum is None:
    return optax.sgd(learning_rate)
  return optax.chain(optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum, nesterov=nesterov))


_ADAM_DEFAULTS = {"b1": 0.9, "b2": 0.999, "eps": 1e-7}
_SPECS: dict[str, _Spec] = {
    "adadelta": _Spec(optax.adadelta, 0.001, {"rho": 0.95, "eps": 1e-7}),
    "adagrad": _Spec(optax.adagrad, 0.001, {"initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adam": _Spec(optax.adam, 0.001, _ADAM_DEFAULTS),
    "adamax": _Spec(optax.adamax, 0.001, _ADAM_DEFAULTS),
    "adamw": _Spec(optax.adamw, 0.001, _ADAM_DEFAULTS, weight_decay=0.004, decay_in_alias=True),
    "lion": _Spec(optax.lion, 0.001, {"b1": 0.9, "b2": 0.99}, decay_in_alias=True),
    "nadam": _Spec(optax.nadam, 0.001, _ADAM_DEFAULTS),
    "rmsprop": _Spec(
        optax.rmsprop,
        0.001,
        {"rho": 0.9, "eps": 1e-7, "momentum": 0.0, "centered": False},
        renames={"rho": "decay"},
    ),
    "sgd": _Spec(_keras_sgd, 0.01, {"momentum": 0.0, "nesterov": False}),
}
_CLIPS = ("clipnorm", "global_clipnorm", "clipvalue")
# Keras' argument names, accepted as synonyms.
_KWARG_ALIASES = {"beta_1": "b1", "beta_2": "b2", "epsilon": "eps"}
# (low, high, low_inclusive, high_inclusive) for python-number hyperparameters; arrays
# (traced values in sweeps) are not checked.
_BOUNDS = {
    "learning_rate": (0.0, math.inf, True, False),
    "weight_decay": (0.0, math.inf, True, False),
    "clipnorm": (0.0, math.inf, False, False),
    "global_clipnorm": (0.0, math.inf, False, False),
    "clipvalue": (0.0, math.inf, False, False),
    "momentum": (0.0, 1.0, True, True),
    "rho": (0.0, 1.0, True, True),
    "b1": (0.0, 1.0, True, False),
    "b2": (0.0, 1.0, True, False),
    "eps": (0.0, math.inf, True, False),
    "initial_accumulator_value": (0.0, math.inf, True, False),
}


def names() -> list[str]:
  """Sorted optimizer names accepted by `get` and `OptimizerConfig`."""
  return sorted(_SPECS)


def _check_value(where: str, key: str, value: Any, default: Any) -> None:
  """Raises JaxnnError if a python value is of the wrong kind or out of bounds."""
  if isinstance(default, bool):
    if not isinstance(value, bool):
      raise JaxnnError(f"{where} {key}: expected a bool; got {value!r}")
    return
  if isinstance(value, (jax.Array, np.ndarray)) or (key == "learning_rate" and callable(value)):
    return
  if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
    raise JaxnnError(f"{where} {key}: expected a finite number; got {value!r}")
  low, high, low_in, high_in = _BOUNDS[key]
  if not ((low <= value if low_in else low < value) and (value <= high if high_in else value < high)):
    interval = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
    raise JaxnnError(f"{where} {key}: expected a number in {interval}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Everything that defines an optimizer, as hashable static config.

  Attributes:
    name: an optimizer name (see `names()`); Keras class names ("RMSprop") are accepted.
    learning_rate: a number, a `Schedule` or a callable `step -> lr`; None for Keras' default.
    schedule: alternatively, the schedule (a `Schedule`, callable, or a dict
      {"name": ..., **kwargs} for `schedule`); at most one of learning_rate and schedule.
    clipnorm: clip each gradient array to this L2 norm (Keras' clipnorm).
    global_clipnorm: clip all gradients together to this global L2 norm.
    clipvalue: clip each gradient entry to [-clipvalue, clipvalue]. At most one clip is set, as in Keras.
    weight_decay: decoupled decay w <- w - lr * weight_decay * w; None for Keras' default
      (0.004 for adamw, none otherwise).
    kwargs: optimizer-specific arguments as a dict or (key, value) pairs, stored as sorted
      pairs: momentum, nesterov (sgd); b1, b2, eps (adam family; Keras' beta_1, beta_2,
      epsilon also accepted); rho, eps, momentum, centered (rmsprop); rho, eps (adadelta);
      initial_accumulator_value, eps (adagrad); b1, b2 (lion).
  """

  name: str = "adam"
  learning_rate: LearningRate | None = None
  schedule: ScheduleFn | Mapping[str, Any] | None = None
  clipnorm: float | None = None
  global_clipnorm: float | None = None
  clipvalue: float | None = None
  weight_decay: float | None = None
  kwargs: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()

  def __post_init__(self):
    if not isinstance(self.name, str) or self.name.lower() not in _SPECS:
      raise JaxnnError(f"optimizer: expected one of {names()}; got {self.name!r}")
    name = self.name.lower()
    object.__setattr__(self, "name", name)
    where = f"optimizer {name!r}"
    spec = _SPECS[name]

    kwargs = dict(self.kwargs)
    renamed = {_KWARG_ALIASES.get(k, k): v for k, v in kwargs.items()}
    if len(renamed) != len(kwargs):
      raise JaxnnError(f"{where}: expected each argument once; got both Keras and optax names in {sorted(kwargs)}")
    unknown = sorted(set(renamed) - set(spec.defaults))
    if unknown:
      valid = sorted([*spec.defaults, *_CLIPS, "learning_rate", "schedule", "weight_decay"])
      raise JaxnnError(f"{where}: expected arguments among {valid}; got unknown {unknown}")
    for key, value in renamed.items():
      _check_value(where, key, value, spec.defaults[key])
    object.__setattr__(self, "kwargs", tuple(sorted(renamed.items())))

    if isinstance(self.schedule, Mapping):
      config = dict(self.schedule)
      object.__setattr__(self, "schedule", schedule(config.pop("name", None), **config))
    if self.schedule is not None:
      if self.learning_rate is not None:
        raise JaxnnError(
            f"{where}: expected at most one of learning_rate and schedule; "
            f"got learning_rate={self.learning_rate!r}, schedule={self.schedule!r}"
        )
      if not callable(self.schedule):
        raise JaxnnError(f"{where} schedule: expected a Schedule, a callable or a dict; got {self.schedule!r}")
    if self.learning_rate is not None:
      _check_value(where, "learning_rate", self.learning_rate, None)
    set_clips = {k: getattr(self, k) for k in _CLIPS if getattr(self, k) is not None}
    if len(set_clips) > 1:
      raise JaxnnError(f"{where}: expected at most one of {list(_CLIPS)}, as in Keras; got {set_clips}")
    for key, value in set_clips.items():
      _check_value(where, key, value, None)
    if self.weight_decay is not None:
      _check_value(where, "weight_decay", self.weight_decay, None)

  def resolved(self) -> dict[str, Any]:
    """All arguments `make` passes on, Keras defaults filled in."""
    spec = _SPECS[self.name]
    learning_rate = self.schedule if self.schedule is not None else self.learning_rate
    weight_decay = spec.weight_decay if self.weight_decay is None else self.weight_decay
    return {
        "learning_rate": spec.learning_rate if learning_rate is None else learning_rate,
        **spec.defaults,
        **dict(self.kwargs),
        "weight_decay": weight_decay,
        **{k: getattr(self, k) for k in _CLIPS},
    }


def _clip_by_norm_per_array(max_norm: float | jax.Array) -> optax.GradientTransformation:
  """Keras' clipnorm: optax's global-norm clip applied to each gradient array on its own."""
  clip = optax.clip_by_global_norm(max_norm)

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda g: clip.update(g, state)[0], updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def _factory(name: str) -> Callable[..., optax.GradientTransformation]:
  """The inner factory for `optax.inject_hyperparams`: clip, then optimizer, then decay."""
  spec = _SPECS[name]

  def build(**hp: Any) -> optax.GradientTransformation:
    learning_rate, weight_decay = hp["learning_rate"], hp["weight_decay"]
    core = {spec.renames.get(k, k): hp[k] for k in spec.defaults}
    if spec.decay_in_alias:
      tx = spec.alias(learning_rate, weight_decay=0.0 if weight_decay is None else weight_decay, **core)
    else:
      tx = spec.alias(learning_rate, **core)
    parts = []
    if hp["clipnorm"] is not None:
      parts.append(_clip_by_norm_per_array(hp["clipnorm"]))
    if hp["global_clipnorm"] is not None:
      parts.append(optax.clip_by_global_norm(hp["global_clipnorm"]))
    if hp["clipvalue"] is not None:
      parts.append(optax.clip(hp["clipvalue"]))
    parts.append(tx)
    if weight_decay is not None and not spec.decay_in_alias:
      # Keras 3's decoupled decay, w <- w - lr * wd * w; updates are added to params, hence the sign.
      parts.append(optax.add_decayed_weights(-learning_rate * weight_decay))
    return optax.chain(*parts) if len(parts) > 1 else tx

  # inject_hyperparams reads the signature to split numeric hyperparameters (moved into the
  # state) from static ones (bools, None); **hp alone would hide them all.
  keys = ["learning_rate", *spec.defaults, "weight_decay", *_CLIPS]
  build.__signature__ = inspect.Signature(
      [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in keys]
  )
  return build


def make(config: OptimizerConfig) -> optax.GradientTransformationExtraArgs:
  """Builds the optimizer a config describes.

  Args:
    config: the optimizer's name and hyperparameters.

  Returns:
    An optax transformation from `optax.inject_hyperparams`: its state holds
    the current learning rate as `opt_state.hyperparams["learning_rate"]`. Equal configs give the same
    object, so a train state built from it keeps the same structure and compiled programs are reused.
  """
  if not isinstance(config, OptimizerConfig):
    raise JaxnnError(f"make config: expected an OptimizerConfig; got {type(config).__name__} {config!r}")
  try:
    hash(config)
  except TypeError:  # a traced hyperparameter (a vmapped sweep): build it fresh
    return _make(config)
  return _make_cached(config)


def _make(config: OptimizerConfig) -> optax.GradientTransformationExtraArgs:
  hp = config.resolved()
  # Zero momentum or decay means none at all: no momentum buffer, no decay term, as in Keras.
  for key in ("momentum", "weight_decay"):
    if isinstance(hp.get(key), numbers.Real) and hp[key] == 0:
      hp[key] = None
  return optax.inject_hyperparams(_factory(config.name))(**hp)


_make_cached = functools.lru_cache(maxsize=256)(_make)


def get(
    identifier: str | Mapping[str, Any] | OptimizerConfig | optax.GradientTransformation,
    learning_rate: LearningRate | None = None,
    **kwargs: Any,
) -> optax.GradientTransformation:
  """Resolves an optimizer.

  Args:
    identifier: a name ("adam", "SGD"), a dict {"name": ..., **arguments} as written
      by `serialize`, an `OptimizerConfig`, or an optax transformation (returned as is).
    learning_rate: a number, a `Schedule` or a callable; None for Keras' default.
    **kwargs: `OptimizerConfig` fields (schedule, clipnorm, global_clipnorm, clipvalue,
      weight_decay) and optimizer-specific arguments (momentum, b1, rho, ...).

  Returns:
    An optax transformation (see `make`).

  Raises:
    JaxnnError: unknown name, unknown or bad argument.
  """
  if isinstance(identifier, (OptimizerConfig, optax.GradientTransformation)):
    if learning_rate is not None or kwargs:
      given = sorted([*kwargs, *(["learning_rate"] if learning_rate is not None else [])])
      raise JaxnnError(
          f"optimizer: expected no extra arguments with a {type(identifier).__name__}; got {given}"
      )
    return make(identifier) if isinstance(identifier, OptimizerConfig) else identifier
  if isinstance(identifier, Mapping):
    config = dict(identifier)
    name = config.pop("name", None)
    if "learning_rate" in config:
      if learning_rate is not None:
        raise JaxnnError("optimizer: expected learning_rate once; got it in the dict and as an argument")
      learning_rate = config.pop("learning_rate")
    if isinstance(learning_rate, Mapping):
      lr_config = dict(learning_rate)
      learning_rate = schedule(lr_config.pop("name", None), **lr_config)
    return get(name, learning_rate, **config, **kwargs)
  if not isinstance(identifier, str):
    raise JaxnnError(
        f"optimizer: expected a name, a dict, an OptimizerConfig or an optax transformation; "
        f"got {type(identifier).__name__} {identifier!r}"
    )
  fields = {f.name for f in dataclasses.fields(OptimizerConfig)} - {"name", "learning_rate", "kwargs"}
  config_kwargs = {k: v for k, v in kwargs.items() if k in fields}
  extra = {k: v for k, v in kwargs.items() if k not in fields}
  return make(OptimizerConfig(identifier, learning_rate, **config_kwargs, kwargs=extra))


def learning_rate_of(opt_state: Any) -> jax.Array | None:
  """The learning rate held in an optimizer state from `make` / `get`.

  Args:
    opt_state: an optimizer state, possibly nested inside other optax states.

  Returns:
    The learning rate of the latest update (schedule(0) before any), from the
    first `hyperparams["learning_rate"]` found; None if the state holds none.
  """
  found = optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate")
  return found[0][1] if found else None


def settable(opt_state: Any, name: str) -> bool:
  """Whether `name` is a plain hyperparameter of the `inject_hyperparams` states in `opt_state`, one that can
  be set between steps (`set_hyperparam`); not if it is absent or follows a schedule (a scheduled value sits
  in `hyperparams` too, but is recomputed from `hyperparams_states` every step)."""
  found = [getattr(path[-2], "name", None) for path, _ in optax.tree_utils.tree_get_all_with_path(opt_state, name)
           if len(path) >= 2]
  return "hyperparams" in found and "hyperparams_states" not in found


def set_hyperparam(opt_state: Any, name: str, value: Any) -> Any:
  """`opt_state` with hyperparameter `name` set to `value` in every `inject_hyperparams` state (check
  `settable` first)."""
  in_hyperparams = lambda path, _: len(path) >= 2 and getattr(path[-2], "name", None) == "hyperparams"
  return optax.tree_utils.tree_set(opt_state, in_hyperparams, **{name: value})


def serialize(obj: OptimizerConfig | Schedule | Any) -> str | dict[str, Any]:
  """Readable form for summaries and results.json.

  Args:
    obj: an `OptimizerConfig`, a `Schedule`, or anything else (a callable, an optax transformation).

  Returns:
    For a config, a dict of its name and every hyperparameter with Keras defaults
    filled in (unset clips left out); for a schedule, {"name": ..., **arguments};
    otherwise a short name.
  """
  if isinstance(obj, Schedule):
    return {"name": obj.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in obj.kwargs}}
  if isinstance(obj, OptimizerConfig):
    hp = obj.resolved()
    out = {"name": obj.name}
    for key, value in hp.items():
      if value is None:
        continue
      out[key] = serialize(value) if callable(value) else value
    return out
  return getattr(obj, "__name__", type(obj).__name__)
