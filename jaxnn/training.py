"""Training: a TrainState, one pure train step, whole epochs compiled as one program, fit / evaluate / predict.

Data flow: `fit` moves the arrays to the device once; each epoch is one compiled call that shuffles with a
key folded from the run key and the epoch number, gathers each batch by index inside a `lax.scan`, and
returns the summed loss / metric statistics. Only those few numbers come back to the host per epoch.

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

from jaxnn import losses as losses_lib
from jaxnn import metrics as metrics_lib
from jaxnn import optimizers
from jaxnn.errors import JaxnnError
from jaxnn.models import Sequential

Array = jax.Array
PyTree = Any


class TrainState(train_state.TrainState):
  """Flax's TrainState (step, params, tx, opt_state) plus the run's PRNG key, the epochs completed and the
  model's non-trained state (BatchNormalization's running statistics; {} for most models)."""

  key: Array
  epoch: Array
  model_state: PyTree = dataclasses.field(default_factory=dict)


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
  tx = optimizer if isinstance(optimizer, optax.GradientTransformation) else optimizers.get(optimizer)
  mask = model.trainable_mask(params)
  if not all(jax.tree_util.tree_leaves(mask)):
    labels = jax.tree_util.tree_map(lambda trainable: "trainable" if trainable else "frozen", mask)
    tx = optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)
  if key is None:
    key = jax.random.key(0)
  state = TrainState.create(apply_fn=_ModelApply(model), params=params, tx=tx, key=key,
                            epoch=jnp.zeros((), jnp.int32), model_state=model_state or {})
  # Flax starts `step` at the Python int 0, weakly typed on the device; a strong int32 keeps the state's types
  # the same before and after an epoch, so continuing a fit from its TrainState compiles nothing new.
  return state.replace(step=jnp.zeros((), jnp.int32))


# --------------------------------------------------------------------------------------------- statistics
def _batch_stats(loss_value: Array, y: Array, y_pred: Array, mask: Array,
                 metrics: tuple[metrics_lib.Metric, ...]) -> dict[str, PyTree]:
  """Additive statistics of one batch: summed loss and each metric's sufficient statistics."""
  count = jnp.sum(mask)
  stats = {"loss": {"sum": loss_value * count, "count": count}}
  for metric in metrics:
    # Keras' `metrics` ignore sample weights; the mask only removes padding.
    stats[metric.name] = metric.update(y, y_pred, mask)
  return stats


