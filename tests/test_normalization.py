"""LayerNormalization and RMSNormalization: numpy formulas, Keras 3 with the same weights, arguments."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402
from jaxnn import JaxnnError  # noqa: E402

RNG = np.random.default_rng(0)
X2 = RNG.normal(2.0, 3.0, (4, 7)).astype(np.float32)
X3 = RNG.normal(-1.0, 0.5, (4, 5, 6)).astype(np.float32)
X4 = RNG.normal(0.0, 2.0, (2, 3, 4, 5)).astype(np.float32)


def numpy_layer_norm(x, axes, gamma, beta, eps):
  x = x.astype(np.float64)
  mean = x.mean(axis=axes, keepdims=True)
  var = x.var(axis=axes, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


def random_params(layer, shape, seed=1):
  """The layer's params with random values (so gamma / beta are not the trivial ones / zeros)."""
  params, _ = layer.init(jax.random.key(0), shape)
  rng = np.random.default_rng(seed)
  return {k: jnp.asarray(rng.normal(1.0, 0.5, v.shape).astype(np.float32)) for k, v in params.items()}


LN_CASES = [(X2, -1), (X3, -1), (X3, 1), (X3, (1, 2)), (X3, [-1, -2]), (X4, (2, 3)), (X4, 1), (X4, (1, 2, 3))]


@pytest.mark.parametrize("x, axis", LN_CASES)
def test_layer_norm_matches_numpy(x, axis):
  layer = jaxnn.LayerNormalization(axis=axis, epsilon=1e-3)
  params = random_params(layer, x.shape[1:])
  axes = tuple(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
  shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
  want = numpy_layer_norm(x, axes, np.asarray(params["gamma"]).reshape(shape), np.asarray(params["beta"]).reshape(shape),
                          1e-3)
  np.testing.assert_allclose(layer.apply(params, jnp.asarray(x)), want, rtol=1e-5, atol=1e-5)
  assert params["gamma"].shape == tuple(x.shape[a] for a in sorted(axes))


def test_layer_norm_defaults_and_flags():
  layer = jaxnn.LayerNormalization()
  params, shape = layer.init(jax.random.key(0), (5, 6))
  assert shape == (5, 6) and set(params) == {"gamma", "beta"}
  np.testing.assert_array_equal(params["gamma"], np.ones(6)) and np.testing.assert_array_equal(params["beta"], 0)
  y = np.asarray(layer.apply(params, jnp.asarray(X3)))
  np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.var(-1), X3.var(-1) / (X3.var(-1) + 1e-3), rtol=1e-4)
  assert jaxnn.LayerNormalization(center=False, scale=False).init(jax.random.key(0), (6,))[0] == {}
  assert set(jaxnn.LayerNormalization(center=False).init(jax.random.key(0), (6,))[0]) == {"gamma"}
  assert jaxnn.LayerNormalization().config() == {} and jaxnn.LayerNormalization(axis=[1, 2]).config() == {"axis": [1, 2]}


