"""Learning-curve figures (the optional extra ``pydrop[plot]``: matplotlib).

matplotlib is imported only when a figure is drawn, and only its object API
(``matplotlib.figure.Figure``) is used, so no GUI backend or pyplot state is
involved and the functions work headless.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .train import History

__all__ = ["plot_history", "plot_compare"]


def figure_class() -> Any:
    """matplotlib's Figure, or an ImportError that says how to install it (the CLI
    calls this before training, so a missing matplotlib does not cost a run)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib, which is not installed; "
            "help: pip install 'pydrop[plot]' (or pip install matplotlib)"
        ) from None
    return Figure


def _figure(**kw: Any) -> Any:
    return figure_class()(**kw)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_history(history: History, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Train loss, val loss (left axis) and val accuracy (right panel) per epoch."""
    fig = _figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(history.epoch, history.train_loss, "o-", label="train loss")
    ax_loss.plot(history.epoch, history.val_loss, "s--", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_acc.plot(history.epoch, history.val_acc, "o-", color="tab:green", label="val acc")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    ax_acc.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_compare(histories: Mapping[str, History], path: str | os.PathLike[str]) -> Path:
    """Dropout vs no dropout on one figure: the losses of each run (train solid, val
    dashed), their generalisation gap (val - train loss) and their val accuracy."""
    fig = _figure(figsize=(15, 4))
    ax_loss, ax_gap, ax_acc = fig.subplots(1, 3)
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i}"
        ax_loss.plot(h.epoch, h.train_loss, "-", color=color, label=f"{name}: train")
        ax_loss.plot(h.epoch, h.val_loss, "--", color=color, label=f"{name}: val")
        ax_gap.plot(h.epoch, h.gap, "o-", color=color, label=name)
        ax_acc.plot(h.epoch, h.val_acc, "o-", color=color, label=name)
    ax_loss.set_title("loss")
    ax_gap.set_title("generalisation gap (val loss - train loss)")
    ax_gap.axhline(0.0, color="gray", lw=0.8)
    ax_acc.set_title("val accuracy")
    for ax in (ax_loss, ax_gap, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)
