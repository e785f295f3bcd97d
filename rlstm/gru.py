"""``rlstm.GRU``: a multi-layer, optionally bidirectional GRU with Cython/BLAS kernels.

PyTorch's convention (``torch.nn.GRU``): gate order r, z, n and the reset gate applied after
the recurrent product, so each step's recurrent work is one GEMM::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
"""
from __future__ import annotations

import numpy as np

from . import _kernels, registry
from .validation import as_float_array, check_dtype, check_int, check_shape
from .lstm import RecurrentCache, RecurrentLayer
from .module import Module


class GRU(RecurrentLayer, Module):
    """Gated recurrent unit layer(s), time-major ``(T, B, features)``.

    Parameters follow ``torch.nn.GRU``: ``weight_ih_l{k}`` ``(3H, D_k)``, ``weight_hh_l{k}``
    ``(3H, H)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(3H,)`` (``_reverse`` for the second
    direction), gate order r, z, n, initialised U(-1/sqrt(H), 1/sqrt(H)). The state is the single
    array ``h`` of shape ``(num_layers * num_directions, B, H)``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dtype=np.float32, seed=None):
        self._init_sizes(input_size, hidden_size, num_layers, bidirectional)
        H = self.hidden_size
        spec = []
        for layer in range(self.num_layers):
            d_in = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                spec += [(f"weight_ih{suffix}", (3 * H, d_in)), (f"weight_hh{suffix}", (3 * H, H)),
                         (f"bias_ih{suffix}", (3 * H,)), (f"bias_hh{suffix}", (3 * H,))]
        self._allocate(spec, check_dtype(dtype))
        self.reset_parameters(seed)

    def _on_rebind(self) -> None:
        # Offsets (in elements) of each layer's w_ih, w_hh, b_ih, b_hh within flat_params, for
        # the compiled step() path. Only unidirectional layers step.
        if self.bidirectional:
            self._plan = None
            return
        offsets = self._plan_offsets(("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        self._plan = _kernels.GRUStepPlan(self, offsets, self.input_size, self.hidden_size)

    def _layer(self, k: int):
        layer, d = divmod(k, self.num_directions)
        sfx = self._suffixes(layer)[d]
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return ([self.params[n + sfx] for n in names], [self.grads[n + sfx] for n in names])

    # ------------------------------------------------------------------ validation
    def _check_state(self, state, B: int, name: str = "state") -> np.ndarray:
        shape = self._state_shape(B)
        if state is None:
            return np.zeros(shape, dtype=self.dtype)
        if isinstance(state, (tuple, list)):
            raise TypeError(f"{name} of a GRU is a single array h of shape {shape} (not a "
                            f"tuple), or None")
        h = as_float_array(state, self.dtype, name)
        check_shape(h, shape, name)
        return h

    def initial_state(self, batch_size: int) -> np.ndarray:
        """Zero ``h`` for ``batch_size`` rows."""
        return np.zeros(self._state_shape(check_int("batch_size", batch_size, 1)),
                        dtype=self.dtype)

    # ------------------------------------------------------------------ passes
    def _forward(self, x, state, resets, keep: bool):
        x, T, B, cache = self._begin_forward(x, resets, keep)
        rs, rs_rev = cache.resets, cache.resets_rev
        h0 = self._check_state(state, B)
        H, nd, dt = self.hidden_size, self.num_directions, self.dtype
        hn = h0.copy()  # T = 0 leaves the state as it was; otherwise the kernels overwrite it
        inp = x.reshape(T * B, self.input_size)
        for layer in range(self.num_layers):
            y = np.empty((T * B, H * nd), dtype=dt)
            for d in range(nd):
                k = layer * nd + d
                w_ih, w_hh, b_ih, b_hh = self._layer(k)[0]
                gates = np.empty((T * B, 3 * H), dtype=dt)
                ghn = np.empty((T * B, H), dtype=dt)
                hprev = np.empty((T * B, H), dtype=dt)
                r = rs if d == 0 else rs_rev
                _kernels.gru_forward(x=inp, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0[k],
                                     resets=r, reverse=d == 1, gates=gates, ghn=ghn,
                                     hprev=hprev, y=y, yoff=d * H, h_n=hn[k])
                if keep:
                    cache.layers.append((inp, gates, ghn, hprev))
            inp = y
        return inp.reshape(T, B, H * nd), hn, (cache if keep else None)

    def backward(self, dy, cache: RecurrentCache, dstate=None, input_grad: bool = True):
        """Backpropagate ``dy`` (and ``dstate`` on the final ``h``) through a forward pass.

        Adds parameter gradients into :attr:`grads`; returns ``dx`` and ``dh0``.
        ``input_grad=False`` skips ``dx`` (returned as ``None``): for a first layer fed by data
        this saves the ``dgates @ W_ih`` GEMM, 2*T*B*3H*D flops (one sixth of a training step
        when D = H).
        """
        T, B, dout = self._begin_backward(dy, cache)
        H, nd, dt = self.hidden_size, self.num_directions, self.dtype
        dh_n = self._check_state(dstate, B, "dstate")
        dh0 = np.empty(self._state_shape(B), dtype=dt)
        for layer in range(self.num_layers - 1, -1, -1):
            d_in = self.input_size if layer == 0 else H * nd
            dinp = None if (layer == 0 and not input_grad) else np.empty((T * B, d_in), dtype=dt)
            for d in range(nd):
                k = layer * nd + d
                (w_ih, w_hh, _, _), (dw_ih, dw_hh, db_ih, db_hh) = self._layer(k)
                inp, gates, ghn, hprev = cache.layers[k]
                r = cache.resets if d == 0 else cache.resets_rev
                dgx = np.empty((T * B, 3 * H), dtype=dt)
                dgh = np.empty((T * B, 3 * H), dtype=dt)
                dh0[k] = dh_n[k]
                _kernels.gru_backward(
                    x=inp, w_ih=w_ih, w_hh=w_hh, resets=r, reverse=d == 1, gates=gates,
                    ghn=ghn, hprev=hprev, dy=dout, dyoff=d * H, dgx=dgx, dgh=dgh, dx=dinp,
                    dx_accumulate=d == 1, dw_ih=dw_ih, dw_hh=dw_hh, db_ih=db_ih, db_hh=db_hh,
                    dh=dh0[k])
            dout = dinp
        return (None if dout is None else dout.reshape(T, B, self.input_size)), dh0


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: GRU) -> dict:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional, "dtype": m.dtype.name}


def _build(c: dict, size: int) -> GRU:
    registry.need_recurrent(c, int(c["input_size"]), size)
    return GRU(c["input_size"], c["hidden_size"], c["num_layers"],
               bidirectional=c["bidirectional"], dtype=c["dtype"])


registry.register("GRU", _config, _build)
