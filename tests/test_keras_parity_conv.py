"""jaxnn's convolution, pooling, reshape and batch normalization layers against Keras 3 itself.

test_convolutional.py checks values against numpy loops; this checks the same layers against the library
jaxnn promises to match: the Keras layer is built, given jaxnn's weights with `set_weights`, and run on the
same random channels-last batch. Both conv implementations ("patches" and "lax") are compared.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402
from jaxnn.models import Sequential  # noqa: E402

keras = pytest.importorskip("keras")

B = 3
RTOL = ATOL = 1e-5
RNG = np.random.default_rng(0)


def _x(shape):
  return RNG.normal(0, 1, (B, *shape)).astype(np.float32)


def _keras_layer(name, input_shape, weights=(), **kwargs):
  """The Keras layer named `name`, built for batches of `input_shape`, holding `weights` (Keras' order)."""
  layer = getattr(keras.layers, name)(**kwargs)
  layer.build((None, *input_shape))
  if weights:
    assert [tuple(w.shape) for w in layer.weights] == [np.shape(w) for w in weights]
    layer.set_weights([np.asarray(w) for w in weights])
  return layer


def _value(variable):
  """A Keras variable's current value as numpy."""
  return np.asarray(variable.value)


def _id(case):
  name, shape, kwargs = case[:3]
  args = ",".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "")
  return f"{name}({args})-in{'x'.join(map(str, shape))}"


# ------------------------------------------------------------------------------------------- convolution
CONV_CASES = [
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3)),
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3, padding="same")),
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=4, padding="same")),  # even kernel: 1 before, 2 after
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3, strides=2)),
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3, strides=2, padding="same")),  # 1 before, 1 after
    ("Conv1D", (8, 3), dict(filters=4, kernel_size=3, strides=2, padding="same")),  # 0 before, 1 after
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=4, strides=2, padding="same")),  # 1 before, 2 after
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3, dilation_rate=2)),
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=2, dilation_rate=2, padding="same")),
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3, use_bias=False)),
    ("Conv1D", (9, 3), dict(filters=4, kernel_size=3, padding="same", activation="relu")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3)),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=(3, 2))),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, padding="same")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=(2, 4), padding="same")),  # even kernels
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, strides=2)),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, strides=2, padding="same")),  # odd H, even W
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=(2, 3), strides=(2, 1), padding="same")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=(4, 4), strides=(1, 2), padding="same")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, dilation_rate=2)),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, dilation_rate=(2, 1), padding="same")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=2, dilation_rate=2, padding="same")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, use_bias=False, padding="same")),
    ("Conv2D", (7, 8, 2), dict(filters=5, kernel_size=3, strides=2, activation="relu")),
]


@pytest.mark.parametrize("implementation", ["patches", "lax"])
@pytest.mark.parametrize("name, input_shape, kwargs", CONV_CASES, ids=[_id(c) for c in CONV_CASES])
def test_conv_matches_keras(name, input_shape, kwargs, implementation):
  layer = getattr(jaxnn, name)(**kwargs, implementation=implementation)
  params, out_shape = layer.init(jax.random.key(0), input_shape)
  # A random bias, so that a bias added wrong (or not at all) shows.
  params = {k: RNG.normal(0, 1, v.shape).astype(np.float32) if k == "bias" else np.asarray(v)
            for k, v in params.items()}
  theirs = _keras_layer(name, input_shape, [params[k] for k in ("kernel", "bias") if k in params], **kwargs)
  x = _x(input_shape)
  ours = np.asarray(layer.apply(params, jnp.asarray(x)))
  expected = np.asarray(theirs(x))
  assert ours.shape == expected.shape == (B, *out_shape)
  np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------- pooling
