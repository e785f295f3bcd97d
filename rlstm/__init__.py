"""rlstm: fast CPU LSTMs with Cython/BLAS kernels, and the pieces recurrent RL agents need."""
from . import optim
from .convlstm import ConvLSTM
from .ctc import ctc_loss
from .gru import GRU
from .lstm import LSTM
from .module import Module
from .optim import clip_grad_norm

__version__ = "0.1.0"
__all__ = ["ConvLSTM", "GRU", "LSTM", "Module", "clip_grad_norm", "ctc_loss", "optim"]
