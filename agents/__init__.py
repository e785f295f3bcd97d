"""rlstm agents: trainers that learn Gymnasium tasks with LSTM policies, without labels.

Every trainer stands on :class:`agents.trainer.Trainer` (config, ``learn``, ``predict``,
``save``/``load``); see docs/architecture.md for the layout.
"""
from . import envs  # noqa: F401  (registers the rlstm/ Gymnasium namespace)
from .a2c import A2C, A2CConfig
from .callbacks import Callback, CheckpointCallback, EvalCallback, StopTrainingOnRewardThreshold
from .es import CMAES, GA, PGPE, SNES, Evolino, EvolinoSequence, OpenAIES
from .es import CMAESConfig, EvolinoConfig, GAConfig, OpenAIESConfig, PGPEConfig, SNESConfig
from .evaluation import evaluate, evaluate_policy
from .ppo import PPO, PPOConfig
from .reinforce import REINFORCE, REINFORCEConfig
from .trainer import Trainer, TrainingDiverged

TRAINERS = {"ppo": PPO, "a2c": A2C, "reinforce": REINFORCE, "es": OpenAIES, "pgpe": PGPE,
            "snes": SNES, "cmaes": CMAES, "ga": GA, "evolino": Evolino}
"""Every registered trainer, by the name ``rlstm train`` knows it by."""

__all__ = ["PPO", "A2C", "REINFORCE", "OpenAIES", "PGPE", "SNES", "CMAES", "GA", "Evolino",
           "EvolinoSequence", "PPOConfig", "A2CConfig", "REINFORCEConfig", "OpenAIESConfig",
           "PGPEConfig", "SNESConfig", "CMAESConfig", "GAConfig", "EvolinoConfig", "Trainer",
           "TrainingDiverged", "Callback", "EvalCallback", "CheckpointCallback", "evaluate",
           "evaluate_policy", "StopTrainingOnRewardThreshold",
           "TRAINERS"]