POOL_CASES = [
    (name, shape, kwargs)
    for kind in ("Max", "Average")
    for name, shape, kwargs in [
        (f"{kind}Pooling1D", (9, 3), dict(pool_size=2)),  # non-overlapping, odd n: last cell dropped
        (f"{kind}Pooling1D", (9, 3), dict(pool_size=2, padding="same")),  # non-overlapping, padded after
        (f"{kind}Pooling1D", (8, 3), dict(pool_size=3, strides=2)),
        (f"{kind}Pooling1D", (8, 3), dict(pool_size=3, strides=2, padding="same")),
        (f"{kind}Pooling1D", (9, 3), dict(pool_size=4, strides=1, padding="same")),  # 1 before, 2 after
        (f"{kind}Pooling1D", (10, 3), dict(pool_size=3, padding="same")),
        (f"{kind}Pooling2D", (7, 6, 2), dict(pool_size=(2, 2))),
        (f"{kind}Pooling2D", (7, 6, 2), dict(pool_size=(2, 3))),
        (f"{kind}Pooling2D", (5, 7, 2), dict(pool_size=(2, 2), padding="same")),
        (f"{kind}Pooling2D", (7, 8, 2), dict(pool_size=(3, 3), strides=(2, 2))),
        (f"{kind}Pooling2D", (7, 8, 2), dict(pool_size=(3, 3), strides=(2, 2), padding="same")),
        (f"{kind}Pooling2D", (7, 8, 2), dict(pool_size=(3, 2), strides=(1, 2), padding="same")),
        (f"{kind}Pooling2D", (6, 7, 2), dict(pool_size=(2, 4), strides=(3, 1), padding="same")),
    ]
]


GLOBAL_CASES = [
    (f"Global{kind}Pooling{rank}D", (9, 3) if rank == 1 else (5, 6, 3), dict(keepdims=keepdims))
    for kind in ("Max", "Average") for rank in (1, 2) for keepdims in (False, True)
]
RESHAPE_CASES = [
    ("Reshape", (4, 6), dict(target_shape=(6, 4))),
    ("Reshape", (4, 3, 2), dict(target_shape=(-1, 3))),
    ("Reshape", (12,), dict(target_shape=(2, 3, 2))),
]


PARAMETERLESS_CASES = POOL_CASES + GLOBAL_CASES + RESHAPE_CASES


@pytest.mark.parametrize("name, input_shape, kwargs", PARAMETERLESS_CASES, ids=[_id(c) for c in PARAMETERLESS_CASES])
def test_pooling_and_reshape_match_keras(name, input_shape, kwargs):
  layer = getattr(jaxnn, name)(**kwargs)
  params, out_shape = layer.init(jax.random.key(0), input_shape)
  x = _x(input_shape)
  ours = np.asarray(layer.apply(params, jnp.asarray(x)))
  expected = np.asarray(_keras_layer(name, input_shape, **kwargs)(x))
  assert ours.shape == expected.shape == (B, *out_shape)
  np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------- batch norm
BN_CASES = [
    ((5, 4), dict()),
    ((6, 5, 3), dict(epsilon=0.1, momentum=0.9)),
    ((6, 5, 3), dict(axis=1, momentum=0.5)),  # normalizes H: axis counts the batch axis, as in Keras
    ((6, 5, 3), dict(axis=-2, epsilon=1e-5)),
    ((9, 3), dict(center=False, momentum=0.8)),
    ((9, 3), dict(scale=False, epsilon=0.5)),
    ((9, 3), dict(center=False, scale=False)),
]


def _bn_id(case):
  shape, kwargs = case
  return _id(("BatchNormalization", shape, kwargs))


def _bn_pair(input_shape, kwargs):
  """jaxnn's BatchNormalization with random gamma / beta / moving statistics, and Keras' with the same."""
  layer = jaxnn.BatchNormalization(**kwargs)
  params, _ = layer.init(jax.random.key(0), input_shape)
  state = layer.init_state(input_shape)
  n = state["moving_mean"].shape[0]
  random = {"gamma": RNG.uniform(0.5, 2.0, n), "beta": RNG.normal(0, 1, n)}
  params = {k: random[k].astype(np.float32) for k in params}
  state = {"moving_mean": RNG.normal(0, 1, n).astype(np.float32),
           "moving_variance": RNG.uniform(0.2, 3.0, n).astype(np.float32)}
  weights = [params[k] for k in ("gamma", "beta") if k in params] + [state["moving_mean"], state["moving_variance"]]
  return layer, params, state, _keras_layer("BatchNormalization", input_shape, weights, **kwargs)


def _x_shifted(shape):
  """A batch whose statistics are far from 0 / 1, so batch and moving statistics cannot be confused."""
  return (3.0 * _x(shape) + 1.5).astype(np.float32)


@pytest.mark.parametrize("input_shape, kwargs", BN_CASES, ids=[_bn_id(c) for c in BN_CASES])
def test_batch_norm_inference_matches_keras(input_shape, kwargs):
  layer, params, state, theirs = _bn_pair(input_shape, kwargs)
  x = _x_shifted(input_shape)
  ours, new_state = layer.apply_stateful(params, state, jnp.asarray(x), training=False)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs(x, training=False)), rtol=RTOL, atol=ATOL)
  for k in state:
    np.testing.assert_array_equal(np.asarray(new_state[k]), state[k])


