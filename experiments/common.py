"""What every experiment shares: its argument parser, MNIST arrays, training, checkpoints, and the results.

The digit recognizers (mnist_mlp, mnist_cnn, mnist_rnn) train with `train` and hand their models to `report`,
which evaluates them on the test set, plots the curves, the confusion matrix and example predictions, and
writes results.json with the same keys for all three.

Every fit of every experiment checkpoints under <out>/checkpoints/<tag>/ (one tag per fit); `--resume`
continues each from its newest complete checkpoint, and a fit that had finished returns its final state
without training, so an interrupted experiment rerun with --resume ends as if it had not stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from jaxnn import checkpoint
from jaxnn import cli
from jaxnn import compilation_cache
from jaxnn import data
from jaxnn import losses
from jaxnn import metrics as metrics_lib
from jaxnn import optimizers
from jaxnn import plots
from jaxnn import training
from jaxnn.models import Sequential

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


# Experiments keep JAX's persistent compilation cache here unless told otherwise: a second run loads its
# compiled programs instead of compiling them (`make clean` removes it with runs/).
DEFAULT_COMPILATION_CACHE = os.path.join("runs", ".jax_cache")


class _Parser(cli.ArgumentParser):
  """Turns on the persistent compilation cache (--compilation-cache) once the flags are parsed."""

  def parse_known_args(self, args=None, namespace=None):
    namespace, rest = super().parse_known_args(args, namespace)
    cache = getattr(namespace, "compilation_cache", None)
    if cache is not None and not compilation_cache.is_off(cache):
      compilation_cache.enable_compilation_cache(cache)
    return namespace, rest


def parser(name: str, doc: str | None) -> cli.ArgumentParser:
  """An argument parser with the flags every experiment has: --out, --seed, --verbose, --resume,
  --checkpoint-every, --compilation-cache."""
  p = _Parser(prog=f"python -m experiments.{name}", description=(doc or "").split("\n")[0])
  p.add_argument("--out", type=cli.output_folder, default=os.path.join("runs", name),
                 help="output folder (default: runs/%(prog)s)")
  p.add_argument("--seed", type=int, default=0, help="PRNG seed")
  p.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="per-epoch progress lines")
  p.add_argument("--resume", action="store_true",
                 help="continue every fit from its newest complete checkpoint under OUT/checkpoints "
                      "(finished fits are not trained again)")
  p.add_argument("--checkpoint-every", type=cli.positive_int, default=None, metavar="N",
                 help="save the training state every N epochs (default: about 10 checkpoints per fit) and at "
                      "the end of each fit")
  p.add_argument("--compilation-cache", metavar="DIR",
                 default=os.environ.get(compilation_cache.ENV_VAR) or DEFAULT_COMPILATION_CACHE,
                 help="JAX's persistent compilation cache ('off' for none; default: $JAXNN_COMPILATION_CACHE, "
                      "else %(default)s)")
  return p


def checkpointing(config: Any, tag: str, epochs: int) -> checkpoint.Checkpointing:
  """The Checkpointing of one fit of an experiment: <out>/checkpoints/<tag>/, the newest 2 kept.

  `config` has `out`, `resume` and `checkpoint_every` (None: every ceil(epochs / 10) epochs, so that a
  2,000-epoch lesson does not spend its time writing files).
  """
  every = config.checkpoint_every or max(1, -(-epochs // 10))
  return checkpoint.Checkpointing(os.path.join(config.out, "checkpoints", tag), every=every, keep=2,
                                  resume=config.resume)


def add_data_args(p: cli.ArgumentParser, *, n_train: int | None = None, n_test: int | None = None) -> None:
  """--dataset / --data-dir / --n-train / --n-test, as in the main job."""
  p.add_argument("--dataset", default=None, help="TFDS name or 'sample' (default: mnist, resolved as the main job)")
  p.add_argument("--data-dir", help="folder of IDX files")
  p.add_argument("--n-train", type=cli.positive_int, default=n_train, help="first N training examples")
  p.add_argument("--n-test", type=cli.positive_int, default=n_test, help="first N test examples")


def add_training_args(p: cli.ArgumentParser, config: Any) -> None:
  """--optimizer / --learning-rate / --schedule / --epochs / --batch-size / --validation-split, defaults from
  a config with those fields."""
  p.add_argument("--optimizer", default=config.optimizer, help="optimizer name (adam, sgd, rmsprop, ...)")
  p.add_argument("--learning-rate", type=cli.positive_float, default=config.learning_rate,
                 help="initial learning rate (default: %(default)s; None is the optimizer's Keras default)")
  p.add_argument("--schedule", default=config.schedule, choices=("cosine", "constant"),
                 help="learning-rate schedule over the whole run")
  p.add_argument("--epochs", type=cli.positive_int, default=config.epochs, help="default: %(default)s")
  p.add_argument("--batch-size", type=cli.positive_int, default=config.batch_size, help="default: %(default)s")
  p.add_argument("--validation-split", type=cli.fraction, default=config.validation_split,
                 help="fraction of the training set held out for the validation curves")


def dataset_name(dataset: str | None, data_dir: str | None) -> str:
  """The name a run is recorded under: --dataset, else the --data-dir folder's name, else mnist."""
  if dataset:
    return dataset
  return os.path.basename(os.path.normpath(data_dir)) if data_dir else "mnist"


