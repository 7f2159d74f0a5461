"""Helpers for tests: write small Fashion-MNIST-shaped IDX files, find the real data.

The fake images carry their label as a bright horizontal band (row block = label),
plus noise, so a model can learn them in an epoch; nothing here is the real data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from pydrop.data import SHA256, resolve_root

NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array (magic 0x0000080<ndim> unless given)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | a.ndim) if magic is None else magic
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return head + a.tobytes()


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, lab in enumerate(labels):
        images[i, 2 + 2 * lab : 4 + 2 * lab, 4:24] = 220
    return images, labels


def write_fake_dataset(root: Path, n_train: int = 600, n_test: int = 200) -> dict[str, str]:
    """Write the four gzip'd IDX files into root; returns their SHA-256 by name."""
    root.mkdir(parents=True, exist_ok=True)
    sums = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = fake_split(n, seed)
        for kind, arr in (("images", images), ("labels", labels)):
            name = NAMES[(split, kind)]
            blob = gzip.compress(idx_bytes(arr), mtime=0)
            (root / name).write_bytes(blob)
            sums[name] = hashlib.sha256(blob).hexdigest()
    return sums


def real_data_root() -> Path:
    """The real Fashion-MNIST directory ($PYDROP_DATA or the cache), or skip the test."""
    root = resolve_root(None)
    missing = [n for n in SHA256 if not (root / n).is_file()]
    if missing:
        pytest.skip(
            f"real Fashion-MNIST not found in {root} (PYDROP_DATA="
            f"{os.environ.get('PYDROP_DATA')!r}); set PYDROP_DATA to the directory "
            "holding the four .gz files to run this test"
        )
    return root
