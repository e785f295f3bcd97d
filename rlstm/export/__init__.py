"""Export a trained policy to run without Python.

``model`` is a model file, an ``LSTMPolicy``, a ``Predictor`` or a trainer
(:func:`as_predictor`). :class:`ExportPlan` reads from it what an artefact computes:
``Predictor.predict(obs, state, episode_start, deterministic=True)`` for one step. Artefacts
take and return flat vectors (:mod:`rlstm.export.layout`); :func:`flatten_observation` and
:func:`unflatten_action` convert.
"""
from .layout import flatten_action, flatten_observation, unflatten_action
from .plan import ExportPlan
from .source import as_predictor

__all__ = ["as_predictor", "ExportPlan", "flatten_observation", "flatten_action",
           "unflatten_action"]
