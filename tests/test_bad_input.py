"""Bad input to the API: each case raises jaxnn's error with a message naming the argument, what was expected and
what was found, and nothing has been compiled by then.

"Nothing compiled" is checked two ways: jaxnn's compiled entry points (the epoch, the evaluation pass, predict's
batches, model.init) are replaced by spies that record any call or lowering, and a jax.monitoring listener
counts XLA backend compiles. `test_the_spies_see_a_compile` shows both fire on a valid call.
"""

import json
import re

import jax
import numpy as np
import optax
import pytest

from jaxnn import checkpoint
from jaxnn import constraints
from jaxnn import data
from jaxnn import losses
from jaxnn import metrics
from jaxnn import models
from jaxnn import optimizers
from jaxnn import schedules
from jaxnn import training
from jaxnn.convolutional import BatchNormalization, Conv2D, MaxPooling2D, Reshape
from jaxnn.errors import JaxnnError
from jaxnn.layers import Activation, Dense, Dropout, Flatten
from jaxnn.recurrent import GRU, Bidirectional
from jaxnn.models import Sequential

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)
N = 16
X = RNG.normal(size=(N, 5)).astype(np.float32)
Y = (np.arange(N) % 3).astype(np.int32)
ONE_HOT = np.eye(3, dtype=np.float32)[Y]
SPARSE = "sparse_categorical_crossentropy"
# Built here, not in a case: a schedule's argument checks evaluate it once (small compiles of their own).
SCHEDULED = optimizers.OptimizerConfig("sgd", schedule={"name": "cosine_decay", "initial_learning_rate": 0.1,
                                                        "decay_steps": 10})

MODEL = Sequential([Dense(3, activation="softmax")], name="softmax_regression")
PARAMS = MODEL.init(KEY, (5,))
SIGMOID = Sequential([Dense(1, activation="sigmoid")], name="logistic")
SIGMOID_PARAMS = SIGMOID.init(KEY, (5,))
CNN = Sequential([Conv2D(2, 3), Flatten(), Dense(3)], name="cnn")
CNN_PARAMS = CNN.init(KEY, (8, 8, 1))
RNN = Sequential([Bidirectional(GRU(4)), Dense(3, activation="softmax")], name="rnn")
RNN_PARAMS = RNN.init(KEY, (6, 2))
MODEL.apply(PARAMS, X)  # warms the eager ops `apply` runs before its first layer's shape check


def fit(**kw):
  """training.fit on (X, Y) with the softmax model; keyword arguments replace any part."""
  args = dict(model=MODEL, params=PARAMS, x=X, y=Y, loss=SPARSE, batch_size=4, epochs=1, verbose=0)
  args.update(kw)
  return training.fit(args.pop("model"), args.pop("params"), args.pop("x"), args.pop("y"), **args)


def evaluate(**kw):
  args = dict(model=MODEL, params=PARAMS, x=X, y=Y, loss=SPARSE)
  args.update(kw)
  return training.evaluate(args.pop("model"), args.pop("params"), args.pop("x"), args.pop("y"), **args)


def predict(fn=training.predict, **kw):
  args = dict(model=MODEL, params=PARAMS, x=X)
  args.update(kw)
  return fn(args.pop("model"), args.pop("params"), args.pop("x"), **args)


def case(call, *message, error=JaxnnError, id):  # pylint: disable=redefined-builtin
  return pytest.param(call, error, message, id=id)


OTHER_PARAMS = Sequential([Dense(4), Dense(3)]).init(KEY, (5,))
NO_BIAS = {"dense_0": {"kernel": PARAMS["dense_0"]["kernel"]}}

