"""pydrop's own training stack on the bench's data: DropoutMLP + Trainer, as a user runs it.

The data object hands the Trainer ``pydrop.data.DataLoader``s over the bench's
arrays with the bench's seed, so its epoch order is the same permutation the
NumPy and PyTorch loops use (``DataLoader.order``). The model's lazy Dense
layers are loaded with the shared initial weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np


class _Data:
    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        Xt: np.ndarray,
        yt: np.ndarray,
        batch_size: int,
        seed: int,
    ) -> None:
        from pydrop.data import DataLoader

        self.batch_size = batch_size
        self._train = DataLoader(X, y, batch_size, shuffle=True, seed=seed)
        self._val = DataLoader(Xt, yt, batch_size, shuffle=False)

    def train_dataloader(self) -> Any:
        return self._train

    def val_dataloader(self) -> Any:
        return self._val


def trainer_epochs(
    arrays: dict[str, Any], recipe: dict[str, Any], epochs: int, seed: int
) -> Iterator[dict[str, Any]]:
    """e2e_session's epochs for pydrop: the model and Trainer are built here, now;
    each next() of the returned generator runs ``Trainer.fit_epoch`` once."""
    import pydrop

    layers = recipe["layers"]
    model = pydrop.DropoutMLP(
        num_outputs=layers[3],
        num_hiddens_1=layers[1],
        num_hiddens_2=layers[2],
        dropout_1=recipe["dropouts"][0],
        dropout_2=recipe["dropouts"][1],
        lr=recipe["lr"],
    )
    model.eval()
    model.forward(np.zeros((1, layers[0]), dtype=np.float32))  # materialise the lazy layers
    state = model.state_dict()
    keys = [k for k in state if k.endswith((".weight", ".bias"))]
    params = arrays["params"]
    if len(keys) != len(params):
        raise RuntimeError(f"DropoutMLP has parameters {keys}; expected {len(params)}")
    for k, v in zip(keys, params, strict=True):
        if state[k].shape != v.shape:
            raise RuntimeError(f"{k}: shape {state[k].shape}, bench weights {v.shape}")
        state[k] = v
    model.load_state_dict(state)
    model.train()
    data = _Data(
        arrays["X_train"],
        arrays["y_train"],
        arrays["X_test"],
        arrays["y_test"],
        int(recipe["batch_size"]),
        seed,
    )
    trainer = pydrop.Trainer(max_epochs=epochs, progress=False, seed=seed)
    trainer.prepare(model, data)  # type: ignore[arg-type]
    return _fit_epochs(trainer, epochs, len(arrays["y_train"]))


def _fit_epochs(trainer: Any, epochs: int, examples: int) -> Iterator[dict[str, Any]]:
    for _ in range(epochs):
        t0 = time.perf_counter()
        rec = trainer.fit_epoch()
        total = time.perf_counter() - t0
        yield {
            "epoch": int(rec["epoch"]),
            "train_s": float(rec["seconds"]),
            "eval_s": total - float(rec["seconds"]),
            "train_loss": float(rec["train_loss"]),
            "val_loss": float(rec["val_loss"]),
            "val_acc": float(rec["val_acc"]),
            "examples": examples,
        }