def load_images(args: Any) -> tuple[data.Dataset, np.ndarray, np.ndarray]:
  """Loads the dataset the flags name (subset as asked): the Dataset plus scaled train / test images."""
  ds = data.load(dataset_name(args.dataset, args.data_dir), args.data_dir, verbose=True)
  if args.n_train or args.n_test:
    ds = data.subset(ds, n_train=args.n_train, n_test=args.n_test)
  return ds, data.scale(ds.x_train), data.scale(ds.x_test)


def load_flat(args: Any) -> tuple[data.Dataset, np.ndarray, np.ndarray]:
  """As `load_images`, with each image flattened to a vector."""
  ds, x_train, x_test = load_images(args)
  return ds, data.flatten(x_train), data.flatten(x_test)


def key(seed: int) -> jax.Array:
  return jax.random.key(seed)


def make_optimizer(name: str, learning_rate: float | None, schedule: str, steps: int, *,
                   global_clipnorm: float | None = None) -> optimizers.OptimizerConfig:
  """The named optimizer; with the "cosine" schedule its learning rate decays to 0 over `steps`."""
  if schedule == "constant":
    return optimizers.OptimizerConfig(name=name, learning_rate=learning_rate, global_clipnorm=global_clipnorm)
  initial = learning_rate or optimizers.OptimizerConfig(name=name).resolved()["learning_rate"]
  return optimizers.OptimizerConfig(name=name, global_clipnorm=global_clipnorm, schedule={
      "name": "cosine_decay", "initial_learning_rate": initial, "decay_steps": steps})


@dataclasses.dataclass
class Trained:
  """A trained model: its final TrainState (params and model state), History, training time and loss."""

  model: Sequential
  state: training.TrainState
  history: training.History
  train_seconds: float
  loss: losses.Loss