CASES = [
    # --- inputs that do not fit the model the params were built for
    case(lambda: fit(x=RNG.normal(size=(N, 7)).astype(np.float32)),
         r"^fit: inputs of shape \(7,\) \(batch axis excluded\) do not fit the params", r"layer dense_0 \(Dense\)",
         r"needs a kernel of shape \(7, 3\), the params hold \(5, 3\)", id="fit-wrong-feature-count"),
    case(lambda: fit(x=np.zeros((N, 5, 2), np.float32)), r"inputs of shape \(5, 2\)",
         r"kernel of shape \(2, 3\), the params hold \(5, 3\)", id="fit-extra-axis"),
    case(lambda: fit(model=CNN, params=CNN_PARAMS, x=np.zeros((N, 10, 10, 1), np.float32)),
         r"inputs of shape \(10, 10, 1\)", r"layer dense_0 \(Dense\) gets inputs \(128,\)",
         r"kernel of shape \(128, 3\), the params hold \(72, 3\)", id="fit-cnn-wrong-image-size"),
    case(lambda: fit(model=CNN, params=CNN_PARAMS, x=np.zeros((N, 8, 8), np.float32)),
         r"^fit: x has examples of shape \(8, 8\), which cnn cannot take: Conv2D\(2, \(3, 3\)\): expected inputs "
         r"\(H, W, C\), got shape \(8, 8\)", id="fit-cnn-no-channel-axis"),
    case(lambda: fit(model=RNN, params=RNN_PARAMS, x=np.zeros((N, 6, 3), np.float32)),
         r"layer bidirectional_0 \(Bidirectional\) gets inputs \(6, 3\) and needs a backward/kernel of shape "
         r"\(3, 12\), the params hold \(2, 12\)", id="fit-rnn-wrong-feature-count"),
    case(lambda: evaluate(x=np.zeros((N, 4), np.float32)), r"^evaluate: inputs of shape \(4,\)",
         r"kernel of shape \(4, 3\), the params hold \(5, 3\)", id="evaluate-wrong-feature-count"),
    case(lambda: predict(x=np.zeros((2, 6), np.float32)), r"^predict: inputs of shape \(6,\)",
         id="predict-wrong-shape"),
    case(lambda: predict(training.predict_classes, x=np.zeros((2, 6), np.float32)), r"^predict: inputs of shape",
         id="predict-classes-wrong-shape"),
    case(lambda: predict(model=CNN, params=CNN_PARAMS, x=np.zeros((2, 8, 8), np.float32)),
         r"^predict: x has examples of shape \(8, 8\), which cnn cannot take: Conv2D",
         id="predict-cnn-no-channel-axis"),
    case(lambda: fit(validation_data=(np.zeros((4, 7), np.float32), Y[:4])),
         r"^validation_data: inputs of shape \(7,\)", id="validation-wrong-feature-count"),
    case(lambda: MODEL.apply(PARAMS, np.zeros((2, 7), np.float32)),
         r"Dense\(3\): expected inputs with last axis 5, got shape \(2, 7\)", id="apply-wrong-feature-count"),
    # --- params that are not this model's
    case(lambda: fit(params=None), r"^fit: params must be the dict from model.init \(or a TrainState\), got NoneType",
         id="fit-params-none"),
    case(lambda: fit(params=OTHER_PARAMS), r"params do not belong to softmax_regression",
         r"expected the layers \['dense_0'\], found \['dense_0', 'dense_1'\]", id="fit-params-of-another-model"),
    case(lambda: evaluate(params=NO_BIAS), r"params\['dense_0'\] do not match layer dense_0 \(Dense\)",
         r"expected the arrays \['bias', 'kernel'\], found \['kernel'\]", id="evaluate-params-missing-bias"),
    case(lambda: MODEL.apply(None, X), r"^params: expected the dict from model.init, got NoneType",
         id="apply-params-none"),
    # --- dtypes
    case(lambda: fit(x=(X * 40 + 128).clip(0, 255).astype(np.uint8)),
         r"^x: expected floating-point inputs, got uint8 images; scale them first \(jaxnn.data.scale",
         id="fit-uint8-images"),
    case(lambda: evaluate(x=np.zeros((N, 5), np.uint8)), r"got uint8 images; scale them first", id="evaluate-uint8"),
    case(lambda: predict(x=np.zeros((2, 5), np.uint8)), r"got uint8 images", id="predict-uint8"),
    case(lambda: MODEL.apply(PARAMS, np.zeros((2, 5), np.uint8)), r"got uint8 images", id="apply-uint8"),
    case(lambda: fit(validation_data=(np.zeros((4, 5), np.uint8), Y[:4])), r"^validation_data x: .*uint8",
         id="validation-uint8"),
    case(lambda: fit(x=np.full((N, 5), "a")), r"^x: expected a real numeric array .*got dtype <U1", id="fit-strings"),
    case(lambda: fit(x=X.astype(np.complex64)), r"got dtype complex64", id="fit-complex"),
    case(lambda: fit(x=X > 0), r"got dtype bool", id="fit-bool"),
    case(lambda: fit(x=np.array([None] * N)), r"got dtype object", id="fit-object"),
    case(lambda: fit(x=[[1.0, 2.0], [1.0]]), r"^x: expected an array \(equal-length rows\), got list", id="fit-ragged"),
    case(lambda: predict(x=np.full((2, 5), "a")), r"got dtype <U1", id="predict-strings"),
    case(lambda: MODEL.apply(PARAMS, np.full((2, 5), "a")), r"^x: expected a real numeric array", id="apply-strings"),
    case(lambda: fit(y=np.full(N, "a")), r"^fit: y must hold numbers, got dtype <U1", id="fit-string-labels"),
    case(lambda: fit(sample_weight=["a"] * N), r"^fit: sample_weight must hold numbers", id="fit-string-weights"),
    # --- shapes of x
    case(lambda: fit(x=X[:, 0]), r"^fit: x must be a batch \(examples, features...\), got shape \(16,\)",
         id="fit-x-without-batch-axis"),
    case(lambda: predict(x=X[0]), r"^predict: x must be a batch", id="predict-single-example"),
    case(lambda: fit(x=np.zeros((N, 0), np.float32)), r"examples of shape \(0,\); expected positive sizes",
         id="fit-zero-features"),
    case(lambda: fit(x=X[:0], y=Y[:0]), r"^fit: the dataset is empty \(x has shape \(0, 5\)\)", id="fit-empty"),
    case(lambda: evaluate(x=X[:0], y=Y[:0]), r"^evaluate: the dataset is empty", id="evaluate-empty"),
    case(lambda: predict(x=X[:0]), r"^predict: the dataset is empty", id="predict-empty"),
    case(lambda: fit(validation_data=(X[:0], Y[:0])), r"^validation_data: the dataset is empty", id="validation-empty"),
    case(lambda: fit(y=Y[:-1]), r"x and y must have the same number of examples, got 16 and 15",
         id="fit-count-mismatch"),
    # --- labels outside [0, classes)
    case(lambda: fit(y=np.full(N, 3)), r"^fit: labels must be in \[0, 3\) for a model with 3 outputs, found 3",
         id="fit-label-too-large"),
    case(lambda: fit(y=np.where(Y == 0, -1, Y)), r"labels must be in \[0, 3\).* found -1", id="fit-label-negative"),
    case(lambda: fit(validation_data=(X[:4], np.full(4, 7))), r"^validation_data: labels must be in \[0, 3\).* found 7",
         id="validation-label-out-of-range"),
    case(lambda: evaluate(y=np.full(N, 9)), r"^evaluate: labels must be in \[0, 3\).* found 9", id="evaluate-label"),
    case(lambda: fit(model=SIGMOID, params=SIGMOID_PARAMS, y=Y % 2),
         r"labels must be in \[0, 1\) for a model with 1 outputs, found 1", r"use binary_crossentropy",
         id="fit-sparse-loss-on-one-sigmoid-unit"),
    # --- a loss that does not match the label format
    case(lambda: fit(y=ONE_HOT), r"sparse_categorical_crossentropy expects integer class labels of shape \(16,\), got "
         r"shape \(16, 3\)", r"one-hot targets\? use categorical_crossentropy", id="sparse-loss-one-hot-labels"),
    case(lambda: fit(y=ONE_HOT.astype(np.int32)), r"one-hot targets\? use categorical_crossentropy",
         id="sparse-loss-integer-one-hot"),
    case(lambda: fit(y=Y.astype(np.float32)), r"expects integer class labels, got dtype float32",
         r"convert them with y.astype\(int\)", id="sparse-loss-float-labels"),
    case(lambda: fit(y=Y > 0), r"expects integer class labels, got dtype bool", id="sparse-loss-bool-labels"),
    case(lambda: fit(y=Y[:, None]), r"got shape \(16, 1\) \(drop the trailing axis of size 1\)",
         id="sparse-loss-trailing-axis"),
    case(lambda: fit(loss="categorical_crossentropy"),
         r"^fit: categorical_crossentropy expects one-hot targets of shape \(16, 3\), got integer class labels of "
         r"shape \(16,\); use sparse_categorical_crossentropy", id="categorical-loss-integer-labels"),
    case(lambda: evaluate(loss="categorical_crossentropy"), r"^evaluate: categorical_crossentropy expects one-hot",
         id="evaluate-categorical-loss-integer-labels"),
    case(lambda: fit(loss="categorical_crossentropy", y=np.eye(4, dtype=np.float32)[Y]),
         r"expects targets of the model's output shape \(16, 3\), got \(16, 4\)",
         r"the model has 3 outputs, the targets 4 columns", id="categorical-loss-wrong-class-count"),
    case(lambda: fit(loss="kl_divergence"), r"kl_divergence expects one-hot targets",
         id="kl-divergence-integer-labels"),
    case(lambda: fit(model=SIGMOID, params=SIGMOID_PARAMS, y=(Y % 2).astype(np.float32), loss="binary_crossentropy"),
         r"binary_crossentropy expects targets of the model's output shape \(16, 1\), got \(16,\)",
         r"reshape y to \(16, 1\) \(y\[:, None\]\)", id="binary-loss-labels-without-unit-axis"),
    case(lambda: fit(loss="binary_crossentropy"), r"binary_crossentropy expects targets of the model's output shape "
         r"\(16, 3\), got \(16,\); for integer class labels use sparse_categorical_crossentropy",
         id="binary-loss-integer-class-labels"),
    case(lambda: fit(loss="binary_crossentropy", y=ONE_HOT * 2), r"binary_crossentropy expects targets in \[0, 1\], "
         r"found 2", id="binary-loss-targets-above-one"),
    case(lambda: fit(loss="hinge", y=ONE_HOT * 3), r"hinge expects targets in \[-1, 1\], found 3", id="hinge-targets"),
    case(lambda: fit(loss="mse"), r"mean_squared_error expects targets of the model's output shape \(16, 3\), got "
         r"\(16,\)", id="mse-shape"),
    case(lambda: fit(loss="categorical_crossentropy", y=ONE_HOT, metrics=["sparse_categorical_accuracy"]),
         r"^fit: sparse_categorical_accuracy", r"metric 'sparse_categorical_accuracy' with loss "
         r"'categorical_crossentropy'", id="metric-for-other-label-format"),
    # --- unknown names list the valid ones
    case(lambda: fit(loss="crossentropy"), r"^loss: unknown name 'crossentropy'; valid names: .*"
         r"sparse_categorical_crossentropy", id="unknown-loss"),
    case(lambda: fit(loss=3), r"^loss: expected a name, a Loss or a callable, found int", id="loss-of-wrong-type"),
    case(lambda: fit(optimizer="adamm"), r"^optimizer: expected one of \[.*'adam'.*'sgd'\]; got 'adamm'",
         id="unknown-optimizer"),
    case(lambda: fit(optimizer=3), r"^optimizer: expected a name, a dict, an OptimizerConfig", id="optimizer-type"),
    case(lambda: fit(metrics=["acuracy"]), r"^metric: unknown name 'acuracy'; valid names: acc, accuracy",
         id="unknown-metric"),
    case(lambda: fit(metrics="accuracy"), r"^metrics: expected a list .*got 'accuracy' \(write \['accuracy'\]\)",
         id="metrics-as-a-string"),
    case(lambda: fit(metrics=["accuracy", "accuracy"]), r"metrics: names must be unique", id="duplicate-metrics"),
    case(lambda: Dense(3, activation="rleu"), r"^activation: expected one of \[.*'relu'.*\]; got 'rleu'",
         id="unknown-activation"),
    case(lambda: Activation("sigmoidd"), r"^activation: expected one of \[.*'sigmoid'", id="unknown-activation-layer"),
    case(lambda: Dense(3, kernel_initializer="glorot"), r"^initializer: expected one of \[.*'glorot_uniform'.*\]; "
         r"got 'glorot'", id="unknown-initializer"),
    case(lambda: Dense(3, kernel_regularizer="l3"), r"^regularizer: expected one of \['l1', 'l1_l2', 'l2'\]; got 'l3'",
         id="unknown-regularizer"),
    case(lambda: Dense(3, kernel_constraint="maxnorm"), r"^constraint: expected one of \['max_norm', 'min_max_norm', "
         r"'non_neg', 'unit_norm'\]; got 'maxnorm'", id="unknown-constraint"),
    case(lambda: losses.get("msee"), r"^loss: unknown name 'msee'; valid names: .*mse", id="losses-get-unknown"),
    case(lambda: metrics.get("f2"), r"^metric: unknown name 'f2'; valid names: .*f1", id="metrics-get-unknown"),
    case(lambda: optimizers.get("nadamw"), r"^optimizer: expected one of \[.*'nadam'", id="optimizers-get-unknown"),
    case(lambda: schedules.schedule("cosine"), r"^schedule: expected one of \[.*'cosine_decay'", id="unknown-schedule"),
    # --- batch sizes, epochs, splits
    case(lambda: fit(batch_size=0), r"^fit: batch_size must be an int in \[1, 16\] \(the number of training "
         r"examples\), got 0", id="fit-batch-size-0"),
    case(lambda: fit(batch_size=-4), r"batch_size must be an int in \[1, 16\].* got -4", id="fit-batch-size-negative"),
    case(lambda: fit(batch_size=17), r"batch_size must be an int in \[1, 16\].* got 17",
         id="fit-batch-larger-than-data"),
    case(lambda: fit(batch_size=4.0), r"batch_size must be an int .* got 4.0", id="fit-batch-size-float"),
    case(lambda: fit(batch_size=True), r"batch_size must be an int .* got True", id="fit-batch-size-bool"),
    case(lambda: fit(batch_size=16, validation_split=0.25), r"batch_size must be an int in \[1, 12\]",
         id="fit-batch-larger-than-data-after-split"),
    case(lambda: fit(eval_batch_size=0, validation_data=(X, Y)), r"^fit: eval_batch_size must be an int >= 1, got 0",
         id="fit-eval-batch-size-0"),
    case(lambda: evaluate(batch_size=0), r"^evaluate: batch_size must be an int >= 1, got 0", id="evaluate-batch-0"),
    case(lambda: evaluate(batch_size=2.5), r"^evaluate: batch_size must be an int >= 1, got 2.5",
         id="evaluate-batch-float"),
    case(lambda: predict(batch_size=0), r"^predict: batch_size must be an int >= 1, got 0", id="predict-batch-0"),
    case(lambda: predict(training.predict_classes, batch_size=-1), r"^predict: batch_size must be an int >= 1, got -1",
         id="predict-classes-batch-negative"),
    case(lambda: fit(epochs=-1), r"^fit: epochs must be an int >= 0, got -1", id="fit-epochs-negative"),
    case(lambda: fit(epochs=1.5), r"^fit: epochs must be an int >= 0, got 1.5", id="fit-epochs-float"),
    case(lambda: fit(validation_split=1.5), r"^fit: validation_split must be in \[0, 1\), got 1.5",
         id="fit-validation-split-above-one"),
    case(lambda: fit(validation_split="0.1"), r"validation_split must be in \[0, 1\), got '0.1'",
         id="fit-validation-split-string"),
    case(lambda: fit(validation_split=0.01), r"validation_split=0.01 of 16 examples leaves an empty side",
         id="fit-validation-split-empty-side"),
    case(lambda: fit(validation_data=(X, Y), validation_split=0.25),
         r"pass validation_data or validation_split, not both",
         id="fit-both-validation-kinds"),
    # --- validation_data malformed
    case(lambda: fit(validation_data=X), r"^fit: validation_data must be \(x_val, y_val\) or \(x_val, y_val, "
         r"sample_weight_val\), got ndarray",
         id="validation-data-an-array"),
    case(lambda: fit(validation_data=(X, Y, np.ones(N), Y)), r"^fit: validation_data must be \(x_val, y_val\) or "
         r"\(x_val, y_val, sample_weight_val\), got a tuple of length 4", id="validation-data-of-four"),
    case(lambda: fit(validation_data=(X[:4], Y[:4], np.ones(5))), r"^validation_data: sample_weight must have shape "
         r"\(4,\), one weight per example, got \(5,\)", id="validation-weights-shape"),
    case(lambda: fit(validation_data=(X[:4], Y[:4], [1.0, np.nan, 1.0, 1.0])), r"^validation_data: sample_weight "
         r"must be finite and >= 0, found nan at sample_weight\[1\]", id="validation-weights-nan"),
    case(lambda: fit(weighted_metrics="accuracy"), r"^weighted_metrics: expected a list of metric names or Metrics, "
         r"got 'accuracy' \(write \['accuracy'\]\)", id="weighted-metrics-a-string"),
    case(lambda: fit(metrics=["accuracy"], weighted_metrics=["accuracy", "accuracy"]),
         r"^metrics and weighted_metrics: names must be unique and not 'loss', got \['accuracy', "
         r"'weighted_accuracy', 'weighted_accuracy'\]", id="weighted-metrics-twice"),
    case(lambda: fit(weighted_metrics=["no_such_metric"]), r"^metric: unknown name 'no_such_metric'; valid names: ",
         id="weighted-metrics-unknown"),
    # --- weights, keys, early stopping
    case(lambda: fit(sample_weight=np.ones(N - 1)), r"^fit: sample_weight must have shape \(16,\), one weight per "
         r"training example, got \(15,\)", id="fit-sample-weight-shape"),
    case(lambda: fit(sample_weight=-np.ones(N)), r"^fit: sample_weight must be finite and >= 0, found -1",
         id="fit-weight-negative"),
    case(lambda: fit(class_weight={5: 1.0}), r"class_weight: keys must be class indices in \[0, 3\), found 5",
         id="fit-class-weight-unknown-class"),
    case(lambda: fit(key=0), r"^key: expected a PRNG key from jax.random.key\(seed\), got int 0", id="fit-key-int"),
    case(lambda: training.EarlyStopping(patience=-1), r"^EarlyStopping: patience must be an int >= 0, got -1",
         id="early-stopping-negative-patience"),
    case(lambda: fit(early_stopping=training.EarlyStopping(monitor="val_accuracy"), metrics=["accuracy"]),
         r"^EarlyStopping: monitor 'val_accuracy' is not logged by this fit; available: \['loss', 'accuracy', "
         r"'learning_rate', 'seconds'\]", id="early-stopping-monitor-not-logged"),
    case(lambda: training.ReduceLROnPlateau(factor=1.0), r"^ReduceLROnPlateau: factor must be a number in "
         r"\[0.0, 1.0\), got 1.0", id="reduce-lr-factor-1"),
    case(lambda: training.ReduceLROnPlateau(cooldown=-1), r"^ReduceLROnPlateau: cooldown must be an int >= 0, "
         r"got -1", id="reduce-lr-cooldown-negative"),
    case(lambda: training.ReduceLROnPlateau(min_lr=float("nan")), r"^ReduceLROnPlateau: min_lr must be a number "
         r"in \[0.0, inf\), got nan", id="reduce-lr-min-lr-nan"),
    case(lambda: fit(reduce_lr=training.ReduceLROnPlateau()), r"^ReduceLROnPlateau: monitor 'val_loss' is not "
         r"logged by this fit; available: \['loss', 'learning_rate', 'seconds'\]", id="reduce-lr-monitor"),
    case(lambda: fit(reduce_lr=training.ReduceLROnPlateau(monitor="loss"), optimizer=SCHEDULED),
         r"^fit: reduce_lr needs a learning rate it can set between epochs", id="reduce-lr-with-a-schedule"),
    case(lambda: fit(reduce_lr=training.ReduceLROnPlateau(monitor="loss"), optimizer=optax.sgd(0.1)),
         r"^fit: reduce_lr needs a learning rate it can set between epochs", id="reduce-lr-with-plain-optax"),
    case(lambda: fit(reduce_lr="plateau"), r"^fit: reduce_lr must be a jaxnn.ReduceLROnPlateau or None, got "
         r"'plateau'", id="reduce-lr-not-a-config"),
    case(lambda: training.EarlyStopping(baseline=float("inf")), r"^EarlyStopping: baseline must be a finite number "
         r"or None, got inf", id="early-stopping-baseline-inf"),
    case(lambda: training.EarlyStopping(start_from_epoch=-2), r"^EarlyStopping: start_from_epoch must be an int "
         r">= 0, got -2", id="early-stopping-start-negative"),
    case(lambda: training.EarlyStopping(mode="up"), r"^EarlyStopping: mode must be one of \['auto', 'min', 'max'\]",
         id="early-stopping-mode"),
    # --- model.init, layers, optimizers
    case(lambda: MODEL.init(0, (5,)), r"^key: expected a PRNG key", id="init-key-int"),
    case(lambda: MODEL.init(KEY, (0,)), r"^input_shape: expected a tuple of positive ints \(batch axis excluded\), "
         r"got \(0,\)", id="init-zero-size"),
    case(lambda: MODEL.init(KEY, (5.5,)), r"input_shape: expected a tuple of positive ints .*got \(5.5,\)",
         id="init-float-size"),
    case(lambda: MODEL.init(KEY, "abc"), r"input_shape: expected a tuple of positive ints .*got 'abc'",
         id="init-string-shape"),
    case(lambda: MODEL.init(KEY, 5), r"input_shape: expected a tuple of positive ints .*got 5", id="init-int-shape"),
    case(lambda: Dense(0), r"^Dense: units must be a positive int, got 0", id="dense-zero-units"),
    case(lambda: Dropout(1.0), r"^Dropout: rate must be a float in \[0, 1\), got 1.0", id="dropout-rate-one"),
    case(lambda: Sequential([3]), r"^Sequential: layer 0 must be a jaxnn layer, got int", id="sequential-non-layer"),
    case(lambda: optimizers.get("sgd", learning_rate=-0.1), r"learning_rate: expected a number in \[0.0, inf\); "
         r"got -0.1", id="optimizer-negative-learning-rate"),
    case(lambda: schedules.schedule("cosine_decay", initial_learning_rate=-1.0, decay_steps=10),
         r"^schedule 'cosine_decay' initial_learning_rate: expected a finite learning rate >= 0; got -1.0",
         id="schedule-negative-learning-rate"),
    case(lambda: schedules.schedule("cosine_decay", initial_learning_rate=float("nan"), decay_steps=10),
         r"initial_learning_rate: expected a finite learning rate >= 0; got nan", id="schedule-nan-learning-rate"),
    case(lambda: schedules.schedule("piecewise_constant", boundaries=[5], values=[0.1, -0.1]),
         r"'piecewise_constant' values: expected a finite learning rate >= 0", id="schedule-negative-piece"),
]


