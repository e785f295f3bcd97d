"""rlstm: fast CPU LSTMs with Cython/BLAS kernels, and the pieces recurrent RL agents need."""
from . import optim
from .lstm import LSTM
from .module import Module
from .optim import clip_grad_norm
from . import policy  # noqa: E402  (issue 4)
from .io import load, save  # noqa: E402
from .layers import MLP, Linear  # noqa: E402
from .train import SequenceModel, fit  # noqa: E402

__version__ = "0.1.0"
__all__ = ["LSTM", "Module", "clip_grad_norm", "optim"]
__all__ += ["policy", "save", "load", "Linear", "MLP", "SequenceModel", "fit"]
