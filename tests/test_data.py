"""Fashion-MNIST loader: resolution, parsing, batching, the corrupt-file matrix, and
downloads through a local HTTP server (never the internet)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idx_files import NAMES, fake_split, idx_bytes, real_data_root, write_fake_dataset

from pydrop.data import SHA256, DataLoader, FashionMNIST, download_file, resolve_root

# -- resolution -------------------------------------------------------------------


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYDROP_DATA", raising=False)
    assert resolve_root() == tmp_path / "home" / ".cache" / "pydrop" / "fashion-mnist"
    monkeypatch.setenv("PYDROP_DATA", str(tmp_path / "env"))
    assert resolve_root() == tmp_path / "env"
    assert resolve_root(tmp_path / "arg") == tmp_path / "arg"


def test_relative_paths_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYDROP_DATA", "../shared/data")
    assert resolve_root() == (tmp_path.parent / "shared" / "data")
    assert resolve_root("rel") == tmp_path / "rel"


# -- parsing and batching -----------------------------------------------------------


@pytest.fixture
def fake(tmp_path):
    root = tmp_path / "fmnist"
    return root, write_fake_dataset(root)


def test_loads_generated_files(fake):
    root, sums = fake
    data = FashionMNIST(batch_size=64, root=root, download=False, seed=3, sha256=sums)
    assert data.X_train.shape == (600, 784) and data.X_train.dtype == np.float32
    assert data.X_val.shape == (200, 784)
    images, labels = fake_split(600, 1)
    np.testing.assert_allclose(data.X_train, images.reshape(600, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train, labels)
    assert 0.0 <= data.X_train.min() and data.X_train.max() <= 1.0
    assert data.text_labels([0, 9]) == ["t-shirt", "ankle boot"]
    assert not data.X_train.flags.writeable  # batches cannot corrupt the dataset


def test_train_batches_cover_each_example_once_and_reshuffle(fake):
    root, sums = fake
    data = FashionMNIST(batch_size=64, root=root, download=False, seed=3, sha256=sums)
    loader = data.train_dataloader()
    assert len(loader) == 10  # ceil(600 / 64)
    seen = []
    for X, y in loader:
        assert X.dtype == np.float32 and X.shape[1] == 784 and len(X) == len(y) <= 64
        seen.append(y.copy())
    epoch0 = np.concatenate(seen)
    epoch1 = np.concatenate([y.copy() for _, y in loader])
    assert sorted(epoch0) == sorted(data.y_train) == sorted(epoch1)
    assert not np.array_equal(epoch0, epoch1)  # a new order every epoch
    np.testing.assert_array_equal(loader.order(0), loader.order(0))
    other = FashionMNIST(batch_size=64, root=root, download=False, seed=4, sha256=sums)
    assert not np.array_equal(other.train_dataloader().order(0), loader.order(0))


def test_reused_buffers_give_the_same_batches(fake):
    root, sums = fake
    data = FashionMNIST(batch_size=64, root=root, download=False, seed=5, sha256=sums)
    fresh = DataLoader(data.X_train, data.y_train, 64, shuffle=True, seed=5)
    reuse = DataLoader(data.X_train, data.y_train, 64, shuffle=True, seed=5, reuse_buffers=True)
    ptrs, full = set(), []
    for (Xa, ya), (Xb, yb) in zip(fresh, reuse, strict=True):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
        ptrs.add(Xb.__array_interface__["data"][0])
        if len(yb) == 64:
            full.append((Xb, yb))
    assert len(ptrs) == 1  # every batch landed in the same buffer
    # full batches are the very same objects (a layer's checked call is kept for them)
    assert len(full) > 2 and all(x is full[0][0] and y is full[0][1] for x, y in full)


def test_val_batches_in_file_order(fake):
    root, sums = fake
    data = FashionMNIST(batch_size=64, root=root, download=False, sha256=sums)
    ys = np.concatenate([y for _, y in data.val_dataloader()])
    np.testing.assert_array_equal(ys, data.y_val)


def test_subset(fake):
    root, sums = fake
    data = FashionMNIST(root=root, download=False, sha256=sums, num_train=100, num_val=50)
    assert (data.num_train, data.num_val) == (100, 50)


# -- the corrupt-file matrix --------------------------------------------------------


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def _corrupt(case: str, root: Path) -> tuple[str, str]:
    """Damage one file; returns (file name, expected message fragment)."""
    img, lab = NAMES[("train", "images")], NAMES[("train", "labels")]
    images, labels = fake_split(600, 1)
    if case == "checksum":
        blob = bytearray((root / img).read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        (root / img).write_bytes(bytes(blob))
        return img, "bad checksum"
    if case == "gzip":
        (root / img).write_bytes(b"this is not gzip data at all")
        return img, "bad gzip"
    if case == "gzip-cut":
        blob = (root / img).read_bytes()
        (root / img).write_bytes(blob[: len(blob) // 2])
        return img, "bad gzip"
    if case == "magic":
        (root / img).write_bytes(_gz(idx_bytes(images, magic=0x0803 + 0x100)))
        return img, "magic"
    if case == "truncated":
        (root / img).write_bytes(_gz(idx_bytes(images)[:-100]))
        return img, "truncated"
    if case == "count":
        (root / lab).write_bytes(_gz(idx_bytes(labels[:-1])))
        return lab, "counts must match"
    if case == "labels":
        bad = labels.copy()
        bad[17] = 10
        (root / lab).write_bytes(_gz(idx_bytes(bad)))
        return lab, "outside 0..9"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["checksum", "gzip", "gzip-cut", "magic", "truncated", "count", "labels"]
)
def test_corrupt_files_raise_value_error_naming_the_file(case, fake):
    root, sums = fake
    name, fragment = _corrupt(case, root)
    if case != "checksum":  # accept the damaged bytes so the parser is what complains
        sums[name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=fragment) as err:
        FashionMNIST(root=root, download=False, sha256=sums)
    assert name in str(err.value)


def test_builtin_checksums_reject_other_files(fake):
    root, _ = fake  # fake files under the real names: the embedded SHA-256 must refuse them
    with pytest.raises(ValueError, match="bad checksum"):
        FashionMNIST(root=root, download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(root=tmp_path / "nothing", download=False)
    msg = str(err.value)
    assert str(tmp_path / "nothing") in msg and "PYDROP_DATA" in msg
    assert "train-images-idx3-ubyte.gz" in msg


# -- downloads through a local server ---------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_Quiet, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port_url() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/"


def test_download_via_local_mirror_with_fallback(server, tmp_path):
    www, url = server
    sums = write_fake_dataset(www / "good")
    (www / "bad").mkdir()
    for name in sums:  # a mirror serving wrong bytes under the right names
        (www / "bad" / name).write_bytes(b"garbage")
    dest = tmp_path / "cache"
    mirrors = [_closed_port_url(), f"{url}/missing/", f"{url}/bad/", f"{url}/good/"]
    data = FashionMNIST(root=dest, seed=0, mirrors=mirrors, sha256=sums)
    assert data.num_train == 600
    assert sorted(p.name for p in dest.iterdir()) == sorted(sums)  # no temp files left
    for name, digest in sums.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest
    # Second construction finds the files and does not download again.
    FashionMNIST(root=dest, mirrors=[_closed_port_url()], sha256=sums)


def test_bad_mirror_leaves_no_partial_file(server, tmp_path):
    www, url = server
    sums = write_fake_dataset(www / "good")
    name = NAMES[("train", "images")]
    blob = (www / "good" / name).read_bytes()
    (www / "half").mkdir()
    (www / "half" / name).write_bytes(blob[: len(blob) // 2])
    dest = tmp_path / "cache"
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        download_file(name, dest, sums[name], [f"{url}/half/"])
    assert list(dest.iterdir()) == []


def test_offline_error_says_where_to_put_the_files(tmp_path):
    dest = tmp_path / "cache"
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(root=dest, mirrors=[_closed_port_url()])
    msg = str(err.value)
    assert "PYDROP_DATA" in msg and str(dest) in msg and "downloading failed" in msg
    assert not any(dest.iterdir())


# -- the real data, when present ----------------------------------------------------


def test_real_data():
    root = real_data_root()
    data = FashionMNIST(root=root, seed=0)
    assert (data.num_train, data.num_val) == (60000, 10000)
    assert data.X_train.shape == (60000, 784)
    # The dataset README's mean of the train pixels scaled to [0, 1].
    assert abs(float(data.X_train.mean(dtype=np.float64)) - 0.2860405969887955) < 1e-6
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert set(SHA256) <= {p.name for p in root.iterdir()}


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 70),
    batch=st.integers(1, 80),
    seed=st.integers(0, 2**63 - 1),
    reuse=st.booleans(),
)
def test_loader_partitions_every_epoch(n, batch, seed, reuse):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    loader = DataLoader(X, y, batch, shuffle=True, seed=seed, reuse_buffers=reuse)
    assert len(loader) == -(-n // batch)
    for epoch in range(2):
        got = [(Xb.copy(), yb.copy()) for Xb, yb in loader]
        assert len(got) == len(loader) and all(len(yb) <= batch for _, yb in got)
        ys = np.concatenate([yb for _, yb in got]) if got else np.zeros(0, np.int64)
        np.testing.assert_array_equal(np.sort(ys), y)  # every example exactly once
        np.testing.assert_array_equal(ys, loader.order(epoch))
        for Xb, yb in got:  # rows travel with their labels
            np.testing.assert_array_equal(Xb[:, 0], yb * 3)
