"""jaxnn's Dense, activations, LoRA, regularizers, constraints and fixed initializers against Keras 3 itself.

test_layers.py, test_activations.py, test_regularizers.py and test_constraints.py check jaxnn against formulas
by hand; this checks the same things against the library jaxnn promises to match. Each Keras object is given
jaxnn's weights (`set_weights`) and the same inputs. Dense inputs are scaled so that pre-activations reach
beyond +-20 (saturation, exp overflow regions) while many stay within +-3 (where gelu's exact and tanh forms,
or the two hard_sigmoid slopes, differ). Random initializers draw from different RNGs: only the deterministic
ones are compared, and orthogonal by its defining property. Where jaxnn computes something else, the case
stays, marked xfail(strict=True) with what differs.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jaxnn import activations  # noqa: E402
from jaxnn import constraints  # noqa: E402
from jaxnn import initializers  # noqa: E402
from jaxnn import losses  # noqa: E402
from jaxnn import optimizers  # noqa: E402
from jaxnn import regularizers  # noqa: E402
from jaxnn import training  # noqa: E402
from jaxnn.errors import JaxnnError  # noqa: E402
from jaxnn.layers import Dense  # noqa: E402
from jaxnn.models import Sequential  # noqa: E402

keras = pytest.importorskip("keras")

RTOL = ATOL = 1e-6
B, D, U = 48, 5, 4
RNG = np.random.default_rng(0)
# Row i has scale SCALES[i]; the kernel's columns have norm ~1, so pre-activations run from ~0 to ~+-40.
SCALES = np.geomspace(0.05, 20.0, B).astype(np.float32)
X = (RNG.normal(0, 1, (B, D)) * SCALES[:, None]).astype(np.float32)
KERNEL = (RNG.normal(0, 1, (D, U)) / np.sqrt(D)).astype(np.float32)
BIAS = RNG.normal(0, 1, U).astype(np.float32)


def _keras_dense(input_dim, weights, lora_rank=None, lora_alpha=None, **kwargs):
  """A built keras Dense holding `weights` (Keras' order: kernel, bias, lora_kernel_a, lora_kernel_b).

  LoRA is enabled after the build with `enable_lora(rank, lora_alpha)`: Keras 3.15's build drops a
  `lora_alpha` given to the constructor (see test_keras_constructor_keeps_lora_alpha).
  """
  layer = keras.layers.Dense(**kwargs)
  layer.build((None, input_dim))
  if lora_rank is not None:
    layer.enable_lora(lora_rank, lora_alpha=lora_alpha)
  assert [tuple(w.shape) for w in layer.weights] == [np.shape(w) for w in weights]
  layer.set_weights([np.asarray(w) for w in weights])
  return layer


def _params(use_bias=True, **extra):
  params = {"kernel": jnp.asarray(KERNEL), **{k: jnp.asarray(v) for k, v in extra.items()}}
  if use_bias:
    params["bias"] = jnp.asarray(BIAS)
  return params


def _kw_id(kwargs):
  return ",".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "") or "defaults"


def test_inputs_reach_saturation_and_the_middle():
  """The Dense inputs give pre-activations past +-20 and many within +-3, with and without the bias."""
  for pre in (X @ KERNEL, X @ KERNEL + BIAS):
    assert pre.min() < -20 and pre.max() > 20
    assert np.sum(np.abs(pre) < 3) >= 40


# ------------------------------------------------------------------------------------------ activations
# jaxnn names Keras has not: compared with nothing.
JAXNN_ONLY = {"step"}
# Every other canonical name, plus Keras' aliases that jaxnn accepts too.
NAMED = sorted(set(activations.names()) - JAXNN_ONLY) + ["swish", "hard_swish"]


def test_every_jaxnn_activation_is_compared_or_listed_as_jaxnn_only():
  """A new activation name fails here until it is compared with Keras or listed in JAXNN_ONLY."""
  assert set(activations.names()) <= set(NAMED) | JAXNN_ONLY
  for name in JAXNN_ONLY:
    with pytest.raises(ValueError):
      keras.activations.get(name)


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("name", NAMED)
def test_dense_activation_by_name_matches_keras(name, use_bias):
  """Dense(U, activation=name) in both libraries, Keras' activation of the same name."""
  ours = Dense(U, activation=name, use_bias=use_bias).apply(_params(use_bias), jnp.asarray(X))
  weights = [KERNEL, BIAS] if use_bias else [KERNEL]
  theirs = _keras_dense(D, weights, units=U, activation=name, use_bias=use_bias)(X)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=RTOL, atol=ATOL)