class _Spy:
  """Stands in for a jitted function: records every call or lowering, then does it."""

  def __init__(self, fn, name, calls):
    self.fn, self.name, self.calls = fn, name, calls

  def __call__(self, *args, **kwargs):
    self.calls.append(self.name)
    return self.fn(*args, **kwargs)

  def lower(self, *args, **kwargs):
    self.calls.append(self.name)
    return self.fn.lower(*args, **kwargs)


@pytest.fixture
def compiled(monkeypatch):
  """(entry points called, XLA backend compiles) while the test runs."""
  calls, compiles = [], []
  for module, name in ((training, "_train_epoch_jit"), (training, "_eval_totals_jit"),
                       (training, "_predict_batches"), (models, "_init_jit")):
    monkeypatch.setattr(module, name, _Spy(getattr(module, name), name, calls))

  def listener(event, duration_secs, **kwargs):
    del duration_secs, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(event)

  jax.monitoring.register_event_duration_secs_listener(listener)
  yield calls, compiles
  jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("call, error, message", CASES)
def test_bad_input_is_a_clear_error_before_anything_compiles(call, error, message, compiled):
  with pytest.raises(JaxnnError) as info:
    call()
  text = str(info.value)
  assert compiled == ([], []), f"compiled before failing with {text!r}: {compiled}"
  assert type(info.value) is error, (type(info.value), text)
  assert "\n" not in text and len(text) < 1200, text
  for part in message:
    assert re.search(part, text), f"{part!r} not in {text!r}"


