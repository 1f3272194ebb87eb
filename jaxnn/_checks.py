"""Checks of what `fit` / `evaluate` / `predict` are given, run on the host before anything is compiled.

Each check reads numpy arrays or static shapes only (the params' expected shapes come from `jax.eval_shape`,
which traces but never compiles), so bad input fails in milliseconds with a message naming the argument,
what was expected and what was found, instead of deep inside a trace or after a long compile.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import losses as losses_lib
from jaxnn.errors import JaxnnError

Shape = tuple[int, ...]

_UINT8_HINT = "scale them first (jaxnn.data.scale maps 0..255 to [0, 1])"


def as_array(value: Any, arg: str) -> np.ndarray:
  """`np.asarray(value)`, with ragged nested lists reported as a JaxnnError."""
  try:
    return np.asarray(value)
  except (ValueError, TypeError) as e:
    raise JaxnnError(f"{arg}: expected an array (equal-length rows), got {type(value).__name__} that numpy "
                     f"cannot stack ({' '.join(str(e).split())})") from None


def check_numeric_dtype(dtype: np.dtype, arg: str) -> None:
  """Real numbers only: bool, complex, strings and objects are refused; uint8 images must be scaled first.

  uint8 is refused rather than scaled: a silent x / 255 would give the same array another meaning than in
  Keras or numpy, and a warning lets a run on 0..255 inputs go on (it trains, badly).
  """
  if dtype == np.uint8:
    raise JaxnnError(f"{arg}: expected floating-point inputs, got uint8 images; {_UINT8_HINT}")
  # jnp.issubdtype also knows the ml_dtypes floats (bfloat16, float8_*), which numpy does not class as numbers.
  if dtype == np.bool_ or not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.complexfloating):
    raise JaxnnError(f"{arg}: expected a real numeric array (float, or int to be converted), got dtype {dtype}")


def float_inputs(x: Any, arg: str) -> np.ndarray:
  """x as float32 after the dtype checks."""
  x = as_array(x, arg)
  check_numeric_dtype(x.dtype, arg)
  return x if x.dtype == np.float32 else x.astype(np.float32)


def check_batch(x: np.ndarray, where: str, arg: str = "x") -> None:
  """A non-empty batch of examples of positive sizes."""
  if x.ndim < 2:
    raise JaxnnError(f"{where}: {arg} must be a batch (examples, features...), got shape {x.shape}")
  if x.shape[0] == 0:
    raise JaxnnError(f"{where}: the dataset is empty ({arg} has shape {x.shape})")
  if 0 in x.shape[1:]:
    raise JaxnnError(f"{where}: {arg} has examples of shape {x.shape[1:]}; expected positive sizes")


def is_int(value: Any) -> bool:
  """A Python or numpy integer, not a bool: what every int argument of jaxnn takes (sizes computed with numpy,
  e.g. `np.int64(n // 10)`, are as good as Python ints, as in Keras). Callers keep `int(value)`."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value: Any, arg: str, where: str, *, low: int) -> int:
  """A Python / numpy int (not a bool) >= low, returned as a Python int."""
  if not is_int(value) or value < low:
    raise JaxnnError(f"{where}: {arg} must be an int >= {low}, got {value!r}")
  return int(value)


def check_batch_size(batch_size: Any, n: int, where: str) -> int:
  """A training batch size: an int in [1, n], n the number of training examples; returned as a Python int."""
  if not is_int(batch_size) or not 1 <= batch_size <= n:
    raise JaxnnError(f"{where}: batch_size must be an int in [1, {n}] (the number of training examples), "
                     f"got {batch_size!r}")
  return int(batch_size)


