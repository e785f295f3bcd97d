"""Neuroevolution trainers for LSTM policies (see docs/evolution.md)."""
from .base import EvolutionConfig, EvolutionTrainer
from .cmaes import CMAES, CMAESConfig
from .evolino import Evolino, EvolinoConfig, EvolinoSequence, fit_readout
from .ga import GA, GAConfig
from .noise import NoiseTable
from .openai_es import OpenAIES, OpenAIESConfig, es_gradient
from .pgpe import PGPE, SNES, PGPEConfig, SNESConfig
from .shaping import centered_ranks, nes_utilities
from .worker import Evaluator

__all__ = ["EvolutionConfig", "EvolutionTrainer", "Evaluator", "NoiseTable", "centered_ranks",
           "nes_utilities", "OpenAIES", "OpenAIESConfig", "es_gradient", "PGPE", "PGPEConfig",
           "SNES", "SNESConfig", "CMAES", "CMAESConfig", "GA", "GAConfig", "Evolino",
           "EvolinoConfig", "EvolinoSequence", "fit_readout"]
