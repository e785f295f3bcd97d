"""Feed-forward layers with explicit backward passes, and a way to nest modules in one flat vector.

``Linear`` and ``MLP`` work on 2-D ``(N, features)`` arrays (callers fold ``(T, B)`` into ``N``).
:func:`adopt` re-points a child module's parameters into a slice of its parent's flat vector, so
a model made of several modules (a policy: encoder + LSTM core + heads) still has ONE
``flat_params`` that an optimizer or an evolution strategy can update in place.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _kernels, registry
from .validation import as_float_array, check_choice, check_int
from .module import Module

ACTIVATIONS = ("tanh", "relu")

__all__ = ["Linear", "MLP", "Conv2d", "ConvEncoder", "adopt", "param_spec"]


def _dtype_repr(m: Module) -> str:
    """``", dtype=float64"`` for a module that is not float32 (the default), for reprs."""
    return "" if m.dtype == np.float32 else f", dtype={m.dtype.name}"


def param_spec(module: Module, prefix: str) -> list[tuple[str, tuple[int, ...]]]:
    """``[(prefix + name, shape), ...]`` for every parameter of ``module``, in flat order."""
    return [(prefix + name, p.shape) for name, p in module.params.items()]


def adopt(parent: Module, child: Module, prefix: str) -> None:
    """Make ``child``'s parameters and gradients views into ``parent``'s flat vectors.

    ``parent`` must already hold entries ``prefix + name`` for every child parameter, laid out
    contiguously in the child's order (build the parent's spec with :func:`param_spec`). The
    child's current values are copied in. A child that lists ``(prefix, module)`` pairs in a
    ``submodules`` attribute has those re-pointed too.
    """
    names = list(child.params)
    if not names:
        child.bind(parent.flat_params[:0], parent.flat_grads[:0])
        return
    first = parent.params[prefix + names[0]]
    start = (first.__array_interface__["data"][0]
             - parent.flat_params.__array_interface__["data"][0]) // parent.flat_params.itemsize
    stop = start + child.flat_params.size
    child.bind(parent.flat_params[start:stop], parent.flat_grads[start:stop])
    for sub_prefix, sub in getattr(child, "submodules", ()):  # nested modules follow
        adopt(child, sub, sub_prefix)


class Linear(Module):
    """``y = x @ weight.T + bias``; PyTorch's names, shapes and U(-1/sqrt(in), 1/sqrt(in)) init.

    ``init_scale`` multiplies the initial weight (0.01 gives a near-uniform policy head).
    """

    def __init__(self, in_features: int, out_features: int, *, dtype=np.float32, seed=None,
                 init_scale: float = 1.0):
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self._allocate([("weight", (self.out_features, self.in_features)),
                        ("bias", (self.out_features,))], dtype)
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.in_features)
        self.params["weight"][...] = init_scale * rng.uniform(-k, k, self.params["weight"].shape)
        self.params["bias"][...] = 0.0 if init_scale != 1.0 else rng.uniform(-k, k,
                                                                                self.out_features)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x, self.dtype, "x", ndim=2)
        return self._forward(x)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
            f"bias=True{_dtype_repr(self)}"

    def _forward(self, x: np.ndarray) -> np.ndarray:
        # y = x @ W.T + b (trusted input: 2-D, right dtype)
        y = x @ self.params["weight"].T
        y += self.params["bias"]
        return y

    def backward(self, dy: np.ndarray, x: np.ndarray, need_dx: bool = True):
        """Add dW = dy.T @ x and db = sum(dy) into :attr:`grads`; return dx = dy @ W or None."""
        self.grads["weight"] += dy.T @ x
        self.grads["bias"] += dy.sum(axis=0)
        return dy @ self.params["weight"] if need_dx else None


class MLP(Module):
    """Linear layers with an activation after each (``tanh`` by default, as in SB3 policies).

    Parameters are ``{k}.weight`` and ``{k}.bias`` for layer ``k``.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], *, activation: str = "tanh",
                 dtype=np.float32, seed=None):
        self.in_features = check_int("in_features", in_features, 1)
        if isinstance(hidden, (int, np.integer)):
            hidden = (int(hidden),)
        self.hidden = tuple(check_int("hidden size", h, 1) for h in hidden)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        rng = np.random.default_rng(seed)
        sizes = (self.in_features,) + self.hidden
        self.layers = [Linear(a, b, dtype=dtype, seed=rng.integers(2 ** 63))
                       for a, b in zip(sizes[:-1], sizes[1:])]
        spec = []
        for k, layer in enumerate(self.layers):
            spec += param_spec(layer, f"{k}.")
        self._allocate(spec, dtype)
        self.submodules = [(f"{k}.", layer) for k, layer in enumerate(self.layers)]
        for prefix, layer in self.submodules:
            adopt(self, layer, prefix)
        self.out_features = sizes[-1]

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}{_dtype_repr(self)}"

    def _act(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z, out=z) if self.activation == "tanh" else np.maximum(z, 0, out=z)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(as_float_array(x, self.dtype, "x", ndim=2))[0]

    def forward(self, x: np.ndarray):
        """``(y, cache)``; ``x`` is a trusted 2-D array of the module's dtype."""
        acts = [x]
        for layer in self.layers:
            acts.append(self._act(layer._forward(acts[-1])))
        return acts[-1], acts

    def backward(self, dy: np.ndarray, cache, need_dx: bool = False):
        acts = cache
        for k in range(len(self.layers) - 1, -1, -1):
            a = acts[k + 1]
            dz = dy * (1 - a * a) if self.activation == "tanh" else dy * (a > 0)
            dy = self.layers[k].backward(dz, acts[k], need_dx=need_dx or k > 0)
        return dy