def check_fraction(value: Any, arg: str, where: str) -> None:
  """A real number in [0, 1)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
    raise JaxnnError(f"{where}: {arg} must be in [0, 1), got {value!r}")


def check_key(key: Any, arg: str = "key") -> None:
  """A PRNG key: `jax.random.key(seed)` (typed) or the legacy `jax.random.PRNGKey(seed)` uint32 pair."""
  dtype = getattr(key, "dtype", None)
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and np.ndim(key) == 0:
    return
  if dtype == np.uint32 and np.shape(key) == (2,):
    return
  shown = (f"{type(key).__name__} {key!r}" if dtype is None
           else f"an array of dtype {dtype} and shape {np.shape(key)}")
  raise JaxnnError(f"{arg}: expected a PRNG key from jax.random.key(seed), got {shown}")


def sample_weights(sample_weight: Any, n: int, steps: Shape = (), where: str = "fit") -> np.ndarray:
  """Weights for `fit` (or `where`) as float32: ones (n,) when None; finite and >= 0 otherwise.

  One weight per example (n,), or for a model with per-step outputs (output shape `(*steps, classes)`, e.g.
  `(T, C)` from a recurrent layer with return_sequences) one per step too, `(n, *steps)`: Keras' temporal
  sample weights.
  """
  if sample_weight is None:
    return np.ones((n,), np.float32)
  weights = as_array(sample_weight, f"{where}: sample_weight")
  if weights.dtype.kind not in "biuf":
    raise JaxnnError(f"{where}: sample_weight must hold numbers, got dtype {weights.dtype}")
  if weights.shape not in ((n,), (n, *steps)):
    example = "training example" if where == "fit" else "example"
    expected = f"({n},), one weight per {example}"
    if steps:
      expected += f", or {(n, *steps)}, one per output step"
    raise JaxnnError(f"{where}: sample_weight must have shape {expected}, got {weights.shape}")
  weights = weights.astype(np.float32)
  bad = ~(np.isfinite(weights) & (weights >= 0))
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise JaxnnError(f"{where}: sample_weight must be finite and >= 0, found {weights.flat[i]} at "
                     f"sample_weight[{', '.join(map(str, np.unravel_index(i, weights.shape)))}] "
                     f"({int(bad.sum())} such values)")
  return weights


def check_validation_data(validation_data: Any, where: str = "fit") -> None:
  """`(x_val, y_val)` or `(x_val, y_val, sample_weight_val)`, as Keras takes it: a pair or a triple."""
  if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
    found = (f"a {type(validation_data).__name__} of length {len(validation_data)}"
             if isinstance(validation_data, (tuple, list)) else type(validation_data).__name__)
    raise JaxnnError(f"{where}: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight_val), "
                     f"got {found}")


def check_metrics_list(metrics: Any, arg: str = "metrics") -> None:
  """A sequence of metrics, not a bare string (which would be read one character at a time)."""
  if isinstance(metrics, str) or not isinstance(metrics, Sequence):
    raise JaxnnError(f"{arg}: expected a list of metric names or Metrics, got {metrics!r}"
                     + (f" (write [{metrics!r}])" if isinstance(metrics, str) else ""))


def check_monitor(callback: Any, metrics: tuple[Any, ...], validation: bool) -> None:
  """An EarlyStopping's or ReduceLROnPlateau's monitored value is one `fit` logs (otherwise the run would stop
  with an error after its first epoch)."""
  names = ["loss", *(m.name for m in metrics)]
  logged = [*names, *(f"val_{n}" for n in names if validation), "learning_rate", "seconds"]
  if callback.monitor not in logged:
    raise JaxnnError(f"{type(callback).__name__}: monitor {callback.monitor!r} is not logged by this fit; "
                     f"available: {logged}")


def output_shape(model: Any, input_shape: Shape, where: str) -> Shape:
  """The model's output shape for one example, the layer's own error prefixed with where it happened."""
  try:
    return model.output_shapes(input_shape)[-1]
  except JaxnnError as e:
    raise JaxnnError(f"{where}: x has examples of shape {tuple(input_shape)}, which {model.name} cannot take: "
                     f"{e}") from None


# --------------------------------------------------------------------------------------------- params
@functools.lru_cache(maxsize=64)
def _expected_params(model: Any, input_shape: Shape) -> dict[str, Any]:
  """Shapes of `model.init` for inputs of `input_shape`: traced by eval_shape, never compiled."""
  return jax.eval_shape(lambda: model._init(input_shape, jax.random.key(0)))  # pylint: disable=protected-access


def check_params(model: Any, params: Any, input_shape: Shape, where: str) -> None:
  """Params with the structure and shapes `model.init(key, input_shape)` gives.

  Args:
    model: the Sequential model.
    params: the params pytree (a TrainState's params).
    input_shape: one example's shape (x.shape[1:]).
    where: the calling function, for messages.
  """
  if not isinstance(params, Mapping):
    raise JaxnnError(f"{where}: params must be the dict from model.init (or a TrainState), got "
                     f"{type(params).__name__}")
  output_shape(model, input_shape, where)  # a layer that cannot take such inputs at all says so first
  expected = _expected_params(model, tuple(input_shape))
  if set(params) != set(expected):
    raise JaxnnError(f"{where}: params do not belong to {model.name}: expected the layers {sorted(expected)}, "
                     f"found {sorted(params)}")
  layer_inputs = dict(zip(model.layer_names, [tuple(input_shape), *model.output_shapes(input_shape)]))
  layers = dict(zip(model.layer_names, model.layers))
  for name, layer_params in expected.items():
    found = params[name]
    what = f"layer {name} ({type(layers[name]).__name__})"
    wanted = _leaves(layer_params)
    held = _leaves(found) if isinstance(found, Mapping) else {}
    if set(held) != set(wanted):
      found_names = sorted(held) if isinstance(found, Mapping) else type(found).__name__
      raise JaxnnError(f"{where}: params[{name!r}] do not match {what}: expected the arrays {sorted(wanted)}, "
                       f"found {found_names}")
    for key, spec in wanted.items():
      shape = tuple(np.shape(held[key]))
      if shape != spec.shape:
        raise JaxnnError(f"{where}: inputs of shape {tuple(input_shape)} (batch axis excluded) do not fit the "
                         f"params: {what} gets inputs {layer_inputs[name]} and needs a {key} of shape "
                         f"{spec.shape}, the params hold {shape} (were they built by model.init for other "
                         f"inputs?)")


def _leaves(tree: Any) -> dict[str, Any]:
  """A layer's arrays by name: "kernel", or "forward/kernel" for a wrapper's nested params."""
  return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


# --------------------------------------------------------------------------------------------- targets
def _builtin(loss: losses_lib.Loss) -> bool:
  """Whether the loss is one of jaxnn's named losses (custom functions get only the generic checks)."""
  return loss.name in losses_lib.names() and losses_lib.get(loss.name).fn is loss.fn


def check_targets(loss: losses_lib.Loss, metrics: tuple[Any, ...], y: Any, n: int, out_shape: Shape,
                  where: str) -> np.ndarray:
  """y checked against the loss's label format and the model's output shape; cast for training.

  Args:
    loss: the resolved loss.
    metrics: the resolved metrics (their shapes are checked by tracing, not compiling, their update).
    y: the targets as given.
    n: the number of examples in x.
    out_shape: the model's output shape for one example.
    where: the calling function, for messages.

  Returns:
    y as int32 class labels (sparse losses) or float32 targets.
  """
  y = as_array(y, f"{where}: y")
  if y.dtype.kind not in "biuf":
    raise JaxnnError(f"{where}: y must hold numbers, got dtype {y.dtype}")
  if y.shape[:1] != (n,):
    raise JaxnnError(f"{where}: x and y must have the same number of examples, got {n} and "
                     f"{y.shape[0] if y.ndim else 'a scalar'}")
  batch_out = (n, *out_shape)
  classes = out_shape[-1]
  fmt = loss.label_format if _builtin(loss) else "custom"
  if fmt == "sparse":
    y = _sparse_labels(loss, y, batch_out, where)
  elif fmt == "one_hot":
    if y.shape == batch_out[:-1] and y.dtype.kind in "iu":
      raise JaxnnError(f"{where}: {loss.name} expects one-hot targets of shape {batch_out}, got integer class "
                       f"labels of shape {y.shape}; use sparse_categorical_crossentropy (or one-hot encode "
                       f"them with jaxnn.data.one_hot)")
    hint = ""
    if y.ndim == len(batch_out) and y.shape[:-1] == batch_out[:-1]:
      hint = f" (the model has {classes} outputs, the targets {y.shape[-1]} columns)"
    _same_shape(loss, y, batch_out, where, hint)
  elif fmt in ("binary", "regression"):
    hint = ""
    if y.shape == batch_out[:-1] and classes == 1:
      hint = f"; reshape y to {batch_out} (y[:, None])"
    elif fmt == "binary" and y.shape == batch_out[:-1] and y.dtype.kind in "iu":
      hint = "; for integer class labels use sparse_categorical_crossentropy"
    _same_shape(loss, y, batch_out, where, hint)
    if fmt == "binary" and y.size:
      low = -1.0 if loss.name in ("hinge", "squared_hinge") else 0.0
      lo, hi = float(y.min()), float(y.max())
      if lo < low or hi > 1.0:
        raise JaxnnError(f"{where}: {loss.name} expects targets in [{low:g}, 1], found {lo if lo < low else hi:g}")
  if fmt != "sparse":
    y = y.astype(np.float32)
  _trace_loss_and_metrics(loss, metrics, y, batch_out, where)
  return y


def _sparse_labels(loss: losses_lib.Loss, y: np.ndarray, batch_out: Shape, where: str) -> np.ndarray:
  classes = batch_out[-1]
  if y.shape != batch_out[:-1]:
    hint = ""
    if y.shape == batch_out:
      hint = " (one-hot targets? use categorical_crossentropy)"
    elif y.shape == (*batch_out[:-1], 1):
      hint = " (drop the trailing axis of size 1)"
    raise JaxnnError(f"{where}: {loss.name} expects integer class labels of shape {batch_out[:-1]}, got "
                     f"shape {y.shape}{hint}")
  if y.dtype.kind not in "iu":
    hint = "; convert them with y.astype(int)" if y.dtype.kind == "f" else ""
    raise JaxnnError(f"{where}: {loss.name} expects integer class labels, got dtype {y.dtype}{hint}")
  if y.size and (y.min() < 0 or y.max() >= classes):
    bad = y.min() if y.min() < 0 else y.max()
    hint = " (0/1 labels with one sigmoid output: use binary_crossentropy)" if classes == 1 else ""
    raise JaxnnError(f"{where}: labels must be in [0, {classes}) for a model with {classes} outputs, "
                     f"found {bad}{hint}")
  return y.astype(np.int32)


def _same_shape(loss: losses_lib.Loss, y: np.ndarray, batch_out: Shape, where: str, hint: str) -> None:
  if y.shape != batch_out:
    raise JaxnnError(f"{where}: {loss.name} expects targets of the model's output shape {batch_out}, got "
                     f"{y.shape}{hint}")


def _trace_loss_and_metrics(loss: losses_lib.Loss, metrics: tuple[Any, ...], y: np.ndarray, batch_out: Shape,
                            where: str) -> None:
  """Runs the loss's and metrics' own shape checks by tracing them on the data's shapes (no compile)."""
  y_spec = jax.ShapeDtypeStruct(y.shape, y.dtype)
  pred_spec = jax.ShapeDtypeStruct(batch_out, np.float32)
  for what, fn in (("", loss), *((f" (metric {m.name!r} with loss {loss.name!r})", m.update) for m in metrics)):
    try:
      jax.eval_shape(fn, y_spec, pred_spec)
    except JaxnnError as e:
      raise JaxnnError(f"{where}: {' '.join(str(e).split())}{what}") from None