def _finalize(stats: dict[str, PyTree], metrics: tuple[metrics_lib.Metric, ...]) -> dict[str, float]:
  stats = jax.device_get(stats)
  out = {"loss": float(stats["loss"]["sum"] / max(stats["loss"]["count"], 1))}
  for metric in metrics:
    out[metric.name] = float(metric.compute(stats[metric.name]))
  return out


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
               model: Sequential, loss: losses_lib.Loss,
               metrics: tuple[metrics_lib.Metric, ...] = ()) -> tuple[TrainState, dict[str, PyTree]]:
  """One optimizer step on one batch: a pure function (jit it, or let `fit` scan it).

  The objective is the weighted data loss plus weight and activity penalties (Keras' total loss);
  constraints are applied after the update. The dropout key is folded from the run key and the step.
  """
  dropout_key = jax.random.fold_in(jax.random.fold_in(state.key, 1), state.step)

  def objective(params):
    y_pred, aux = model.forward(params, x, state=state.model_state, training=True, key=dropout_key)
    data_loss = loss(y, y_pred, sample_weight=sample_weight, mask=mask)
    return data_loss + model.regularization(params) + aux["activity_penalty"], (y_pred, aux["state"])

  (total, (y_pred, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, model_state=model_state)
  state = state.replace(params=model.constrain(state.params))
  return state, _batch_stats(total, y, y_pred, mask, metrics)


def train_epoch(state: TrainState, x: Array, y: Array, sample_weight: Array, *, model: Sequential,
                loss: losses_lib.Loss, metrics: tuple[metrics_lib.Metric, ...], batch_size: int,
                shuffle: bool = True) -> tuple[TrainState, dict[str, PyTree]]:
  """One pass over (x, y) in batches, as one program: shuffle, then scan `train_step` over the batches."""
  n = x.shape[0]
  if shuffle:
    shuffle_key = jax.random.fold_in(jax.random.fold_in(state.key, 0), state.epoch)
    order = jax.random.permutation(shuffle_key, n)
  else:
    order = jnp.arange(n)
  idx, valid = batch_indices(n, batch_size, order)
  step = functools.partial(train_step, model=model, loss=loss, metrics=metrics)

  def body(st, batch):
    idx_b, valid_b = batch
    w_b = jnp.take(sample_weight, idx_b, axis=0)
    return step(st, jnp.take(x, idx_b, axis=0), jnp.take(y, idx_b, axis=0), w_b, valid_b.astype(w_b.dtype))

  stats_shape = jax.eval_shape(body, state, (idx[0], valid[0]))[1]
  state, totals = _scan_sum(body, state, stats_shape, (idx, valid))
  return state.replace(epoch=state.epoch + 1), totals


def eval_totals(params: PyTree, model_state: PyTree, x: Array, y: Array, *, model: Sequential,
                loss: losses_lib.Loss,
                metrics: tuple[metrics_lib.Metric, ...], batch_size: int) -> dict[str, PyTree]:
  """Summed loss / metric statistics over (x, y) at inference, in batches (one program)."""
  n = x.shape[0]
  idx, valid = batch_indices(n, batch_size, jnp.arange(n))
  penalty = model.regularization(params)

  def body(carry, batch):
    idx_b, valid_b = batch
    y_b = jnp.take(y, idx_b, axis=0)
    y_pred, aux = model.forward(params, jnp.take(x, idx_b, axis=0), state=model_state)
    mask = valid_b.astype(jnp.float32)
    total = loss(y_b, y_pred, mask=mask) + penalty + aux["activity_penalty"]
    return carry, _batch_stats(total, y_b, y_pred, mask, metrics)

  stats_shape = jax.eval_shape(body, (), (idx[0], valid[0]))[1]
  _, totals = _scan_sum(body, (), stats_shape, (idx, valid))
  return totals


_STATIC = ("model", "loss", "metrics", "batch_size")
_train_epoch_jit = jax.jit(train_epoch, static_argnames=_STATIC + ("shuffle",), donate_argnames=("state",))
_eval_totals_jit = jax.jit(eval_totals, static_argnames=_STATIC)
_COMPILED: dict[Any, Any] = {}


def _compiled(fn: Any, args: tuple[Any, ...], static: dict[str, Any]) -> tuple[Any, bool]:
  """Ahead-of-time compiled `fn` for these argument structures, shapes and static values; cached.

  Compiling ahead of time lets `fit` report compile time apart from epoch time; the cache makes a second
  `fit` with the same model, data shapes and optimizer config reuse the program. Returns (program, hit).
  """
  leaves, treedef = jax.tree_util.tree_flatten(args)
  key = (fn, treedef, tuple((jnp.shape(a), jnp.result_type(a)) for a in leaves), tuple(sorted(static.items())))
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
  """Per-epoch records, as Keras' History: `history["loss"]`, `history["val_accuracy"]`, `history["seconds"]`."""

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
  """Stops `fit` when `monitor` has not improved by `min_delta` for `patience` epochs (Keras semantics)."""

  monitor: str = "val_loss"
  patience: int = 0
  min_delta: float = 0.0
  mode: str = "auto"
  restore_best_weights: bool = False

  def better(self, value: float, best: float) -> bool:
    mode = self.mode
    if mode == "auto":
      mode = "min" if self.monitor.endswith("loss") else "max"
    if mode == "min":
      return value < best - abs(self.min_delta)
    return value > best + abs(self.min_delta)


# --------------------------------------------------------------------------------------------- checks
def _as_float_inputs(x: Any, arg: str) -> np.ndarray:
  x = np.asarray(x)
  if x.dtype == np.uint8:
    raise JaxnnError(f"{arg}: expected floating-point inputs, got uint8 images; scale them first "
                     "(jaxnn.data.scale maps 0..255 to [0, 1])")
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise JaxnnError(f"{arg}: expected a numeric array, got dtype {x.dtype}")
  return x.astype(np.float32) if x.dtype != np.float32 else x


def _check_xy(model: Sequential, loss: losses_lib.Loss, x: np.ndarray, y: Any, what: str) -> np.ndarray:
  y = np.asarray(y)
  if x.ndim < 2:
    raise JaxnnError(f"{what}: x must have a batch axis, got shape {x.shape}")
  if x.shape[0] == 0:
    raise JaxnnError(f"{what}: the dataset is empty (x has shape {x.shape})")
  if y.shape[:1] != x.shape[:1]:
    raise JaxnnError(f"{what}: x and y must have the same number of examples, got {x.shape[0]} and "
                     f"{y.shape[0] if y.ndim else 'a scalar'}")
  out_shape = model.output_shapes(x.shape[1:])[-1]
  if loss.label_format == "sparse":
    if not np.issubdtype(y.dtype, np.integer):
      raise JaxnnError(f"{what}: {loss.name} expects integer class labels, got dtype {y.dtype}"
                       " (use categorical_crossentropy for one-hot labels)")
    classes = out_shape[-1]
    if y.size and (y.min() < 0 or y.max() >= classes):
      bad = y.min() if y.min() < 0 else y.max()
      raise JaxnnError(f"{what}: labels must be in [0, {classes}) for a model with {classes} outputs, found {bad}")
    return y.astype(np.int32)
  return y.astype(np.float32)


def _resolve_metrics(metrics: Sequence[Any], loss: losses_lib.Loss) -> tuple[metrics_lib.Metric, ...]:
  resolved = tuple(metrics_lib.get(m, loss=loss) for m in metrics)
  names = [m.name for m in resolved]
  if len(set(names)) != len(names) or "loss" in names:
    raise JaxnnError(f"metrics: names must be unique and not 'loss', got {names}")
  return resolved


# --------------------------------------------------------------------------------------------- fit
def fit(model: Sequential, params: PyTree | TrainState, x: Any, y: Any, *, loss: Any,
        optimizer: Any = "adam", metrics: Sequence[Any] = (), epochs: int = 1, batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None, validation_split: float = 0.0,
        sample_weight: Any = None, class_weight: Any = None, shuffle: bool = True,
        key: Array | None = None, early_stopping: EarlyStopping | None = None, verbose: int = 1,
        eval_batch_size: int = 1024) -> tuple[TrainState, History]:
  """Trains `model` and returns `(state, history)`, Keras' `fit` as a function.

  Args:
    model: the Sequential model.
    params: its params (from `model.init`), or a TrainState to continue training (its optimizer is kept).
    x: inputs, float (scale uint8 images first), batch axis first.
    y: targets: int class labels for sparse losses, one-hot / floats otherwise.
    loss: a loss name (`"sparse_categorical_crossentropy"`, ...) or `losses.Loss`.
    optimizer: an optimizer name, `optimizers.OptimizerConfig` or optax GradientTransformation.
    metrics: metric names or `metrics.Metric`s, reported per epoch ("accuracy" follows the loss).
    epochs: number of passes over the data.
    batch_size: examples per step: len(x) is batch gradient descent, 1 stochastic, k mini-batch.
    validation_data: `(x_val, y_val)` evaluated after every epoch (`val_*` in the history).
    validation_split: fraction of (x, y) held out for validation, taken from the end before shuffling.
    sample_weight: per-example weights (N,) for the loss.
    class_weight: `{class: weight}` turned into per-example weights for the loss.
    shuffle: reshuffle the training data every epoch (from the run key and the epoch number).
    key: the run's PRNG key (shuffling, dropout); default `jax.random.key(0)`.
    early_stopping: an `EarlyStopping` config, or None.
    verbose: 0 silent, 1 or 2 a line per epoch (time, loss, metrics, val metrics).
    eval_batch_size: batch size for the validation pass.

  Returns:
    The final TrainState (params in `state.params`) and a History.
  """
  loss = losses_lib.get(loss)
  metrics = _resolve_metrics(metrics, loss)
  x = _as_float_inputs(x, "x")
  y = _check_xy(model, loss, x, y, "fit")
  if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
    raise JaxnnError(f"fit: epochs must be an int >= 0, got {epochs!r}")
  if not 0.0 <= validation_split < 1.0:
    raise JaxnnError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
  if validation_split and validation_data is not None:
    raise JaxnnError("fit: pass validation_data or validation_split, not both")
  if validation_split:
    n_val = int(math.floor(len(x) * validation_split))
    if n_val == 0 or n_val == len(x):
      raise JaxnnError(f"fit: validation_split={validation_split} of {len(x)} examples leaves an empty side")
    validation_data = (x[-n_val:], y[-n_val:])
    x, y = x[:-n_val], y[:-n_val]
    if sample_weight is not None:
      sample_weight = np.asarray(sample_weight)[:-n_val]
  n = len(x)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
    raise JaxnnError(f"fit: batch_size must be an int in [1, {n}] (the number of training examples), "
                     f"got {batch_size!r}")
  weights = np.ones((n,), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
  if weights.shape != (n,):
    raise JaxnnError(f"fit: sample_weight must have shape ({n},), got {weights.shape}")
  if class_weight is not None:
    num_classes = model.output_shapes(x.shape[1:])[-1][-1]
    weights = weights * np.asarray(losses_lib.class_weight_to_sample_weight(y, class_weight, num_classes))
  if validation_data is not None:
    x_val = _as_float_inputs(validation_data[0], "validation_data x")
    y_val = _check_xy(model, loss, x_val, validation_data[1], "validation_data")

  if isinstance(params, TrainState):
    state = params
  else:
    state = create_train_state(model, params, optimizer, key=key, model_state=model.init_state(x.shape[1:]))
  # The compiled epoch donates the state's buffers; train on a copy so the caller's arrays stay valid.
  state = jax.tree_util.tree_map(jnp.copy, state)

  # Move the data to the device once; compile the epoch (and the validation pass) once, ahead of time.
  x_d, y_d, w_d = jax.device_put((x, y, weights))
  static = dict(model=model, loss=loss, metrics=metrics, batch_size=batch_size)
  start = time.perf_counter()
  epoch_fn, _ = _compiled(_train_epoch_jit, (state, x_d, y_d, w_d), dict(static, shuffle=shuffle))
  if validation_data is not None:
    xv_d, yv_d = jax.device_put((x_val, y_val))
    eval_static = dict(static, batch_size=min(eval_batch_size, len(x_val)))
    eval_fn, _ = _compiled(_eval_totals_jit, (state.params, state.model_state, xv_d, yv_d), eval_static)
  history = History(compile_seconds=time.perf_counter() - start,
                    params={"epochs": epochs, "batch_size": batch_size, "steps": -(-n // batch_size),
                            "samples": n})
  if verbose:
    print(f"compiled in {history.compile_seconds:.2f}s: {n} samples, batch {batch_size}, "
          f"{-(-n // batch_size)} steps/epoch", file=sys.stdout, flush=True)

  best, best_params, wait = None, None, 0
  first_epoch = int(state.epoch)
  for epoch in range(first_epoch, first_epoch + epochs):
    t0 = time.perf_counter()
    state, totals = epoch_fn(state, x_d, y_d, w_d)
    logs = _finalize(totals, metrics)  # device_get: the epoch has finished
    if validation_data is not None:
      logs.update({f"val_{k}": v for k, v in _finalize(eval_fn(state.params, state.model_state, xv_d, yv_d), metrics).items()})
    logs["seconds"] = time.perf_counter() - t0
    lr = optimizers.learning_rate_of(state.opt_state)
    if lr is not None:
      logs["learning_rate"] = float(lr)
    history.append(epoch + 1, logs)
    if verbose:
      print(_progress_line(epoch + 1, first_epoch + epochs, logs), flush=True)
    if early_stopping is not None:
      if early_stopping.monitor not in logs:
        raise JaxnnError(f"EarlyStopping: monitor {early_stopping.monitor!r} is not logged; "
                         f"available: {sorted(logs)}")
      value = logs[early_stopping.monitor]
      if best is None or early_stopping.better(value, best):
        best, wait = value, 0
        if early_stopping.restore_best_weights:
          best_params = jax.tree_util.tree_map(jnp.copy, state.params)  # the state's buffers get donated
      else:
        wait += 1
        if wait > early_stopping.patience:
          if verbose:
            print(f"early stopping at epoch {epoch + 1}: {early_stopping.monitor} did not improve for "
                  f"{wait} epochs (best {best:.4f})", flush=True)
          break
  if best_params is not None:
    state = state.replace(params=best_params)
  return state, history


def _progress_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
  parts = [f"Epoch {epoch}/{epochs}", f"{logs['seconds']:.2f}s"]
  parts += [f"{k}: {v:.4f}" for k, v in logs.items() if k not in ("seconds", "learning_rate")]
  return " - ".join(parts)


# --------------------------------------------------------------------------------------------- evaluate / predict
def evaluate(model: Sequential, params: PyTree, x: Any, y: Any, *, loss: Any, metrics: Sequence[Any] = (),
             batch_size: int = 1024, state: PyTree | None = None) -> dict[str, float]:
  """Loss (with weight and activity penalties, as Keras reports it) and metrics over (x, y).

  `params` may be a TrainState (its model state is used); otherwise pass the model's `state` if it has one.
  """
  loss = losses_lib.get(loss)
  metrics = _resolve_metrics(metrics, loss)
  x = _as_float_inputs(x, "x")
  y = _check_xy(model, loss, x, y, "evaluate")
  params, state = _params_and_state(model, params, state, x)
  totals = _eval_totals_jit(params, state, jnp.asarray(x), jnp.asarray(y), model=model, loss=loss,
                            metrics=metrics, batch_size=min(batch_size, len(x)))
  return _finalize(totals, metrics)


def predict(model: Sequential, params: PyTree, x: Any, *, batch_size: int = 1024,
            state: PyTree | None = None) -> np.ndarray:
  """The model's outputs (e.g. class probabilities) for x, computed in batches at inference."""
  x = _as_float_inputs(x, "x")
  if x.ndim < 2 or x.shape[0] == 0:
    raise JaxnnError(f"predict: x must be a non-empty batch, got shape {x.shape}")
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
