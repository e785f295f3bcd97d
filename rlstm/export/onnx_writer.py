"""``to_onnx``: a trained policy as an ONNX graph (opset 17), one recurrent step per run.

The graph (written with ``onnx.helper``; ONNX Runtime, TensorRT, OpenVINO and others run it)::

    inputs   obs            float32 (batch, n_obs)          the flat observation layout
             state          float32 (K, L, batch, H)        the policy's state arrays, stacked
             episode_start  bool    (batch,)                True: zero that row's state first
    outputs  action         float32 (batch, n_action)       the flat action layout
             value          float32 (batch,)                the value head (include_value)
             state_out      float32 (K, L, batch, H)        feed back as ``state``

It computes exactly what ``Predictor.predict(obs, state, episode_start, deterministic=True)``
computes (see :mod:`rlstm.export.plan`). The observation normalisation runs in float64, as the
predictor's; everything else in float32. Layouts, spaces and the network are described in the
model's ``doc_string`` and in ``metadata_props`` (``rlstm.*`` keys). The graph does not check
its input: an out-of-range discrete observation one-hot encodes to zeros, a mask that forbids
every action of a head gives that head's first action.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np

from ..policy import space_to_json
from .files import output_path, write_atomic
from .layout import categories
from .plan import Core, ExportPlan

__all__ = ["to_onnx", "OPSET", "IR_VERSION"]

#: the ONNX operator set the graph uses (ONNX Runtime >= 1.12, TensorRT >= 8.6, OpenVINO)
OPSET = 17
#: the ONNX IR version written (opset 17's; readers back to ONNX 1.12 accept it)
IR_VERSION = 8

_LSTM_TO_ONNX = (0, 3, 1, 2)  # ONNX LSTM gates i, o, f, c from PyTorch's i, f, g, o
_GRU_TO_ONNX = (1, 0, 2)      # ONNX GRU gates z, r, h from PyTorch's r, z, n


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("rlstm.export.to_onnx needs the onnx package: pip install "
                          "'rlstm[export]' (or pip install onnx)") from None
    return onnx


def _gates(a: np.ndarray, order, H: int) -> np.ndarray:
    """Rows of a gate-stacked array ``(G H, ...)`` reordered gate by gate."""
    return np.concatenate([a[g * H:(g + 1) * H] for g in order], axis=0)


class _Graph:
    """Nodes and initializers of one graph, with generated unique names."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.inits, self._n = [], [], 0

    def _name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, value, dtype=np.float32, name: str = "c") -> str:
        arr = np.array(value, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
        out = self._name(name)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, out))
        return out

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64), np.int64, "i")

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None,
           **attrs):
        outs = [self._name(name or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self._name(op_type), **attrs))
        return outs[0] if outputs == 1 else outs

    # a few composites
    def cols(self, x: str, start: int, stop: int) -> str:
        """``x[:, start:stop]``"""
        return self.op("Slice", x, self.ints([start]), self.ints([stop]), self.ints([1]))

    def linear(self, x: str, w: np.ndarray, b: np.ndarray) -> str:
        """``x @ w.T + b``"""
        return self.op("Gemm", x, self.const(w, name="weight"), self.const(b, name="bias"),
                       transB=1)

    def as_float(self, x: str) -> str:
        return self.op("Cast", x, to=self.onnx.TensorProto.FLOAT)


def _one_hot(g: _Graph, x: str, nvec, start, axis: int) -> str:
    """One-hot blocks of the entries along ``axis`` of ``x`` (entry ``j`` takes the values
    ``start[j] .. start[j] + nvec[j] - 1``): each entry compared with every value it can take,
    as float; a value out of range gives a block of zeros."""
    which = np.repeat(np.arange(nvec.size), nvec)
    values = np.concatenate([s + np.arange(n) for s, n in zip(start, nvec)])
    src = x if nvec.size == 1 else g.op("Gather", x, g.ints(which), axis=axis)
    return g.as_float(g.op("Equal", src, g.const(values.astype(np.float32))))


