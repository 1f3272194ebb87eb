"""fit's EarlyStopping (and ReduceLROnPlateau) against Keras 3's callbacks: one softmax layer, SGD, no
shuffling, the same initial weights, so both runs see the same monitored values; the epochs run, the learning
rates used and the losses match."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxnn  # noqa: E402

keras = pytest.importorskip("keras")

N, D, C = 40, 5, 3
BATCH, LR = 8, 0.3
RTOL, ATOL = 1e-5, 1e-6
RNG = np.random.default_rng(1)
Y = RNG.integers(0, C, N).astype(np.int32)
X = (RNG.normal(0, 1, (C, D))[Y] + RNG.normal(0, 1.5, (N, D))).astype(np.float32)
KERNEL = RNG.normal(0, 0.3, (D, C)).astype(np.float32)
BIAS = RNG.normal(0, 0.1, C).astype(np.float32)
LOSS = "sparse_categorical_crossentropy"
OURS = jaxnn.Sequential([jaxnn.layers.Dense(C, activation="softmax")])
PARAMS = {"dense_0": {"kernel": KERNEL, "bias": BIAS}}


def _fit_both(epochs, keras_callback, **ours):
  theirs = keras.Sequential([keras.Input((D,)), keras.layers.Dense(C, activation="softmax")])
  theirs.set_weights([KERNEL, BIAS])
  theirs.compile(loss=LOSS, metrics=["accuracy"], optimizer=keras.optimizers.SGD(LR))
  want = theirs.fit(X, Y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, validation_data=(X[:16], Y[:16]),
                    callbacks=[keras_callback]).history
  _, got = jaxnn.fit(OURS, PARAMS, X, Y, loss=LOSS, metrics=["accuracy"], batch_size=BATCH, epochs=epochs,
                     optimizer=jaxnn.OptimizerConfig("sgd", learning_rate=LR), shuffle=False, verbose=0,
                     validation_data=(X[:16], Y[:16]), **ours)
  return want, got


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
@pytest.mark.parametrize("monitor, min_delta", [("loss", 1e9), ("val_loss", 1e-2), ("val_accuracy", 0.0)])
def test_early_stopping_stops_at_keras_epoch(patience, monitor, min_delta):
  want, got = _fit_both(12, keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta),
                        early_stopping=jaxnn.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta))
  assert len(got["loss"]) == len(want["loss"])
  np.testing.assert_allclose(got["val_loss"], want["val_loss"], rtol=RTOL, atol=ATOL)


EXTRA_CASES = {  # Keras' arguments beyond patience
    "baseline-not-beaten": dict(monitor="val_loss", patience=2, baseline=0.05),
    "baseline-beaten": dict(monitor="val_loss", patience=1, min_delta=1e-2, baseline=2.0),
    "baseline-accuracy": dict(monitor="val_accuracy", patience=1, baseline=0.99),
    "start-from-epoch": dict(monitor="loss", patience=1, min_delta=1e9, start_from_epoch=3),
    "restore-best-weights": dict(monitor="val_loss", patience=2, min_delta=2e-2, restore_best_weights=True),
}


@pytest.mark.parametrize("case", list(EXTRA_CASES))
def test_early_stopping_baseline_start_and_restore_match_keras(case):
  kwargs = EXTRA_CASES[case]
  theirs = keras.Sequential([keras.Input((D,)), keras.layers.Dense(C, activation="softmax")])
  theirs.set_weights([KERNEL, BIAS])
  theirs.compile(loss=LOSS, metrics=["accuracy"], optimizer=keras.optimizers.SGD(LR))
  want = theirs.fit(X, Y, batch_size=BATCH, epochs=12, shuffle=False, verbose=0, validation_data=(X[:16], Y[:16]),
                    callbacks=[keras.callbacks.EarlyStopping(**kwargs)]).history
  state, got = jaxnn.fit(OURS, PARAMS, X, Y, loss=LOSS, metrics=["accuracy"], batch_size=BATCH, epochs=12,
                         optimizer=jaxnn.OptimizerConfig("sgd", learning_rate=LR), shuffle=False, verbose=0,
                         validation_data=(X[:16], Y[:16]), early_stopping=jaxnn.EarlyStopping(**kwargs))
  assert len(got["loss"]) == len(want["loss"])
  np.testing.assert_allclose(got["val_loss"], want["val_loss"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(state.params["dense_0"]["kernel"], theirs.get_weights()[0], rtol=1e-4, atol=1e-5)


def test_early_stopping_cases_stop_at_different_epochs():
  """The cases above are not all one trivial run: the stopping epoch moves with patience and monitor."""
  lengths = {len(_fit_both(12, keras.callbacks.EarlyStopping(monitor=m, patience=p, min_delta=d))[0]["loss"])
             for p in (0, 3) for m, d in (("loss", 1e9), ("val_loss", 1e-2))}
  assert len(lengths) >= 3


PLATEAU_CASES = {  # Keras' arguments, the same for jaxnn's ReduceLROnPlateau
    "val_loss-patience-1": dict(monitor="val_loss", factor=0.5, patience=1, min_delta=1e-2),
    "cooldown-and-min-lr": dict(monitor="val_loss", factor=0.5, patience=1, min_delta=1e9, cooldown=2, min_lr=0.05),
    "loss-patience-2": dict(monitor="loss", factor=0.2, patience=2, min_delta=3e-2),
    "val_accuracy-max": dict(monitor="val_accuracy", factor=0.3, patience=1, mode="max"),
}


@pytest.mark.parametrize("case", list(PLATEAU_CASES))
def test_reduce_lr_on_plateau_cuts_the_rate_at_keras_epochs(case):
  kwargs = PLATEAU_CASES[case]
  want, got = _fit_both(10, keras.callbacks.ReduceLROnPlateau(**kwargs),
                        reduce_lr=jaxnn.ReduceLROnPlateau(**kwargs))
  # Keras logs the rate each epoch ran with; so does jaxnn.
  np.testing.assert_allclose(got["learning_rate"], want["learning_rate"], rtol=1e-6)
  assert len(set(np.round(want["learning_rate"], 8))) >= 2  # the rate was cut
  for name in ("loss", "val_loss", "val_accuracy"):
    np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)
