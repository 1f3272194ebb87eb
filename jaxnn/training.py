"""Training: a TrainState, one pure train step, whole epochs compiled as one program, fit / evaluate / predict.

Data flow: `fit` moves the arrays to the device once; each epoch is one compiled call that gathers each
batch by index inside a `lax.scan`, in an order drawn on the host from the run key and the epoch number
(`epoch_order`: n int32 indices go in), and returns the summed loss / metric statistics. Only those few
numbers come back to the host per epoch.

`batch_size` picks the descent: the dataset size is batch gradient descent, 1 is stochastic, k is
mini-batch. A last partial batch is padded and masked, so every epoch has the same shape and the epoch is
compiled once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from jaxnn import _checks
from jaxnn import checkpoint as checkpoint_lib
from jaxnn import losses as losses_lib
from jaxnn import metrics as metrics_lib
from jaxnn import numerics
from jaxnn import optimizers
from jaxnn import parallel
from jaxnn.errors import JaxnnError
from jaxnn.models import Sequential

Array = jax.Array
PyTree = Any


class TrainState(train_state.TrainState):
  """Flax's TrainState (step, params, tx, opt_state) plus the run's PRNG key, the epochs completed, the
  model's non-trained state (BatchNormalization's running statistics; {} for most models) and the
  non-finite-step counters of `numerics.guard` (skipped steps, consecutive ones, batches seen)."""

  key: Array
  epoch: Array
  model_state: PyTree = dataclasses.field(default_factory=dict)
  faults: PyTree = dataclasses.field(default_factory=numerics.initial_faults)


@dataclasses.dataclass(frozen=True)
class _ModelApply:
  """`model.apply` that compares equal for equal models (bound methods compare by identity), so two fits of
  equal models share compiled programs."""

  model: Sequential

  def __call__(self, params: PyTree, x: Array, **kwargs: Any) -> Array:
    return self.model.apply(params, x, **kwargs)


def create_train_state(model: Sequential, params: PyTree, optimizer: Any = "adam", *,
                       key: Array | None = None, model_state: PyTree | None = None) -> TrainState:
  """Builds the optimizer (frozen params get zero updates) and wraps everything in a TrainState.

  Args:
    model: the model the params belong to (it says which params are frozen, e.g. LoRA base kernels).
    params: the params pytree from `model.init`.
    optimizer: an optimizer name, an `optimizers.OptimizerConfig`, or an optax GradientTransformation.
    key: the run's PRNG key (shuffling and dropout are derived from it); defaults to `jax.random.key(0)`.
    model_state: the model's non-trained state from `model.init_state(input_shape)`; default {}.
  """
  tx = optimizers.get(optimizer)  # an optax transformation comes back as is
  mask = model.trainable_mask(params)
  if not all(jax.tree_util.tree_leaves(mask)):
    labels = jax.tree_util.tree_map(lambda trainable: "trainable" if trainable else "frozen", mask)
    tx = optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)
  if key is None:
    key = jax.random.key(0)
  # `step` is a strong int32 (Flax starts it at the Python int 0, weakly typed): the state's types stay the
  # same before and after an epoch, so continuing a fit from its TrainState compiles nothing new.
  opt_state, zero, faults = _initial_arrays(tx, params)
  return TrainState(step=zero, apply_fn=_ModelApply(model), params=params, tx=tx, opt_state=opt_state, key=key,
                    epoch=zero, model_state=model_state or {}, faults=faults)


@functools.partial(jax.jit, static_argnames=("tx",))
def _initial_arrays(tx: optax.GradientTransformation, params: PyTree) -> tuple[PyTree, Array, PyTree]:
  """A new TrainState's optimizer state and counters, made by one program: made eagerly, every zeros or cast
  is a small XLA compile of its own (~0.2 s of a fresh process's first fit on a CPU)."""
  return tx.init(params), jnp.zeros((), jnp.int32), numerics.initial_faults()


# --------------------------------------------------------------------------------------------- statistics
def _entry_mask(mask: Array, step_mask: Array | None) -> Array:
  """The batch's padding mask (B,), times the outputs' step mask (B, T) when they carry one (a model whose
  sequence outputs keep `Embedding(mask_zero=True)`'s or `Masking`'s mask): what the loss and metrics count."""
  if step_mask is None:
    return mask
  return mask.reshape(mask.shape + (1,) * (step_mask.ndim - 1)) * step_mask.astype(mask.dtype)


def _batch_stats(loss_value: Array, y: Array, y_pred: Array, mask: Array,
                 metrics: tuple[metrics_lib.Metric, ...], entry_mask: Array | None = None,
                 sample_weight: Array | None = None) -> dict[str, PyTree]:
  """Additive statistics of one batch: summed loss and each metric's sufficient statistics.

  The loss is weighted by the batch's examples (`mask`, (B,)), as Keras' epoch loss weights each batch by its
  size; the metrics count the entries of `entry_mask` (`_entry_mask`; default `mask`): only unmasked steps.
  The weighted ones (Keras' `weighted_metrics`) weigh those entries by `sample_weight` ((B,) or (B, T)).
  """
  count = jnp.sum(mask)
  stats = {"loss": {"sum": loss_value * count, "count": count}}
  counted = mask if entry_mask is None else entry_mask
  weighted = counted
  if sample_weight is not None and any(metric.weighted for metric in metrics):
    ndim = max(counted.ndim, sample_weight.ndim)
    expand = losses_lib._expand  # pylint: disable=protected-access
    weighted = expand(counted, ndim) * expand(sample_weight, ndim)
  for metric in metrics:
    # Keras' `metrics` ignore sample weights; the mask only removes padding (and masked steps).
    stats[metric.name] = metric.update(y, y_pred, weighted if metric.weighted else counted)
  return stats


@functools.partial(jax.jit, static_argnames=("metrics",))
def _logs(stats: dict[str, PyTree], metrics: tuple[metrics_lib.Metric, ...]) -> dict[str, Array]:
  # One program per metric set: computed eagerly, each metric's divisions and `where`s would be small XLA
  # compiles in a fresh process's first epoch.
  out = {"loss": stats["loss"]["sum"] / jnp.maximum(stats["loss"]["count"], 1)}
  for metric in metrics:
    out[metric.name] = metric.compute(stats[metric.name])
  return out


def _finalize(stats: dict[str, PyTree], metrics: tuple[metrics_lib.Metric, ...]) -> dict[str, float]:
  """Loss and metric values from summed statistics, as Python floats."""
  return {k: float(v) for k, v in jax.device_get(_logs(stats, metrics)).items()}


def batch_indices(n: int, batch_size: int, order: Array) -> tuple[Array, Array]:
  """`order` padded to whole batches: (num_batches, batch_size) indices and the matching validity mask.

  The last partial batch is filled with index 0 and masked out, so every step of an epoch has one shape.
  """
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  idx = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)])
  valid = jnp.arange(num_batches * batch_size) < n
  return idx.reshape(num_batches, batch_size), valid.reshape(num_batches, batch_size)