@pytest.mark.parametrize("input_shape, kwargs", BN_CASES, ids=[_bn_id(c) for c in BN_CASES])
def test_batch_norm_training_matches_keras(input_shape, kwargs):
  layer, params, state, theirs = _bn_pair(input_shape, kwargs)
  x = _x_shifted(input_shape)
  ours, new_state = layer.apply_stateful(params, state, jnp.asarray(x), training=True)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs(x, training=True)), rtol=RTOL, atol=ATOL)
  # Keras: moving = moving * momentum + batch * (1 - momentum), with the biased batch variance.
  np.testing.assert_allclose(np.asarray(new_state["moving_mean"]), _value(theirs.moving_mean),
                             rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(np.asarray(new_state["moving_variance"]),
                             _value(theirs.moving_variance), rtol=RTOL, atol=ATOL)
  # The running statistics did move (else the comparison above would hold for a layer that never updates).
  assert not np.allclose(np.asarray(new_state["moving_variance"]), state["moving_variance"])


def test_batch_norm_masked_training_matches_keras():
  """fit's padded last batch: statistics over the real rows only (Keras' `mask`, one axis fewer than x)."""
  layer, params, state, theirs = _bn_pair((5,), dict(momentum=0.7))
  x = _x_shifted((5,))
  x = np.concatenate([x, 100.0 + x[:2]]).astype(np.float32)  # 2 padded rows that would swamp the statistics
  mask = np.array([True] * B + [False] * 2)
  ours, new_state = layer.apply_stateful(params, state, jnp.asarray(x), training=True, mask=jnp.asarray(mask))
  expected = np.asarray(theirs(x, training=True, mask=mask))
  # Keras divides by count + 1e-7 (backend.epsilon()): a relative difference of about 3e-8 here.
  np.testing.assert_allclose(np.asarray(ours)[:B], expected[:B], rtol=RTOL, atol=ATOL)
  for k in state:
    np.testing.assert_allclose(np.asarray(new_state[k]), _value(getattr(theirs, k)),
                               rtol=RTOL, atol=ATOL)


def test_cnn_with_batch_norm_matches_keras_sequential():
  """The public way: a jaxnn Sequential with model state, against keras.Sequential with the same weights."""
  input_shape = (8, 7, 2)
  model = Sequential([jaxnn.Conv2D(4, 3, padding="same"), jaxnn.BatchNormalization(momentum=0.9),
                      jaxnn.MaxPooling2D(), jaxnn.Conv2D(3, 2, strides=2, activation="relu"),
                      jaxnn.GlobalAveragePooling2D()])
  params = model.init(jax.random.key(1), input_shape)
  state = model.init_state(input_shape)
  assert sorted(params) == ["batch_normalization_0", "conv2d_0", "conv2d_1"]
  params["batch_normalization_0"] = {"gamma": RNG.uniform(0.5, 2.0, 4).astype(np.float32),
                                     "beta": RNG.normal(0, 1, 4).astype(np.float32)}
  theirs = keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(4, 3, padding="same"),
                             keras.layers.BatchNormalization(momentum=0.9), keras.layers.MaxPooling2D(),
                             keras.layers.Conv2D(3, 2, strides=2, activation="relu"),
                             keras.layers.GlobalAveragePooling2D()])
  bn = state["batch_normalization_0"]
  theirs.set_weights([np.asarray(w) for w in (
      params["conv2d_0"]["kernel"], params["conv2d_0"]["bias"], params["batch_normalization_0"]["gamma"],
      params["batch_normalization_0"]["beta"], bn["moving_mean"], bn["moving_variance"],
      params["conv2d_1"]["kernel"], params["conv2d_1"]["bias"])])
  x = _x_shifted(input_shape)
  ours, aux = model.forward(params, jnp.asarray(x), state=state, training=True)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs(x, training=True)), rtol=RTOL, atol=ATOL)
  keras_bn = theirs.layers[1]
  for k in ("moving_mean", "moving_variance"):
    np.testing.assert_allclose(np.asarray(aux["state"]["batch_normalization_0"][k]),
                               _value(getattr(keras_bn, k)), rtol=RTOL, atol=ATOL)
  # Inference with the updated statistics.
  ours = model.apply(params, jnp.asarray(x), state=aux["state"])
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs(x, training=False)), rtol=RTOL, atol=ATOL)
