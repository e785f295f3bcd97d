"""Neuroevolution trainers for LSTM policies (see docs/evolution.md)."""
from .base import EvolutionConfig, EvolutionTrainer, Evaluator, centered_ranks
from .openai_es import OpenAIES, OpenAIESConfig, es_gradient

__all__ = ["EvolutionConfig", "EvolutionTrainer", "Evaluator", "centered_ranks",
           "OpenAIES", "OpenAIESConfig", "es_gradient"]
