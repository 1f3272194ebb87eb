"""Conv / pooling / reshape / BatchNormalization: shapes by formula, values against numpy loops, gradients,
running statistics, fit with model state, and every error message."""

import itertools
import math

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from jaxnn import losses
from jaxnn import regularizers
from jaxnn import training
from jaxnn.convolutional import (AveragePooling1D, AveragePooling2D, BatchNormalization, Conv1D, Conv2D,
                                 GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D,
                                 GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D, Reshape)
from jaxnn.errors import JaxnnError
from jaxnn.layers import Activation, Dense
from jaxnn.models import Sequential

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------------------ numpy references
def same_pads(sizes, window, strides, dilation):
  """TensorFlow's "same": out = ceil(n / s), total padding split with the odd cell after."""
  pads = []
  for n, k, s, d in zip(sizes, window, strides, dilation):
    total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
    pads.append((total // 2, total - total // 2))
  return pads


def np_conv(x, kernel, strides, dilation, padding):
  """y[b, p, f] = sum over kernel offsets o and channels c of x[b, p * s + o * d, c] * kernel[o, c, f]."""
  rank = kernel.ndim - 2
  window = kernel.shape[:rank]
  if padding == "same":
    x = np.pad(x, [(0, 0), *same_pads(x.shape[1:-1], window, strides, dilation), (0, 0)])
  out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(x.shape[1:-1], window, strides, dilation)]
  y = np.zeros((x.shape[0], *out, kernel.shape[-1]))
  for b in range(x.shape[0]):
    for pos in itertools.product(*map(range, out)):
      for off in itertools.product(*map(range, window)):
        src = tuple(p * s + o * d for p, o, s, d in zip(pos, off, strides, dilation))
        for c in range(x.shape[-1]):
          y[(b, *pos)] += x[(b, *src, c)] * kernel[(*off, c)]
  return y


def np_pool(x, pool, strides, padding, reduce):
  """Max or mean over each window's cells that lie inside the input (padding never counts)."""
  sizes = x.shape[1:-1]
  pads = same_pads(sizes, pool, strides, (1,) * len(pool)) if padding == "same" else [(0, 0)] * len(pool)
  out = [(n + a + b - k) // s + 1 for n, (a, b), k, s in zip(sizes, pads, pool, strides)]
  y = np.zeros((x.shape[0], *out, x.shape[-1]))
  for pos in itertools.product(*map(range, out)):
    cells = []
    for off in itertools.product(*map(range, pool)):
      src = tuple(p * s + o - a for p, o, s, (a, _) in zip(pos, off, strides, pads))
      if all(0 <= i < n for i, n in zip(src, sizes)):
        cells.append(x[(slice(None), *src)])
    y[(slice(None), *pos)] = reduce(np.stack(cells), axis=0)
  return y


# ------------------------------------------------------------------------------------------ shapes
def test_output_shapes_follow_the_formula_for_every_padding_stride_and_dilation():
  checked = 0
  for rank, n, k, s, d, padding in itertools.product((1, 2), (7, 8), (1, 2, 3), (1, 2, 3), (1, 2),
                                                     ("valid", "same")):
    cls = Conv1D if rank == 1 else Conv2D
    expected = math.ceil(n / s) if padding == "same" else (n - d * (k - 1) - 1) // s + 1
    input_shape = (n,) * rank + (2,)
    for implementation in ("patches", "lax"):
      layer = cls(3, k, strides=s, dilation_rate=d, padding=padding, implementation=implementation)
      out_shape = layer.output_shape(input_shape)
      assert out_shape == (expected,) * rank + (3,), (rank, n, k, s, d, padding)
      # Shapes only (no compilation): init then apply, traced abstractly.
      traced = jax.eval_shape(lambda x: layer.apply(layer.init(KEY, input_shape)[0], x),
                              jax.ShapeDtypeStruct((2, *input_shape), jnp.float32))
      assert traced.shape == (2, *out_shape), (rank, n, k, s, d, padding, implementation)
      checked += 1
  assert checked == 288


@pytest.mark.parametrize("rank, n, pool, strides, padding", [
    (1, 7, 2, None, "valid"), (1, 7, 2, None, "same"), (1, 8, 3, 2, "valid"), (1, 8, 3, 2, "same"),
    (2, 7, 2, None, "valid"), (2, 7, 3, None, "same"), (2, 6, 3, 1, "same"), (2, 7, 2, 3, "valid"),
])
def test_pooling_shapes_and_values_match_numpy(rank, n, pool, strides, padding):
  x = RNG.normal(size=(2, *(n,) * rank, 3)).astype(np.float32)
  s = pool if strides is None else strides
  expected_n = math.ceil(n / s) if padding == "same" else (n - pool) // s + 1
  for cls, reduce in (((MaxPooling1D, MaxPooling2D), np.max), ((AveragePooling1D, AveragePooling2D), np.mean)):
    layer = cls[rank - 1](pool, strides=strides, padding=padding)
    assert layer.output_shape(x.shape[1:]) == (expected_n,) * rank + (3,)
    expected = np_pool(x, (pool,) * rank, (s,) * rank, padding, reduce)
    np.testing.assert_allclose(layer.apply({}, jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)


def test_average_pooling_same_does_not_count_padding():
  x = jnp.arange(1.0, 4.0).reshape(1, 3, 1)  # [1, 2, 3], pool 2 -> windows [1, 2] and [3, pad]
  np.testing.assert_allclose(AveragePooling1D(2, padding="same").apply({}, x)[0, :, 0], [1.5, 3.0])
  np.testing.assert_allclose(MaxPooling1D(2, padding="same").apply({}, -x)[0, :, 0], [-1.0, -3.0])


def test_global_pooling_and_reshape():
  x = jnp.asarray(RNG.normal(size=(2, 4, 5, 3)), jnp.float32)
  np.testing.assert_allclose(GlobalAveragePooling2D().apply({}, x), np.mean(x, axis=(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(GlobalMaxPooling2D().apply({}, x), np.max(x, axis=(1, 2)))
  assert GlobalAveragePooling2D(keepdims=True).output_shape((4, 5, 3)) == (1, 1, 3)
  assert GlobalMaxPooling1D().output_shape((7, 3)) == (3,)
  np.testing.assert_allclose(GlobalAveragePooling1D().apply({}, x[:, 0]), np.mean(x[:, 0], axis=1), rtol=1e-6)
  assert Reshape((28, 28, 1)).output_shape((784,)) == (28, 28, 1)
  assert Reshape((-1, 4)).output_shape((3, 8)) == (6, 4)
  assert Reshape((5, -1)).apply({}, x).shape == (2, 5, 12)


# ------------------------------------------------------------------------------------------ conv values
@pytest.mark.parametrize("implementation", ["patches", "lax"])
@pytest.mark.parametrize("n, k, strides, dilation, padding", [
    (6, 3, 1, 1, "valid"), (6, 3, 2, 1, "same"), (7, 2, 1, 2, "same"), (7, 3, 2, 2, "valid"), (5, 3, 3, 1, "same"),
])
def test_conv_matches_numpy_loops(implementation, n, k, strides, dilation, padding):
  for rank, cls in ((1, Conv1D), (2, Conv2D)):
    layer = cls(3, k, strides=strides, dilation_rate=dilation, padding=padding, activation="relu",
                implementation=implementation)
    params, _ = layer.init(KEY, (n,) * rank + (2,))
    params["bias"] = jnp.asarray([0.5, -0.25, 0.0])
    x = RNG.normal(size=(2, *(n,) * rank, 2)).astype(np.float32)
    expected = np_conv(x, np.asarray(params["kernel"]), (strides,) * rank, (dilation,) * rank, padding)
    expected = np.maximum(expected + [0.5, -0.25, 0.0], 0.0)
    np.testing.assert_allclose(jax.jit(layer.apply)(params, jnp.asarray(x)), expected, rtol=1e-5, atol=1e-5)


def test_conv_by_hand():
  # A 1x2 kernel summing neighbours [1, 1] on [1, 2, 3, 4]: valid gives [3, 5, 7].
  layer = Conv1D(1, 2, use_bias=False)
  out = layer.apply({"kernel": jnp.ones((2, 1, 1))}, jnp.arange(1.0, 5.0).reshape(1, 4, 1))
  np.testing.assert_allclose(out[0, :, 0], [3.0, 5.0, 7.0])


def test_conv_glorot_fans_include_the_receptive_field():
  params, _ = Conv2D(64, (3, 3)).init(KEY, (10, 10, 32))
  limit = np.sqrt(6.0 / (9 * 32 + 9 * 64))
  assert params["kernel"].shape == (3, 3, 32, 64) and float(jnp.max(jnp.abs(params["kernel"]))) <= limit
  np.testing.assert_array_equal(params["bias"], np.zeros(64))


@pytest.mark.parametrize("implementation", ["patches", "lax"])
def test_conv_and_pool_gradients_match_finite_differences(implementation):
  conv = Conv2D(2, 2, strides=(1, 2), padding="same", activation="tanh", implementation=implementation,
                kernel_regularizer="l2")
  params, _ = conv.init(KEY, (4, 5, 2))
  x = RNG.normal(size=(2, 4, 5, 2))
  with jax.enable_x64(True):
    params64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    x64 = jnp.asarray(x, jnp.float64)

    @jax.jit
    def f(p, x):
      y = conv.apply(p, x)
      return (jnp.sum(MaxPooling2D(2, padding="same").apply({}, y) ** 2)
              + jnp.sum(AveragePooling2D(2, strides=1).apply({}, y)) + conv.regularization(p))
    jax.test_util.check_grads(f, (params64, x64), order=1, modes=["rev"])


def test_conv_penalties_and_constraints_come_from_the_shared_mixin():
  layer = Conv2D(1, 1, kernel_regularizer=regularizers.L2(0.5), bias_constraint="non_neg",
                 activity_regularizer=regularizers.L1(0.1))
  params = {"kernel": jnp.full((1, 1, 2, 1), 2.0), "bias": jnp.array([-1.0])}
  assert float(layer.regularization(params)) == pytest.approx(0.5 * 8)
  np.testing.assert_allclose(layer.constrain(params)["bias"], [0.0])
  assert float(layer.activity_penalty(jnp.ones((4, 3, 3, 1)))) == pytest.approx(0.1 * 36 / 4)


def test_sequential_names_and_configs():
  model = Sequential([Conv2D(4, 3), BatchNormalization(), MaxPooling2D(), GlobalAveragePooling2D(), Dense(2)])
  assert model.layer_names == ("conv2d_0", "batch_normalization_0", "max_pooling2d_0",
                               "global_average_pooling2d_0", "dense_0")
  assert Conv2D(4, 3) == Conv2D(4, (3, 3)) and hash(Conv2D(4, 3)) == hash(Conv2D(4, (3, 3)))
  # Arguments still at their (normalized) defaults are left out of the config.
  assert Conv2D(4, 3, strides=(1, 2)).config() == {"filters": 4, "kernel_size": [3, 3], "strides": [1, 2]}
  assert MaxPooling2D().config() == {} and MaxPooling1D(3).config() == {"pool_size": [3]}


# ------------------------------------------------------------------------------------------ batch norm
def test_batch_norm_training_uses_batch_statistics_and_moves_the_state_by_momentum():
  layer = BatchNormalization(momentum=0.9, epsilon=1e-3)
  params, _ = layer.init(KEY, (2,))
  state = layer.init_state((2,))
  np.testing.assert_array_equal(state["moving_mean"], [0.0, 0.0])
  np.testing.assert_array_equal(state["moving_variance"], [1.0, 1.0])
  params = {"gamma": jnp.array([2.0, 1.0]), "beta": jnp.array([0.0, 1.0])}
  x = jnp.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])
  y, new = layer.apply_stateful(params, state, x, training=True)
  # Column 0: mean 3, biased variance 8/3; column 1: mean 12, variance 8.
  mean, var = np.array([3.0, 12.0]), np.array([8.0 / 3.0, 8.0])
  np.testing.assert_allclose(y, (np.asarray(x) - mean) / np.sqrt(var + 1e-3) * [2.0, 1.0] + [0.0, 1.0], rtol=1e-5)
  np.testing.assert_allclose(new["moving_mean"], 0.9 * 0.0 + 0.1 * mean, rtol=1e-6)
  np.testing.assert_allclose(new["moving_variance"], 0.9 * 1.0 + 0.1 * var, rtol=1e-6)


def test_batch_norm_inference_uses_running_statistics_and_keeps_the_state():
  layer = BatchNormalization(center=False, scale=False)
  params, _ = layer.init(KEY, (3, 2))
  assert params == {}
  state = {"moving_mean": jnp.array([1.0, -1.0]), "moving_variance": jnp.array([4.0, 0.25])}
  x = jnp.asarray(RNG.normal(size=(5, 3, 2)), jnp.float32)
  y, same = layer.apply_stateful(params, state, x, training=False)
  np.testing.assert_allclose(y, (np.asarray(x) - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-3), rtol=1e-5)
  assert same is state


def test_batch_norm_axis_counts_the_batch_axis():
  layer = BatchNormalization(axis=1)  # channels-first (C, L)
  params, _ = layer.init(KEY, (3, 4))
  assert params["gamma"].shape == (3,)
  x = jnp.asarray(RNG.normal(size=(2, 3, 4)), jnp.float32)
  y, state = layer.apply_stateful(params, layer.init_state((3, 4)), x, training=True)
  np.testing.assert_allclose(np.mean(y, axis=(0, 2)), np.zeros(3), atol=1e-5)
  np.testing.assert_allclose(state["moving_mean"], 0.01 * np.mean(x, axis=(0, 2)), rtol=1e-5)


def test_batch_norm_gradients_match_finite_differences():
  layer = BatchNormalization(gamma_regularizer="l2")
  params, _ = layer.init(KEY, (3,))
  with jax.enable_x64(True):
    params64 = {"gamma": jnp.array([1.5, 0.5, 1.0]), "beta": jnp.array([0.1, 0.0, -0.2])}
    x64 = jnp.asarray(RNG.normal(size=(4, 3)))
    f = jax.jit(lambda p, x: jnp.sum(jnp.tanh(layer.apply(p, x, training=True)) * x) + layer.regularization(p))
    jax.test_util.check_grads(f, (params64, x64), order=1, modes=["rev"])


def test_fit_with_batch_norm_updates_the_model_state():
  # Dense only, to keep compilation short: conv + batch norm + fit run end to end in test_mnist_cnn_rnn.
  model = Sequential([Dense(4, use_bias=False), BatchNormalization(), Activation("relu"),
                      Dense(3, activation="softmax")])
  x = RNG.normal(loc=2.0, size=(64, 5)).astype(np.float32)
  y = (x.mean(axis=1) > 2.0).astype(np.int32) + (x[:, 0] > 2.0)
  params = model.init(KEY, (5,))
  initial = model.init_state((5,))
  state, history = training.fit(model, params, x, y, loss="sparse_categorical_crossentropy", epochs=2,
                                batch_size=16, verbose=0, optimizer="adam")
  moving = state.model_state["batch_normalization_0"]
  assert not np.allclose(moving["moving_mean"], initial["batch_normalization_0"]["moving_mean"])
  assert np.all(np.isfinite(moving["moving_variance"])) and len(history["loss"]) == 2
  # Inference reads the trained running statistics: predict (TrainState) equals apply with that state.
  np.testing.assert_allclose(training.predict(model, state, x[:5]),
                             model.apply(state.params, jnp.asarray(x[:5]), state=state.model_state), rtol=1e-5)
  with pytest.raises(JaxnnError, match="pass state="):
    training.predict(model, state.params, x[:5])


def test_batch_norm_statistics_leave_out_the_padding_of_a_partial_batch():
  # fit pads its last partial batch with copies of example 0 and masks them; the running statistics and the
  # normalization must then equal those of the real rows alone.
  layer = BatchNormalization(momentum=0.5)
  params, _ = layer.init(KEY, (4, 3))
  state = layer.init_state((4, 3))
  real = jnp.asarray(RNG.normal(loc=3.0, size=(5, 4, 3)), jnp.float32)
  padded = jnp.concatenate([real, jnp.repeat(real[:1], 3, axis=0)])
  mask = jnp.array([1.0] * 5 + [0.0] * 3)
  y_real, s_real = layer.apply_stateful(params, state, real, training=True)
  y_pad, s_pad = layer.apply_stateful(params, state, padded, training=True, mask=mask)
  np.testing.assert_allclose(y_pad[:5], y_real, rtol=1e-5, atol=1e-6)
  for k in s_real:
    np.testing.assert_allclose(s_pad[k], s_real[k], rtol=1e-6)
  _, s_unmasked = layer.apply_stateful(params, state, padded, training=True)
  assert not np.allclose(s_unmasked["moving_mean"], s_real["moving_mean"], rtol=1e-4)


def test_train_step_on_a_padded_batch_moves_batch_norm_as_the_smaller_batch_does():
  model = Sequential([Dense(4), BatchNormalization(), Dense(2)])
  x = RNG.normal(size=(6, 3)).astype(np.float32)
  y = np.array([0, 1, 1, 0, 1, 0], np.int32)
  params = model.init(KEY, (3,))
  state = training.create_train_state(model, params, "sgd", model_state=model.init_state((3,)))
  loss = losses.get("sparse_categorical_crossentropy")
  small, _ = training.train_step(state, jnp.asarray(x[:4]), jnp.asarray(y[:4]), jnp.ones(4), jnp.ones(4),
                                 model=model, loss=loss)
  pad_x = np.concatenate([x[:4], x[:1], x[:1]])
  pad_y = np.concatenate([y[:4], y[:1], y[:1]])
  padded, _ = training.train_step(state, jnp.asarray(pad_x), jnp.asarray(pad_y), jnp.ones(6),
                                  jnp.array([1.0, 1, 1, 1, 0, 0]), model=model, loss=loss)
  for a, b in zip(jax.tree_util.tree_leaves((small.params, small.model_state)),
                  jax.tree_util.tree_leaves((padded.params, padded.model_state))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("make, shape, message", [
    (lambda: Conv2D(32, (3, 3)), (784,), r"Conv2D\(32, \(3, 3\)\): expected inputs \(H, W, C\), got shape \(784,\)"),
    (lambda: Conv1D(8, 3), (28, 28, 1), r"Conv1D\(8, 3\): expected inputs \(W, C\), got shape \(28, 28, 1\)"),
    (lambda: Conv2D(32, (3, 3)), (2, 2, 1), r"Conv2D\(32, \(3, 3\)\): kernel \(3, 3\) spans \(3, 3\), larger than "
                                            r"the input's \(2, 2\) with padding \"valid\""),
    (lambda: Conv1D(4, 3, dilation_rate=3), (6, 1), r"kernel \(3,\) spans \(7,\), larger than the input's \(6,\)"),
    (lambda: MaxPooling2D(3), (2, 2, 1), r"MaxPooling2D\(\(3, 3\)\): pool \(3, 3\) spans \(3, 3\), larger"),
    (lambda: GlobalAveragePooling2D(), (5, 3), r"GlobalAveragePooling2D: expected inputs \(H, W, C\)"),
    (lambda: Reshape((7, -1)), (50,), r"Reshape\(\(7, -1\)\): cannot reshape inputs of shape \(50,\) \(50 values\)"),
    (lambda: BatchNormalization(axis=4), (3, 3, 1), r"axis 4 is out of range for inputs of shape \(3, 3, 1\)"),
])
def test_shape_errors_name_the_layer_and_the_shapes(make, shape, message):
  with pytest.raises(JaxnnError, match=message):
    make().init(KEY, shape)


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2D(0, 3), "filters must be a positive int, got 0"),
    (lambda: Conv2D(4, (3, 0)), r"kernel_size must be a positive int or 2 positive ints, got \(3, 0\)"),
    (lambda: Conv2D(4, 3, strides=(1, 2, 3)), "strides must be a positive int or 2 positive ints"),
    (lambda: Conv2D(4, 3, padding="full"), r"padding must be one of \['valid', 'same'\], got 'full'"),
    (lambda: Conv2D(4, 3, implementation="fft"), "implementation must be one of"),
    (lambda: Conv2D(4, 3, activation="rleu"), "rleu"),
    (lambda: MaxPooling1D(0), "pool_size must be a positive int"),
    (lambda: Reshape((2, -1, -1)), "at most one -1"),
    (lambda: BatchNormalization(axis=0), "0 is the batch axis"),
    (lambda: BatchNormalization(momentum=1.5), r"momentum must be in \[0, 1\]"),
])
def test_bad_arguments_fail_at_construction(make, message):
  with pytest.raises(JaxnnError, match=message):
    make()


def test_apply_errors():
  params, _ = Conv2D(8, 3).init(KEY, (5, 5, 4))
  with pytest.raises(JaxnnError, match=r"Conv2D\(8, \(3, 3\)\): expected inputs \(batch, H, W, 4\), got shape "
                                       r"\(2, 5, 5, 3\)"):
    Conv2D(8, 3).apply(params, jnp.ones((2, 5, 5, 3)))
  layer = BatchNormalization()
  params, _ = layer.init(KEY, (3,))
  with pytest.raises(JaxnnError, match="inference needs the running statistics"):
    layer.apply(params, jnp.ones((2, 3)))
  with pytest.raises(JaxnnError, match="no running statistics"):
    Sequential([layer]).apply({"batch_normalization_0": params}, jnp.ones((2, 3)))
