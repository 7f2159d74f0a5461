"""The tutorial's models: MLP, DropoutMLPScratch, DropoutMLP.

All three take the tutorial's constructor arguments (num_outputs, num_hiddens_1,
num_hiddens_2, dropout_1, dropout_2, lr) plus keyword-only ``momentum``,
``weight_decay`` and ``seed`` (weights and dropout masks; default 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import nn
from ._ops import (
    _U64,
    _check_int,
    _check_min_int,
    _check_p,
    _check_real,
    dropout_layer,
    relu_backward,
)

__all__ = ["Classifier", "MLP", "DropoutMLPScratch", "DropoutMLP", "MODELS"]


class Classifier(nn.Module):
    """A model mapping (n, 784) images to (n, num_outputs) logits.

    Subclasses build layers in ``__init__`` and define forward/backward; this
    base adds the hyper-parameters (``hparams``, also attributes; the Trainer
    makes the SGD optimizer from lr, momentum and weight_decay) and (MC-dropout)
    prediction.
    """

    num_outputs: int
    num_hiddens_1: int
    num_hiddens_2: int
    dropout_1: float
    dropout_2: float
    lr: float
    momentum: float
    weight_decay: float
    seed: int

    def __init__(
        self,
        num_outputs: int,
        num_hiddens_1: int,
        num_hiddens_2: int,
        dropout_1: float,
        dropout_2: float,
        lr: float,
        *,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = {
            "num_outputs": _check_min_int("num_outputs", num_outputs, 1),
            "num_hiddens_1": _check_min_int("num_hiddens_1", num_hiddens_1, 1),
            "num_hiddens_2": _check_min_int("num_hiddens_2", num_hiddens_2, 1),
            "dropout_1": _check_p(dropout_1, "dropout_1"),
            "dropout_2": _check_p(dropout_2, "dropout_2"),
            "lr": _check_real("lr", lr),
            "momentum": _check_real("momentum", momentum),
            "weight_decay": _check_real("weight_decay", weight_decay),
            # < 2**64: the DropoutMLP masks' Philox key
            "seed": _check_int("seed", seed, _U64),
        }
        for k, v in self.hparams.items():
            object.__setattr__(self, k, v)

    @contextmanager
    def _mc_mode(self, sample: int) -> Iterator[None]:
        drops = [m for m in self.modules() if isinstance(m, nn.Dropout)]
        for d in drops:
            d._mc = (nn.MC_STREAM_BASE, sample)
        try:
            yield
        finally:
            for d in drops:
                d._mc = None

    def predict(
        self, X: np.ndarray, mc_samples: int | None = None, batch_size: int = 1024
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Class probabilities for X.

        Without ``mc_samples`` (None or 0): one pass in eval mode (dropout off),
        returns probs.
        With ``mc_samples=T``: T passes with dropout on (MC dropout, the tutorial's
        ensemble of thinned networks); returns ``(mean, std)`` of the T softmax
        outputs, each (n, num_outputs). Sample t uses dropout step t on streams
        offset by 2^31, so predictions are reproducible and never touch the
        training masks or step counters. (DropoutMLPScratch has no such layers: its
        dropout_layer calls draw from, and advance, pydrop's default generator.)
        The model's mode is restored afterwards.
        """
        X = nn._as_input(X)
        batch_size = _check_min_int("batch_size", batch_size, 1)
        mc_samples = 0 if mc_samples is None else _check_min_int("mc_samples", mc_samples, 0)
        was_training = self.training
        try:
            if not mc_samples:
                self.eval()
                return self._probs(X, batch_size)
            self.train()
            total = np.zeros((X.shape[0], self.num_outputs), dtype=np.float64)
            total_sq = np.zeros_like(total)
            for t in range(mc_samples):
                with self._mc_mode(t):
                    p = self._probs(X, batch_size).astype(np.float64)
                total += p
                total_sq += p * p
            mean = total / mc_samples
            std = np.sqrt(np.maximum(total_sq / mc_samples - mean * mean, 0.0))
            return mean.astype(np.float32), std.astype(np.float32)
        finally:
            self.train(was_training)

    def _probs(self, X: np.ndarray, batch_size: int) -> np.ndarray:
        out = np.empty((X.shape[0], self.num_outputs), dtype=np.float32)
        for s in range(0, X.shape[0], batch_size):
            out[s : s + batch_size] = nn.softmax(self.forward(X[s : s + batch_size]))
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams.items())


class _NetClassifier(Classifier):
    net: nn.Sequential

    def forward(self, X: np.ndarray) -> np.ndarray:
        return self.net.forward(X)

    def backward(self, dY: np.ndarray) -> np.ndarray | None:
        return self.net.backward(dY)