# Activations with arguments: jaxnn's dict form against the Keras function called with the same arguments.
ARGUMENT_CASES = [
    ("leaky_relu", dict(negative_slope=0.05)),
    ("elu", dict(alpha=0.5)),
    ("gelu", dict(approximate=True)),
    ("gelu", dict(approximate=False)),
    ("softmax", dict(axis=0)),
    ("log_softmax", dict(axis=0)),
]


@pytest.mark.parametrize("name, kwargs", ARGUMENT_CASES, ids=[f"{n}({_kw_id(k)})" for n, k in ARGUMENT_CASES])
def test_dense_activation_with_arguments_matches_keras(name, kwargs):
  ours = Dense(U, activation={"name": name, **kwargs}).apply(_params(), jnp.asarray(X))
  fn = getattr(keras.activations, name)
  theirs = _keras_dense(D, [KERNEL, BIAS], units=U, activation=lambda x: fn(x, **kwargs))(X)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=RTOL, atol=ATOL)


def test_default_arguments_are_keras_defaults():
  """Keras' "gelu" is the exact erf form, leaky_relu's slope 0.2, elu's alpha 1: jaxnn's names say the same."""
  assert activations.get("gelu") == activations.GELU(approximate=False)
  assert activations.get("leaky_relu") == activations.LeakyReLU(negative_slope=0.2)
  assert activations.get("elu") == activations.ELU(alpha=1.0)
  assert activations.get("softmax") == activations.Softmax(axis=-1)


# Pairs that a careless implementation could swap; the comparison above must tell each pair apart on the
# Dense pre-activations (else it could not fail for that mistake).
PRE = X @ KERNEL + BIAS
CONFUSIONS = {
    "gelu exact vs tanh approximation": (lambda x: jax.nn.gelu(x, approximate=False),
                                         lambda x: jax.nn.gelu(x, approximate=True)),
    "hard_sigmoid x/6+0.5 (Keras 3) vs 0.2x+0.5 (Keras 2)": (jax.nn.hard_sigmoid,
                                                              lambda x: jnp.clip(0.2 * x + 0.5, 0, 1)),
    "leaky_relu slope 0.2 (Keras) vs 0.01 (jax)": (activations.get("leaky_relu"), jax.nn.leaky_relu),
    "selu vs elu": (jax.nn.selu, jax.nn.elu),
    "silu vs mish": (jax.nn.silu, jax.nn.mish),
    "softmax over units vs over the batch": (jax.nn.softmax, lambda x: jax.nn.softmax(x, axis=0)),
    "relu6 vs relu (needs inputs above 6)": (jax.nn.relu6, jax.nn.relu),
}


