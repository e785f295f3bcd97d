"""Export a trained policy to run without Python: an ONNX graph.

    rlstm.export.to_onnx(model, "policy.onnx")          # ONNX (opset 17), any ONNX runtime
    report = rlstm.export.check(model, "policy.onnx")   # step it next to Predictor.predict
    print(report)                                       # max |diff| per output; report.ok

``model`` is a model file, an ``LSTMPolicy``, a ``Predictor`` or a trainer
(:func:`as_predictor`). An artefact computes ``Predictor.predict(obs, state, episode_start,
deterministic=True)`` for one step (:class:`ExportPlan`). Its input and output are flat
vectors (:mod:`rlstm.export.layout`); :func:`flatten_observation` and :func:`unflatten_action`
convert.
"""
from .check import CheckReport, check
from .layout import flatten_action, flatten_observation, unflatten_action
from .onnx_writer import OPSET, to_onnx
from .plan import ExportPlan
from .source import as_predictor

__all__ = ["to_onnx", "check", "CheckReport", "as_predictor", "ExportPlan",
           "flatten_observation", "flatten_action", "unflatten_action", "OPSET"]
