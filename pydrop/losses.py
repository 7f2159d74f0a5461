"""Softmax cross-entropy (mean over the batch) with its gradient, and accuracy.

All batch-sized work happens in buffers the loss object keeps, so calling it once
per training step allocates nothing that scales with the batch.
"""

from __future__ import annotations

import numpy as np

from .nn import softmax

__all__ = ["SoftmaxCrossEntropy", "accuracy", "softmax"]


def _check(logits: np.ndarray, y: np.ndarray) -> None:
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.dtype != np.float32:
        raise TypeError(
            "logits must be a float32 array of shape (batch, classes), got "
            f"{getattr(logits, 'dtype', type(logits).__name__)} {getattr(logits, 'shape', '')}"
        )
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
        raise TypeError(f"y must be a 1-D integer array, got {getattr(y, 'dtype', type(y))}")
    if y.shape[0] != logits.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels for {logits.shape[0]} rows of logits")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}")


class SoftmaxCrossEntropy:
    """``loss = mean_i(logsumexp(z_i) - z_i[y_i])``; ``backward()`` gives
    ``(softmax(z) - onehot(y)) / n`` for the last ``forward``.

    Stable: logsumexp subtracts the row maximum, and the loss is taken from the
    log-sum, never from log(softmax), so no probability underflow reaches a log.
    The returned gradient is a view of an internal buffer, overwritten by the next
    call.
    """

    def __init__(self) -> None:
        self._cap = -1
        self._c = -1
        self._n = 0

    def _buffers(self, n: int, c: int) -> None:
        if n > self._cap or c != self._c:
            self._P = np.empty((n, c), dtype=np.float32)
            self._m = np.empty((n, 1), dtype=np.float32)
            self._s = np.empty((n, 1), dtype=np.float32)
            self._pick = np.empty(n, dtype=np.float32)
            self._flat = np.empty(n, dtype=np.int64)
            self._ar = np.arange(n, dtype=np.int64) * c
            self._cap, self._c = n, c

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        _check(logits, y)
        n, c = logits.shape
        self._buffers(n, c)
        self._n = n
        P, m, s = self._P[:n], self._m[:n], self._s[:n]
        pick, flat = self._pick[:n], self._flat[:n]
        np.max(logits, axis=1, keepdims=True, out=m)
        np.subtract(logits, m, out=P)
        np.exp(P, out=P)
        np.sum(P, axis=1, keepdims=True, out=s)
        np.divide(P, s, out=P)  # P = softmax(logits)
        np.add(self._ar[:n], y, out=flat)  # flat index of (i, y_i)
        np.take(logits.reshape(-1), flat, out=pick)
        np.log(s, out=s)
        if n == 0:
            return float("nan")
        total = s.sum(dtype=np.float64) + m.sum(dtype=np.float64) - pick.sum(dtype=np.float64)
        return float(total / n)

    __call__ = forward

    def backward(self) -> np.ndarray:
        n = self._n
        if self._cap < 0:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        P, pick, flat = self._P[:n], self._pick[:n], self._flat[:n]
        flatP = P.reshape(-1)
        np.take(flatP, flat, out=pick)
        np.subtract(pick, np.float32(1.0), out=pick)
        np.put(flatP, flat, pick)
        if n:
            np.multiply(P, np.float32(1.0 / n), out=P)
        return P


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    _check(logits, y)
    if len(y) == 0:
        return float("nan")
    return float(np.count_nonzero(logits.argmax(axis=1) == y)) / len(y)
