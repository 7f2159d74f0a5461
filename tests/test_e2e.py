"""End to end on the real Fashion-MNIST: the tutorial's recipe for 10 epochs.

Needs the data (set PYDROP_DATA; CI does) and is marked slow; each 10-epoch run
takes seconds per epoch on the SIMD kernels.
"""

from __future__ import annotations

import pytest
from idx_files import real_data_root

from pydrop import MLP, DropoutMLP, DropoutMLPScratch, FashionMNIST, Trainer

HPARAMS = {
    "num_outputs": 10,
    "num_hiddens_1": 256,
    "num_hiddens_2": 256,
    "dropout_1": 0.5,
    "dropout_2": 0.5,
    "lr": 0.1,
}


@pytest.fixture(scope="module")
def histories():
    data = FashionMNIST(batch_size=256, root=real_data_root(), seed=0)
    runs = {}
    for name, cls in (("scratch", DropoutMLPScratch), ("framework", DropoutMLP), ("plain", MLP)):
        runs[name] = Trainer(max_epochs=10, progress=False, seed=0).fit(cls(**HPARAMS), data)
    for name, h in runs.items():  # shown with -s / on failure: the numbers behind the asserts
        print(
            f"{name}: test_acc {h.val_acc[-1]:.4f} gap {h.gap[-1]:+.4f} "
            f"s/epoch {sum(h.seconds) / len(h):.2f}"
        )
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scratch", "framework"])
def test_tutorial_recipe_reaches_083(histories, name):
    h = histories[name]
    assert len(h) == 10
    assert h.val_acc[-1] >= 0.83, f"{name}: final test accuracy {h.val_acc[-1]:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scratch", "framework"])
def test_dropout_narrows_the_generalisation_gap(histories, name):
    drop, plain = histories[name].gap[-1], histories["plain"].gap[-1]
    assert drop < plain, f"{name} gap {drop:+.4f} is not below the plain MLP's {plain:+.4f}"