def _scan_sum(body: Callable, carry: PyTree, stats_shape: PyTree, xs: PyTree) -> tuple[PyTree, PyTree]:
  """lax.scan whose per-step statistics are summed in the carry instead of stacked."""
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), stats_shape)

  def step(c, x):
    inner, totals = c
    inner, stats = body(inner, x)
    return (inner, jax.tree_util.tree_map(jnp.add, totals, stats)), None

  (carry, totals), _ = jax.lax.scan(step, (carry, zeros), xs)
  return carry, totals


# --------------------------------------------------------------------------------------------- train step
def train_step(state: TrainState, x: Array, y: Array, sample_weight: Array, mask: Array, *,
               model: Sequential, loss: losses_lib.Loss, metrics: tuple[metrics_lib.Metric, ...] = (),
               hparams: dict[str, Array] | None = None,
               max_bad_steps: int | None = None, skip_bad_steps: bool = True) -> tuple[TrainState, dict[str, PyTree]]:
  """One optimizer step on one batch: a pure function (jit it, or let `fit` scan it).

  The objective is the weighted data loss plus weight and activity penalties (Keras' total loss);
  constraints are applied after the update. Where the model's outputs carry a step mask (sequence outputs
  after `Embedding(mask_zero=True)` or `Masking`), the loss and metrics leave the masked steps out, as
  Keras does: the loss is the mean over the batch's unmasked steps. The dropout key is folded from the run key and the step.
  `hparams` holds traced per-run values (`jaxnn.sweep.fit_many`): "l2" adds `l2 * sum(kernel**2)` over every
  layer's kernel to the objective, "dropout_rate" replaces every Dropout layer's rate.
  With `max_bad_steps`, a step with a non-finite loss or gradients is skipped and counted (`numerics.guard`);
  with `skip_bad_steps=False` too, it is only flagged in the statistics (the update applied: see `fit`).
  """
  dropout_key = jax.random.fold_in(jax.random.fold_in(state.key, 1), state.step)
  hparams = hparams or {}

  def objective(params):
    y_pred, aux = model.forward(params, x, state=state.model_state, training=True, key=dropout_key,
                                dropout_rate=hparams.get("dropout_rate"), mask=mask)
    entry_mask = _entry_mask(mask, aux["step_mask"])
    data_loss = loss(y, y_pred, sample_weight=sample_weight, mask=entry_mask)
    penalty = model.regularization(params) + aux["activity_penalty"]
    if "l2" in hparams:
      penalty = penalty + hparams["l2"] * model.kernel_sum_of_squares(params)
    return data_loss + penalty, (y_pred, aux["state"], entry_mask)

  (total, (y_pred, model_state, entry_mask)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)

  def update(st: TrainState) -> TrainState:
    st = st.apply_gradients(grads=grads, model_state=model_state)
    return st.replace(params=model.constrain(st.params))

  stats = _batch_stats(total, y, y_pred, mask, metrics, entry_mask, sample_weight)
  if max_bad_steps is None:
    return update(state), stats
  return numerics.guard(state, update, total, grads, stats, max_bad_steps, skip=skip_bad_steps,
                        mark_params=model.constraints_keep_nonfinite())


