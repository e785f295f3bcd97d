"""The base of every rlstm layer and policy: parameters as named views into one flat vector."""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from ._validation import check_dtype


class Module:
    """Named parameters and gradients, all views into ``flat_params`` / ``flat_grads``.

    An optimizer or an evolution strategy updates ``flat_params`` in place and every named view
    sees the change. Subclasses call :meth:`_allocate` once with their parameter spec.
    """

    dtype: np.dtype
    flat_params: np.ndarray
    flat_grads: np.ndarray
    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def _allocate(self, spec: Iterable[tuple[str, tuple[int, ...]]], dtype) -> None:
        self.dtype = check_dtype(dtype)
        spec = [(name, tuple(int(s) for s in shape)) for name, shape in spec]
        sizes = [int(np.prod(shape)) for _, shape in spec]
        total = int(sum(sizes))
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.params, self.grads = {}, {}
        offset = 0
        for (name, shape), size in zip(spec, sizes):
            self.params[name] = self.flat_params[offset:offset + size].reshape(shape)
            self.grads[name] = self.flat_grads[offset:offset + size].reshape(shape)
            offset += size

    @property
    def num_params(self) -> int:
        return int(self.flat_params.size)

    def zero_grad(self) -> None:
        """Set every gradient to zero (in place)."""
        self.flat_grads[...] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by name (PyTorch's names for the layers)."""
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy parameters in place from ``state_dict`` (e.g. a converted PyTorch state dict).

        Values may be NumPy arrays or anything with ``.detach().cpu().numpy()`` / ``__array__``.
        With ``strict``, missing and unexpected keys are an error. Nothing is changed unless
        every entry is valid.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name to array, got "
                            f"{type(state_dict).__name__}")
        missing = [k for k in self.params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.params]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        staged = {}
        for name, value in state_dict.items():
            if name not in self.params:
                continue
            if hasattr(value, "detach"):  # a torch tensor, without importing torch
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] must be real numbers, got {arr.dtype}")
            expected = self.params[name].shape
            if arr.shape != expected:
                raise ValueError(f"state_dict[{name!r}] must have shape {expected}, "
                                 f"got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"state_dict[{name!r}] contains NaN or inf")
            staged[name] = arr
        for name, arr in staged.items():
            self.params[name][...] = arr

    def set_flat_params(self, flat: np.ndarray) -> None:
        """Copy a whole parameter vector in (shape ``(num_params,)``)."""
        arr = np.asarray(flat)
        if arr.shape != self.flat_params.shape:
            raise ValueError(f"flat parameter vector must have shape {self.flat_params.shape}, "
                             f"got {arr.shape}")
        if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
            raise ValueError("flat parameter vector must be finite real numbers")
        self.flat_params[...] = arr
