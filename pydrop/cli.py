"""Command line: ``pydrop train | compare | demo | info | bench`` (also ``python -m pydrop``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _ops
from .data import FashionMNIST
from .models import MODELS
from .plot import figure_class, plot_compare, plot_history
from .train import History, Trainer

__all__ = ["main"]

_TUTORIAL = {
    "num_outputs": 10,
    "num_hiddens_1": 256,
    "num_hiddens_2": 256,
    "dropout_1": 0.5,
    "dropout_2": 0.5,
    "lr": 0.1,
}


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hyper-parameters (defaults: the tutorial's recipe)")
    g.add_argument("--epochs", type=int, default=10, help="max_epochs (default 10)")
    g.add_argument("--batch-size", type=int, default=256, help="default 256")
    g.add_argument("--lr", type=float, default=_TUTORIAL["lr"], help="default 0.1")
    g.add_argument("--hidden1", type=int, default=256, help="num_hiddens_1 (default 256)")
    g.add_argument("--hidden2", type=int, default=256, help="num_hiddens_2 (default 256)")
    g.add_argument("--dropout1", type=float, default=0.5, help="dropout_1 (default 0.5)")
    g.add_argument("--dropout2", type=float, default=0.5, help="dropout_2 (default 0.5)")
    g.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="weights, masks and shuffling (default 0)")
    r.add_argument("--threads", type=int, default=None, help="kernel threads (default: cores)")
    r.add_argument(
        "--data-dir",
        default=None,
        help="Fashion-MNIST directory (default: $PYDROP_DATA, else ~/.cache/pydrop/fashion-mnist)",
    )
    r.add_argument("--no-download", action="store_true", help="never download the data")
    r.add_argument("--num-train", type=int, default=None, help="use only the first N train images")
    r.add_argument("--num-val", type=int, default=None, help="use only the first N test images")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--json", metavar="FILE", default=None, help="write config and history as JSON")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pydrop", description="Dropout training on the CPU (SIMD C kernels)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train one model on Fashion-MNIST (the tutorial's recipe)")
    t.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="framework",
        help="scratch = DropoutMLPScratch, framework = DropoutMLP, plain = MLP",
    )
    t.add_argument("--no-dropout", action="store_true", help="set both dropout rates to 0")
    _add_training_flags(t)
    t.add_argument("--plot", metavar="FILE", default=None, help="write learning curves (PNG)")
    t.add_argument("--save", metavar="FILE", default=None, help="save a checkpoint (.npz)")
    t.add_argument("--resume", metavar="FILE", default=None, help="resume from a checkpoint")
    t.add_argument(
        "--mc-samples",
        type=int,
        default=0,
        metavar="T",
        help="also report MC-dropout test accuracy averaging T dropout passes",
    )

    c = sub.add_parser("compare", help="dropout vs plain MLP; writes the gap figure")
    c.add_argument(
        "--model",
        choices=["scratch", "framework"],
        default="framework",
        help="the dropout model (default framework)",
    )
    _add_training_flags(c)
    c.add_argument(
        "--plot", metavar="FILE", default="dropout_gap.png", help="default dropout_gap.png"
    )

    d = sub.add_parser("demo", help="the tutorial's 2x8 dropout_layer check for p = 0, 0.5, 1")
    d.add_argument("--seed", type=int, default=0)

    i = sub.add_parser("info", help="version, active ISA, CPU features, threads")
    i.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("bench", help="benchmarks vs NumPy (and PyTorch); see pydrop bench -h")
    return parser


def _hparams(args: argparse.Namespace) -> dict[str, Any]:
    no_drop = getattr(args, "no_dropout", False)
    return {
        "num_outputs": 10,
        "num_hiddens_1": args.hidden1,
        "num_hiddens_2": args.hidden2,
        "dropout_1": 0.0 if no_drop else args.dropout1,
        "dropout_2": 0.0 if no_drop else args.dropout2,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
    }


def _data(args: argparse.Namespace) -> FashionMNIST:
    return FashionMNIST(
        batch_size=args.batch_size,
        root=args.data_dir,
        download=not args.no_download,
        seed=args.seed,
        num_train=args.num_train,
        num_val=args.num_val,
    )


def _run(
    name: str,
    hp: dict[str, Any],
    data: FashionMNIST,
    args: argparse.Namespace,
    resume: str | None = None,
) -> tuple[Trainer, History]:
    model = MODELS[name](**hp)
    trainer = Trainer(
        args.epochs,
        progress=False if args.no_progress else None,
        seed=args.seed,
        log=lambda line: print(f"[{name}] {line}", flush=True),
    )
    print(f"[{name}] {type(model).__name__}: {hp}", flush=True)
    history = trainer.fit(model, data, resume=resume)
    return trainer, history


def _table(rows: Sequence[tuple[str, History]]) -> str:
    head = ("model", "epochs", "train_loss", "val_loss", "gap", "test_acc", "s/epoch")
    lines = ["  ".join(f"{h:>10}" for h in head)]
    for name, h in rows:
        if not len(h):
            lines.append(f"{name:>10}  (no epochs run)")
            continue
        cells = (
            name,
            str(len(h)),
            f"{h.train_loss[-1]:.4f}",
            f"{h.val_loss[-1]:.4f}",
            f"{h.gap[-1]:+.4f}",
            f"{h.val_acc[-1]:.4f}",
            f"{float(np.mean(h.seconds)):.2f}",
        )
        lines.append("  ".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def _write_json(path: str, payload: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def _check_output(flag: str, path: str | None) -> None:
    """Fail before training, not after it, on an output path that cannot be written:
    a directory, or one below a file (missing directories are created)."""
    if not path:  # as the commands treat it: no output
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{flag} {path}: is a directory; help: give a file name")
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"{flag} {path}: {parent} is not a directory")


def _final_header(data: FashionMNIST) -> str:
    n = len(data.y_val)
    return f"final (test_acc and val_loss on {n:,} t10k images; gap = val_loss - train_loss)"


def _cmd_train(args: argparse.Namespace) -> int:
    if args.mc_samples < 0:
        raise ValueError(f"--mc-samples must be >= 0 (0: no MC dropout), got {args.mc_samples}")
    for flag, path in (("--save", args.save), ("--plot", args.plot), ("--json", args.json)):
        _check_output(flag, path)
    if args.plot:
        figure_class()
    hp = _hparams(args)
    data = _data(args)
    trainer, history = _run(args.model, hp, data, args, resume=args.resume)
    print()
    print(_final_header(data))
    print(_table([(args.model, history)]))
    mc = _mc_dropout(trainer, data, args.mc_samples) if args.mc_samples else None
    if args.save:
        trainer.save_checkpoint(args.save)
        print(f"wrote {args.save}")
    if args.json:
        _write_json(
            args.json,
            {
                "command": "train",
                "model": args.model,
                "hparams": hp,
                "batch_size": args.batch_size,
                "info": _ops.info(),
                "history": history.to_dict(),
                "mc_dropout": mc,
            },
        )
    if args.plot:
        plot_history(history, args.plot, title=f"{args.model}: {hp}")
        print(f"wrote {args.plot}")
    return 0


def _mc_dropout(trainer: Trainer, data: FashionMNIST, samples: int) -> dict[str, float]:
    """Test accuracy of the mean of ``samples`` dropout-on predictions (MC dropout)."""
    assert trainer.model is not None
    mean, std = trainer.model.predict(data.X_val, mc_samples=samples)
    acc = float(np.mean(mean.argmax(axis=1) == data.y_val))
    spread = float(np.mean(std.max(axis=1)))
    print(f"MC dropout, {samples} samples: test_acc {acc:.4f}, mean max-class std {spread:.4f}")
    return {"samples": samples, "test_acc": acc, "mean_max_std": spread}


def _cmd_compare(args: argparse.Namespace) -> int:
    for flag, path in (("--plot", args.plot), ("--json", args.json)):
        _check_output(flag, path)
    figure_class()
    hp = _hparams(args)
    data = _data(args)
    _, h_drop = _run(args.model, hp, data, args)
    _, h_plain = _run("plain", {**hp, "dropout_1": 0.0, "dropout_2": 0.0}, data, args)
    print()
    print(_final_header(data))
    print(_table([(args.model, h_drop), ("plain", h_plain)]))
    if args.json:
        _write_json(
            args.json,
            {
                "command": "compare",
                "hparams": hp,
                "info": _ops.info(),
                "history": {args.model: h_drop.to_dict(), "plain": h_plain.to_dict()},
            },
        )
    plot_compare({f"dropout ({args.model})": h_drop, "no dropout (plain)": h_plain}, args.plot)
    print(f"wrote {args.plot}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    _ops.seed(args.seed)
    X = np.arange(16, dtype=np.float32).reshape((2, 8))
    with np.printoptions(precision=1, suppress=True):
        print("X:\n", X)
        for p in (0.0, 0.5, 1.0):
            print(f"dropout_layer(X, {p}):\n", _ops.dropout_layer(X, p))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    info = _ops.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{width}}  {', '.join(map(str, v)) if isinstance(v, list) else v}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from . import bench  # lazy: the benchmark suite is heavier than the CLI

        return int(bench.main(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            _ops.set_num_threads(args.threads)
        handler = {
            "train": _cmd_train,
            "compare": _cmd_compare,
            "demo": _cmd_demo,
            "info": _cmd_info,
        }[args.command]
        return handler(args)
    except (OSError, ValueError, TypeError, ImportError, FloatingPointError) as e:
        print(f"pydrop {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
