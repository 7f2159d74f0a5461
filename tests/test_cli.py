"""Command-line smoke tests: info, demo, bench dispatch, errors, train and compare."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from idx_files import real_data_root, write_fake_dataset

import pydrop
import pydrop.data
from pydrop import cli
from pydrop.checkpoint import load_checkpoint


def test_info_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "pydrop", "info", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    info = json.loads(out)
    assert info["isa"] == pydrop.info()["isa"] and info["version"] == pydrop.__version__


def test_info_text(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "isa" in out and "num_threads" in out


def test_demo_is_the_tutorial_check(capsys):
    assert cli.main(["demo", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "dropout_layer(X, 0.0)" in out and "dropout_layer(X, 1.0)" in out
    assert "[ 8.  9. 10. 11. 12. 13. 14. 15.]" in out  # p = 0 is the identity


def test_bench_is_dispatched_lazily(monkeypatch):
    import pydrop.bench

    seen = []
    monkeypatch.setattr(pydrop.bench, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "-x"]) == 0
    assert seen == [["--quick", "-x"]]


def test_missing_data_is_a_clean_error(tmp_path, capsys):
    code = cli.main(["train", "--data-dir", str(tmp_path / "none"), "--no-download"])
    assert code == 2
    err = capsys.readouterr().err
    assert "PYDROP_DATA" in err and "Traceback" not in err


def test_bad_flag_values(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "resnet"])
    code = cli.main(["train", "--dropout1", "1.5", "--data-dir", str(tmp_path), "--no-download"])
    assert code == 2


@pytest.mark.parametrize(
    "command,flag",
    [("train", "--save"), ("train", "--json"), ("train", "--plot"), ("compare", "--plot")],
)
def test_unwritable_output_path_is_rejected_before_training(tmp_path, command, flag):
    """Checked before the data are even looked for (there are none here)."""
    (tmp_path / "file").write_text("")
    missing = ["--data-dir", str(tmp_path / "none"), "--no-download"]
    for path, why in ((tmp_path, "is a directory"), (tmp_path / "file" / "x", "not a directory")):
        run = subprocess.run(
            [sys.executable, "-m", "pydrop", command, *missing, flag, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2
        assert f"pydrop {command}: error: {flag} {path}" in run.stderr and why in run.stderr
        assert "Traceback" not in run.stderr and "PYDROP_DATA" not in run.stderr


@pytest.mark.parametrize("command", ["train", "compare"])
def test_missing_matplotlib_is_reported_before_training(
    fake_data, tmp_path, capsys, monkeypatch, command
):
    """A figure needs matplotlib: without it the command fails before it trains (compare
    always draws one; train with --plot)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)

    def trains(*args, **kwargs):
        raise AssertionError("trained before checking for matplotlib")

    monkeypatch.setattr(cli, "_run", trains)
    code = cli.main([command, *fake_data, "--plot", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 2 and f"pydrop {command}: error: plotting needs matplotlib" in err
    assert "pip install" in err and "Traceback" not in err


def test_negative_mc_samples_is_rejected_before_training(tmp_path, capsys):
    code = cli.main(["train", "--data-dir", str(tmp_path), "--no-download", "--mc-samples", "-2"])
    err = capsys.readouterr().err
    assert code == 2 and "--mc-samples must be >= 0" in err and "PYDROP_DATA" not in err


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    """Small generated IDX files, which the CLI's FashionMNIST takes for the real ones."""
    root = tmp_path / "fmnist"
    monkeypatch.setattr(pydrop.data, "SHA256", write_fake_dataset(root, 64, 32))
    return ["--data-dir", str(root), "--no-download", "--no-progress", "--batch-size", "16"]


def test_resume_with_another_momentum_is_a_clean_error(fake_data, tmp_path, capsys):
    ckpt = tmp_path / "m.npz"
    small = [*fake_data, "--hidden1", "16", "--hidden2", "8"]
    assert cli.main(["train", *small, "--epochs", "1", "--save", str(ckpt)]) == 0
    capsys.readouterr()
    code = cli.main(["train", *small, "--epochs", "2", "--resume", str(ckpt), "--momentum", "0.9"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("pydrop train: error: ") and "momentum" in err
    assert "Traceback" not in err


def test_failing_to_save_is_a_clean_error(fake_data, tmp_path, capsys, monkeypatch):
    def no_space(self, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(cli.Trainer, "save_checkpoint", no_space)
    ckpt = tmp_path / "m.npz"
    code = cli.main(["train", *fake_data, "--epochs", "1", "--save", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 2 and f"pydrop train: error: [Errno 28] No space left on device: '{ckpt}'" in err


def test_train_writes_table_plot_checkpoint_json(tmp_path, capsys, restore_threads):
    root = real_data_root()
    png, ckpt, js = tmp_path / "curves.png", tmp_path / "m.npz", tmp_path / "run.json"
    args = [
        "train",
        "--model",
        "scratch",
        "--epochs",
        "2",
        "--num-train",
        "2048",
        "--num-val",
        "512",
        "--threads",
        "1",
        "--data-dir",
        str(root),
        "--json",
        str(js),
        "--save",
        str(ckpt),
        "--seed",
        "4",
        "--momentum",
        "0.5",
        "--weight-decay",
        "1e-4",
    ]
    if _has_matplotlib():
        args += ["--plot", str(png)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "epoch   2/2" in out and "test_acc" in out
    assert any(line.split()[:2] == ["scratch", "2"] for line in out.splitlines())  # the table
    record = json.loads(js.read_text())
    assert record["hparams"]["momentum"] == 0.5 and len(record["history"]["val_acc"]) == 2
    assert pydrop.get_num_threads() == 1
    meta = load_checkpoint(ckpt).meta
    assert meta["model"] == "DropoutMLPScratch" and meta["trainer"]["epoch"] == 2
    if _has_matplotlib():
        assert png.read_bytes().startswith(b"\x89PNG")
    # --resume continues the saved run to --epochs.
    assert cli.main([*args[:4], "3", *args[5:], "--resume", str(ckpt)]) == 0
    assert len(json.loads(js.read_text())["history"]["epoch"]) == 3


def test_no_dropout_and_compare(tmp_path, capsys):
    root = real_data_root()
    small = ["--epochs", "1", "--num-train", "1024", "--num-val", "256", "--data-dir", str(root)]
    js = tmp_path / "t.json"
    assert cli.main(["train", "--no-dropout", *small, "--json", str(js)]) == 0
    hp = json.loads(js.read_text())["hparams"]
    assert hp["dropout_1"] == hp["dropout_2"] == 0.0
    assert cli.main(["train", *small, "--mc-samples", "3", "--json", str(js)]) == 0
    mc = json.loads(js.read_text())["mc_dropout"]
    assert mc["samples"] == 3 and 0.0 < mc["test_acc"] <= 1.0 and mc["mean_max_std"] > 0
    assert "MC dropout, 3 samples" in capsys.readouterr().out
    if not _has_matplotlib():
        pytest.skip("compare writes a figure: needs matplotlib")
    gap = tmp_path / "gap.png"
    assert cli.main(["compare", *small, "--plot", str(gap), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "framework" in out and "plain" in out and gap.read_bytes().startswith(b"\x89PNG")
    hist = json.loads(js.read_text())["history"]
    assert set(hist) == {"framework", "plain"}
    assert np.isfinite(hist["plain"]["val_loss"]).all()


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
