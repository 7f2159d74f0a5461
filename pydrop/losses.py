"""Softmax cross-entropy (mean over the batch) with its gradient, and accuracy.

All batch-sized work happens in buffers the loss object keeps, so calling it once
per training step allocates nothing that scales with the batch.
"""

from __future__ import annotations

import numpy as np

from ._ops import _SoftmaxXentBackwardCall, _SoftmaxXentCall
from .nn import softmax

__all__ = ["SoftmaxCrossEntropy", "accuracy", "softmax"]


def _check_shapes(logits: np.ndarray, y: np.ndarray) -> None:
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.dtype != np.float32:
        raise TypeError(
            "logits must be a float32 array of shape (batch, classes), got "
            f"{getattr(logits, 'dtype', type(logits).__name__)} {getattr(logits, 'shape', '')}"
        )
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
        raise TypeError(f"y must be a 1-D integer array, got {getattr(y, 'dtype', type(y))}")
    if y.shape[0] != logits.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels for {logits.shape[0]} rows of logits")


def _check(logits: np.ndarray, y: np.ndarray) -> None:
    _check_shapes(logits, y)
    if y.size and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}")


class SoftmaxCrossEntropy:
    """``loss = mean_i(logsumexp(z_i) - z_i[y_i])``; ``backward()`` gives
    ``(softmax(z) - onehot(y)) / n`` for the last ``forward``.

    Stable: logsumexp subtracts the row maximum, and the loss is taken from the
    log-sum, never from log(softmax), so no probability underflow reaches a log.
    Each direction is one C call (pd_softmax_xent_f32 and its backward), which
    also checks the labels. The returned gradient is a view of an internal buffer,
    overwritten by the next call; ``backward()`` may be called again after one
    ``forward`` and gives the same gradient.
    """

    def __init__(self) -> None:
        self._cap = -1
        self._c = -1
        # checked kernel calls, kept while their arrays are the same objects
        self._fwd: _SoftmaxXentCall | None = None
        self._bwd: _SoftmaxXentBackwardCall | None = None

    def _buffers(self, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows 0..n of the probability and label buffers (and of the gradient
        buffer, kept in ``_views`` for backward): the same view objects while n stays
        (the gradient is the next layer's dY, whose checked kernel call is reused
        while its arrays are the same objects)."""
        if n > self._cap or c != self._c:
            self._P = np.empty((n, c), dtype=np.float32)
            self._G = np.empty((n, c), dtype=np.float32)
            self._y = np.empty(n, dtype=np.int64)
            self._cap, self._c = n, c
            self._views = (self._P, self._G, self._y)
        P, G, labels = self._views
        if P.shape[0] != n:
            self._views = P, G, labels = self._P[:n], self._G[:n], self._y[:n]
        return P, labels

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        # The label range is checked by the kernel (same message as _check's).
        _check_shapes(logits, y)
        n, c = logits.shape
        P, labels = self._buffers(n, c)
        # A copy: backward needs these labels even if the caller reuses y meanwhile.
        np.copyto(labels, y)
        call = self._fwd
        if call is None or not call.matches((logits, labels, P), ()):
            # The kernel reads dense rows: copy strided logits (a copy is made afresh
            # each time, so its call is not kept).
            src = logits
            if not (logits.flags.c_contiguous and logits.flags.aligned):
                src = logits.copy()
            call = _SoftmaxXentCall(src, labels, P)
            self._fwd = call if src is logits else None
        total = call.run()
        if n == 0:
            return float("nan")
        return total / n

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cap < 0:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        P, G, labels = self._views
        # The kernel works in place: run it on a copy, so that P stays the forward's
        # probabilities and a second backward gives the same gradient.
        np.copyto(G, P)
        call = self._bwd
        if call is None or not call.matches((G, labels), ()):
            call = self._bwd = _SoftmaxXentBackwardCall(G, labels)
        return call.run()


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    _check(logits, y)
    if len(y) == 0:
        return float("nan")
    return float(np.count_nonzero(logits.argmax(axis=1) == y)) / len(y)
