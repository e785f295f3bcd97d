"""What the exporters accept as the model to export, turned into one ``Predictor``."""
from __future__ import annotations

import os

from ..policy import LSTMPolicy, Predictor

__all__ = ["as_predictor"]


def as_predictor(source) -> Predictor:
    """The :class:`~rlstm.policy.Predictor` that ``source`` acts with.

    ``source`` may be:

    - a path (``str`` or ``os.PathLike``) to a policy file (``rlstm.save(policy)``) or any
      trainer's file: read with ``Predictor.load``;
    - a :class:`~rlstm.policy.Predictor`: used as it is;
    - an :class:`~rlstm.policy.LSTMPolicy`: used without observation normalisation;
    - any object with a ``predictor`` attribute that is a ``Predictor`` (every trainer has one).

    Anything else is a ``TypeError`` that says what was expected. An object that has a
    ``policy`` but no ``predictor`` is refused rather than exported without its observation
    normalisation.
    """
    if isinstance(source, Predictor):
        return source
    if isinstance(source, LSTMPolicy):
        return Predictor(source)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no model file at {os.fspath(source)!r}")
        return Predictor.load(source)
    predictor = getattr(source, "predictor", None)
    if isinstance(predictor, Predictor):
        return predictor
    hint = ""
    if isinstance(getattr(source, "policy", None), LSTMPolicy):
        hint = (f"; this {type(source).__name__} has a .policy but no .predictor: pass "
                f"rlstm.policy.Predictor(model.policy, obs_normalizer) so that its observation "
                f"normalisation is exported too (or model.policy if it has none)")
    raise TypeError(f"the model to export must be a file path, an rlstm.policy.LSTMPolicy, "
                    f"an rlstm.policy.Predictor or an object with a .predictor (a trainer), "
                    f"got {type(source).__name__}{hint}")
