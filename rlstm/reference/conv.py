"""NumPy reference of the image path: Conv2d (NCHW, no padding) and the ConvEncoder stack.

This was the layers' own implementation before the compiled im2col + GEMM kernels
(``rlstm/_conv.pxi``): forward is a strided window view and one ``tensordot``; backward gives
``dW`` the same way and ``dx`` by one small product per kernel offset.
"""
from __future__ import annotations

import numpy as np


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return win[:, :, :(ho - 1) * s + 1:s, :(wo - 1) * s + 1:s]  # (N, C, Ho, Wo, k, k)


def conv2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """y[n, o, i, j] = sum_{c, a, b} x[n, c, s*i + a, s*j + b] W[o, c, a, b] + bias[o]."""
    y = np.tensordot(_windows(x, W.shape[2], stride), W, axes=([1, 4, 5], [1, 2, 3]))
    y += b
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))  # (N, O, Ho, Wo)


def conv2d_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, stride: int):
    """``(dx, dW, db)`` of :func:`conv2d_forward` for the gradient ``dy`` on its output."""
    k, s = W.shape[2], stride
    dW = np.tensordot(dy, _windows(x, k, s), axes=([0, 2, 3], [0, 2, 3]))
    db = dy.sum(axis=(0, 2, 3))
    ho, wo = dy.shape[2], dy.shape[3]
    dx = np.zeros_like(x)
    for a in range(k):  # over kernel offsets, not rows or time
        for c in range(k):
            dx[:, :, a:a + s * (ho - 1) + 1:s, c:c + s * (wo - 1) + 1:s] += np.einsum(
                "nohw,oc->nchw", dy, W[:, :, a, c], optimize=True)
    return dx, dW, db


def conv_encoder_forward(x: np.ndarray, layers, channels_first: bool = False):
    """Conv -> ReLU per layer, flattened per image in (channel, row, column) order.

    ``x`` is ``(N, H, W, C)`` (or ``(N, C, H, W)`` with ``channels_first``); ``layers`` is a list
    of ``(W, b, stride)``. Returns the features ``(N, F)`` and a cache for the backward.
    """
    a = np.asarray(x, np.float64)
    a = a if channels_first else a.transpose(0, 3, 1, 2)
    acts = [np.ascontiguousarray(a)]
    for W, b, s in layers:
        acts.append(np.maximum(conv2d_forward(acts[-1], W, b, s), 0))
    return acts[-1].reshape(len(a), -1), acts


def conv_encoder_backward(dfeat: np.ndarray, layers, acts):
    """``(dx, [(dW, db), ...])`` of :func:`conv_encoder_forward`; dx in the input's NCHW order."""
    d = dfeat.reshape(acts[-1].shape)
    grads = []
    for k in range(len(layers) - 1, -1, -1):
        W, _, s = layers[k]
        d = d * (acts[k + 1] > 0)
        d, dW, db = conv2d_backward(d, acts[k], W, s)
        grads.append((dW, db))
    return d, grads[::-1]