class Conv2d(Module):
    """2-D convolution, no padding: ``weight (out, in, k, k)``, ``bias (out,)`` (PyTorch's layout).

    Computed by compiled im2col + GEMM kernels (``rlstm/_conv.pxi``) over channel-last batches,
    with the bias and an optional ReLU fused into one pass over the output. The NumPy version
    is :mod:`rlstm.reference.conv`. :meth:`forward` / :meth:`backward` take and return NCHW
    arrays; :class:`ConvEncoder` chains the channel-last methods without transposes.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 *, dtype=np.float32, seed=None):
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = check_int("stride", stride, 1)
        k = self.kernel_size
        self._allocate([("weight", (self.out_channels, self.in_channels, k, k)),
                        ("bias", (self.out_channels,))], dtype)
        bound = 1.0 / np.sqrt(self.in_channels * k * k)
        self.flat_params[...] = np.random.default_rng(seed).uniform(-bound, bound,
                                                                     self.flat_params.size)

    def extra_repr(self) -> str:
        k, s = self.kernel_size, self.stride
        return f"{self.in_channels}, {self.out_channels}, kernel_size={(k, k)}, " \
            f"stride={(s, s)}{_dtype_repr(self)}"

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        k, s = self.kernel_size, self.stride
        if h < k or w < k:
            raise ValueError(f"a {h}x{w} image is smaller than the {k}x{k} kernel")
        return (h - k) // s + 1, (w - k) // s + 1

    def _weight_rows(self) -> np.ndarray:
        """The weights as (out, k*k*in) rows in the kernels' (row, column, channel) order."""
        return np.ascontiguousarray(self.params["weight"].transpose(0, 2, 3, 1)).reshape(
            self.out_channels, -1)

    def forward_channel_last(self, x: np.ndarray, N: int, H: int, W: int,
                             channel_last: bool = True, relu: bool = False):
        """``y (N*Ho*Wo, out)`` channel-last, and the cache for :meth:`backward_channel_last`.

        ``x`` is a contiguous array holding N images of H x W x in_channels (channel-last, or
        NCHW when ``channel_last`` is False); the cache keeps it (not a copy: do not change it
        in place before the backward); ``relu`` applies max(0, .) to the output."""
        ho, wo = self.output_hw(H, W)
        y = np.empty((N * ho * wo, self.out_channels), dtype=self.dtype)
        w = self._weight_rows()
        x = x.reshape(-1)
        _kernels.conv2d_forward(x=x, N=N, H=H, W=W, C=self.in_channels,
                                channel_last=channel_last, k=self.kernel_size,
                                stride=self.stride, w=w, bias=self.params["bias"], relu=relu,
                                y=y)
        return y, (x, y, w, relu, N, H, W, channel_last)

    def backward_channel_last(self, dy: np.ndarray, cache, need_dx: bool = True):
        """Add dW, db into :attr:`grads` for ``dy (N*Ho*Wo, out)``, which is overwritten; return
        dx channel-last ``(N, H, W, in)`` or None."""
        x, y, w, relu, N, H, W, channel_last = cache
        C, k = self.in_channels, self.kernel_size
        dw = np.zeros_like(w)
        dx = np.empty((N, H, W, C), dtype=self.dtype) if need_dx else None
        _kernels.conv2d_backward(x=x, N=N, H=H, W=W, C=C, channel_last=channel_last, k=k,
                                 stride=self.stride, w=w, y=y, relu=relu, dy=dy, dw=dw,
                                 db=self.grads["bias"],
                                 dx=dx.reshape(-1) if need_dx else None)
        self.grads["weight"] += dw.reshape(self.out_channels, k, k, C).transpose(0, 3, 1, 2)
        return dx

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``(N, in, H, W)`` -> ``(N, out, Ho, Wo)``."""
        N, _, H, W = x.shape
        y, _ = self.forward_channel_last(np.ascontiguousarray(x), N, H, W, channel_last=False)
        ho, wo = self.output_hw(H, W)
        return np.ascontiguousarray(y.reshape(N, ho, wo, -1).transpose(0, 3, 1, 2))

    def backward(self, dy: np.ndarray, x: np.ndarray, need_dx: bool = True):
        """Add dW, db into :attr:`grads`; return dx ``(N, C, H, W)`` or None."""
        N, _, H, W = x.shape
        _, cache = self.forward_channel_last(np.ascontiguousarray(x), N, H, W,
                                             channel_last=False)
        d = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(-1, self.out_channels)
        dx = self.backward_channel_last(d, cache, need_dx)
        return None if dx is None else np.ascontiguousarray(dx.transpose(0, 3, 1, 2))


class ConvEncoder(Module):
    """A small image encoder: Conv(k8, s4) -> ReLU -> Conv(k4, s2) -> ReLU -> flatten.

    For small images (under 36 pixels a side) the kernels are 3x3, stride 1 (smaller if the
    image is smaller). Input:
    ``(N, H, W, C)`` channel-last floats (a Gymnasium image, already scaled to [0, 1]);
    ``channels_first=True`` takes ``(N, C, H, W)``. Parameters ``conv{k}.weight``,
    ``conv{k}.bias``. The layers run channel-last (compiled im2col + GEMM, ReLU fused); the
    features are flattened per image in (channel, row, column) order.
    """

    def __init__(self, image_shape, channels=(16, 32), *, channels_first: bool = False,
                 dtype=np.float32, seed=None):
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3:
            raise ValueError(f"image_shape must have 3 dims, got {shape}")
        self.image_shape, self.channels_first = shape, bool(channels_first)
        C, H, W = (shape if self.channels_first else (shape[2], shape[0], shape[1]))
        small = min(H, W) < 36
        ks = [(3, 1), (3, 1)] if small else [(8, 4), (4, 2)]
        rng = np.random.default_rng(seed)
        self.layers, c_in, h, w = [], C, H, W
        self._hw = []
        for c_out, (k, s) in zip(channels, ks):
            k = min(k, h, w)  # tiny images: the kernel shrinks to fit
            conv = Conv2d(c_in, int(c_out), k, s, dtype=dtype, seed=rng.integers(2 ** 63))
            self._hw.append((h, w))
            h, w = conv.output_hw(h, w)
            self.layers.append(conv)
            c_in = int(c_out)
        self._out_hw = (h, w)
        self.out_features = c_in * h * w
        self.submodules = [(f"conv{k}.", layer) for k, layer in enumerate(self.layers)]
        spec = []
        for prefix, layer in self.submodules:
            spec += param_spec(layer, prefix)
        self._allocate(spec, dtype)
        for prefix, layer in self.submodules:
            adopt(self, layer, prefix)

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}" + \
            (", channels_first=True" if self.channels_first else "") + _dtype_repr(self)

    def forward(self, x: np.ndarray):
        """``(features (N, out_features), cache)``; ``x`` trusted, of the module's dtype."""
        N = x.shape[0]
        a = np.array(x, order="C")   # a copy: the cache must not see later changes to x
        caches = []
        for k, conv in enumerate(self.layers):
            H, W = self._hw[k]
            a, cache = conv.forward_channel_last(a, N, H, W,
                                                 channel_last=k > 0 or not self.channels_first,
                                                 relu=True)
            caches.append(cache)
        # (N, h*w, c) -> (N, c, h*w): the (channel, row, column) feature order
        feats = a.reshape(N, -1, self.layers[-1].out_channels).transpose(0, 2, 1)
        return feats.reshape(N, -1), caches

    def backward(self, dfeat: np.ndarray, cache) -> None:
        """Add every layer's dW, db into :attr:`grads` for ``dfeat (N, out_features)``."""
        caches = cache
        N = dfeat.shape[0]
        c = self.layers[-1].out_channels
        d = np.ascontiguousarray(dfeat.reshape(N, c, -1).transpose(0, 2, 1)).reshape(-1, c)
        for k in range(len(self.layers) - 1, -1, -1):
            dx = self.layers[k].backward_channel_last(d, caches[k], need_dx=k > 0)
            if k > 0:
                d = dx.reshape(-1, self.layers[k - 1].out_channels)


