"""rlstm agents: trainers that learn Gymnasium tasks with LSTM policies, without labels."""
from . import envs  # noqa: F401  (registers the rlstm/ Gymnasium namespace)
from .a2c import A2C
from .es import CMAES, GA, PGPE, SNES, Evolino, EvolinoSequence, OpenAIES
from .evaluation import evaluate
from .ppo import PPO
from .reinforce import REINFORCE

__all__ = ["PPO", "A2C", "REINFORCE", "OpenAIES", "PGPE", "SNES", "CMAES", "GA", "Evolino",
           "EvolinoSequence", "evaluate"]
