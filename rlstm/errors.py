"""The errors rlstm raises beyond ``TypeError`` and ``ValueError``."""
from __future__ import annotations

__all__ = ["TrainingDiverged"]


class TrainingDiverged(FloatingPointError):
    """A loss, a gradient or a parameter became NaN or inf while training. What was being
    trained is left with its last finite parameters, and no file is written over with
    non-finite ones. Raised by :func:`rlstm.fit` and by every ``agents`` trainer."""
