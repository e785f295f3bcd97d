"""Feed-forward layers with explicit backward passes, and a way to nest modules in one flat vector.

``Linear`` and ``MLP`` work on 2-D ``(N, features)`` arrays (callers fold ``(T, B)`` into ``N``).
:func:`adopt` re-points a child module's parameters into a slice of its parent's flat vector, so
a model made of several modules (a policy: encoder + LSTM core + heads) still has ONE
``flat_params`` that an optimizer or an evolution strategy can update in place.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._validation import as_float_array, check_choice, check_int
from .module import Module

ACTIVATIONS = ("tanh", "relu")

__all__ = ["Linear", "MLP", "adopt", "param_spec"]


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
        child.flat_params = parent.flat_params[:0]
        child.flat_grads = parent.flat_grads[:0]
        return
    first = parent.params[prefix + names[0]]
    start = (first.__array_interface__["data"][0]
             - parent.flat_params.__array_interface__["data"][0]) // parent.flat_params.itemsize
    stop = start + child.flat_params.size
    parent.flat_params[start:stop] = child.flat_params
    child.flat_params = parent.flat_params[start:stop]
    child.flat_grads = parent.flat_grads[start:stop]
    child.params = {n: parent.params[prefix + n] for n in names}
    child.grads = {n: parent.grads[prefix + n] for n in names}
    child.dtype = parent.flat_params.dtype
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
