"""The base of every rlstm layer and policy: parameters as named views into one flat vector."""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .validation import check_dtype


class Module:
    """Named parameters and gradients, all views into ``flat_params`` / ``flat_grads``.

    An optimizer or an evolution strategy updates ``flat_params`` in place and every named view
    sees the change. Subclasses call :meth:`_allocate` once with their parameter spec.

    As in PyTorch, a module is in training mode until :meth:`eval` (``training`` is True);
    the mode only matters to layers with ``dropout``, whose ``forward`` drops units in training
    mode. ``print(module)`` shows its constructor options and sub-modules, PyTorch's way.
    """

    dtype: np.dtype
    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    training: bool = True

    def _allocate(self, spec: Iterable[tuple[str, tuple[int, ...]]], dtype) -> None:
        self.dtype = check_dtype(dtype)
        self._spec = [(name, tuple(int(s) for s in shape)) for name, shape in spec]
        total = int(sum(int(np.prod(shape)) for _, shape in self._spec))
        self._set_vectors(np.zeros(total, dtype=self.dtype), np.zeros(total, dtype=self.dtype))

    def _set_vectors(self, flat_params: np.ndarray, flat_grads: np.ndarray) -> None:
        self._flat_params, self._flat_grads = flat_params, flat_grads
        self.params, self.grads = {}, {}
        offset = 0
        for name, shape in self._spec:
            size = int(np.prod(shape))
            self.params[name] = flat_params[offset:offset + size].reshape(shape)
            self.grads[name] = flat_grads[offset:offset + size].reshape(shape)
            offset += size
        self._on_rebind()

    def _on_rebind(self) -> None:
        """Hook for subclasses that cache pointers into the flat vectors."""

    # ------------------------------------------------------------------ mode and repr
    def train(self, mode: bool = True):
        """Training mode (``mode=True``) or evaluation mode, for this module and every
        sub-module; returns ``self``. Only dropout reads it: ``forward`` of a layer built with
        ``dropout > 0`` drops units in training mode; inference (``layer(x)``) and ``step``
        never do."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {mode!r}")
        self.training = bool(mode)
        for _, child in getattr(self, "submodules", ()):
            if child is not None:
                child.train(mode)
        return self

    def eval(self):
        """Evaluation mode (``train(False)``); returns ``self``."""
        return self.train(False)

    def extra_repr(self) -> str:
        """The options shown inside ``ClassName(...)`` by ``repr``; subclasses override it."""
        return ""

    def __repr__(self) -> str:
        # PyTorch's layout: options on one line; sub-modules one per line, indented
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [(prefix.rstrip("."), child) for prefix, child in
                    getattr(self, "submodules", ()) if child is not None]
        for name, child in children:
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    @property
    def flat_params(self) -> np.ndarray:
        """Every parameter, as one contiguous vector; update it in place."""
        return self._flat_params

    @property
    def flat_grads(self) -> np.ndarray:
        """Every gradient, as one contiguous vector, in the layout of ``flat_params``."""
        return self._flat_grads

    def bind(self, flat_params: np.ndarray, flat_grads: np.ndarray) -> None:
        """Move this module's parameters and gradients into the given vectors (in place views).

        A container (e.g. a policy) that owns one big vector binds each sub-module to a slice of
        it. The current values are copied over, so nothing is lost.
        """
        for name, arr in (("flat_params", flat_params), ("flat_grads", flat_grads)):
            if (not isinstance(arr, np.ndarray) or arr.dtype != self.dtype or arr.ndim != 1
                    or arr.size != self.num_params or not arr.flags.c_contiguous):
                raise ValueError(f"{name} must be a contiguous 1-D {self.dtype} array of size "
                                 f"{self.num_params}")
        flat_params[...] = self._flat_params
        flat_grads[...] = self._flat_grads
        self._set_vectors(flat_params, flat_grads)
        self._repoint_submodules()

    def _repoint_submodules(self) -> None:
        """Point each of ``submodules`` (``(prefix, module)`` pairs, laid out contiguously
        from ``prefix + its first name``) at its slice of this module's vectors, recursively."""
        layout = self.param_layout
        for prefix, child in getattr(self, "submodules", ()):
            if child is None or not child.params:
                continue
            start = layout[prefix + next(iter(child.params))][0]
            stop = start + child.num_params
            child._set_vectors(self._flat_params[start:stop], self._flat_grads[start:stop])
            child._repoint_submodules()

    @property
    def param_layout(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """``{name: (offset, shape)}``: where each parameter lives in ``flat_params`` (row-major,
        in this order). Code that keeps many parameter vectors of one architecture (an
        evolution strategy's population) finds each weight there without a module per vector."""
        out, offset = {}, 0
        for name, shape in self._spec:
            out[name] = (offset, shape)
            offset += int(np.prod(shape))
        return out

    @property
    def num_params(self) -> int:
        return int(self._flat_params.size)

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
