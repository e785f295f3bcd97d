"""Neuroevolution trainers for LSTM policies (see docs/evolution.md)."""
from .base import EvolutionConfig, EvolutionTrainer, Evaluator, centered_ranks
from .cmaes import CMAES, CMAESConfig
from .evolino import Evolino, EvolinoConfig, EvolinoSequence, fit_readout
from .ga import GA, GAConfig
from .openai_es import OpenAIES, OpenAIESConfig, es_gradient
from .pgpe import PGPE, SNES, PGPEConfig, SNESConfig, nes_utilities

__all__ = ["EvolutionConfig", "EvolutionTrainer", "Evaluator", "centered_ranks",
           "OpenAIES", "OpenAIESConfig", "es_gradient", "PGPE", "PGPEConfig", "SNES",
           "SNESConfig", "nes_utilities", "CMAES", "CMAESConfig", "GA", "GAConfig",
           "Evolino", "EvolinoConfig", "EvolinoSequence", "fit_readout"]
