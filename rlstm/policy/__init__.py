"""The recurrent actor-critic shared by every rlstm trainer: inputs, core, action heads, and the
``Predictor`` that runs a trained one (with its observation normaliser)."""
from .actions import ActionHeads
from .heads import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from .inputs import PolicyInputs
from .normalize import ObsNormalizer, RunningMeanStd
from .policy import LSTMPolicy, PolicyCache
from .predict import Predictor
from .spaces import MASK_KEY, encode, flat_dim, space_from_json, space_to_json

__all__ = ["LSTMPolicy", "PolicyCache", "Predictor", "ObsNormalizer", "RunningMeanStd",
           "PolicyInputs", "ActionHeads", "Categorical", "MultiCategorical", "Bernoulli",
           "DiagGaussian", "encode", "flat_dim", "space_to_json", "space_from_json", "MASK_KEY"]
