"""Right-padded variable-length batches: where each sequence ends, as flat row indices.

A batch of ``B`` sequences of up to ``T`` steps is stored time-major, row ``t * B + b`` holding
step ``t`` of sequence ``b``; sequence ``b`` has ``lengths[b]`` valid steps followed by padding.
The recurrent layers run every row for all ``T`` steps with the usual kernels and then use
these indices to:

- zero the outputs at padded steps (as ``torch.nn.utils.rnn.pad_packed_sequence`` gives them);
- read each sequence's final state at its own last step (``last_rows``);
- run a reverse direction over each sequence's valid part reversed in place (``rev_rows``,
  a gather that maps step ``s`` to ``lengths[b] - 1 - s`` and leaves padded steps where they
  are; it is its own inverse), so that it starts at the sequence's own end, as PyTorch's packed
  sequences do.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Padding", "padding"]


class Padding:
    """Row indices of a right-padded ``(T, B)`` batch with ``lengths`` ``(B,)`` (int64, each in
    ``[1, T]``, already checked); ``reverse`` also builds the per-sequence reversal."""

    def __init__(self, lengths: np.ndarray, T: int, B: int, reverse: bool = False):
        self.lengths, self.T, self.B = lengths, T, B
        t = np.arange(T)[:, None]
        self.valid = t < lengths[None, :]                        # (T, B): a real step
        self.pad_rows = np.flatnonzero(~self.valid)              # rows t * B + b of padding
        self.last_rows = (lengths - 1) * B + np.arange(B)        # each sequence's last step
        self.rev_rows = None
        if reverse:
            src = np.where(self.valid, lengths[None, :] - 1 - t, t)
            self.rev_rows = (src * B + np.arange(B)).reshape(-1)

    def resets(self, resets: np.ndarray | None) -> np.ndarray | None:
        """The forward direction's resets with none at padded steps (a reset there would cut
        the gradient that the final state passes back through the padding)."""
        if resets is None:
            return None
        return np.ascontiguousarray(resets * self.valid, dtype=np.uint8)

    def reverse_resets(self, resets: np.ndarray | None) -> np.ndarray | None:
        """Resets of the reverse direction in the reversed (gathered) order: going backwards
        in time the state is zeroed before original step t when an episode starts at t + 1, so
        reversed step s (original t = len - 1 - s) takes ``resets[len - s]``; s = 0 starts from
        the given state."""
        if resets is None:
            return None
        T = self.T
        s = np.arange(T)[:, None]
        src = np.minimum(self.lengths[None, :] - s, T - 1)       # len - s, kept in range
        rev = np.take_along_axis(resets, src, axis=0).astype(bool)
        rev &= self.valid & (s >= 1)
        return np.ascontiguousarray(rev, dtype=np.uint8)


def padding(lengths: np.ndarray | None, T: int, B: int, reverse: bool = False) -> Padding | None:
    """A :class:`Padding` for checked ``lengths``, or ``None`` when there is nothing to mask
    (no lengths, an empty batch, or every sequence full length: the plain path is exact)."""
    if lengths is None or T == 0 or B == 0 or bool((lengths == T).all()):
        return None
    return Padding(lengths, T, B, reverse)
