"""NumPy baselines: the tutorial's dropout and a NumPy MLP with a hand-written backward.

``dropout_layer`` is the tutorial's function exactly as written (float64 uniform
draws compared with ``dropout``, then ``astype(float32) * X / (1 - dropout)``).
``NumpyMLP`` is the tutorial recipe in plain NumPy: 784-256-256-10, ReLU,
dropout after each hidden layer (the tutorial's draw), softmax cross-entropy
averaged over the batch, minibatch SGD. Its matrix products go to NumPy's BLAS.
"""

from __future__ import annotations

import numpy as np


def dropout_layer(X: np.ndarray, dropout: float) -> np.ndarray:
    """The tutorial's dropout, verbatim."""
    assert 0 <= dropout <= 1
    if dropout == 1:
        return np.zeros_like(X)
    mask = np.random.uniform(0, 1, X.shape) > dropout  # noqa: NPY002 (verbatim)
    return mask.astype(np.float32) * X / (1.0 - dropout)


def dropout_layer_with_mask(X: np.ndarray, dropout: float) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's dropout, also returning the float32 mask that backward needs."""
    if dropout == 1:
        return np.zeros_like(X), np.zeros_like(X)
    mask = (np.random.uniform(0, 1, X.shape) > dropout).astype(np.float32)  # noqa: NPY002
    return mask * X / (1.0 - dropout), mask


def dropout_layer_backward(dY: np.ndarray, mask: np.ndarray, dropout: float) -> np.ndarray:
    """The gradient of the tutorial's dropout: the same mask and scale applied to dY."""
    if dropout == 1:
        return np.zeros_like(dY)
    return mask * dY / (1.0 - dropout)


class BestNumpyDropout:
    """A best-effort NumPy dropout: ``default_rng``, float32 draws, preallocated buffers."""

    def __init__(self, shape: tuple[int, ...], p: float, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.p = float(p)
        self.scale = np.float32(1.0 / (1.0 - p)) if p < 1 else np.float32(0.0)
        self.u = np.empty(shape, dtype=np.float32)
        self.keep = np.empty(shape, dtype=bool)

    def forward(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        self.rng.random(dtype=np.float32, out=self.u)
        np.greater(self.u, self.p, out=self.keep)
        np.multiply(x, self.keep, out=out)
        out *= self.scale
        return out

    def backward(self, dy: np.ndarray, out: np.ndarray) -> np.ndarray:
        np.multiply(dy, self.keep, out=out)
        out *= self.scale
        return out


def init_params(
    sizes: tuple[int, ...] = (784, 256, 256, 10), sigma: float = 0.01, seed: int = 0
) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...]: W (in, out) ~ normal(0, sigma) as float32, b = 0."""
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:], strict=True):
        params.append((rng.standard_normal((d_in, d_out)) * sigma).astype(np.float32))
        params.append(np.zeros(d_out, dtype=np.float32))
    return params


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to ``logits``."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    n = len(y)
    rows = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) - z[rows, y]))
    grad = e / s
    grad[rows, y] -= 1.0
    grad /= np.float32(n)
    return loss, grad


class NumpyMLP:
    """The tutorial's DropoutMLPScratch in NumPy, with a hand-written backward."""

    def __init__(self, params: list[np.ndarray], dropouts: tuple[float, ...], lr: float) -> None:
        self.params = [p.copy() for p in params]
        self.dropouts = dropouts
        self.lr = np.float32(lr)

    def forward(self, X: np.ndarray, training: bool) -> tuple[np.ndarray, list]:
        cache: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        H = X
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            Z = H @ W + b
            if i == n_layers - 1:
                cache.append((H, None, None))
                return Z, cache
            A = np.maximum(Z, 0)
            mask = None
            if training:
                A, mask = dropout_layer_with_mask(A, self.dropouts[i])
            cache.append((H, Z, mask))
            H = A
        raise AssertionError("unreachable")

    def train_step(self, X: np.ndarray, y: np.ndarray) -> float:
        logits, cache = self.forward(X, training=True)
        loss, dZ = softmax_cross_entropy(logits, y)
        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        for i in reversed(range(len(cache))):
            H, Z, mask = cache[i]
            if Z is not None:  # hidden layer: through dropout, then ReLU
                dZ = dropout_layer_backward(dZ, mask, self.dropouts[i])
                dZ = dZ * (Z > 0)
            W = self.params[2 * i]
            grads[2 * i] = H.T @ dZ
            grads[2 * i + 1] = dZ.sum(axis=0)
            if i > 0:
                dZ = dZ @ W.T
        for p, g in zip(self.params, grads, strict=True):
            p -= self.lr * g
        return loss

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Summed loss and the number of correct predictions on one batch."""
        logits, _ = self.forward(X, training=False)
        loss, _ = softmax_cross_entropy(logits, y)
        return loss * len(y), int(np.count_nonzero(logits.argmax(axis=1) == y))