def test_layer_norm_penalties_constraints_and_training():
  layer = jaxnn.LayerNormalization(gamma_regularizer=jaxnn.regularizers.L2(0.5), beta_constraint="non_neg")
  params = {"gamma": jnp.full((3,), 2.0), "beta": jnp.array([-1.0, 0.5, 2.0])}
  assert float(layer.regularization(params)) == pytest.approx(0.5 * 12.0)
  np.testing.assert_array_equal(layer.constrain(params)["beta"], [0.0, 0.5, 2.0])
  model = jaxnn.Sequential([jaxnn.Dense(8, activation="relu"), jaxnn.LayerNormalization(), jaxnn.Dense(3)])
  x = RNG.normal(size=(64, 5)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
  loss = jaxnn.losses.get("sparse_categorical_crossentropy", from_logits=True)
  state, history = jaxnn.fit(model, model.init(jax.random.key(0), (5,)), x, y, loss=loss, epochs=20, batch_size=16,
                             verbose=0, key=jax.random.key(1), optimizer=jaxnn.OptimizerConfig("adam", 1e-2))
  assert history["loss"][-1] < 0.5 * history["loss"][0]


@pytest.mark.parametrize("x, axis", [(X2, -1), (X3, -1), (X3, (1, 2)), (X4, 2)])
def test_rms_norm_matches_numpy(x, axis):
  layer = jaxnn.RMSNormalization(axis=axis)
  params = random_params(layer, x.shape[1:])
  axes = tuple(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
  shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
  x64 = x.astype(np.float64)
  want = x64 / np.sqrt((x64 ** 2).mean(axis=axes, keepdims=True) + 1e-6) * np.asarray(params["scale"]).reshape(shape)
  np.testing.assert_allclose(layer.apply(params, jnp.asarray(x)), want, rtol=1e-5, atol=1e-6)
  fresh, _ = layer.init(jax.random.key(0), x.shape[1:])
  np.testing.assert_array_equal(fresh["scale"], np.ones(tuple(x.shape[a] for a in axes)))


@pytest.mark.parametrize("cls", [jaxnn.LayerNormalization, jaxnn.RMSNormalization])
@pytest.mark.parametrize("kwargs, shape, message", [
    ({"axis": 0}, (4,), r"axis 0 is out of range for inputs of shape \(4,\) \(axis counts the batch axis"),
    ({"axis": 3}, (4, 5), r"axis 3 is out of range for inputs of shape \(4, 5\)"),
    ({"axis": -3}, (4,), r"axis -3 is out of range"),
    ({"axis": (1, -2)}, (4, 5), r"axis \[1, -2\] names an axis twice"),
    ({"axis": "x"}, None, r"axis must be an int or a list of ints, got 'x'"),
    ({"axis": []}, None, r"axis must be an int or a list of ints, got \[\]"),
    ({"axis": 1.0}, None, r"axis must be an int or a list of ints, got 1.0"),
    ({"epsilon": 0.0}, None, r"epsilon must be a positive number, got 0.0"),
    ({"epsilon": True}, None, r"epsilon must be a positive number, got True"),
])
def test_bad_arguments(cls, kwargs, shape, message):
  with pytest.raises(JaxnnError, match=rf"^{cls.__name__}: {message}"):
    cls(**kwargs).init(jax.random.key(0), shape)


def test_step_mask_passes_through():
  model = jaxnn.Sequential([jaxnn.Embedding(6, 4, mask_zero=True), jaxnn.LayerNormalization(),
                            jaxnn.RMSNormalization(), jaxnn.LSTM(3, return_sequences=True)])
  assert model.output_masked
  ids = jnp.array([[1, 2, 0, 0], [3, 0, 0, 0]])
  params = model.init(jax.random.key(0), (4,))
  _, aux = model.forward(params, ids)
  np.testing.assert_array_equal(aux["step_mask"], ids != 0)


# --------------------------------------------------------------------------------------------- Keras 3
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False), (False, False)])
@pytest.mark.parametrize("x, axis", LN_CASES)
def test_layer_norm_matches_keras(x, axis, center, scale):
  keras = pytest.importorskip("keras")
  layer = jaxnn.LayerNormalization(axis=axis, center=center, scale=scale, epsilon=1e-2)
  params = random_params(layer, x.shape[1:])
  theirs = keras.layers.LayerNormalization(axis=list(axis) if isinstance(axis, tuple) else axis, center=center,
                                           scale=scale, epsilon=1e-2)
  theirs.build(x.shape)
  assert [tuple(w.shape) for w in theirs.weights] == [tuple(params[k].shape) for k in ("gamma", "beta") if k in params]
  theirs.set_weights([np.asarray(params[k]) for k in ("gamma", "beta") if k in params])
  np.testing.assert_allclose(layer.apply(params, jnp.asarray(x)), theirs(x), rtol=1e-5, atol=1e-5)


# Keras' RMSNormalization multiplies by `scale` unreshaped, so only trailing axes broadcast (axis=2 of a rank-4
# input raises in Keras 3.15); jaxnn reshapes it (checked against numpy above).
@pytest.mark.parametrize("x, axis", [(X2, -1), (X3, -1), (X3, (1, 2)), (X4, (2, 3))])
def test_rms_norm_matches_keras(x, axis):
  keras = pytest.importorskip("keras")
  layer = jaxnn.RMSNormalization(axis=axis, epsilon=1e-3)
  params = random_params(layer, x.shape[1:])
  theirs = keras.layers.RMSNormalization(axis=list(axis) if isinstance(axis, tuple) else axis, epsilon=1e-3)
  theirs.build(x.shape)
  theirs.set_weights([np.asarray(params["scale"])])
  np.testing.assert_allclose(layer.apply(params, jnp.asarray(x)), theirs(x), rtol=1e-5, atol=1e-6)
