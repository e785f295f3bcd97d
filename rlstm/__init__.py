"""rlstm: fast CPU LSTMs with Cython/BLAS kernels, and the pieces recurrent RL agents need."""
from . import config, optim, policy
from .config import get_num_threads, set_num_threads, show_config
from .convlstm import ConvLSTM
from .ctc import ctc_loss
from .errors import TrainingDiverged
from .gru import GRU
from .io import load, save
from .layers import MLP, Linear
from .lstm import LSTM
from .module import Module
from .optim import clip_grad_norm
from .sequence import SequenceModel
from .train import fit

__version__ = "0.1.0"
__all__ = ["LSTM", "GRU", "ConvLSTM", "ctc_loss", "Module", "Linear", "MLP", "clip_grad_norm",
           "optim", "policy", "save", "load", "SequenceModel", "fit", "TrainingDiverged",
           "show_config", "set_num_threads", "get_num_threads"]
