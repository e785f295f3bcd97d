"""The recurrent actor-critic shared by every rlstm trainer: encoders, core, heads."""
from .heads import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from .policy import LSTMPolicy, PolicyCache
from .spaces import MASK_KEY, encode, flat_dim, space_from_json, space_to_json

__all__ = ["LSTMPolicy", "PolicyCache", "Categorical", "MultiCategorical", "Bernoulli",
           "DiagGaussian", "encode", "flat_dim", "space_to_json", "space_from_json", "MASK_KEY"]
