"""Many models at once: K runs of one architecture trained by one compiled program (jax.vmap of the epoch).

The runs differ in seed (initial params, data order, dropout masks) and in hyperparameters given as
traced values, so sweeping their values never recompiles:
  learning_rate, weight_decay  set per model in the optimizer state (`optax.inject_hyperparams` keeps them
                               there; `jaxnn.optimizers` builds every optimizer that way);
  l2                           `l2 * sum(kernel**2)` over every layer's kernel added to the objective, what
                               `kernel_regularizer=L2(l2)` on each layer does;
  dropout_rate                 replaces the rate of every Dropout layer of the model.
Model k is the run `fit` does from `params = model.init(init_key, ...)` with `key=fit_key`
(`init_key, fit_key = seed_keys(seeds[k])`) and the same hyperparameters: each model shuffles the data with
its own key, as separate fits would, unless `data_seed` gives them one shared order. Early stopping and
data parallelism are `fit`'s alone.

Also here: per-example gradients and their norms (`jax.vmap` of `jax.grad` over single examples).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import _checks
from jaxnn import checkpoint as checkpoint_lib
from jaxnn import losses as losses_lib
from jaxnn import models
from jaxnn import numerics
from jaxnn import optimizers
from jaxnn import training
from jaxnn.errors import JaxnnError
from jaxnn.layers import Dropout
from jaxnn.models import Sequential

Array = jax.Array
PyTree = Any

# name -> (low, high, high inclusive) for the swept values.
_RANGES = {"learning_rate": (0.0, math.inf, False), "weight_decay": (0.0, math.inf, False),
           "l2": (0.0, math.inf, False), "dropout_rate": (0.0, 1.0, False)}


def seed_keys(seed: int) -> tuple[Array, Array]:
  """The (init_key, fit_key) that `fit_many` derives from a seed: `model.init(init_key, ...)`, `fit(key=fit_key)`."""
  init_key, fit_key = jax.random.split(jax.random.key(seed))
  return init_key, fit_key


def check_values(name: str, value: Any) -> np.ndarray | None:
  """A swept hyperparameter as an array, () for one value shared by all models, (K,) for one per model;
  raises JaxnnError for a bad one (name: learning_rate, weight_decay, l2 or dropout_rate)."""
  if name not in _RANGES:
    raise JaxnnError(f"fit_many: can sweep {sorted(_RANGES)}, got {name!r}")
  if value is None:
    return None
  if isinstance(value, (bool, str)):
    raise JaxnnError(f"fit_many: {name} must be a number or a sequence of numbers, got {value!r}")
  try:
    arr = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    raise JaxnnError(f"fit_many: {name} must be a number or a sequence of numbers, got {value!r}") from None
  if arr.ndim > 1 or arr.size == 0:
    raise JaxnnError(f"fit_many: {name} must be a number or a non-empty 1-D sequence, got shape {arr.shape}")
  low, high, _ = _RANGES[name]
  bad = arr[~(np.isfinite(arr) & (arr >= low) & (arr < high))]
  if bad.size:
    raise JaxnnError(f"fit_many: {name} values must be in [{low}, {high}), found {float(bad[0])}")
  return arr


def _seeds(seeds: Any) -> np.ndarray:
  arr = np.asarray(seeds)
  if arr.ndim > 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or isinstance(seeds, bool):
    raise JaxnnError(f"fit_many: seeds must be an int or a non-empty sequence of ints, got {seeds!r}")
  if arr.min() < 0 or arr.max() >= 2**31:
    raise JaxnnError(f"fit_many: seeds must be in [0, 2**31), got {seeds!r}")
  return arr.astype(np.int32)


def _set_hyperparam(opt_state: PyTree, name: str, value: Array) -> PyTree:
  """Sets `name` in every `inject_hyperparams` state; raises if it is absent or follows a schedule."""
  if not optimizers.settable(opt_state, name):
    raise JaxnnError(f"fit_many: the optimizer holds no {name!r} to set per model (schedules and plain optax "
                     "transformations cannot be swept; pass an optimizer name or an OptimizerConfig)")
  return optimizers.set_hyperparam(opt_state, name, value)


def _optimizer(optimizer: Any, weight_decay: np.ndarray | None) -> Any:
  """The shared optimizer; a swept weight decay needs the decay term built in (its value is set per model)."""
  if isinstance(optimizer, str):
    optimizer = optimizers.OptimizerConfig(optimizer)
  if isinstance(optimizer, optimizers.OptimizerConfig) and weight_decay is not None:
    # A placeholder: 0 or None would build no decay term at all. Each model's value replaces it.
    optimizer = dataclasses.replace(optimizer, weight_decay=1.0)
  return optimizer


@functools.partial(jax.jit, static_argnames=("model", "tx", "input_shape"),
                   compiler_options=models.ONE_SHOT_COMPILER_OPTIONS)
def _init_many(seeds, opt_values, *, model, tx, input_shape):
  """K initial TrainStates: params from each seed's init key, the optimizer's swept values set per model."""

  def init_one(seed, values):
    init_key, fit_key = seed_keys(seed)
    state = training.create_train_state(model, model.init(init_key, input_shape), tx, key=fit_key,
                                        model_state=model.init_state(input_shape))
    opt_state = state.opt_state
    for name, value in values.items():
      opt_state = _set_hyperparam(opt_state, name, value)
    return state.replace(opt_state=opt_state)

  return jax.vmap(init_one)(seeds, opt_values)


def _many_epoch(states, x, y, sample_weight, hparams, orders, *, model, loss, metrics, batch_size):
  """`training.train_epoch` for K models at once: states, hparams and `orders` (K, n) carry a leading K axis
  (`orders` of shape (n,): one order shared by every model); the data are shared."""
  epoch = functools.partial(training.train_epoch, model=model, loss=loss, metrics=metrics, batch_size=batch_size)
  order_axis = 0 if orders.ndim == 2 else None
  return jax.vmap(lambda st, hp, o: epoch(st, x, y, sample_weight, o, hparams=hp),
                  in_axes=(0, 0, order_axis))(states, hparams, orders)


def _many_eval(params, model_state, x, y, sample_weight, hparams, *, model, loss, metrics, batch_size):
  evaluate = functools.partial(training.eval_totals, model=model, loss=loss, metrics=metrics, batch_size=batch_size)
  return jax.vmap(lambda p, s, hp: evaluate(p, s, x, y, hparams=hp, sample_weight=sample_weight))(
      params, model_state, hparams)


_STATIC = ("model", "loss", "metrics", "batch_size")
_many_epoch_jit = jax.jit(_many_epoch, static_argnames=_STATIC, donate_argnames=("states",))
_many_eval_jit = jax.jit(_many_eval, static_argnames=_STATIC)


def fit_many(model: Sequential, x: Any, y: Any, *, loss: Any, seeds: int | Sequence[int] = 0,
             learning_rate: Any = None, weight_decay: Any = None, l2: Any = None, dropout_rate: Any = None,
             optimizer: Any = "adam", metrics: Sequence[Any] = (), weighted_metrics: Sequence[Any] | None = None,
             epochs: int = 1, batch_size: int = 32,
             validation_data: tuple[Any, ...] | None = None, validation_split: float = 0.0, shuffle: bool = True,
             data_seed: int | None = None, verbose: int = 0, eval_batch_size: int = 1024,
             checkpoint: checkpoint_lib.Checkpointing | None = None,
             ) -> tuple[training.TrainState, list[training.History]]:
  """Trains K copies of `model` in one compiled program and returns their stacked state and K histories.

  Each of seeds, learning_rate, weight_decay, l2, dropout_rate is one value shared by every model or a
  sequence with one value per model; K is the common length (1 if all are single values).

  There is no NaN guard (`fit`'s would stop every model for one): a model that diverges, a learning rate too
  large in a sweep say, goes on as NaN and shows it in its History, and the other models are unaffected.

  Args:
    model: the Sequential model (with `dropout_rate`, its Dropout layers' own rates are replaced).
    x: inputs, float, batch axis first (shared by all models).
    y: targets, as for `fit`.
    loss: a loss name or `losses.Loss`.
    seeds: per-model seeds; model k starts from `model.init(seed_keys(seeds[k])[0], ...)`.
    learning_rate: per-model learning rates; None keeps the optimizer's.
    weight_decay: per-model decoupled weight decay (`OptimizerConfig.weight_decay`'s meaning); None keeps
      the optimizer's.
    l2: per-model L2 coefficients on every kernel, added to the objective; None adds nothing.
    dropout_rate: per-model rate for every Dropout layer; None keeps the layers' rates.
    optimizer: an optimizer name or `OptimizerConfig` (swept values replace its learning rate / weight
      decay; a learning-rate schedule cannot be swept), or an optax transformation when nothing in it is swept.
    metrics: metric names or `metrics.Metric`s.
    weighted_metrics: as in `fit`; weighted by the validation data's weights (the training data have none).
    epochs: passes over the data.
    batch_size: examples per step (each model sees the same number of steps).
    validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight_val)` (weights for the validation
      loss, as in `fit`), evaluated for every model after every epoch.
    validation_split: fraction of (x, y) held out for validation, taken from the end.
    shuffle: reshuffle every epoch (each model with its own key, unless data_seed is set).
    data_seed: None: each model shuffles with its own fit key, as separate fits do. An int: every model sees
      the same batches in the same order, shuffled as `fit(key=jax.random.key(data_seed))` would; the
      models then share each gathered batch, their first layers run as one matrix product, and differences
      between hyperparameters are not blurred by data order.
    verbose: 0 silent, 1 a line per epoch (loss over the models: mean, min, max).
    eval_batch_size: batch size of the validation pass.
    checkpoint: a `checkpoint.Checkpointing`, as for `fit`: the stacked state and the K Histories are saved
      every N epochs and at the end; with `resume`, the K runs continue from the newest checkpoint up to
      `epochs` (bit-exact). A checkpoint of another number of models, other seeds or other swept values is
      refused: they are part of what the run is.

  Returns:
    `(states, histories)`: one TrainState whose every array has a leading K axis (`unstack` splits it) and a
    list of K Histories; `histories[k].params` records model k's seed and hyperparameters.
  """
  loss = losses_lib.get(loss)
  metrics = training._resolve_metrics(metrics, loss, weighted_metrics)
  x = training._as_float_inputs(x, "x")
  y = training._check_xy(model, loss, x, y, "fit_many", training._NOT_MADE_YET, metrics)
  numerics.check_finite(x, "x")
  numerics.check_finite(y, "y")
  epochs = _checks.check_int(epochs, "epochs", "fit_many", low=0)
  _checks.check_fraction(validation_split, "validation_split", "fit_many")
  if validation_data is not None:
    _checks.check_validation_data(validation_data, "fit_many")
  x, y, _, validation_data = training._hold_out(x, y, None, validation_split, validation_data, "fit_many")
  n = len(x)
  batch_size = _checks.check_batch_size(batch_size, n, "fit_many")
  if validation_data is not None:
    x_val, y_val, w_val = training._validation_arrays(model, loss, validation_data, training._NOT_MADE_YET,
                                                      metrics)

  seed_arr = _seeds(seeds)
  given = {k: check_values(k, v) for k, v in dict(learning_rate=learning_rate, weight_decay=weight_decay, l2=l2,
                                               dropout_rate=dropout_rate).items()}
  given = {k: v for k, v in given.items() if v is not None}
  lengths = {k: len(v) for k, v in [("seeds", seed_arr), *given.items()] if v.ndim == 1}
  if len(set(lengths.values())) > 1:
    raise JaxnnError(f"fit_many: per-model sequences must have one length (the number of models), got {lengths}")
  num_models = next(iter(lengths.values()), 1)
  seed_arr = np.broadcast_to(seed_arr, (num_models,))
  given = {k: np.broadcast_to(v, (num_models,)) for k, v in given.items()}
  if "dropout_rate" in given and not any(isinstance(layer, Dropout) for layer in model.layers):
    raise JaxnnError(f"fit_many: dropout_rate is set but {model.name} has no Dropout layer")

  tx = _optimizer(optimizer, given.get("weight_decay"))
  tx = optimizers.get(tx)  # an optax transformation comes back as is
  opt_values = {k: jnp.asarray(given[k], jnp.float32) for k in ("learning_rate", "weight_decay") if k in given}
  hparams = {k: jnp.asarray(given[k], jnp.float32) for k in ("l2", "dropout_rate") if k in given}
  if data_seed is not None:
    if not _checks.is_int(data_seed) or not 0 <= data_seed < 2**31:
      raise JaxnnError(f"fit_many: data_seed must be None or an int in [0, 2**31), got {data_seed!r}")
    data_seed = int(data_seed)
  if checkpoint is not None and not isinstance(checkpoint, checkpoint_lib.Checkpointing):
    raise JaxnnError(f"fit_many: checkpoint must be a jaxnn.Checkpointing or None, got {checkpoint!r}")
  states = _init_many(jnp.asarray(seed_arr), opt_values, model=model, tx=tx, input_shape=x.shape[1:])
  # What makes the K runs these runs: a checkpoint written with other values would continue other runs.
  run_settings = {"batch_size": batch_size, "samples": n, "shuffle": shuffle, "data_seed": data_seed,
                  "models": num_models, "seeds": [int(s) for s in seed_arr],
                  **{name: None if name not in given else [float(v) for v in given[name]] for name in _RANGES}}
  resumed = None if checkpoint is None else checkpoint_lib.begin(checkpoint, states, run_settings, epochs)
  if resumed is not None:
    states = resumed.state
  # Each epoch's orders are drawn on the host, as `fit` draws them: from each model's key, or data_seed's.
  order_keys = np.asarray(jax.random.key_data(states.key if data_seed is None else jax.random.key(int(data_seed))))
  x_d, y_d, w_d = jax.device_put((x, y, np.ones((n,), np.float32)))
  static = dict(model=model, loss=loss, metrics=metrics, batch_size=batch_size)
  orders = jax.device_put(training.epoch_order(order_keys, int(states.epoch[0]), n, shuffle))
  start = time.perf_counter()
  epoch_fn, _ = training._compiled(_many_epoch_jit, (states, x_d, y_d, w_d, hparams, orders), static)
  if validation_data is not None:
    xv_d, yv_d, wv_d = jax.device_put((x_val, y_val, w_val))
    eval_static = dict(static, batch_size=min(eval_batch_size, len(x_val)))
    eval_fn, _ = training._compiled(_many_eval_jit, (states.params, states.model_state, xv_d, yv_d, wv_d, hparams),
                                    eval_static)
  compile_seconds = time.perf_counter() - start
  steps = -(-n // batch_size)
  histories = []
  for k in range(num_models):
    record = {"seed": int(seed_arr[k]), **{name: float(v[k]) for name, v in given.items()}}
    histories.append(training.History(compile_seconds=compile_seconds, params={
        "epochs": epochs, "batch_size": batch_size, "steps": steps, "samples": n, "models": num_models, **record}))
  if verbose:
    print(f"compiled in {compile_seconds:.2f}s: {num_models} models, {n} samples, batch {batch_size}, "
          f"{steps} steps/epoch", file=sys.stdout, flush=True)
  if resumed is not None:  # the K runs so far
    for history, saved in zip(histories, resumed.history["history"]):
      history.epoch, history.history = list(resumed.history["epoch"]), dict(saved)
    if verbose:
      print(f"resumed from {resumed.path} at epoch {int(states.epoch[0])} of {epochs}", flush=True)

  first_epoch = int(states.epoch[0])
  for epoch in range(first_epoch, epochs):
    t0 = time.perf_counter()
    if epoch != first_epoch:
      orders = jax.device_put(training.epoch_order(order_keys, epoch, n, shuffle))
    states, totals = epoch_fn(states, x_d, y_d, w_d, hparams, orders)
    totals = jax.device_get(totals)
    val_totals = None
    if validation_data is not None:
      val_totals = jax.device_get(eval_fn(states.params, states.model_state, xv_d, yv_d, wv_d, hparams))
    seconds = time.perf_counter() - t0
    lr = optimizers.learning_rate_of(states.opt_state)
    lr = None if lr is None else np.broadcast_to(np.asarray(lr), (num_models,))
    for k, history in enumerate(histories):
      logs = training._finalize(_model_k(totals, k), metrics)
      if val_totals is not None:
        logs.update({f"val_{m}": v for m, v in training._finalize(_model_k(val_totals, k), metrics).items()})
      logs["seconds"] = seconds
      if lr is not None:
        logs["learning_rate"] = float(lr[k])
      history.append(epoch + 1, logs)
    if verbose:
      final = np.array([h["loss"][-1] for h in histories])
      print(f"Epoch {epoch + 1}/{epochs} - {seconds:.2f}s - loss over {num_models} models: "
            f"mean {final.mean():.4f}, min {final.min():.4f}, max {final.max():.4f}", flush=True)
    if checkpoint is not None and checkpoint.due(epoch + 1, last=epoch + 1 == epochs):
      checkpoint_lib.save(checkpoint.directory, states, keep=checkpoint.keep, meta={"fit": run_settings},
                          history={"epoch": histories[0].epoch,
                                   "history": [[[k, v] for k, v in h.history.items()] for h in histories]})
  return states, histories


def _model_k(tree: PyTree, k: int) -> PyTree:
  return jax.tree_util.tree_map(lambda a: a[k], tree)


def unstack(states: training.TrainState) -> list[training.TrainState]:
  """The K TrainStates of a stacked state from `fit_many` (each usable with evaluate / predict / fit).

  Args:
    states: a TrainState whose arrays have a leading K axis.

  Returns:
    A list of K TrainStates.
  """
  num_models = int(states.epoch.shape[0]) if states.epoch.ndim else 0
  if not num_models:
    raise JaxnnError("unstack: expected a stacked TrainState from fit_many (arrays with a leading model axis)")
  return [_model_k(states, k) for k in range(num_models)]


# --------------------------------------------------------------------------------------------- per-example
@functools.partial(jax.jit, static_argnames=("model", "loss"))
def _grads(params, model_state, x, y, *, model, loss):
  def one(x_i, y_i):
    def objective(p):
      y_pred, aux = model.forward(p, x_i[None], state=model_state)
      return loss(y_i[None], y_pred, mask=aux["step_mask"])  # masked steps of sequence outputs stay out
    return jax.grad(objective)(params)
  return jax.vmap(one)(x, y)


@functools.partial(jax.jit, static_argnames=("model", "loss", "batch_size"))
def _grad_norms(params, model_state, x, y, *, model, loss, batch_size):
  one = lambda xy: optax.tree.norm(_grads(params, model_state, xy[0][None], xy[1][None], model=model, loss=loss))
  # lax.map in chunks of batch_size: only one chunk's gradients exist at a time.
  return jax.lax.map(one, (x, y), batch_size=batch_size)


def _per_example_inputs(model, params, x, y, loss, state, what):
  loss = losses_lib.get(loss)
  x = training._as_float_inputs(x, "x")
  y = training._check_xy(model, loss, x, y, what, params, ())
  params, state = training._params_and_state(model, params, state, x)
  return params, state, x, y, loss


def per_example_grads(model: Sequential, params: PyTree, x: Any, y: Any, *, loss: Any,
                      state: PyTree | None = None) -> PyTree:
  """Gradient of each example's loss with respect to the params: `jax.vmap` of `jax.grad` over examples.

  The loss of example i is `loss(y[i:i+1], model.apply(params, x[i:i+1]))` at inference (no dropout,
  running statistics for BatchNormalization); weight penalties are not included. Their mean over the
  examples is the gradient of the mean loss. For outputs that carry a step mask (sequence outputs after
  `Embedding(mask_zero=True)`), example i's loss is its mean over its own unmasked steps (0 with none), so
  the mean of the gradients weighs every example alike where the batch loss weighs every unmasked step.

  Args:
    model: the Sequential model.
    params: its params, or a TrainState.
    x: inputs (N, ...), float.
    y: targets (N, ...).
    loss: a loss name or `losses.Loss`.
    state: the model state, for models with running statistics (taken from a TrainState otherwise).

  Returns:
    A pytree shaped like params with a leading axis of N.
  """
  params, state, x, y, loss = _per_example_inputs(model, params, x, y, loss, state, "per_example_grads")
  return _grads(params, state, jnp.asarray(x), jnp.asarray(y), model=model, loss=loss)


def per_example_grad_norms(model: Sequential, params: PyTree, x: Any, y: Any, *, loss: Any,
                           state: PyTree | None = None, batch_size: int = 256) -> np.ndarray:
  """Global L2 norm of each example's gradient (see `per_example_grads`), computed `batch_size` at a time.

  Returns:
    A float32 array of shape (N,).
  """
  if not _checks.is_int(batch_size) or batch_size < 1:
    raise JaxnnError(f"per_example_grad_norms: batch_size must be a positive int, got {batch_size!r}")
  params, state, x, y, loss = _per_example_inputs(model, params, x, y, loss, state, "per_example_grad_norms")
  return np.asarray(_grad_norms(params, state, jnp.asarray(x), jnp.asarray(y), model=model, loss=loss,
                                batch_size=min(int(batch_size), len(x))))
