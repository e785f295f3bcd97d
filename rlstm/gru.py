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
from .lstm import RecurrentLayer, work_array
from .module import Module


class GRU(RecurrentLayer, Module):
    """Gated recurrent unit layer(s), time-major ``(T, B, features)`` by default.

    Parameters follow ``torch.nn.GRU``: ``weight_ih_l{k}`` ``(3H, D_k)``, ``weight_hh_l{k}``
    ``(3H, H)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(3H,)`` (``_reverse`` for the second
    direction), gate order r, z, n, initialised U(-1/sqrt(H), 1/sqrt(H)). The state is the single
    array ``h`` of shape ``(num_layers * num_directions, B, H)``. ``bias``, ``batch_first``,
    ``dropout``, unbatched input and ``lengths`` work as for :class:`rlstm.LSTM`.
    """

    _n_gates = 3
    _n_state = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dtype=np.float32, seed=None, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        self._init_sizes(input_size, hidden_size, num_layers, bidirectional)
        self._init_options(bias, batch_first, dropout, seed)
        H = self.hidden_size
        spec = []
        for layer in range(self.num_layers):
            d_in = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                spec += [(f"weight_ih{suffix}", (3 * H, d_in)),
                         (f"weight_hh{suffix}", (3 * H, H))] + self._bias_spec(suffix)
        self._allocate(spec, check_dtype(dtype))
        self._init_bias_stand_ins()
        self.reset_parameters(seed)

    def _on_rebind(self) -> None:
        # Offsets (in elements) of each layer's w_ih, w_hh, b_ih, b_hh within flat_params, for
        # the compiled step() path. Only unidirectional layers step.
        if self.bidirectional:
            self._plan = None
            return
        offsets = self._plan_offsets(("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        self._plan = _kernels.GRUStepPlan(self, offsets, self.input_size, self.hidden_size,
                                          None if self.bias else
                                          np.zeros(3 * self.hidden_size, self.dtype))

    def _layer(self, k: int):
        layer, d = divmod(k, self.num_directions)
        sfx = self._suffixes(layer)[d]
        p, g, zb, sink = self.params, self.grads, self._zero_bias, self._bias_sink
        return ([p["weight_ih" + sfx], p["weight_hh" + sfx], p.get("bias_ih" + sfx, zb),
                 p.get("bias_hh" + sfx, zb)],
                [g["weight_ih" + sfx], g["weight_hh" + sfx], g.get("bias_ih" + sfx, sink),
                 g.get("bias_hh" + sfx, sink)])

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

    # ------------------------------------------------------------------ one layer, one direction
    def _sweep(self, k, inp, s0, resets, reverse, y, yoff, sn, keep):
        """The forward kernel of layer/direction ``k`` (see ``LSTM._sweep``)."""
        TB, H, dt = inp.shape[0], self.hidden_size, self.dtype
        w_ih, w_hh, b_ih, b_hh = self._layer(k)[0]
        gates = work_array((TB, 3 * H), dt, 0, keep)
        ghn = work_array((TB, H), dt, 1, keep)
        hprev = work_array((TB, H), dt, 2, keep)
        _kernels.gru_forward(x=inp, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=s0[0],
                             resets=resets, reverse=reverse, gates=gates, ghn=ghn, hprev=hprev,
                             y=y, yoff=yoff, h_n=sn[0])
        return (inp, gates, ghn, hprev)

    def _end_at_lengths(self, entry, y, yoff, sn, pad, keep: bool) -> None:
        """Right-padded rows: the final ``h`` is read at each sequence's last step. Backward
        needs nothing more: no gradient enters a padded step (the one on h_n enters at the last
        step through dy), so every padded step's gradients are zero."""
        sn[0][...] = y[pad.last_rows, yoff:yoff + self.hidden_size]

    def _sweep_backward(self, k, entry, dy, dyoff, dx, dx_accumulate, resets, reverse, ds):
        """The backward kernel of layer/direction ``k``: ``ds`` = ``(dh,)`` holds the gradient
        on the final state on entry and on the initial state on exit."""
        (w_ih, w_hh, _, _), (dw_ih, dw_hh, db_ih, db_hh) = self._layer(k)
        inp, gates, ghn, hprev = entry
        TB, H, dt = inp.shape[0], self.hidden_size, self.dtype
        dgx = work_array((TB, 3 * H), dt, 3)
        dgh = work_array((TB, 3 * H), dt, 4)
        _kernels.gru_backward(
            x=inp, w_ih=w_ih, w_hh=w_hh, resets=resets, reverse=reverse, gates=gates, ghn=ghn,
            hprev=hprev, dy=dy, dyoff=dyoff, dgx=dgx, dgh=dgh, dx=dx,
            dx_accumulate=dx_accumulate, dw_ih=dw_ih, dw_hh=dw_hh, db_ih=db_ih, db_hh=db_hh,
            dh=ds[0])


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: GRU) -> dict:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional, "dtype": m.dtype.name,
            "bias": m.bias, "batch_first": m.batch_first, "dropout": m.dropout}


def _build(c: dict, size: int) -> GRU:
    """Files from before ``bias``, ``batch_first`` and ``dropout`` load with their defaults."""
    registry.need_recurrent(c, int(c["input_size"]), size)
    return GRU(c["input_size"], c["hidden_size"], c["num_layers"],
               bidirectional=c["bidirectional"], dtype=c["dtype"], bias=c.get("bias", True),
               batch_first=c.get("batch_first", False), dropout=c.get("dropout", 0.0))


registry.register("GRU", _config, _build)