def train(model: Sequential, x_train: np.ndarray, y_train: np.ndarray, *, config: Any, epochs: int,
          init_key: jax.Array, fit_key: jax.Array, from_logits: bool = False, tag: str = "model") -> Trained:
  """Initializes and fits `model` with the config's optimizer, schedule, batch size and validation split,
  checkpointing under <out>/checkpoints/<tag>.

  The loss is sparse categorical cross-entropy, on the model's softmax probabilities, or on its logits
  with `from_logits` (then no probability is clipped, so no class can lose its gradient).
  """
  loss = losses.get("sparse_categorical_crossentropy", **({"from_logits": True} if from_logits else {}))
  params = model.init(init_key, x_train.shape[1:])
  batch_size = min(config.batch_size, len(x_train))
  n_fit = len(x_train) - int(len(x_train) * config.validation_split)
  optimizer = make_optimizer(config.optimizer, config.learning_rate, config.schedule,
                             steps=epochs * -(-n_fit // batch_size),
                             global_clipnorm=getattr(config, "clipnorm", None))
  if config.verbose:
    print(model.summary(x_train.shape[1:], params))
  start = time.perf_counter()
  state, history = training.fit(
      model, params, x_train, y_train, loss=loss, optimizer=optimizer, metrics=["accuracy"], epochs=epochs,
      batch_size=batch_size, validation_split=config.validation_split, key=fit_key, verbose=config.verbose,
      checkpoint=checkpointing(config, tag, epochs))
  return Trained(model, state, history, time.perf_counter() - start, loss)


def report(config: Any, ds: data.Dataset, x_test: np.ndarray, trained: Mapping[str, Trained], *,
           plot_model: str) -> dict:
  """Evaluates every trained model on the test set, plots, and writes results.json and a table.

  Args:
    config: the experiment's config dataclass (recorded; its `dataset`, `data_dir` and `out` are used).
    ds: the dataset (labels, raw test images for the grids, source).
    x_test: the test inputs as the models take them.
    trained: the trained models by name.
    plot_model: the model whose predictions are plotted (confusion matrix, examples, mistakes).

  Returns:
    The summary written to results.json: dataset, source, n_train, n_test, config, jax_backend,
    models {name: {test_accuracy, test_loss, epochs, train_seconds, ...}}, confusion_matrix_<plot_model>, plots.
  """
  name = dataset_name(config.dataset, config.data_dir)
  class_names = FASHION_CLASSES if "fashion" in name.lower() else None
  y_test = ds.y_test
  results, histories = {}, {}
  for model_name, t in trained.items():
    test = training.evaluate(t.model, t.state, x_test, y_test, loss=t.loss, metrics=["accuracy"])
    results[model_name] = {
        "model": t.model.config(), "params": t.model.count_params(t.state.params),
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "epochs": len(t.history.epoch),
        "train_seconds": t.train_seconds, "compile_seconds": t.history.compile_seconds,
        "history": t.history.history,
    }
    histories[f"model {model_name}"] = t.history.history

  best = trained[plot_model]
  pred = training.predict(best.model, best.state, x_test).argmax(-1)  # probabilities or logits alike
  cm = np.asarray(metrics_lib.confusion_matrix(y_test, pred, ds.num_classes))
  wrong = np.flatnonzero(pred != y_test)
  out, who = config.out, f"model {plot_model}"
  files = [
      plots.history_curves(histories, "loss", os.path.join(out, "loss.png"), title=f"{name}: loss"),
      plots.history_curves(histories, "accuracy", os.path.join(out, "accuracy.png"), title=f"{name}: accuracy"),
      plots.confusion_matrix(cm, os.path.join(out, "confusion_matrix.png"), class_names=class_names,
                             title=f"{who} on {ds.n_test} test images"),
      plots.image_grid(ds.x_test[:32], pred[:32], os.path.join(out, "predictions.png"), true_labels=y_test[:32],
                       class_names=class_names, title=f"{who}: predicted labels (red: wrong)"),
      plots.image_grid(ds.x_test[wrong[:32]], pred[wrong[:32]], os.path.join(out, "misclassified.png"),
                       true_labels=y_test[wrong[:32]], class_names=class_names,
                       title=f"{who}: {len(wrong)} of {ds.n_test} misclassified (first 32)"),
  ]
  summary = {
      "dataset": name, "source": ds.source, "n_train": int(ds.n_train), "n_test": int(len(x_test)),
      "config": dataclasses.asdict(config), "jax_backend": jax.default_backend(),
      "models": results, f"confusion_matrix_{plot_model}": cm.tolist(),
      "plots": [os.path.basename(f) for f in files],
  }
  print()
  return finish(out, summary,
                [(n, r["params"], r["epochs"], r["train_seconds"], r["test_loss"], r["test_accuracy"])
                 for n, r in results.items()],
                header=("model", "params", "epochs", "train_s", "test_loss", "test_accuracy"))


def finish(out: str, results: dict[str, Any], rows: Sequence[Sequence[Any]], header: Sequence[str]) -> dict:
  """Writes out/results.json atomically and prints the results table."""
  path = cli.write_json(os.path.join(out, "results.json"), results)
  print(cli.table(rows, header))
  print(f"wrote {path}")
  return results