def epoch_order(key: Array, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
  """The order in which `fit` visits n training examples in epoch `epoch` (0-based), as int32 indices.

  A permutation drawn on the host by numpy's PCG64, seeded from the run key's data and the epoch number, so
  an epoch's order is a function of (key, epoch) alone: a resumed run sees the batches it would have seen.
  Why not `jax.random.permutation` inside the compiled epoch: on a CPU its threefry bits added ~1 s to the
  epoch's compile and ~40 ms to each 60k-example epoch; numpy draws the order in ~1 ms and compiles nothing.
  `key` may also be the raw key data (`jax.random.key_data`), or a stack of keys: one order per key.
  """
  if not shuffle:
    return np.arange(n, dtype=np.int32)
  words = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
  if words.ndim > 1:
    return np.stack([epoch_order(w, epoch, n) for w in words])
  rng = np.random.default_rng(np.random.SeedSequence([int(w) for w in words.ravel()] + [int(epoch)]))
  return rng.permutation(n).astype(np.int32)


def train_epoch(state: TrainState, x: Array, y: Array, sample_weight: Array, order: Array, *, model: Sequential,
                loss: losses_lib.Loss, metrics: tuple[metrics_lib.Metric, ...], batch_size: int,
                hparams: dict[str, Array] | None = None, batch_sharding: jax.sharding.Sharding | None = None,
                max_bad_steps: int | None = None, skip_bad_steps: bool = True) -> tuple[TrainState, dict[str, PyTree]]:
  """One pass over (x, y) in `order` (`epoch_order`), in batches, as one program: `train_step` scanned.

  `hparams`, `max_bad_steps` and `skip_bad_steps` go to `train_step`; with `skip_bad_steps=False` the totals'
  "nonfinite" is 1 when any step had a non-finite loss or gradients (every step applied), else 0, and the
  fault counters move as for a clean epoch (`fit` keeps the result only when there was none). With
  `batch_sharding` (data-parallel `fit`) each gathered batch is constrained to it, so XLA splits the step over
  the devices and inserts the all-reduce.
  """
  n = x.shape[0]
  idx, valid = batch_indices(n, batch_size, order)
  step = functools.partial(train_step, model=model, loss=loss, metrics=metrics, hparams=hparams,
                           max_bad_steps=max_bad_steps, skip_bad_steps=skip_bad_steps)

  def body(st, batch):
    idx_b, valid_b = batch
    w_b = jnp.take(sample_weight, idx_b, axis=0)
    arrays = (jnp.take(x, idx_b, axis=0), jnp.take(y, idx_b, axis=0), w_b, valid_b.astype(w_b.dtype))
    if batch_sharding is not None:
      arrays = jax.lax.with_sharding_constraint(arrays, batch_sharding)
    return step(st, *arrays)

  stats_shape = jax.eval_shape(body, state, (idx[0], valid[0]))[1]
  state, totals = _scan_sum(body, state, stats_shape, (idx, valid))
  if max_bad_steps is not None and not skip_bad_steps:
    state = state.replace(faults=numerics.clean_epoch(state.faults, idx.shape[0]))
    # The params too: a detecting step marks those of a non-finite gradient NaN (numerics.mark_nonfinite).
    totals = dict(totals, nonfinite=numerics.probe_flag((totals["nonfinite"], state.params)))
  return state.replace(epoch=state.epoch + 1), totals


def eval_totals(params: PyTree, model_state: PyTree, x: Array, y: Array, *, model: Sequential,
                loss: losses_lib.Loss,
                metrics: tuple[metrics_lib.Metric, ...], batch_size: int,
                hparams: dict[str, Array] | None = None, sample_weight: Array | None = None) -> dict[str, PyTree]:
  """Summed loss / metric statistics over (x, y) at inference, in batches (one program).

  The loss includes the weight penalties, and `hparams["l2"]`'s as `train_step` adds it. `sample_weight`
  ((N,) or per step (N, T)) weighs the loss as in `train_step`; the metrics ignore it, as in `fit`.
  """
  n = x.shape[0]
  idx, valid = batch_indices(n, batch_size, jnp.arange(n))
  penalty = model.regularization(params)
  if hparams and "l2" in hparams:
    penalty = penalty + hparams["l2"] * model.kernel_sum_of_squares(params)

  def body(carry, batch):
    idx_b, valid_b = batch
    y_b = jnp.take(y, idx_b, axis=0)
    y_pred, aux = model.forward(params, jnp.take(x, idx_b, axis=0), state=model_state)
    mask = valid_b.astype(jnp.float32)
    entry_mask = _entry_mask(mask, aux["step_mask"])
    w_b = None if sample_weight is None else jnp.take(sample_weight, idx_b, axis=0)
    total = loss(y_b, y_pred, sample_weight=w_b, mask=entry_mask) + penalty + aux["activity_penalty"]
    return carry, _batch_stats(total, y_b, y_pred, mask, metrics, entry_mask, w_b)

  stats_shape = jax.eval_shape(body, (), (idx[0], valid[0]))[1]
  _, totals = _scan_sum(body, (), stats_shape, (idx, valid))
  return totals


_STATIC = ("model", "loss", "metrics", "batch_size")
# No donation: fit keeps an epoch's starting state, to replay the epoch with the skipping guard.
_train_epoch_jit = jax.jit(train_epoch, static_argnames=_STATIC + ("batch_sharding", "max_bad_steps",
                                                                   "skip_bad_steps"))


def _eval_weighted(params: PyTree, model_state: PyTree, x: Array, y: Array, sample_weight: Array | None, *,
                   model: Sequential, loss: losses_lib.Loss, metrics: tuple[metrics_lib.Metric, ...],
                   batch_size: int) -> dict[str, PyTree]:
  """`eval_totals` with the weights an argument of the program (None: unweighted, the same program as none)."""
  return eval_totals(params, model_state, x, y, model=model, loss=loss, metrics=metrics, batch_size=batch_size,
                     sample_weight=sample_weight)


_eval_totals_jit = jax.jit(_eval_weighted, static_argnames=_STATIC)
_COMPILED: dict[Any, Any] = {}


def _compiled(fn: Any, args: tuple[Any, ...], static: dict[str, Any]) -> tuple[Any, bool]:
  """Ahead-of-time compiled `fn` for these argument structures, shapes and static values; cached.

  Compiling ahead of time lets `fit` report compile time apart from epoch time; the cache makes a second
  `fit` with the same model, data shapes and optimizer config reuse the program. Returns (program, hit).
  The arguments' shardings are part of the key: a compiled program only accepts the placement it was built for.
  """
  leaves, treedef = jax.tree_util.tree_flatten(args)
  key = (fn, treedef, tuple((jnp.shape(a), jnp.result_type(a), getattr(a, "sharding", None)) for a in leaves),
         tuple(sorted(static.items())))
  if key in _COMPILED:
    return _COMPILED[key], True
  if len(_COMPILED) >= 64:  # bounded: drop the oldest entry
    _COMPILED.pop(next(iter(_COMPILED)))
  _COMPILED[key] = fn.lower(*args, **static).compile()
  return _COMPILED[key], False


@functools.partial(jax.jit, static_argnames=("model", "batch_size"))
def _predict_batches(params, model_state, x, *, model, batch_size):
  n = x.shape[0]
  idx, _ = batch_indices(n, batch_size, jnp.arange(n))
  out = jax.lax.map(lambda i: model.apply(params, jnp.take(x, i, axis=0), state=model_state), idx)
  return out.reshape(-1, *out.shape[2:])[:n]


# --------------------------------------------------------------------------------------------- history
@dataclasses.dataclass
class History:
  """Per-epoch records, as Keras' History: `history["loss"]`, `history["val_accuracy"]`, `history["seconds"]`.

  Attributes:
    history: per-epoch lists: the loss and metrics (averaged over the epoch's applied steps), `val_*`,
      `seconds` (the epoch's wall time: the compiled epoch, its logs and the validation pass; an epoch that
      replays with the NaN guard's skipping program includes that program's first compile),
      `learning_rate` (when the optimizer exposes it) and `skipped_steps` (with the guard).
    epoch: the epoch numbers (1-based, counting from the start of the run when continued or resumed).
    compile_seconds: this `fit` call's ahead-of-time compile of its epoch program and validation pass (loaded
      from the persistent compilation cache when it is on). The small programs that build the initial train
      state (`create_train_state`) and an epoch's logs compile outside it (the logs inside the first epoch's
      `seconds`).
    params: the call's `epochs`, `batch_size`, `steps` per epoch and training `samples`.
  """

  history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
  epoch: list[int] = dataclasses.field(default_factory=list)
  compile_seconds: float = 0.0
  params: dict[str, Any] = dataclasses.field(default_factory=dict)

  def append(self, epoch: int, logs: dict[str, float]) -> None:
    self.epoch.append(epoch)
    for k, v in logs.items():
      self.history.setdefault(k, []).append(v)

  def __getitem__(self, key: str) -> list[float]:
    return self.history[key]

  def to_dict(self) -> dict[str, Any]:
    return {"epoch": self.epoch, "compile_seconds": self.compile_seconds, "params": self.params, **self.history}


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
  """Stops `fit` when `monitor` has not improved by `min_delta` for `patience` epochs (Keras semantics: with
  patience p >= 1 the run stops after p epochs without improvement, with 0 after the first such epoch).

  As in Keras, `baseline` (a value to beat) keeps counting epochs as not improving until the best one beats it,
  and `start_from_epoch` leaves the first epochs out (a warm-up: 0-based epoch numbers below it are ignored).
  """

  monitor: str = "val_loss"
  patience: int = 0
  min_delta: float = 0.0
  mode: str = "auto"
  restore_best_weights: bool = False
  baseline: float | None = None
  start_from_epoch: int = 0

  def __post_init__(self):
    object.__setattr__(self, "patience", _checks.check_int(self.patience, "patience", "EarlyStopping", low=0))
    object.__setattr__(self, "start_from_epoch", _checks.check_int(self.start_from_epoch, "start_from_epoch",
                                                                    "EarlyStopping", low=0))
    if self.baseline is not None:
      if not _is_number(self.baseline) or not math.isfinite(float(self.baseline)):
        raise JaxnnError(f"EarlyStopping: baseline must be a finite number or None, got {self.baseline!r}")
      object.__setattr__(self, "baseline", float(self.baseline))
    _check_watched(self)

  def better(self, value: float, best: float) -> bool:
    return _improves(self.monitor, self.mode, self.min_delta, value, best)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def _check_watched(callback: Any) -> None:
  """An EarlyStopping's or ReduceLROnPlateau's `mode` and `monitor` (whether `fit` logs it: `_checks.check_monitor`)."""
  what = type(callback).__name__
  if callback.mode not in ("auto", "min", "max"):
    raise JaxnnError(f"{what}: mode must be one of ['auto', 'min', 'max'], got {callback.mode!r}")
  if not isinstance(callback.monitor, str):
    raise JaxnnError(f"{what}: monitor must be a logged name such as 'val_loss', got {callback.monitor!r}")


def _improves(monitor: str, mode: str, min_delta: float, value: float, best: float) -> bool:
  """Whether `value` beats `best` by more than `min_delta`, downward for a loss (or mode "min"), upward for
  anything else (or mode "max"): Keras' rule for "auto"."""
  if mode == "auto":
    mode = "min" if monitor.endswith("loss") else "max"
  if mode == "min":
    return value < best - abs(min_delta)
  return value > best + abs(min_delta)


@dataclasses.dataclass(frozen=True)
class ReduceLROnPlateau:
  """Multiplies the learning rate by `factor` (not below `min_lr`) once `monitor` has not improved by
  `min_delta` for `patience` epochs, then waits `cooldown` epochs before counting again: Keras' callback, its
  defaults and its rules. `fit` applies it between epochs (the compiled epoch is not recompiled: the learning
  rate is a value in the optimizer state), which needs an optimizer given by name or `OptimizerConfig`
  without a schedule."""

  monitor: str = "val_loss"
  factor: float = 0.1
  patience: int = 10
  mode: str = "auto"
  min_delta: float = 1e-4
  cooldown: int = 0
  min_lr: float = 0.0

  def __post_init__(self):
    for name in ("patience", "cooldown"):
      object.__setattr__(self, name, _checks.check_int(getattr(self, name), name, "ReduceLROnPlateau", low=0))
    _check_watched(self)
    for name, low, high in (("factor", 0.0, 1.0), ("min_lr", 0.0, math.inf), ("min_delta", -math.inf, math.inf)):
      value = getattr(self, name)
      if not _is_number(value) or not low <= float(value) < high:
        raise JaxnnError(f"ReduceLROnPlateau: {name} must be a number in [{low}, {high}), got {value!r}")
      object.__setattr__(self, name, float(value))

  def update(self, value: float, progress: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """One epoch's monitored value: the new progress {best, wait, cooldown} and whether the rate is due a
    cut (`fit` then cuts it if above `min_lr` and, if it did, starts the cooldown)."""
    best, wait, cooldown = progress["best"], progress["wait"], progress["cooldown"]
    if cooldown > 0:
      cooldown, wait = cooldown - 1, 0
    if best is None or _improves(self.monitor, self.mode, self.min_delta, value, best):
      return {"best": value, "wait": 0, "cooldown": cooldown}, False
    if cooldown > 0:
      return {"best": best, "wait": wait, "cooldown": cooldown}, False
    return {"best": best, "wait": wait + 1, "cooldown": cooldown}, wait + 1 >= self.patience

  def reduced(self, learning_rate: float) -> float | None:
    """The cut rate, or None when `learning_rate` is already at `min_lr` (compared in float32, as Keras)."""
    if not learning_rate > np.float32(self.min_lr):
      return None
    return max(learning_rate * self.factor, self.min_lr)


# --------------------------------------------------------------------------------------------- checks
def _as_float_inputs(x: Any, arg: str) -> np.ndarray:
  """x as float32; uint8 images are refused with a hint to scale them (see `_checks.check_numeric_dtype`)."""
  return _checks.float_inputs(x, arg)


_NOT_MADE_YET = object()  # `_check_xy` before the params exist (`jaxnn.sweep.fit_many` makes them from seeds)


def _check_xy(model: Sequential, loss: losses_lib.Loss, x: np.ndarray, y: Any, what: str, params: Any,
              metrics: tuple[metrics_lib.Metric, ...]) -> np.ndarray:
  """Checks x (a batch that fits the params), y (the loss's label format) and returns y cast for training."""
  _checks.check_batch(x, what)
  model.layers[0].check_inputs(x, f"{what}: x")
  out_shape = _checks.output_shape(model, x.shape[1:], what)
  if params is not _NOT_MADE_YET:
    _checks.check_params(model, params.params if isinstance(params, TrainState) else params, x.shape[1:], what)
  return _checks.check_targets(loss, metrics, y, x.shape[0], out_shape, what)


def _check_fit_args(epochs: Any, validation_split: Any, validation_data: Any, eval_batch_size: Any,
                    key: Any, early_stopping: EarlyStopping | None, metrics: tuple[metrics_lib.Metric, ...]
                    ) -> tuple[int, int]:
  """The arguments of `fit` other than the data; returns epochs and eval_batch_size as Python ints."""
  epochs = _checks.check_int(epochs, "epochs", "fit", low=0)
  _checks.check_fraction(validation_split, "validation_split", "fit")
  if validation_data is not None:
    _checks.check_validation_data(validation_data, "fit")
  eval_batch_size = _checks.check_int(eval_batch_size, "eval_batch_size", "fit", low=1)
  if key is not None:
    _checks.check_key(key)
  if early_stopping is not None:
    _checks.check_monitor(early_stopping, metrics, validation_data is not None or bool(validation_split))
  return epochs, eval_batch_size


def _check_reduce_lr(reduce_lr: Any, optimizer: Any, params: Any, metrics: tuple[metrics_lib.Metric, ...],
                     validation: bool) -> None:
  """A ReduceLROnPlateau watching a logged value, with an optimizer whose learning rate can be set between
  epochs (checked on the optimizer state's shapes: nothing is computed)."""
  if not isinstance(reduce_lr, ReduceLROnPlateau):
    raise JaxnnError(f"fit: reduce_lr must be a jaxnn.ReduceLROnPlateau or None, got {reduce_lr!r}")
  _checks.check_monitor(reduce_lr, metrics, validation)
  if isinstance(params, TrainState):
    opt_state = params.opt_state
  else:
    opt_state = jax.eval_shape(optimizers.get(optimizer).init, params)
  if not optimizers.settable(opt_state, "learning_rate"):
    raise JaxnnError("fit: reduce_lr needs a learning rate it can set between epochs: pass the optimizer by name "
                     "or as an OptimizerConfig without a schedule (a schedule or a plain optax transformation "
                     "holds none)")


def _hold_out(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, validation_split: float,
              validation_data: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Any]:
  """(x, y, weights, validation_data) with `validation_split` of the examples held out from the end, as Keras
  does: the held-out weights (if any) weigh the validation loss."""
  if validation_split and validation_data is not None:
    raise JaxnnError(f"{what}: pass validation_data or validation_split, not both")
  if not validation_split:
    return x, y, weights, validation_data
  n_val = int(math.floor(len(x) * validation_split))
  if n_val == 0 or n_val == len(x):
    raise JaxnnError(f"{what}: validation_split={validation_split} of {len(x)} examples leaves an empty side")
  held_out = None if weights is None else weights[-n_val:]
  return (x[:-n_val], y[:-n_val], None if weights is None else weights[:-n_val],
          (x[-n_val:], y[-n_val:], held_out))


def _validation_arrays(model: Sequential, loss: losses_lib.Loss, validation_data: Any, params: Any,
                       metrics: tuple[metrics_lib.Metric, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """(x_val, y_val, weights or None) from `(x_val, y_val)` or `(x_val, y_val, sample_weight_val)`, each
  checked as the training data are."""
  x_val = _as_float_inputs(validation_data[0], "validation_data x")
  y_val = _check_xy(model, loss, x_val, validation_data[1], "validation_data", params, metrics)
  numerics.check_finite(x_val, "validation_data x")
  numerics.check_finite(y_val, "validation_data y")
  weights = validation_data[2] if len(validation_data) == 3 else None
  if weights is not None:
    weights = _sample_weights(model, x_val, weights, "validation_data")
  return x_val, y_val, weights


def _sample_weights(model: Sequential, x: np.ndarray, sample_weight: Any, where: str) -> np.ndarray:
  """`_checks.sample_weights` for the model's outputs on x: one weight per example, or per step where the
  outputs are per step (output shape (T, C)); finite and >= 0 (checked there)."""
  steps = tuple(model.output_shapes(x.shape[1:])[-1][:-1])
  return _checks.sample_weights(sample_weight, len(x), steps=steps, where=where)


def _resolve_metrics(metrics: Sequence[Any], loss: losses_lib.Loss,
                     weighted_metrics: Sequence[Any] | None = None) -> tuple[metrics_lib.Metric, ...]:
  """The metrics, then the weighted metrics (Keras' `weighted_metrics`: `weighted=True`, and a name that one
  of `metrics` already has prefixed with "weighted_", as Keras names them)."""
  _checks.check_metrics_list(metrics)
  plain = tuple(dataclasses.replace(m, weighted=False) for m in (metrics_lib.get(m, loss=loss) for m in metrics))
  taken = {m.name for m in plain}
  weighted = ()
  if weighted_metrics is not None:
    _checks.check_metrics_list(weighted_metrics, "weighted_metrics")
    weighted = tuple(dataclasses.replace(m, weighted=True, name=f"weighted_{m.name}" if m.name in taken else m.name)
                     for m in (metrics_lib.get(m, loss=loss) for m in weighted_metrics))
  names = [m.name for m in plain + weighted]
  if len(set(names)) != len(names) or "loss" in names:
    what = "metrics and weighted_metrics" if weighted else "metrics"
    raise JaxnnError(f"{what}: names must be unique and not 'loss', got {names}")
  return plain + weighted


# --------------------------------------------------------------------------------------------- fit
def fit(model: Sequential, params: PyTree | TrainState, x: Any, y: Any, *, loss: Any,
        optimizer: Any = "adam", metrics: Sequence[Any] = (), weighted_metrics: Sequence[Any] | None = None,
        epochs: int = 1, batch_size: int = 32, validation_data: tuple[Any, ...] | None = None,
        validation_split: float = 0.0,
        sample_weight: Any = None, class_weight: Any = None, shuffle: bool = True,
        key: Array | None = None, early_stopping: EarlyStopping | None = None,
        reduce_lr: ReduceLROnPlateau | None = None, verbose: int = 1,
        eval_batch_size: int = 1024, data_parallel: Any = False,
        checkpoint: checkpoint_lib.Checkpointing | None = None,
        max_bad_steps: int | None = numerics.DEFAULT_MAX_BAD_STEPS) -> tuple[TrainState, History]:
  """Trains `model` and returns `(state, history)`, Keras' `fit` as a function.

  Args:
    model: the Sequential model.
    params: its params (from `model.init`), or a TrainState to continue training (its optimizer is kept).
    x: inputs, batch axis first: floats, or ints (converted to float32). uint8 arrays are refused with a hint
      to scale them (`jaxnn.data.scale`): a silent x / 255 would give them a meaning they have nowhere else,
      and training on 0..255 does not fail, it trains badly.
    y: targets: int class labels for sparse losses, one-hot / floats otherwise.
    loss: a loss name (`"sparse_categorical_crossentropy"`, ...) or `losses.Loss`.
    optimizer: an optimizer name, `optimizers.OptimizerConfig` or optax GradientTransformation.
    metrics: metric names or `metrics.Metric`s, reported per epoch ("accuracy" follows the loss); they count
      every example alike, as Keras' `metrics`.
    weighted_metrics: metrics weighted by `sample_weight` and `class_weight` (and on the validation data by
      its weights), Keras' `weighted_metrics`; one named as one of `metrics` is logged as "weighted_<name>".
    epochs: number of passes over the data.
    batch_size: examples per step: len(x) is batch gradient descent, 1 stochastic, k mini-batch.
    validation_data: `(x_val, y_val)` evaluated after every epoch (`val_*` in the history), or
      `(x_val, y_val, sample_weight_val)`: the weights weigh the validation loss as `sample_weight` does.
    validation_split: fraction of (x, y) held out for validation, taken from the end before shuffling (with
      `sample_weight`, the held-out weights weigh the validation loss, as in Keras; class_weight does not).
    sample_weight: weights for the loss: one per example (N,), or for per-step outputs (a model ending in
      sequences, output (T, C)) one per step too, (N, T), as Keras' temporal sample weights.
    class_weight: `{class: weight}` turned into per-example weights for the loss.
    shuffle: reshuffle the training data every epoch (from the run key and the epoch number).
    key: the run's PRNG key (shuffling, dropout); default `jax.random.key(0)`.
    early_stopping: an `EarlyStopping` config, or None.
    reduce_lr: a `ReduceLROnPlateau` config, or None: cuts the learning rate between epochs, as Keras' callback.
    verbose: 0 silent, 1 or 2 a line per epoch (time, loss, metrics, val metrics).
    eval_batch_size: batch size for the validation pass.
    data_parallel: True to split each batch over every device JAX sees (params replicated, gradients
      all-reduced by XLA; see `jaxnn.parallel`), or a `jax.sharding.Mesh` with a "data" axis. batch_size must
      be divisible by the number of devices. The result equals single-device training within float rounding.
    checkpoint: a `checkpoint.Checkpointing`: save the whole training state every N epochs and at the end;
      with `resume`, continue from the newest checkpoint up to `epochs` in all (History included).
    max_bad_steps: skip steps whose loss or gradients are not finite (params and optimizer state keep their
      bits; the epoch's loss and metrics average the applied steps; `skipped_steps` in the History) and
      raise `numerics.NonFiniteError` naming the epoch and step once this many come in a row; None: no guard.

  Returns:
    The final TrainState (params in `state.params`) and a History.
  """
  loss = losses_lib.get(loss)
  metrics = _resolve_metrics(metrics, loss, weighted_metrics)
  x = _as_float_inputs(x, "x")
  y = _check_xy(model, loss, x, y, "fit", params, metrics)
  epochs, eval_batch_size = _check_fit_args(epochs, validation_split, validation_data, eval_batch_size, key,
                                            early_stopping, metrics)
  if reduce_lr is not None:
    _check_reduce_lr(reduce_lr, optimizer, params, metrics, validation_data is not None or bool(validation_split))
  numerics.check_finite(x, "x")
  numerics.check_finite(y, "y")
  if max_bad_steps is not None:
    if not _checks.is_int(max_bad_steps) or max_bad_steps < 1:
      raise JaxnnError(f"fit: max_bad_steps must be an int >= 1 or None (no guard), got {max_bad_steps!r}")
    max_bad_steps = int(max_bad_steps)
  weights = None if sample_weight is None else _sample_weights(model, x, sample_weight, "fit")
  x, y, weights, validation_data = _hold_out(x, y, weights, validation_split, validation_data, "fit")
  n = len(x)
  batch_size = _checks.check_batch_size(batch_size, n, "fit")
  if weights is None:
    weights = _checks.sample_weights(None, n)  # ones
  if class_weight is not None:
    out_shape = model.output_shapes(x.shape[1:])[-1]
    if len(out_shape) > 1:
      raise JaxnnError(f"fit: class_weight needs one output per example, found outputs of shape {tuple(out_shape)} "
                       f"per example; pass per-step weights as sample_weight of shape {(n, *out_shape[:-1])}")
    weights = weights * np.asarray(losses_lib.class_weight_to_sample_weight(y, class_weight, out_shape[-1]))
  if validation_data is not None:
    x_val, y_val, w_val = _validation_arrays(model, loss, validation_data, params, metrics)
  mesh = parallel.resolve_mesh(data_parallel)
  if mesh is not None:
    parallel.check_batch_size(batch_size, mesh)

  if isinstance(params, TrainState):
    state = params
  else:
    state = create_train_state(model, params, optimizer, key=key, model_state=model.init_state(x.shape[1:]))
  target_epoch = int(state.epoch) + epochs
  fit_settings = {"batch_size": batch_size, "samples": n, "shuffle": shuffle}
  resumed = None if checkpoint is None else checkpoint_lib.begin(checkpoint, state, fit_settings, target_epoch)
  if resumed is not None:
    state = resumed.state
  # Move the data to the device once; compile the epoch (and the validation pass) once, ahead of time.
  # Data parallel: state and data replicated on every device, each batch split over them.
  put = jax.device_put if mesh is None else functools.partial(parallel.replicate, mesh=mesh)
  state = put(state)
  x_d, y_d, w_d = put((x, y, weights))
  static = dict(model=model, loss=loss, metrics=metrics, batch_size=batch_size)
  # With the guard on, each epoch runs first with a program that applies every update and flags the bad
  # steps in its statistics (no branch per step); an epoch that had one is replayed from its start by the
  # skipping program.
  epoch_static = dict(static, max_bad_steps=max_bad_steps,
                      batch_sharding=None if mesh is None else parallel.batch_sharding(mesh))
  first_try = epoch_static if max_bad_steps is None else dict(epoch_static, skip_bad_steps=False)
  skipping_fn = None  # compiled on the first epoch that needs it
  key_words = np.asarray(jax.random.key_data(state.key))  # each epoch's order is drawn from these on the host
  order = put(epoch_order(key_words, int(state.epoch), n, shuffle))
  start = time.perf_counter()
  epoch_fn, _ = _compiled(_train_epoch_jit, (state, x_d, y_d, w_d, order), first_try)
  if validation_data is not None:
    xv_d, yv_d, wv_d = put((x_val, y_val, w_val))
    eval_static = dict(static, batch_size=min(eval_batch_size, len(x_val)))
    eval_fn, _ = _compiled(_eval_totals_jit, (state.params, state.model_state, xv_d, yv_d, wv_d), eval_static)
  history = History(compile_seconds=time.perf_counter() - start,
                    params={"epochs": epochs, "batch_size": batch_size, "steps": -(-n // batch_size),
                            "samples": n})
  if verbose:
    print(f"compiled in {history.compile_seconds:.2f}s: {n} samples, batch {batch_size}, "
          f"{-(-n // batch_size)} steps/epoch", file=sys.stdout, flush=True)

  best, best_params, wait, stop = None, None, 0, False
  plateau = {"best": None, "wait": 0, "cooldown": 0}  # ReduceLROnPlateau's progress
  if resumed is not None:  # the run so far: its History and early stopping's progress
    history.epoch, history.history = list(resumed.history["epoch"]), dict(resumed.history["history"])
    best, wait, stop = (resumed.meta["early_stopping"][k] for k in ("best", "wait", "stopped"))
    plateau = resumed.meta.get("reduce_lr", plateau)
    best_params = resumed.best_params
    if verbose:
      print(f"resumed from {resumed.path} at epoch {int(state.epoch)} of {target_epoch}", flush=True)
  first_epoch = int(state.epoch)
  faults = jax.device_get(state.faults)
  # The data's copy to the device runs beside the compile; wait for it here, so the first epoch's `seconds`
  # time the epoch and not the rest of the copy (0.05-0.1 s for 60k MNIST images on a CPU).
  jax.block_until_ready((x_d, y_d, w_d))
  for epoch in range(first_epoch, first_epoch if stop else target_epoch):
    t0 = time.perf_counter()
    if epoch != first_epoch:
      order = put(epoch_order(key_words, epoch, n, shuffle))
    # The skipping program runs an epoch whose first try applied a bad step (replayed from the same start),
    # and straight away for a run already halted by bad steps (a TrainState from a run with a larger
    # max_bad_steps): it does nothing and raises below.
    skipping = max_bad_steps is not None and faults["consecutive"] >= max_bad_steps
    if not skipping:
      new_state, totals = epoch_fn(state, x_d, y_d, w_d, order)
      skipping = max_bad_steps is not None and int(totals["nonfinite"]) > 0
    if skipping:
      if skipping_fn is None:
        skipping_fn, _ = _compiled(_train_epoch_jit, (state, x_d, y_d, w_d, order), epoch_static)
      new_state, totals = skipping_fn(state, x_d, y_d, w_d, order)
    state = new_state
    logs = _finalize(totals, metrics)  # device_get: the epoch has finished
    if max_bad_steps is not None:  # raises after max_bad_steps in a row, before anything is saved
      faults, logs["skipped_steps"] = numerics.epoch_faults(
          faults, jax.device_get(state.faults), max_bad_steps, epoch=epoch + 1,
          checkpoint_dir=None if checkpoint is None else checkpoint.directory)
    if validation_data is not None:
      val_totals = eval_fn(state.params, state.model_state, xv_d, yv_d, wv_d)
      logs.update({f"val_{k}": v for k, v in _finalize(val_totals, metrics).items()})
    logs["seconds"] = time.perf_counter() - t0
    lr = optimizers.learning_rate_of(state.opt_state)
    if lr is not None:
      logs["learning_rate"] = float(lr)
    history.append(epoch + 1, logs)
    if verbose:
      print(_progress_line(epoch + 1, target_epoch, logs), flush=True)
    if reduce_lr is not None:
      plateau, due = reduce_lr.update(logs[reduce_lr.monitor], plateau)
      cut = reduce_lr.reduced(logs["learning_rate"]) if due else None  # lr: the rate read above for the logs
      if cut is not None:  # used from the next epoch on; the compiled epoch takes it as a value
        state = put(state.replace(opt_state=optimizers.set_hyperparam(
            state.opt_state, "learning_rate", jnp.asarray(cut, lr.dtype))))
        plateau = dict(plateau, wait=0, cooldown=reduce_lr.cooldown)
        if verbose:
          print(f"epoch {epoch + 1}: ReduceLROnPlateau: {reduce_lr.monitor} did not improve for "
                f"{reduce_lr.patience} epochs, learning rate cut to {cut:.4g}", flush=True)
    if early_stopping is not None:
      if early_stopping.monitor not in logs:
        raise JaxnnError(f"EarlyStopping: monitor {early_stopping.monitor!r} is not logged; "
                         f"available: {sorted(logs)}")
    if early_stopping is not None and epoch >= early_stopping.start_from_epoch:
      value = logs[early_stopping.monitor]
      wait += 1  # epochs without improvement (or, with a baseline, not beating it); Keras stops at the patience
      if best is None or early_stopping.better(value, best):
        best = value
        if early_stopping.baseline is None or early_stopping.better(value, early_stopping.baseline):
          wait = 0
        if early_stopping.restore_best_weights:
          best_params = state.params
      else:
        stop = wait >= early_stopping.patience
        if stop and verbose:
          print(f"early stopping at epoch {epoch + 1}: {early_stopping.monitor} did not improve for "
                f"{wait} epochs (best {best:.4f})", flush=True)
    if checkpoint is not None and checkpoint.due(epoch + 1, last=stop or epoch + 1 == target_epoch):
      checkpoint_lib.save(checkpoint.directory, state, keep=checkpoint.keep, best_params=best_params,
                          history={"epoch": history.epoch, "history": [[k, v] for k, v in history.history.items()]},
                          meta={"fit": fit_settings, "early_stopping": {"best": best, "wait": wait, "stopped": stop},
                                "reduce_lr": plateau})
    if stop:
      break
  if best_params is not None:
    state = state.replace(params=best_params)
  return state, history


def _progress_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
  parts = [f"Epoch {epoch}/{epochs}", f"{logs['seconds']:.2f}s"]
  parts += [f"{k}: {v:.4f}" for k, v in logs.items() if k not in ("seconds", "learning_rate", "skipped_steps")]
  if logs.get("skipped_steps"):
    parts.append(f"skipped steps (non-finite): {logs['skipped_steps']}")
  return " - ".join(parts)


# --------------------------------------------------------------------------------------------- evaluate / predict
def evaluate(model: Sequential, params: PyTree, x: Any, y: Any, *, loss: Any, metrics: Sequence[Any] = (),
             weighted_metrics: Sequence[Any] | None = None, batch_size: int = 1024, state: PyTree | None = None,
             sample_weight: Any = None) -> dict[str, float]:
  """Loss (with weight and activity penalties, as Keras reports it) and metrics over (x, y).

  `params` may be a TrainState (its model state is used); otherwise pass the model's `state` if it has one.
  `sample_weight` weighs the loss as in `fit` (one weight per example, or per step for per-step outputs) and
  the `weighted_metrics`; the `metrics` ignore it, as Keras' `metrics` do.
  """
  loss = losses_lib.get(loss)
  metrics = _resolve_metrics(metrics, loss, weighted_metrics)
  x = _as_float_inputs(x, "x")
  y = _check_xy(model, loss, x, y, "evaluate", params, metrics)
  batch_size = _checks.check_int(batch_size, "batch_size", "evaluate", low=1)
  weights = None if sample_weight is None else _sample_weights(model, x, sample_weight, "evaluate")
  params, state = _params_and_state(model, params, state, x)
  totals = _eval_totals_jit(params, state, jnp.asarray(x), jnp.asarray(y),
                            None if weights is None else jnp.asarray(weights), model=model, loss=loss,
                            metrics=metrics, batch_size=min(batch_size, len(x)))
  return _finalize(totals, metrics)


def predict(model: Sequential, params: PyTree, x: Any, *, batch_size: int = 1024,
            state: PyTree | None = None) -> np.ndarray:
  """The model's outputs (e.g. class probabilities) for x, computed in batches at inference."""
  x = _as_float_inputs(x, "x")
  _checks.check_batch(x, "predict")
  model.layers[0].check_inputs(x, "predict: x")
  batch_size = _checks.check_int(batch_size, "batch_size", "predict", low=1)
  _checks.check_params(model, params.params if isinstance(params, TrainState) else params, x.shape[1:], "predict")
  params, state = _params_and_state(model, params, state, x)
  return np.asarray(_predict_batches(params, state, jnp.asarray(x), model=model,
                                     batch_size=min(batch_size, len(x))))


def _params_and_state(model: Sequential, params: PyTree, state: PyTree | None, x: np.ndarray):
  """Params and model state from a TrainState or from separate arguments (checked when the model needs it)."""
  if isinstance(params, TrainState):
    return params.params, params.model_state
  if state is None:
    state = model.init_state(x.shape[1:])
    if state:
      raise JaxnnError(f"{model.name}: this model keeps running statistics; pass state= (or the TrainState)")
  return params, state


def predict_classes(model: Sequential, params: PyTree, x: Any, *, batch_size: int = 1024,
                    state: PyTree | None = None) -> np.ndarray:
  """Predicted class per example: argmax over classes, or output > 0.5 for a single sigmoid unit."""
  out = predict(model, params, x, batch_size=batch_size, state=state)
  if out.shape[-1] == 1:
    return (out[..., 0] > 0.5).astype(np.int32)
  return out.argmax(-1).astype(np.int32)