def _scaled(g: _Graph, plan: ExportPlan, x: str, part) -> str:
    """Image values as the policy encodes them: divided by its image_scale (or as they
    are); with image_codes, each pixel's channel ``c`` one-hot over its ``image_codes[c]``
    codes (``(batch, pixels * sum(image_codes))``, channel-last; a code outside the range
    gives a block of zeros, where ``predict`` raises)."""
    codes = plan.image_codes
    if codes is not None:
        C = part.space.shape[-1]
        px = g.op("Reshape", x, g.ints((-1, part.size // C, C)))  # (batch, pixels, channels)
        hot = _one_hot(g, px, np.asarray(codes), np.zeros(C, np.int64), axis=2)
        return g.op("Reshape", hot, g.ints((-1, part.size // C * int(sum(codes)))))
    if plan.image_scale is None:
        return x
    return g.op("Div", x, g.const(plan.image_scale))


def _features(g: _Graph, plan: ExportPlan, obs: str) -> tuple[str, str | None]:
    """The core's input ``(batch, feature_dim)`` before the encoder, and the boolean mask."""
    TP = g.onnx.TensorProto
    x = obs
    parts = []
    for p, _ in plan.plain:  # in feature order
        sl = g.cols(x, p.start, p.stop)
        off = plan.norm_offset(p)
        if off is not None:  # in float64, as the normaliser computes
            mean, std, clip = plan.normalize
            m, s = mean[off:off + p.size], std[off:off + p.size]
            z = g.op("Div", g.op("Sub", g.op("Cast", sl, to=TP.DOUBLE),
                                 g.const(m, np.float64)), g.const(s, np.float64))
            parts.append(g.as_float(g.op("Clip", z, g.const(-clip, np.float64),
                                         g.const(clip, np.float64))))
        elif p.kind == "box":
            parts.append(sl)
        elif p.kind == "image":
            parts.append(_scaled(g, plan, sl, p))
        elif p.kind == "multibinary":
            parts.append(g.as_float(g.op("Not", g.op("Equal", sl, g.const(0.0)))))
        else:
            parts.append(_one_hot(g, sl, *categories(p.space), axis=1))
    for net in plan.images:
        sl = _scaled(g, plan, g.cols(x, net.part.start, net.part.stop), net.part)
        a = g.op("Transpose", g.op("Reshape", sl, g.ints((-1,) + net.shape)), perm=[0, 3, 1, 2])
        for w, b, s in net.convs:
            k = int(w.shape[2])
            a = g.op("Relu", g.op("Conv", a, g.const(w, name="conv_weight"),
                                  g.const(b, name="conv_bias"), kernel_shape=[k, k],
                                  strides=[s, s]))
        parts.append(g.op("Flatten", a, axis=1))
    feat = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
    mask = None
    if plan.mask is not None:
        mask = g.op("Not", g.op("Equal", g.cols(obs, plan.mask.start, plan.mask.stop),
                                g.const(0.0)))
    return feat, mask


def _native(core: Core, recurrent_ops: bool) -> bool:
    """Whether ONNX's own LSTM / GRU operator computes this core's cell exactly."""
    return recurrent_ops and (core.kind == "gru" or (
        core.variant in ("vanilla", "peephole") and not core.identity))


def _core_step(g: _Graph, core: Core, x: str, state: list[list[str]],
               recurrent_ops: bool) -> tuple[str, list[list[str]]]:
    """One step of a stacked core. ``state[i][l]``: array i (h, c) of layer l, ``(batch, H)``.
    Returns the top layer's output and the new state in the same form."""
    H = core.hidden_size
    new = [[] for _ in state]
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    for li, layer in enumerate(core.layers):
        h = state[0][li]
        if _native(core, recurrent_ops):
            X = g.op("Unsqueeze", x, g.ints([0]))
            h0 = g.op("Unsqueeze", h, g.ints([0]))
            if core.kind == "lstm":
                o = _LSTM_TO_ONNX
                P = ""
                if layer.peephole is not None:
                    p = f32(layer.peephole)  # p_i, p_f, p_o -> ONNX's i, o, f
                    P = g.const(np.concatenate([p[:H], p[2 * H:], p[H:2 * H]])[None])
                c0 = g.op("Unsqueeze", state[1][li], g.ints([0]))
                _, yh, yc = g.op(
                    "LSTM", X, g.const(_gates(f32(layer.w_ih), o, H)[None]),
                    g.const(_gates(f32(layer.w_rec), o, H)[None]),
                    g.const(np.concatenate([_gates(f32(layer.b_ih), o, H),
                                            _gates(f32(layer.b_hh), o, H)])[None]),
                    "", h0, c0, P, outputs=3, hidden_size=H)
                new[1].append(g.op("Squeeze", yc, g.ints([0])))
            else:
                o = _GRU_TO_ONNX
                _, yh = g.op(
                    "GRU", X, g.const(_gates(f32(layer.w_ih), o, H)[None]),
                    g.const(_gates(f32(layer.w_rec), o, H)[None]),
                    g.const(np.concatenate([_gates(f32(layer.b_ih), o, H),
                                            _gates(f32(layer.b_hh), o, H)])[None]),
                    "", h0, outputs=2, hidden_size=H, linear_before_reset=1)
            h = g.op("Squeeze", yh, g.ints([0]))
        elif core.kind == "gru":
            a = g.op("Split", g.linear(x, layer.w_ih, layer.b_ih), outputs=3, axis=1)
            u = g.op("Split", g.linear(h, layer.w_rec, layer.b_hh), outputs=3, axis=1)
            r = g.op("Sigmoid", g.op("Add", a[0], u[0]))
            z = g.op("Sigmoid", g.op("Add", a[1], u[1]))
            n = g.op("Tanh", g.op("Add", a[2], g.op("Mul", r, u[2])))
            h = g.op("Add", n, g.op("Mul", z, g.op("Sub", h, n)))  # (1 - z) n + z h
        else:
            c = state[1][li]
            b = np.asarray(layer.b_ih, np.float64) + np.asarray(layer.b_hh, np.float64)
            zx = g.linear(x, layer.w_ih, b)
            if core.variant == "peephole_cell":  # gates read c_{t-1} through full matrices
                zi, zf, zg, zo = g.op("Split", zx, outputs=4, axis=1)
                u = g.op("Split", g.op("MatMul", c, g.const(f32(layer.w_rec).T)), outputs=3,
                         axis=1)
                zi, zf, zo = (g.op("Add", zx_k, u_k) for zx_k, u_k in zip((zi, zf, zo), u))
                pi = pf = po = None
            else:
                zi, zf, zg, zo = g.op("Split", g.op("Add", zx, g.op(
                    "MatMul", h, g.const(f32(layer.w_rec).T))), outputs=4, axis=1)
                pi = pf = po = None
                if layer.peephole is not None:
                    p = f32(layer.peephole)
                    pi, pf, po = (g.const(p[k * H:(k + 1) * H]) for k in range(3))
                    zi = g.op("Add", zi, g.op("Mul", c, pi))
                    zf = g.op("Add", zf, g.op("Mul", c, pf))
            i, f = g.op("Sigmoid", zi), g.op("Sigmoid", zf)
            c = g.op("Add", g.op("Mul", f, c), g.op("Mul", i, g.op("Tanh", zg)))
            if po is not None:
                zo = g.op("Add", zo, g.op("Mul", c, po))
            h = g.op("Mul", g.op("Sigmoid", zo), c if core.identity else g.op("Tanh", c))
            new[1].append(c)
        new[0].append(h)
        x = h
    return x, new


def _mlp(g: _Graph, x: str, layers, activation: str | None) -> str:
    """Dense layers ``[(weight, bias), ...]`` on ``x``, each followed by ``activation``."""
    for w, b in layers:
        x = g.op("Tanh" if activation == "tanh" else "Relu", g.linear(x, w, b))
    return x


def _heads(g: _Graph, plan: ExportPlan, z: str, mask: str | None) -> str:
    outs = []
    for head in plan.heads:
        zs = head.z.start
        if head.kind in ("discrete", "multidiscrete"):
            for off, n, start in head.groups:
                logits = g.cols(z, zs + off, zs + off + n)
                if head.mask is not None:
                    m0 = head.mask.start + off
                    logits = g.op("Where", g.cols(mask, m0, m0 + n), logits,
                                  g.const(-np.inf))
                idx = g.as_float(g.op("ArgMax", logits, axis=1, keepdims=1))
                outs.append(g.op("Add", idx, g.const([float(start)])) if start else idx)
        elif head.kind == "multibinary":
            outs.append(g.as_float(g.op("Greater", g.cols(z, zs, head.z.stop), g.const(0.0))))
        else:
            mean = g.cols(z, zs, head.z.stop)
            outs.append(g.op("Min", g.op("Max", mean, g.const(head.low[None])),
                             g.const(head.high[None])))
    return outs[0] if len(outs) == 1 else g.op("Concat", *outs, axis=1)


def build_model(plan: ExportPlan, recurrent_ops: bool = True):
    """The ``onnx.ModelProto`` of ``plan`` (checked by ``onnx.checker``)."""
    onnx = _onnx()
    helper, TP = onnx.helper, onnx.TensorProto
    g = _Graph(onnx)
    K, L, H = plan.state_shape
    keep = g.op("Reshape", g.as_float(g.op("Not", "episode_start")), g.ints([1, 1, -1, 1]))
    s0 = g.op("Mul", "state", keep)
    arrays = [[g.op("Gather", g.op("Gather", s0, g.ints(k), axis=0), g.ints(li), axis=0)
               for li in range(L)] for k in range(K)]
    x, mask = _features(g, plan, "obs")
    x = _mlp(g, x, plan.encoder, plan.encoder_activation)
    new_state, tops, k = [], [], 0
    for core in plan.cores:
        n = len(core.state_names)
        top, st = _core_step(g, core, x, arrays[k:k + n], recurrent_ops)
        tops.append(top)
        new_state += st
        k += n
    z = g.linear(_mlp(g, tops[0], plan.actor_head, plan.head_activation), *plan.action_layer)
    action = _heads(g, plan, z, mask)
    stacked = [g.op("Unsqueeze", g.op("Concat", *[g.op("Unsqueeze", a, g.ints([0]))
                                                   for a in layers], axis=0), g.ints([0]))
               for layers in new_state]
    state_out = stacked[0] if K == 1 else g.op("Concat", *stacked, axis=0)
    outputs = [("action", action, ["batch", plan.n_action]),
               ("state_out", state_out, [K, L, "batch", H])]
    if plan.value_layer is not None:
        yv = _mlp(g, tops[plan.value_core], plan.critic_head, plan.head_activation)
        v = g.op("Reshape", g.linear(yv, *plan.value_layer), g.ints([-1]))
        outputs.insert(1, ("value", v, ["batch"]))
    # name the graph outputs: an Identity from each internal name
    for name, src, _ in outputs:
        g.nodes.append(helper.make_node("Identity", [src], [name], name=f"output_{name}"))
    graph = helper.make_graph(
        g.nodes, "rlstm_policy",
        [helper.make_tensor_value_info("obs", TP.FLOAT, ["batch", plan.n_obs]),
         helper.make_tensor_value_info("state", TP.FLOAT, [K, L, "batch", H]),
         helper.make_tensor_value_info("episode_start", TP.BOOL, ["batch"])],
        [helper.make_tensor_value_info(name, TP.FLOAT, shape) for name, _, shape in outputs],
        initializer=g.inits)
    doc = "\n".join(plan.describe())
    model = helper.make_model(graph, producer_name="rlstm", doc_string=doc,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    from .. import __version__
    meta = {"rlstm.version": __version__, "rlstm.layout": doc,
            "rlstm.observation_space": json.dumps(space_to_json(plan.observation_space)),
            "rlstm.action_space": json.dumps(space_to_json(plan.action_space)),
            "rlstm.n_obs": str(plan.n_obs), "rlstm.n_action": str(plan.n_action),
            "rlstm.state_shape": json.dumps(list(plan.state_shape)),
            "rlstm.state_names": json.dumps([f"{c}.{s}" for c, s in plan.state_names])}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(source, path, *, include_value: bool = True, recurrent_ops: bool = True
            ) -> pathlib.Path:
    """Write the policy of ``source`` as an ONNX model (opset :data:`OPSET`) to ``path``.

    Args:
        source: a model file, an ``LSTMPolicy``, a ``Predictor`` or a trainer (see
            :func:`rlstm.export.as_predictor`).
        path: the ``.onnx`` file to write (its folder is created; written atomically).
        include_value: also output ``value`` (and run a separate critic core). False gives a
            smaller graph whose state holds the actor core only.
        recurrent_ops: write vanilla and peephole LSTM layers with a tanh cell as ONNX ``LSTM``
            nodes and GRU layers as ``GRU`` nodes (``linear_before_reset=1``); False writes
            every cell from ``Gemm``/``MatMul``/``Sigmoid``/``Tanh`` (for runtimes without those
            operators). ``peephole_cell`` and identity-cell layers, which ONNX's ``LSTM`` cannot
            express, are always written that way.

    Returns the path written. The inputs, outputs and layouts are in the module docstring of
    :mod:`rlstm.export.onnx_writer` and in the model's ``doc_string``.
    """
    if not isinstance(recurrent_ops, (bool, np.bool_)):
        raise TypeError(f"recurrent_ops must be a bool, got {recurrent_ops!r}")
    path = output_path(path, "policy.onnx")
    plan = ExportPlan(source, include_value=include_value)
    model = build_model(plan, bool(recurrent_ops))
    write_atomic(path, model.SerializeToString())
    return path
