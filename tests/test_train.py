"""Trainer, History and checkpoints on small generated data: learning, bit-exact
determinism (1 vs 2 threads), resume == uninterrupted, checkpoint round trips and
corruption, the progress bar, and the tutorial's client code."""

from __future__ import annotations

import functools
import io
import json
import runpy
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from idx_files import real_data_root, write_fake_dataset
from test_matmul import same_bits_on_every_isa

import pydrop
from pydrop.checkpoint import _digest, load_checkpoint, load_model, save_checkpoint
from pydrop.data import FashionMNIST
from pydrop.models import MLP, DropoutMLP, DropoutMLPScratch
from pydrop.train import History, Trainer

ROOT = Path(__file__).resolve().parents[1]
HP = {
    "num_outputs": 10,
    "num_hiddens_1": 128,
    "num_hiddens_2": 64,
    "dropout_1": 0.5,
    "dropout_2": 0.5,
    "lr": 0.5,
}


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    return root, write_fake_dataset(root, n_train=640, n_test=200)


@pytest.fixture
def data(fake):
    root, sums = fake
    return FashionMNIST(batch_size=16, root=root, download=False, seed=1, sha256=sums)


@pytest.fixture
def threads():
    before = pydrop.get_num_threads()
    yield pydrop.set_num_threads
    pydrop.set_num_threads(before)


def _weights(model):
    return model.state_dict()


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- learning and history -------------------------------------------------------------


@pytest.mark.parametrize("cls", [DropoutMLPScratch, DropoutMLP, MLP])
def test_fit_learns_and_records_history(cls, data):
    model = cls(**HP)
    trainer = Trainer(max_epochs=3, progress=False)
    history = trainer.fit(model, data)
    assert history is trainer.history and isinstance(history, History)
    assert history.epoch == [1, 2, 3] and len(history) == 3
    for key in ("train_loss", "val_loss", "val_acc", "seconds"):
        assert len(history[key]) == 3 and all(np.isfinite(history[key]))
    assert all(s > 0 for s in history.seconds)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_acc[-1] > 0.5  # the bands are learnable; chance is 0.1
    assert history.gap == [v - t for t, v in zip(history.train_loss, history.val_loss, strict=True)]
    # The tutorial calls fit twice on one trainer: each fit starts a new history.
    trainer.fit(cls(**HP), data)
    assert len(trainer.history) == 3


def test_divergence_is_reported(data):
    with pytest.raises(FloatingPointError, match="learning rate"):
        Trainer(2, progress=False).fit(MLP(**{**HP, "lr": 1e30}), data)


# -- determinism ---------------------------------------------------------------------


def _run(cls, fake, n_threads, threads, seed=5, epochs=3):
    threads(n_threads)
    root, sums = fake
    # Batches of 256 x 256 hidden units: large enough that the kernels split both the
    # GEMMs and the dropout masks over threads.
    data = FashionMNIST(batch_size=256, root=root, download=False, seed=seed, sha256=sums)
    model = cls(**{**HP, "num_hiddens_1": 256, "num_hiddens_2": 256}, seed=seed)
    history = Trainer(epochs, progress=False, seed=seed).fit(model, data)
    return model.state_dict(), history


@pytest.mark.parametrize("cls", [DropoutMLPScratch, DropoutMLP])
def test_same_seed_same_weights_with_1_and_2_threads(cls, fake, threads):
    w1, h1 = _run(cls, fake, 1, threads)
    w2, h2 = _run(cls, fake, 2, threads)
    _assert_same_state(w1, w2)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    w3, _ = _run(cls, fake, 2, threads, seed=6)
    assert not np.array_equal(w1[next(iter(w1))], w3[next(iter(w3))])


@pytest.mark.parametrize("cls", [DropoutMLPScratch, DropoutMLP])
def test_same_seed_same_weights_on_every_isa_path(cls, fake, threads):
    """Masks are a function of the counters and every SGEMM path sums in one order
    with fused multiply-adds, so a model trains to the same bits on each path."""

    def train():
        w, h = _run(cls, fake, 2, threads, epochs=2)
        return [*w.values(), np.array(h.train_loss), np.array(h.val_loss)]

    same_bits_on_every_isa(train)


# -- checkpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [DropoutMLPScratch, DropoutMLP])
def test_resume_equals_uninterrupted(cls, data, tmp_path):
    hp = {**HP, "momentum": 0.9, "weight_decay": 1e-4, "lr": 0.1}
    full = cls(**hp)
    h_full = Trainer(3, progress=False, seed=2).fit(full, data)

    ckpt = tmp_path / "run.npz"
    Trainer(2, progress=False, seed=2, checkpoint=ckpt).fit(cls(**hp), data)
    pydrop.seed(12345)  # whatever happens in between must not matter
    resumed = cls(**hp)
    h_res = Trainer(3, progress=False, seed=2).fit(resumed, data, resume=ckpt)

    _assert_same_state(full.state_dict(), resumed.state_dict())
    for key in ("epoch", "train_loss", "val_loss", "val_acc"):
        assert h_res[key] == h_full[key]


def test_save_load_gives_identical_predictions(data, tmp_path):
    model = DropoutMLP(**HP)
    trainer = Trainer(1, progress=False)
    trainer.fit(model, data)
    path = trainer.save_checkpoint(tmp_path / "sub" / "model.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.npz"]  # no temp files
    with np.load(path, allow_pickle=False) as z:  # plain arrays only, no pickle
        meta = json.loads(z["__meta__"].tobytes())
    assert meta["format"] == "pydrop-checkpoint" and meta["version"] == 1
    assert meta["model"] == "DropoutMLP" and meta["hparams"]["dropout_1"] == 0.5
    assert len(meta["sha256"]) == 64 and meta["trainer"]["epoch"] == 1
    loaded = load_model(path)
    assert type(loaded) is DropoutMLP and loaded.hparams == model.hparams
    X = data.X_val
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    m1, s1 = loaded.predict(X[:50], mc_samples=4)
    m2, s2 = model.predict(X[:50], mc_samples=4)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(s1, s2)


