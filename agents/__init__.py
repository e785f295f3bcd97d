"""rlstm agents: trainers that learn Gymnasium tasks with LSTM policies, without labels."""
from .es import CMAES, GA, PGPE, SNES, Evolino, EvolinoSequence, OpenAIES  # noqa: E402,F401
