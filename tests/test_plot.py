"""Figures: learning curves and the dropout-vs-plain gap figure (matplotlib extra)."""

from __future__ import annotations

import sys

import pytest

from pydrop.plot import plot_compare, plot_history
from pydrop.train import History

PNG = b"\x89PNG\r\n\x1a\n"


def _history(offset: float) -> History:
    h = History()
    for e in range(1, 6):
        h.append(
            epoch=e,
            train_loss=1.0 / e,
            val_loss=1.0 / e + offset * e,
            val_acc=0.7 + 0.02 * e,
            seconds=1.0,
        )
    return h


def test_learning_curves_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_history(_history(0.01), tmp_path / "out" / "curves.png", title="t")
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000


def test_gap_figure_png(tmp_path):
    pytest.importorskip("matplotlib")
    histories = {"dropout": _history(0.0), "plain": _history(0.05)}
    path = plot_compare(histories, tmp_path / "gap.png")
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pydrop\[plot\]"):
        plot_history(_history(0.0), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