class MLP(_NetClassifier):
    """Dense(h1, relu) -> Dense(h2, relu) -> Dense(out): the no-dropout baseline.

    Accepts (and records, but does not use) dropout_1/dropout_2 so the tutorial's
    hparams dict works unchanged.
    """

    def __init__(
        self,
        num_outputs: int,
        num_hiddens_1: int,
        num_hiddens_2: int,
        dropout_1: float = 0.0,
        dropout_2: float = 0.0,
        lr: float = 0.1,
        **kw: Any,
    ) -> None:
        super().__init__(num_outputs, num_hiddens_1, num_hiddens_2, dropout_1, dropout_2, lr, **kw)
        # The Dense seeds of DropoutMLP (whose Dense layers sit at indices 0, 2, 4), so
        # that with one seed all three models start from the same weights.
        self.net = nn.Sequential(
            nn.Dense(num_hiddens_1, activation="relu", seed=nn.derive_seed(self.seed, 0)),
            nn.Dense(num_hiddens_2, activation="relu", seed=nn.derive_seed(self.seed, 2)),
            nn.Dense(num_outputs, seed=nn.derive_seed(self.seed, 4)),
            seed=self.seed,
        )
        self.net.input_grad = False


class DropoutMLP(_NetClassifier):
    """The tutorial's concise model, with nn.Dropout after each hidden layer."""

    def __init__(
        self,
        num_outputs: int,
        num_hiddens_1: int,
        num_hiddens_2: int,
        dropout_1: float,
        dropout_2: float,
        lr: float,
        **kw: Any,
    ) -> None:
        super().__init__(num_outputs, num_hiddens_1, num_hiddens_2, dropout_1, dropout_2, lr, **kw)
        self.net = nn.Sequential(
            nn.Dense(num_hiddens_1, activation="relu"),
            nn.Dropout(dropout_1),
            nn.Dense(num_hiddens_2, activation="relu"),
            nn.Dropout(dropout_2),
            nn.Dense(num_outputs),
            seed=self.seed,
        )
        self.net.input_grad = False


class DropoutMLPScratch(Classifier):
    """The tutorial's from-scratch model: ``pydrop.dropout_layer`` after each hidden
    layer, called only in training mode, exactly as the tutorial writes it.

    ``dropout_layer`` draws its masks from pydrop's default generator (seed it with
    ``pydrop.seed(n)``; the Trainer does when given a seed) and returns only the
    dropped array, not the mask. Backward therefore recovers the mask from that
    array: the dropped output is ``h * keep / (1-p)`` with ``h = relu(z) >= 0``, so
    it is > 0 exactly where ``keep`` and ``z > 0``. The gradient with respect to
    the pre-activation z is ``dh_dropped * keep / (1-p) * [z > 0]``, which is
    ``relu_backward(dh_dropped, h_dropped) / (1-p)``: exact, no mask needed. (A
    kept unit with h = 0 looks dropped, but its ReLU gradient is 0 either way.)
    This model allocates the two dropped arrays per step, as dropout_layer returns
    new arrays; DropoutMLP is the buffer-reusing version.
    """

    def __init__(
        self,
        num_outputs: int,
        num_hiddens_1: int,
        num_hiddens_2: int,
        dropout_1: float,
        dropout_2: float,
        lr: float,
        **kw: Any,
    ) -> None:
        super().__init__(num_outputs, num_hiddens_1, num_hiddens_2, dropout_1, dropout_2, lr, **kw)
        # The Dense seeds of DropoutMLP: one seed gives all three models the same start.
        self.lin1 = nn.Dense(num_hiddens_1, activation="relu", seed=nn.derive_seed(self.seed, 0))
        self.lin2 = nn.Dense(num_hiddens_2, activation="relu", seed=nn.derive_seed(self.seed, 2))
        self.lin3 = nn.Dense(num_outputs, seed=nn.derive_seed(self.seed, 4))
        self.lin1.input_grad = False
        self._h1: np.ndarray | None = None
        self._h2: np.ndarray | None = None

    def forward(self, X: np.ndarray) -> np.ndarray:
        H1 = self.lin1.forward(X.reshape((X.shape[0], -1)))
        if self.training:
            H1 = dropout_layer(H1, self.dropout_1)
        H2 = self.lin2.forward(H1)
        if self.training:
            H2 = dropout_layer(H2, self.dropout_2)
        self._h1, self._h2 = (H1, H2) if self.training else (None, None)
        return self.lin3.forward(H2)

    def _undo_dropout(self, dH: np.ndarray, H: np.ndarray | None, p: float, key: str):  # noqa: ANN202
        if H is None:  # eval mode: no dropout was applied
            return dH
        out = self._rows(key, dH.shape[0], dH.shape[1])
        if p >= 1.0:
            out.fill(0.0)
            return out
        relu_backward(dH, H, out=out)
        if p > 0.0:
            np.multiply(out, np.float32(1.0 / (1.0 - float(np.float32(p)))), out=out)
        return out

    def backward(self, dY: np.ndarray) -> None:
        dH2 = self.lin3.backward(dY)
        assert dH2 is not None  # lin3 and lin2 always compute their input gradient
        dH2 = self._undo_dropout(dH2, self._h2, self.dropout_2, "dh2")
        dH1 = self.lin2.backward(dH2)
        assert dH1 is not None
        dH1 = self._undo_dropout(dH1, self._h1, self.dropout_1, "dh1")
        self.lin1.backward(dH1)


MODELS: dict[str, type[Classifier]] = {
    "plain": MLP,
    "scratch": DropoutMLPScratch,
    "framework": DropoutMLP,
}
