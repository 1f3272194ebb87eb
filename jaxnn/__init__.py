"""jaxnn: a JAX functional research codebase for training neural networks.

Layers are frozen configs with pure init / apply, params are plain dicts, losses carry Keras' names and
semantics, optimizers are optax, and `fit` runs each epoch as one compiled program.
"""

from jaxnn import activations
from jaxnn import checkpoint
from jaxnn import compilation_cache
from jaxnn import convolutional
from jaxnn import constraints
from jaxnn import data
from jaxnn import initializers
from jaxnn import losses
from jaxnn import metrics
from jaxnn import numerics
from jaxnn import optimizers
from jaxnn import parallel
from jaxnn import recurrent
from jaxnn import regularizers
from jaxnn import sweep
from jaxnn import training
from jaxnn.checkpoint import CheckpointError
from jaxnn.checkpoint import Checkpointing
from jaxnn.compilation_cache import disable_compilation_cache
from jaxnn.compilation_cache import enable_compilation_cache
from jaxnn.convolutional import AveragePooling1D
from jaxnn.convolutional import AveragePooling2D
from jaxnn.convolutional import BatchNormalization
from jaxnn.convolutional import Conv1D
from jaxnn.convolutional import Conv2D
from jaxnn.convolutional import GlobalAveragePooling1D
from jaxnn.convolutional import GlobalAveragePooling2D
from jaxnn.convolutional import GlobalMaxPooling1D
from jaxnn.convolutional import GlobalMaxPooling2D
from jaxnn.convolutional import LayerNormalization
from jaxnn.convolutional import MaxPooling1D
from jaxnn.convolutional import MaxPooling2D
from jaxnn.convolutional import RMSNormalization
from jaxnn.convolutional import Reshape
from jaxnn.errors import DataError
from jaxnn.errors import JaxnnError
from jaxnn.layers import Activation
from jaxnn.layers import Dense
from jaxnn.layers import Dropout
from jaxnn.layers import Embedding
from jaxnn.layers import Flatten
from jaxnn.layers import Layer
from jaxnn.layers import Masking
from jaxnn.models import Sequential
from jaxnn.numerics import NonFiniteError
from jaxnn.optimizers import OptimizerConfig
from jaxnn.recurrent import GRU
from jaxnn.recurrent import LSTM
from jaxnn.recurrent import Bidirectional
from jaxnn.recurrent import SimpleRNN
from jaxnn.sweep import fit_many
from jaxnn.sweep import per_example_grad_norms
from jaxnn.sweep import per_example_grads
from jaxnn.training import EarlyStopping
from jaxnn.training import ReduceLROnPlateau
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
    "AveragePooling1D", "AveragePooling2D", "BatchNormalization", "Bidirectional", "Conv1D", "Conv2D", "GRU",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "LSTM",
    "LayerNormalization", "MaxPooling1D", "MaxPooling2D", "RMSNormalization", "Reshape", "SimpleRNN", "convolutional", "recurrent",
    "CheckpointError", "Checkpointing", "NonFiniteError", "checkpoint", "numerics",
    "Activation", "DataError", "Dense", "Dropout", "EarlyStopping", "ReduceLROnPlateau", "Embedding", "Masking", "Flatten", "History", "JaxnnError", "Layer",
    "OptimizerConfig", "Sequential", "TrainState", "activations", "constraints", "create_train_state", "data",
    "evaluate", "fit", "initializers", "losses", "metrics", "optimizers", "predict", "predict_classes",
    "regularizers", "train_step", "training",
    "fit_many", "parallel", "per_example_grad_norms", "per_example_grads", "sweep",
    "compilation_cache", "disable_compilation_cache", "enable_compilation_cache",
]
