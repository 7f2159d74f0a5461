"""pydrop's own training stack (models, loss, optimizer) driven by the bench loop."""

from __future__ import annotations

from typing import Any

import numpy as np


def available() -> bool:
    import pydrop

    return all(hasattr(pydrop, n) for n in ("DropoutMLP", "Trainer"))


class PydropModelEngine:
    name = "pydrop"

    def __init__(self, params: list[np.ndarray], recipe: dict[str, Any]) -> None:
        raise NotImplementedError("written against the training stack when it lands")

    def train_step(self, X: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        raise NotImplementedError
