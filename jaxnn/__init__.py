"""jaxnn: a JAX functional research codebase for training neural networks.

Layers are frozen configs with pure init / apply, params are plain dicts, losses carry Keras' names and
semantics, optimizers are optax, and `fit` runs each epoch as one compiled program.
"""

from jaxnn import activations
from jaxnn import constraints
from jaxnn import data
from jaxnn import initializers
from jaxnn import losses
from jaxnn import metrics
from jaxnn import optimizers
from jaxnn import regularizers
from jaxnn import training
from jaxnn.errors import DataError
from jaxnn.errors import JaxnnError
from jaxnn.layers import Activation
from jaxnn.layers import Dense
from jaxnn.layers import Dropout
from jaxnn.layers import Flatten
from jaxnn.layers import Layer
from jaxnn.models import Sequential
from jaxnn.optimizers import OptimizerConfig
from jaxnn.training import EarlyStopping
from jaxnn.training import History
from jaxnn.training import TrainState
from jaxnn.training import create_train_state
from jaxnn.training import evaluate
from jaxnn.training import fit
from jaxnn.training import predict
from jaxnn.training import predict_classes
from jaxnn.training import train_step

__version__ = "0.1.0"

__all__ = [
    "Activation", "DataError", "Dense", "Dropout", "EarlyStopping", "Flatten", "History", "JaxnnError", "Layer",
    "OptimizerConfig", "Sequential", "TrainState", "activations", "constraints", "create_train_state", "data",
    "evaluate", "fit", "initializers", "losses", "metrics", "optimizers", "predict", "predict_classes",
    "regularizers", "train_step", "training",
]