@pytest.fixture
def saved(tmp_path):
    model = MLP(**HP)
    model.forward(np.zeros((1, 784), dtype=np.float32))
    return save_checkpoint(tmp_path / "m.npz", model), model


def test_corrupt_checkpoint_byte_flip(saved):
    path, _ = saved
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=str(path.name)):
        load_checkpoint(path)


def test_truncated_checkpoint(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ValueError, match=str(path.name)):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"\x93NUMPY nonsense")
    with pytest.raises(ValueError, match="junk.npz"):
        load_checkpoint(path)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a pydrop checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


def _rewrite(path, edit):
    """Re-save the archive after edit(arrays) (valid zip, so only our checks remain)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_tampered_weights_fail_the_checksum(saved):
    path, _ = saved

    def edit(a):
        a["model/net.0.weight"] = a["model/net.0.weight"] * 2

    _rewrite(path, edit)
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(path)


def test_unknown_version_is_rejected(saved):
    path, _ = saved

    def edit(a):
        meta = json.loads(a["__meta__"].tobytes())
        meta["version"] = 99
        a["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    _rewrite(path, edit)
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(path)
    assert zipfile.is_zipfile(path)


def _resign(path, edit):
    """_rewrite with edit(arrays, meta), then a valid checksum again: only the checks
    after the checksum remain."""

    def signed(arrays):
        meta = json.loads(arrays.pop("__meta__").tobytes())
        edit(arrays, meta)
        meta["sha256"] = _digest(arrays, meta)
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    _rewrite(path, signed)


def test_meta_that_is_not_an_object_names_the_file(tmp_path):
    for name, meta in (("list.npz", b"[1]"), ("string.npz", b'"x"')):
        np.savez(tmp_path / name, __meta__=np.frombuffer(meta, dtype=np.uint8))
        with pytest.raises(ValueError, match=f"{name}: not a pydrop checkpoint"):
            load_checkpoint(tmp_path / name)


def test_meta_without_hparams_names_the_file(saved):
    path, _ = saved
    _resign(path, lambda arrays, meta: meta.pop("hparams"))
    with pytest.raises(ValueError, match=f"{path.name}: corrupt checkpoint metadata"):
        load_checkpoint(path)


def test_load_model_mismatch_names_file_layer_and_shapes(saved):
    path, _ = saved

    def edit(arrays, meta):
        meta["hparams"]["num_hiddens_1"] = 100

    _resign(path, edit)
    pattern = rf"{path.name}: layer 'net\.0' \(Dense\).*\(in_units, 100\).*\(784, 128\)"
    with pytest.raises(ValueError, match=pattern):
        load_model(path)


def test_load_model_rejects_a_negative_dropout_step(tmp_path):
    model = DropoutMLP(**HP)
    model.forward(np.zeros((1, 784), dtype=np.float32))
    path = save_checkpoint(tmp_path / "d.npz", model)

    def edit(arrays, meta):
        arrays["model/net.1.step"] = np.array(-1, dtype=np.int64)

    _resign(path, edit)
    with pytest.raises(ValueError, match=r"d\.npz: layer 'net\.1' \(Dropout\): step must be"):
        load_model(path)


def test_resume_refuses_another_model(saved, data):
    path, _ = saved
    with pytest.raises(ValueError, match="MLP"):
        Trainer(1, progress=False).fit(DropoutMLP(**HP), data, resume=path)


# -- progress bar ---------------------------------------------------------------------


def test_progress_bar_on_request_and_off_when_not_a_tty(data, capsys):
    pytest.importorskip("tqdm")
    Trainer(1, progress=True).fit(MLP(**HP), data)
    assert "epoch 1/1" in capsys.readouterr().err
    Trainer(1).fit(MLP(**HP), data)  # progress=None: stderr is not a terminal under pytest
    Trainer(1, progress=False).fit(MLP(**HP), data)
    assert capsys.readouterr().err == ""


def test_training_without_tqdm(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    with pytest.warns(UserWarning, match="tqdm"):
        history = Trainer(1, progress=True).fit(MLP(**HP), data)
    assert len(history) == 1


def test_epoch_log_lines(data):
    lines = []
    Trainer(2, progress=False, log=lines.append).fit(MLP(**HP), data)
    assert len(lines) == 2 and lines[1].startswith("epoch   2/2") and "val_acc" in lines[1]


# -- the tutorial's client code --------------------------------------------------------


def test_tutorial_client_runs(fake, monkeypatch, capsys):
    """examples/tutorial.py as written, on a subset for 1 epoch (real data if present)."""
    try:
        root, opts = real_data_root(), {"num_train": 2048, "num_val": 512}
    except pytest.skip.Exception:
        root, sums = fake
        opts = {"sha256": sums}
    monkeypatch.setattr(
        pydrop, "FashionMNIST", functools.partial(FashionMNIST, root=root, seed=0, **opts)
    )

    def one_epoch_trainer(*args, **kw):  # the tutorial asks for 10 epochs; a test runs 1
        return Trainer(*args, **{**kw, "max_epochs": 1, "progress": False})

    monkeypatch.setattr(pydrop, "Trainer", one_epoch_trainer)
    ns = runpy.run_path(str(ROOT / "examples" / "tutorial.py"), run_name="__main__")
    assert type(ns["model"]) is DropoutMLP
    assert len(ns["trainer"].history) == 1
    out = capsys.readouterr().out
    assert "DropoutMLPScratch:" in out and "DropoutMLP:" in out