def test_the_spies_see_a_compile(compiled):
  """The check above can fail: a valid fit (on a shape never used before) calls the epoch and compiles."""
  x = RNG.normal(size=(13, 5)).astype(np.float32)
  fit(x=x, y=Y[:13], batch_size=13, epochs=1)
  calls, compiles = compiled
  assert "_train_epoch_jit" in calls and compiles


def test_custom_losses_get_only_the_generic_checks():
  """A loss function of one's own may take targets of any shape: here (N,) against (N, 3) predictions, which the
  built-in mean_squared_error refuses (case mse-shape above)."""

  def first_output_squared_error(y_true, y_pred):
    return (y_pred[:, 0] - y_true) ** 2

  state, history = fit(loss=first_output_squared_error, batch_size=N, epochs=1)
  assert np.isfinite(history["loss"][0]) and int(state.step) == 1


def test_recurrent_models_take_any_sequence_length():
  """The params fix the features, not the time steps: a longer sequence is not bad input."""
  assert predict(model=RNN, params=RNN_PARAMS, x=np.zeros((2, 9, 2), np.float32)).shape == (2, 3)


def test_integer_inputs_are_converted_not_refused():
  """Only uint8 (image bytes) is refused: other integer inputs are real features and become float32."""
  out = predict(x=np.arange(10, dtype=np.int32).reshape(2, 5))
  assert out.shape == (2, 3) and out.dtype == np.float32