@pytest.mark.parametrize("confusion", list(CONFUSIONS))
def test_inputs_tell_apart(confusion):
  a, b = CONFUSIONS[confusion]
  assert not np.allclose(np.asarray(a(jnp.asarray(PRE))), np.asarray(b(jnp.asarray(PRE))), rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------------------------- LoRA
LORA_CASES = [
    dict(lora_rank=2),  # alpha defaults to the rank: scale 1
    dict(lora_rank=2, lora_alpha=6),  # scale 3
    dict(lora_rank=3, lora_alpha=1),  # scale 1/3
    dict(lora_rank=1, lora_alpha=2.5),
    dict(lora_rank=2, lora_alpha=4, use_bias=False),
    dict(lora_rank=2, lora_alpha=4, activation="tanh"),
]
# jaxnn param name -> Keras weight name.
LORA_NAMES = {"kernel": "kernel", "bias": "bias", "lora_a": "lora_kernel_a", "lora_b": "lora_kernel_b"}


def _lora_weights(rank):
  """Nonzero factors A (D, rank) and B (rank, U), the same for a rank whichever tests run."""
  rng = np.random.default_rng(10 + rank)
  return (rng.normal(0, 1, (D, rank)).astype(np.float32), rng.normal(0, 1, (rank, U)).astype(np.float32))


def _lora_pair(kwargs):
  """jaxnn's Dense and params, and the Keras Dense, with the same nonzero LoRA factors."""
  use_bias = kwargs.get("use_bias", True)
  a, b = _lora_weights(kwargs["lora_rank"])
  ours = Dense(U, **kwargs)
  params = _params(use_bias, lora_a=a, lora_b=b)
  weights = [KERNEL, BIAS, a, b] if use_bias else [KERNEL, a, b]
  return ours, params, _keras_dense(D, weights, units=U, **kwargs)


@pytest.mark.parametrize("kwargs", LORA_CASES, ids=_kw_id)
def test_lora_outputs_and_effective_kernel_match_keras(kwargs):
  """kernel + (alpha / rank) * A @ B in both; the update is large enough to show (B is nonzero)."""
  ours, params, theirs = _lora_pair(kwargs)
  assert [w.path.split("/")[-1] for w in theirs.weights] == [LORA_NAMES[k] for k in _keras_order(params)]
  np.testing.assert_allclose(np.asarray(ours.kernel(params)), np.asarray(theirs.kernel), rtol=RTOL, atol=ATOL)
  assert not np.allclose(np.asarray(ours.kernel(params)), KERNEL, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(np.asarray(ours.apply(params, jnp.asarray(X))), np.asarray(theirs(X)),
                             rtol=RTOL, atol=ATOL)


def _keras_order(params):
  return [k for k in ("kernel", "bias", "lora_a", "lora_b") if k in params]


@pytest.mark.parametrize("kwargs", LORA_CASES[:1] + LORA_CASES[4:5], ids=_kw_id)
def test_lora_trainable_weights_match_keras(kwargs):
  """The base kernel is frozen, the bias and both factors trained, in both."""
  ours, params, theirs = _lora_pair(kwargs)
  keras_trainable = {w.path.split("/")[-1]: w.trainable for w in theirs.weights}
  assert {LORA_NAMES[k]: v for k, v in ours.trainable(params).items()} == keras_trainable
  assert keras_trainable["kernel"] is False


def test_lora_initial_factor_shapes_and_zero_b_match_keras():
  """A is (in, rank), B is (rank, units) and all zeros in both (A's He-uniform draws differ by RNG)."""
  params = Sequential([Dense(U, lora_rank=3)]).init(jax.random.key(0), (D,))["dense_0"]
  theirs = keras.layers.Dense(U, lora_rank=3)
  theirs.build((None, D))
  assert params["lora_a"].shape == tuple(theirs.lora_kernel_a.shape)
  assert params["lora_b"].shape == tuple(theirs.lora_kernel_b.shape)
  np.testing.assert_array_equal(np.asarray(params["lora_b"]), np.asarray(theirs.lora_kernel_b.value))
  assert not np.any(np.asarray(params["lora_b"]))
  # He uniform: limit sqrt(6 / fan_in), fan_in = D for both.
  limit = np.sqrt(6 / D)
  assert np.abs(np.asarray(params["lora_a"])).max() <= limit
  assert np.abs(np.asarray(theirs.lora_kernel_a.value)).max() <= limit


def test_lora_kernel_regularizer_matches_keras():
  """Keras puts kernel_regularizer on the LoRA factors, l2 * (|A|^2 + |B|^2), the frozen kernel left out
  (jaxnn penalized the effective kernel before: 2.0551 against Keras' 0.1897 here)."""
  ours, params, theirs = _lora_pair(dict(lora_rank=2, lora_alpha=4, kernel_regularizer="l2"))
  np.testing.assert_allclose(float(ours.regularization(params)), float(sum(theirs.losses)), rtol=RTOL, atol=ATOL)


def test_lora_with_kernel_constraint_is_refused_as_in_keras():
  """Nothing would apply it (the base kernel is frozen, the factors carry none): refused, as Keras does."""
  with pytest.raises(ValueError, match="incompatible with kernel constraints"):
    keras.layers.Dense(U, lora_rank=2, kernel_constraint="max_norm").build((None, D))
  with pytest.raises(JaxnnError, match=r"Dense\(\d+\): kernel_constraint cannot be combined with lora_rank"):
    Dense(U, lora_rank=2, kernel_constraint="max_norm")


# ------------------------------------------------------------------------------------------ regularizers
W = (RNG.normal(0, 1, (D, U)) * np.array([0.1, 1.0, 3.0, 10.0])).astype(np.float32)
REGULARIZER_CASES = [
    # (jaxnn identifier, Keras identifier)
    ("l1", "l1"),
    ("l2", "l2"),
    ("L1", "L1"),
    ("L2", "L2"),
    ("l1l2", "l1l2"),  # defaults 0, 0 in both
    ("L1L2", "L1L2"),
    ({"name": "l1", "l1": 0.3}, keras.regularizers.L1(0.3)),
    ({"name": "l2", "l2": 1e-3}, keras.regularizers.L2(1e-3)),
    ({"name": "l1_l2", "l1": 0.01, "l2": 0.02}, keras.regularizers.L1L2(l1=0.01, l2=0.02)),
    ({"name": "l1_l2", "l1": 0.05}, keras.regularizers.L1L2(l1=0.05)),
    ({"name": "l1_l2", "l2": 0.05}, keras.regularizers.L1L2(l2=0.05)),
]


def _reg_id(case):
  ours = case[0]
  return ours if isinstance(ours, str) else f"{ours['name']}({_kw_id({k: v for k, v in ours.items() if k != 'name'})})"


@pytest.mark.parametrize("ours, theirs", REGULARIZER_CASES, ids=[_reg_id(c) for c in REGULARIZER_CASES])
def test_regularizer_value_matches_keras(ours, theirs):
  value = float(regularizers.get(ours)(jnp.asarray(W)))
  np.testing.assert_allclose(value, float(keras.regularizers.get(theirs)(W)), rtol=RTOL, atol=ATOL)


def test_l1_l2_name_is_jaxnn_only_with_l1l2_defaults():
  """Keras 3 does not resolve the string "l1_l2" (its docstring's l1 = l2 = 0.01 is not what get does);
  jaxnn's "l1_l2" means Keras' "l1l2": L1L2() with l1 = l2 = 0."""
  with pytest.raises(ValueError):
    keras.regularizers.get("l1_l2")
  assert regularizers.get("l1_l2") == regularizers.get("l1l2") == regularizers.L1L2(0.0, 0.0)
  assert keras.regularizers.get("l1l2").get_config() == {"l1": 0.0, "l2": 0.0}


DENSE_REG_CASES = [
    dict(kernel_regularizer="l2"),
    dict(bias_regularizer="l1"),
    dict(kernel_regularizer="l1", bias_regularizer="l2"),
    dict(kernel_regularizer={"name": "l1_l2", "l1": 0.01, "l2": 0.02}, bias_regularizer={"name": "l2", "l2": 0.5}),
    dict(kernel_regularizer="l2", bias_regularizer="l1", use_bias=False),
]


def _keras_kwargs(kwargs):
  """jaxnn's dict identifiers as Keras objects; names pass through."""
  out = {}
  for k, v in kwargs.items():
    if isinstance(v, dict):
      v = dict(v)
      cls = {"l1": "L1", "l2": "L2", "l1_l2": "L1L2"}[v.pop("name")]
      v = getattr(keras.regularizers, cls)(**v)
    out[k] = v
  return out


@pytest.mark.parametrize("kwargs", DENSE_REG_CASES, ids=_kw_id)
def test_dense_weight_penalty_matches_keras_losses(kwargs):
  """Dense.regularization against the sum of the Keras layer's `losses` (its weights' regularizers)."""
  use_bias = kwargs.get("use_bias", True)
  params = _params(use_bias)
  params["kernel"] = jnp.asarray(W)
  ours = float(Dense(U, **kwargs).regularization(params))
  theirs = _keras_dense(D, [W, BIAS] if use_bias else [W], units=U, **_keras_kwargs(kwargs))
  assert ours > 0
  np.testing.assert_allclose(ours, float(sum(theirs.losses)), rtol=RTOL, atol=ATOL)


ACTIVITY_CASES = [
    ("l2", None, (D,)),
    ("l1", "tanh", (D,)),  # on the outputs after the activation
    ({"name": "l1_l2", "l1": 0.01, "l2": 0.02}, "relu", (D,)),
    ("l2", None, (3, D)),  # rank-3 inputs: Keras divides by the batch size only, not by batch * time
]


@pytest.mark.parametrize("reg, activation, input_shape", ACTIVITY_CASES,
                         ids=[f"{_reg_id(c)}-{c[1]}-in{'x'.join(map(str, c[2]))}" for c in ACTIVITY_CASES])
def test_activity_penalty_matches_keras_model_losses(reg, activation, input_shape):
  """aux["activity_penalty"] against keras.Sequential's `losses` after a call: the regularizer on the layer's
  outputs divided by the batch size, summed over two regularized layers."""
  x = (np.random.default_rng(1).normal(0, 1, (B, *input_shape)) * 3).astype(np.float32)
  model = Sequential([Dense(U, activation=activation, activity_regularizer=reg),
                      Dense(3, activity_regularizer=reg)])
  params = model.init(jax.random.key(0), input_shape)
  _, aux = model.forward(params, jnp.asarray(x))
  kw = _keras_kwargs({"activity_regularizer": reg})
  theirs = keras.Sequential([keras.Input(input_shape), keras.layers.Dense(U, activation=activation, **kw),
                             keras.layers.Dense(3, **kw)])
  theirs.set_weights([np.asarray(params[n][k]) for n in ("dense_0", "dense_1") for k in ("kernel", "bias")])
  theirs(x)
  assert len(theirs.losses) == 2
  keras_total = float(sum(theirs.losses))
  np.testing.assert_allclose(float(aux["activity_penalty"]), keras_total, rtol=RTOL, atol=ATOL)
  # Not the undivided sum: the batch division is what is compared.
  assert not np.isclose(keras_total * B, keras_total, rtol=RTOL)


# ------------------------------------------------------------------------------------------- constraints
# Columns with norms ~0.3, ~0.9, ~1.7 and ~3.5 (below, inside and above the bounds), and a negative entry in each.
_C = RNG.normal(0, 1, (D, U))
C_KERNEL = (_C / np.linalg.norm(_C, axis=0) * np.array([0.3, 0.9, 1.7, 3.5])).astype(np.float32)
CONV_KERNEL = RNG.normal(0, 0.3, (3, 3, 2, U)).astype(np.float32)
CONSTRAINT_CASES = [
    ("max_norm", {}, C_KERNEL),
    ("max_norm", dict(max_value=1.0), C_KERNEL),
    ("max_norm", dict(max_value=1.0, axis=1), C_KERNEL),
    ("max_norm", dict(max_value=3.0, axis=[0, 1]), C_KERNEL),
    ("max_norm", dict(max_value=1.0, axis=[0, 1, 2]), CONV_KERNEL),
    ("non_neg", {}, C_KERNEL),
    ("unit_norm", {}, C_KERNEL),
    ("unit_norm", dict(axis=1), C_KERNEL),
    ("unit_norm", dict(axis=[0, 1, 2]), CONV_KERNEL),
    ("min_max_norm", {}, C_KERNEL),
    ("min_max_norm", dict(min_value=0.5, max_value=2.0), C_KERNEL),
    ("min_max_norm", dict(min_value=0.5, max_value=2.0, rate=0.5), C_KERNEL),
    ("min_max_norm", dict(min_value=0.5, max_value=2.0, rate=0.0), C_KERNEL),
    ("min_max_norm", dict(min_value=1.0, max_value=1.5, rate=0.3, axis=1), C_KERNEL),
    ("min_max_norm", dict(min_value=0.5, max_value=1.0, axis=[0, 1, 2]), CONV_KERNEL),
]


@pytest.mark.parametrize("name, kwargs, w", CONSTRAINT_CASES,
                         ids=[f"{c[0]}({_kw_id(c[1])})-{'x'.join(map(str, c[2].shape))}" for c in CONSTRAINT_CASES])
def test_constraint_matches_keras(name, kwargs, w):
  ours = np.asarray(constraints.get({"name": name, **kwargs})(jnp.asarray(w)))
  theirs = np.asarray(keras.constraints.get({"class_name": name, "config": kwargs} if kwargs else name)(w))
  np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
  if not (name == "min_max_norm" and kwargs.get("rate") == 0.0):
    assert not np.allclose(ours, w, rtol=RTOL, atol=ATOL)  # the constraint moved something


def test_constraint_defaults_are_keras_defaults():
  for name in constraints.names():
    ours = constraints.serialize(constraints.get(name))
    ours = {} if isinstance(ours, str) else {k: v for k, v in ours.items() if k != "name"}
    assert ours == keras.constraints.get(name).get_config(), name


# ------------------------------------------------------------------------------- one training step, end to end
STEP_CASES = [
    pytest.param(dict(kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2",
                      kernel_constraint={"name": "max_norm", "max_value": 1.0}, bias_constraint="non_neg",
                      activation="tanh"), id="penalties+constraints"),
    pytest.param(dict(lora_rank=2, lora_alpha=4, activity_regularizer="l1"), id="lora"),
    pytest.param(dict(lora_rank=2, lora_alpha=4, kernel_regularizer="l2"), id="lora+kernel_regularizer"),
]


def _keras_constraint(v):
  if isinstance(v, dict):
    v = dict(v)
    return keras.constraints.get({"class_name": v.pop("name"), "config": v})
  return v


@pytest.mark.parametrize("kwargs", STEP_CASES)
def test_one_sgd_step_matches_keras_train_on_batch(kwargs):
  """train_step (mse + weight and activity penalties, then constraints; LoRA kernel frozen) against Keras'
  train_on_batch with SGD: every weight after one step."""
  lr = 0.1
  rng = np.random.default_rng(2)
  x = (rng.normal(0, 1, (8, D)) * 2).astype(np.float32)
  y = rng.normal(0, 1, (8, U)).astype(np.float32)
  layer = Dense(U, **kwargs)
  model = Sequential([layer])
  params = model.init(jax.random.key(0), (D,))
  if "lora_rank" in kwargs:  # nonzero B, so that both factors get gradients
    params["dense_0"]["lora_b"] = jnp.asarray(rng.normal(0, 1, (2, U)).astype(np.float32))
  else:  # start outside the constraints
    params["dense_0"]["kernel"] = jnp.asarray(C_KERNEL * 2)
    params["dense_0"]["bias"] = jnp.asarray(BIAS)
  state = training.create_train_state(model, params, optimizers.get("SGD", learning_rate=lr))
  state, _ = training.train_step(state, jnp.asarray(x), jnp.asarray(y), jnp.ones(8), jnp.ones(8), model=model,
                                 loss=losses.get("mse"))
  kw = _keras_kwargs({k: v for k, v in kwargs.items() if k.endswith("_regularizer")})
  kw.update({k: _keras_constraint(v) for k, v in kwargs.items() if k.endswith("_constraint")})
  kw.update({k: v for k, v in kwargs.items() if k == "activation"})
  theirs = keras.Sequential([keras.Input((D,)), keras.layers.Dense(U, **kw)])
  if "lora_rank" in kwargs:  # after the build, so that lora_alpha holds (see test_keras_constructor_keeps_lora_alpha)
    theirs.layers[0].enable_lora(kwargs["lora_rank"], lora_alpha=kwargs["lora_alpha"])
  order = _keras_order(params["dense_0"])
  theirs.set_weights([np.asarray(params["dense_0"][k]) for k in order])
  theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
  theirs.train_on_batch(x, y)
  after = {k: np.asarray(w.value) for k, w in zip(order, theirs.layers[0].weights)}
  for k in order:
    moved = not np.allclose(np.asarray(params["dense_0"][k]), after[k], rtol=RTOL, atol=ATOL)
    assert moved == (k != "kernel" or "lora_rank" not in kwargs), k  # only a LoRA base kernel stays
    np.testing.assert_allclose(np.asarray(state.params["dense_0"][k]), after[k], rtol=RTOL, atol=ATOL, err_msg=k)


# ------------------------------------------------------------------------------- deterministic initializers
INIT_CASES = [
    ("identity", "zeros", (D, U)),
    ("identity", "ones", (U, D)),
    ({"name": "identity", "gain": 2.5}, {"name": "constant", "value": -0.75}, (U, U)),
    ("ones", {"name": "constant", "value": 3.0}, (D, U)),
    ("zeros", "ones", (D, U)),
    ({"name": "constant", "value": 0.5}, "zeros", (D, U)),
]
_INIT_CLASSES = {"identity": "Identity", "constant": "Constant", "orthogonal": "Orthogonal"}


def _keras_initializer(v):
  if isinstance(v, dict):
    v = dict(v)
    return getattr(keras.initializers, _INIT_CLASSES[v.pop("name")])(**v)
  return v


def _init_id(v):
  return v if isinstance(v, str) else f"{v['name']}({_kw_id({k: x for k, x in v.items() if k != 'name'})})"


@pytest.mark.parametrize("kernel_init, bias_init, shape", INIT_CASES,
                         ids=[f"{_init_id(c[0])}-{_init_id(c[1])}-{c[2][0]}x{c[2][1]}" for c in INIT_CASES])
def test_deterministic_initial_weights_match_keras(kernel_init, bias_init, shape):
  """Dense's initial kernel and bias from the same initializer names, built in both libraries."""
  params = Sequential([Dense(shape[1], kernel_initializer=kernel_init, bias_initializer=bias_init)]).init(
      jax.random.key(0), shape[:1])["dense_0"]
  theirs = keras.layers.Dense(shape[1], kernel_initializer=_keras_initializer(kernel_init),
                              bias_initializer=_keras_initializer(bias_init))
  theirs.build((None, shape[0]))
  np.testing.assert_array_equal(np.asarray(params["kernel"]), np.asarray(theirs.kernel.value))
  np.testing.assert_array_equal(np.asarray(params["bias"]), np.asarray(theirs.bias.value))


ORTHOGONAL_CASES = [((5, 3), 1.0), ((3, 5), 1.0), ((4, 4), 0.5), ((2, 3, 4), 2.0)]


@pytest.mark.parametrize("shape, gain", ORTHOGONAL_CASES, ids=[f"{'x'.join(map(str, s))}-gain{g}"
                                                              for s, g in ORTHOGONAL_CASES])
def test_orthogonal_is_gain_times_orthogonal_as_in_keras(shape, gain):
  """Different RNGs, so the draws differ; both are `gain` times a matrix with orthonormal columns (rows when
  wide), after flattening every axis but the last."""
  ours = initializers.get({"name": "orthogonal", "gain": gain})(jax.random.key(0), shape)
  theirs = keras.initializers.Orthogonal(gain=gain, seed=0)(shape)
  for w in (np.asarray(ours), np.asarray(theirs)):
    assert w.shape == shape
    m = w.reshape(-1, shape[-1]).astype(np.float64)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(len(gram)), rtol=1e-5, atol=1e-5)
