"""End to end: the tutorial recipe trained by pydrop, NumPy and PyTorch.

Recipe: 784-256-256-10 MLP, ReLU, dropout 0.5 after each hidden layer, softmax
cross-entropy, minibatch SGD with lr 0.1, batch 256, weights normal(0, 0.01) and
zero biases. Every implementation starts from the same weights (made by the
parent process) and visits the examples in the same order: epoch ``e`` uses the
permutation ``default_rng(SeedSequence([seed, e])).permutation(n)``, the rule of
``pydrop.data.DataLoader.order``. Only the dropout masks differ (each library
draws its own). Batches are gathered with ``np.take`` into one reused buffer for
every implementation. Eval runs the test split in order, batch 256, no dropout.

Per epoch we record the training time, the evaluation time, the mean training
loss and the test loss and accuracy; the worker adds the process's peak RSS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

RECIPE: dict[str, Any] = {
    "layers": [784, 256, 256, 10],
    "dropouts": [0.5, 0.5],
    "lr": 0.1,
    "batch_size": 256,
    "init_sigma": 0.01,
}


class Engine(Protocol):
    def train_step(self, X: np.ndarray, y: np.ndarray) -> float: ...
    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]: ...


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(n)


def load_arrays(data_dir: str) -> dict[str, Any]:
    d = Path(data_dir)
    arrays = {k: np.load(d / f"{k}.npy") for k in ("X_train", "y_train", "X_test", "y_test")}
    with np.load(d / "params.npz") as z:
        n = len(z.files)
        arrays["params"] = [z[f"arr_{i}"] for i in range(n)]
    return arrays


# --------------------------------------------------------------------------- engines


class _NumpyEngine:
    name = "numpy"

    def __init__(self, params: list[np.ndarray], recipe: dict[str, Any]) -> None:
        from .reference import NumpyMLP

        self.model = NumpyMLP(params, tuple(recipe["dropouts"]), recipe["lr"])

    def train_step(self, X: np.ndarray, y: np.ndarray) -> float:
        return self.model.train_step(X, y)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        return self.model.evaluate(X, y)


class _TorchEngine:
    """``nn.Sequential`` + ``CrossEntropyLoss`` + ``optim.SGD``, as the tutorial writes it."""

    name = "torch"

    def __init__(self, params: list[np.ndarray], recipe: dict[str, Any]) -> None:
        import torch
        from torch import nn

        self.torch = torch
        layers: list[nn.Module] = []
        n_layers = len(params) // 2
        for i in range(n_layers):
            W, b = params[2 * i], params[2 * i + 1]
            lin = nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if i < n_layers - 1:
                layers += [nn.ReLU(), nn.Dropout(recipe["dropouts"][i])]
        self.net = nn.Sequential(*layers)
        self.loss = nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=recipe["lr"])

    def train_step(self, X: np.ndarray, y: np.ndarray) -> float:
        self.net.train()
        out = self.net(self.torch.from_numpy(X))
        loss = self.loss(out, self.torch.from_numpy(y))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        torch = self.torch
        self.net.eval()
        with torch.no_grad():
            out = self.net(torch.from_numpy(X))
            yt = torch.from_numpy(y)
            loss = float(self.loss(out, yt)) * len(y)
            correct = int((out.argmax(dim=1) == yt).sum())
        return loss, correct


class _PydropOpsEngine:
    """The recipe written directly on pydrop's array ops (matmul, relu, dropout).

    This is what a user writes with pydrop's ops and a hand-written backward; the
    bias add, softmax and SGD update are NumPy.
    """

    name = "pydrop ops loop"

    def __init__(self, params: list[np.ndarray], recipe: dict[str, Any]) -> None:
        import pydrop

        from .reference import softmax_cross_entropy

        self.pd = pydrop
        self.sce = softmax_cross_entropy
        self.params = [p.copy() for p in params]
        self.dropouts = list(recipe["dropouts"])
        self.lr = np.float32(recipe["lr"])
        self.n_layers = len(params) // 2

    def _forward(self, X: np.ndarray, training: bool) -> tuple[np.ndarray, list[Any]]:
        pd = self.pd
        cache: list[Any] = []
        H = X
        for i in range(self.n_layers):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            Z = pd.matmul(H, W)
            Z += b
            if i == self.n_layers - 1:
                cache.append((H, None, None))
                return Z, cache
            A = pd.relu(Z)
            mask = None
            if training:
                A, mask = pd.dropout(A, self.dropouts[i], out=A, return_mask=True)
            cache.append((H, Z, mask))
            H = A
        raise AssertionError("unreachable")

    def train_step(self, X: np.ndarray, y: np.ndarray) -> float:
        pd = self.pd
        logits, cache = self._forward(X, True)
        loss, dZ = self.sce(logits, y)
        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        for i in reversed(range(self.n_layers)):
            H, Z, mask = cache[i]
            if Z is not None:
                dZ = pd.dropout_backward(dZ, mask, self.dropouts[i], out=dZ)
                dZ = pd.relu_backward(dZ, Z)
            W = self.params[2 * i]
            grads[2 * i] = pd.matmul(H.T, dZ)
            grads[2 * i + 1] = dZ.sum(axis=0)
            if i > 0:
                dZ = pd.matmul(dZ, W.T)
        for p, g in zip(self.params, grads, strict=True):
            g *= self.lr
            p -= g
        return loss

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        logits, _ = self._forward(X, False)
        loss, _ = self.sce(logits, y)
        return loss * len(y), int(np.count_nonzero(logits.argmax(axis=1) == y))


ENGINES: dict[str, Callable[[list[np.ndarray], dict[str, Any]], Engine]] = {
    "numpy": _NumpyEngine,
    "torch": _TorchEngine,
    "pydrop-ops": _PydropOpsEngine,
}


def make_engine(impl: str, params: list[np.ndarray], recipe: dict[str, Any]) -> Engine:
    return ENGINES[impl](params, recipe)


# --------------------------------------------------------------------------- loop


def e2e_session(lib: str, spec: dict[str, Any]) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """(head, epochs) of one training run, set up but not started: head holds the
    implementation's name and batches per epoch; each next(epochs) trains and
    evaluates one epoch and yields its record. Everything is loaded and built here,
    so the epochs can be driven one at a time (the suite's round-robin runs)."""
    e2e = spec["e2e"]
    recipe = {**RECIPE, **e2e.get("recipe", {})}
    arrays = load_arrays(e2e["data_dir"])
    n_epochs, seed = int(e2e["epochs"]), int(e2e["seed"])
    n_batches = -(-len(arrays["y_train"]) // int(recipe["batch_size"]))
    impl = spec.get("impl") or lib
    if impl == "pydrop":
        from .pydrop_model import trainer_epochs

        head = {"impl": "pydrop Trainer", "batches_per_epoch": n_batches}
        return head, trainer_epochs(arrays, recipe, n_epochs, seed)
    engine = make_engine(impl, arrays["params"], recipe)
    head = {"impl": getattr(engine, "name", impl), "batches_per_epoch": n_batches}
    return head, _engine_epochs(engine, arrays, int(recipe["batch_size"]), n_epochs, seed)


def _engine_epochs(
    engine: Engine, arrays: dict[str, np.ndarray], bs: int, n_epochs: int, seed: int
) -> Iterator[dict[str, Any]]:
    X, y = arrays["X_train"], arrays["y_train"]
    Xt, yt = arrays["X_test"], arrays["y_test"]
    n = len(y)
    n_batches = -(-n // bs)
    xbuf = np.empty((bs, X.shape[1]), dtype=np.float32)
    ybuf = np.empty(bs, dtype=np.int64)
    for epoch in range(n_epochs):
        order = epoch_order(seed, epoch, n)
        t0 = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for b in range(n_batches):
            sel = order[b * bs : (b + 1) * bs]
            xb, yb = xbuf[: len(sel)], ybuf[: len(sel)]
            np.take(X, sel, axis=0, out=xb)
            np.take(y, sel, out=yb)
            loss_sum += engine.train_step(xb, yb) * len(sel)
            seen += len(sel)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        val_loss, correct = 0.0, 0
        for s in range(0, len(yt), bs):
            vl, c = engine.evaluate(Xt[s : s + bs], yt[s : s + bs])
            val_loss += vl
            correct += c
        eval_s = time.perf_counter() - t0
        yield {
            "epoch": epoch + 1,
            "train_s": train_s,
            "eval_s": eval_s,
            "train_loss": loss_sum / max(seen, 1),
            "val_loss": val_loss / max(len(yt), 1),
            "val_acc": correct / max(len(yt), 1),
            "examples": seen,
        }


def run_e2e(lib: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The whole training run in one go: e2e_session's head plus every epoch."""
    head, epochs = e2e_session(lib, spec)
    return {**head, "epochs": list(epochs)}