def test_numpy_ints_are_ints():
  """Every int argument takes a numpy int as Keras does (sizes are often computed with numpy) and keeps it as a
  Python int: configs stay JSON-clean and equal to the Python-int ones. Bools and floats stay refused."""
  i = np.int64
  pairs = [(Dense(i(3), lora_rank=i(2)), Dense(3, lora_rank=2)),
           (Conv2D(i(2), (i(3), 3), strides=i(1)), Conv2D(2, (3, 3), strides=1)),
           (GRU(i(4)), GRU(4)), (Reshape((i(2), -1)), Reshape((2, -1))),
           (BatchNormalization(axis=i(-1)), BatchNormalization(axis=-1)), (MaxPooling2D(i(2)), MaxPooling2D(2)),
           (Dense(3, kernel_constraint=constraints.MaxNorm(axis=[i(0)])),
            Dense(3, kernel_constraint=constraints.MaxNorm(axis=[0])))]
  for with_numpy, plain in pairs:
    assert with_numpy == plain and hash(with_numpy) == hash(plain), (with_numpy, plain)
    assert json.dumps(with_numpy.config()) == json.dumps(plain.config())  # a numpy int would not serialize
  assert type(Dense(i(3)).units) is int and type(constraints.UnitNorm(axis=i(0)).axis) is int
  saving = checkpoint.Checkpointing("unused", every=i(2), keep=i(1))
  assert (type(saving.every), type(saving.keep)) == (int, int)
  assert type(training.EarlyStopping(patience=i(2)).patience) is int
  lr = schedules.schedule("piecewise_constant", boundaries=[i(2)], values=[0.1, 0.01])
  assert lr == schedules.schedule("piecewise_constant", boundaries=[2], values=[0.1, 0.01])
  assert float(lr(3)) == pytest.approx(0.01) and json.dumps(dict(lr.kwargs))
  assert data.subset(data.Dataset(X, Y, X, Y, name="d", source="s", num_classes=3), i(4), i(2)).n_train == 4

  state, history = fit(batch_size=i(4), epochs=i(2), eval_batch_size=i(8), max_bad_steps=i(3),
                       validation_data=(X, Y))
  assert int(state.step) == 2 * N // 4 and len(history["loss"]) == 2 and json.dumps(history.to_dict())
  assert evaluate(batch_size=i(5)) == evaluate(batch_size=5)
  np.testing.assert_array_equal(predict(batch_size=i(5)), predict(batch_size=5))
  for bad in (True, np.bool_(True), 2.0, np.float32(2)):
    with pytest.raises(JaxnnError, match="units must be a positive int"):
      Dense(bad)
    with pytest.raises(JaxnnError, match="batch_size must be an int"):
      fit(batch_size=bad)