# ---------------------------------------------------------------------------- rlstm.save/load
def _linear_config(m: Linear) -> dict:
    return {"in_features": m.in_features, "out_features": m.out_features,
            "dtype": m.dtype.name}


def _linear_build(c: dict, size: int) -> Linear:
    registry.need(int(c["in_features"]) * int(c["out_features"]) <= size, "Linear too large")
    return Linear(c["in_features"], c["out_features"], dtype=c["dtype"])


def _mlp_config(m: MLP) -> dict:
    return {"in_features": m.in_features, "hidden": list(m.hidden),
            "activation": m.activation, "dtype": m.dtype.name}


def _mlp_build(c: dict, size: int) -> MLP:
    sizes = [int(c["in_features"])] + [int(h) for h in c["hidden"]]
    registry.need(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) <= size, "MLP too large")
    return MLP(c["in_features"], c["hidden"], activation=c["activation"], dtype=c["dtype"])


def _conv_config(m: Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": m.kernel_size, "stride": m.stride, "dtype": m.dtype.name}


def _conv_build(c: dict, size: int) -> Conv2d:
    registry.need(int(c["in_channels"]) * int(c["out_channels"]) * int(c["kernel_size"]) ** 2
                  <= size, "Conv2d too large")
    return Conv2d(c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"],
                  dtype=c["dtype"])


registry.register("Linear", _linear_config, _linear_build)
registry.register("MLP", _mlp_config, _mlp_build)
registry.register("Conv2d", _conv_config, _conv_build)
