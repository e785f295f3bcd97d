"""Export a trained policy to run without Python: an ONNX graph or dependency-free C source.

    rlstm.export.to_onnx(model, "policy.onnx")          # ONNX (opset 17), any ONNX runtime
    rlstm.export.to_c(model, "build/", name="policy")   # build/policy.h + build/policy.c (C99)
    report = rlstm.export.check(model, "policy.onnx")   # step both next to Predictor.predict
    print(report)                                       # max |diff| per output; report.ok

``model`` is a model file, an ``LSTMPolicy``, a ``Predictor`` or a trainer
(:func:`as_predictor`). Both artefacts compute ``Predictor.predict(obs, state, episode_start,
deterministic=True)`` for one step: observation normalisation, the encoding of every
observation part, the recurrent core(s), action masks, the mode of every action head and the
clipping of ``Box`` actions. Their input and output are flat vectors
(:mod:`rlstm.export.layout`); :func:`flatten_observation` and :func:`unflatten_action` convert.
"""
from .c_writer import to_c
from .check import CheckReport, check
from .layout import flatten_action, flatten_observation, unflatten_action
from .onnx_writer import OPSET, to_onnx
from .plan import ExportPlan
from .source import as_predictor

__all__ = ["to_onnx", "to_c", "check", "CheckReport", "as_predictor", "ExportPlan",
           "flatten_observation", "flatten_action", "unflatten_action", "OPSET"]
