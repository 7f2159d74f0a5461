"""``pydrop bench``: pydrop against NumPy and PyTorch, per kernel and per training epoch.

Usage (the CLI calls :func:`main` with the arguments after ``bench``)::

    pydrop bench [--quick] [--threads 1,2] [--isa scalar,avx2,avx512,zen4] [--epochs N]
                 [--out DIR] [--json FILE] [--markdown FILE] [--plots DIR]

Every library, and every pydrop ISA path, is measured in its own process with its
thread pools pinned (see ``pydrop.bench.worker``); the markdown table goes to
stdout and progress to stderr. Nothing here is imported by ``import pydrop``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from .report import ISAS

__all__ = ["main", "run"]

SCHEMA = "pydrop-bench/1"


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def _isa_list(text: str) -> list[str]:
    vals = [t.strip() for t in text.split(",") if t.strip()]
    bad = [v for v in vals if v not in ISAS]
    if bad or not vals:
        raise argparse.ArgumentTypeError(f"ISAs are {', '.join(ISAS)}; got {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pydrop bench",
        description="Measure pydrop against NumPy and PyTorch (when installed): kernels "
        "(dropout, ReLU, matmul, fused linear) per ISA path and thread count, and "
        "training epochs of the tutorial recipe. Speed-ups are peer time / pydrop time.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, short runs (< 60 s)")
    p.add_argument(
        "--threads",
        type=_int_list,
        default=None,
        metavar="N[,N]",
        help="thread counts to measure (default: 1 and the usable cores)",
    )
    p.add_argument(
        "--isa",
        type=_isa_list,
        default=list(ISAS),
        metavar="ISA[,ISA]",
        help="pydrop ISA paths to measure (default: all; unsupported ones are reported as such)",
    )
    p.add_argument(
        "--only",
        choices=("kernels", "e2e"),
        default=None,
        help="run only the kernel or only the end-to-end part",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs per run (default 10; 1 with --quick)",
    )
    p.add_argument(
        "--batches",
        type=int,
        default=None,
        help="limit training batches per epoch (default all; 10 with --quick)",
    )
    p.add_argument(
        "--eval-examples",
        type=int,
        default=None,
        help="evaluate on the first N test examples (default all 10000; 2560 with --quick)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="Fashion-MNIST directory (default $PYDROP_DATA, then "
        "~/.cache/pydrop/fashion-mnist); synthetic data if missing",
    )
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="download Fashion-MNIST when missing (default: yes, no with --quick)",
    )
    p.add_argument("--no-torch", action="store_true", help="do not measure PyTorch")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7; 3 quick)")
    p.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds per repeat, at least (default 0.05; 0.005 quick)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for data order and weights")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write bench.json, bench.md and the PNG figures into this directory",
    )
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the JSON here")
    p.add_argument(
        "--markdown", type=Path, default=None, metavar="FILE", help="write the markdown report here"
    )
    p.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the PNG figures here (needs matplotlib)",
    )
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="measure nothing: re-render the markdown and figures of a saved bench.json",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def _pydrop_isas(requested: list[str]) -> tuple[str, dict[str, str]]:
    """(default ISA, {isa: "run" | reason}) for every path."""
    import pydrop

    supported = set(pydrop.supported_isas())
    default = pydrop.get_isa()
    plan = {}
    for isa in ISAS:
        if isa not in supported:
            plan[isa] = "not supported on this CPU"
        elif isa not in requested:
            plan[isa] = "skipped (--isa)"
        else:
            plan[isa] = "run"
    return default, plan


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite described by parsed ``args``; the report dict (see docs)."""
    import pydrop

    from . import kernels as K
    from .e2e import RECIPE
    from .machine import machine_info, usable_cpus
    from .runner import prepare_e2e_data, run_round_robin, run_worker, tempdir

    log = open(os.devnull, "w") if args.quiet else sys.stderr  # noqa: SIM115
    quick = args.quick
    threads = args.threads or sorted({1, usable_cpus()})
    timing = {
        "repeats": args.repeats or (3 if quick else 7),
        "min_time": args.min_time or (0.005 if quick else 0.05),
        "warmup": 1,
        "max_total": 1.0 if quick else 4.0,
    }
    epochs = args.epochs or (1 if quick else 10)
    batches = args.batches or (10 if quick else None)
    eval_examples = args.eval_examples or (2560 if quick else None)
    download = args.download if args.download is not None else not quick
    default_isa, isa_plan = _pydrop_isas(args.isa)
    measured = [i for i in ISAS if isa_plan[i] == "run"]
    if not measured:
        raise SystemExit(f"pydrop bench: none of --isa {','.join(args.isa)} runs on this CPU")
    # Ratios and the training runs use pydrop's default ISA, or the best one measured.
    ref_isa = default_isa if default_isa in measured else measured[-1]
    torch_found = importlib.util.find_spec("torch") is not None
    torch_state = (
        "skipped (--no-torch)" if args.no_torch else ("run" if torch_found else "not installed")
    )

    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": args.command,
        "config": {
            "quick": quick,
            "threads": threads,
            "timing": timing,
            "epochs": epochs,
            "max_batches_per_epoch": batches,
            "seed": args.seed,
            "recipe": RECIPE,
        },
        "machine": machine_info(),
        "pydrop": {
            "version": pydrop.__version__,
            "info": _jsonable(pydrop.info()),
            "default_isa": default_isa,
            "reference_isa": ref_isa,
            "isa_paths": isa_plan,
        },
        "torch": torch_state,
        "workers": [],
        "notes": [],
    }
    t_start = time.perf_counter()
    with tempdir() as tmp:
        work = Path(tmp)
        do_kernels = args.only in (None, "kernels")
        do_e2e = args.only in (None, "e2e")
        e2e_spec = None
        if do_e2e:
            max_train = batches * RECIPE["batch_size"] if batches else None
            data = prepare_e2e_data(
                work,
                data_dir=args.data_dir,
                allow_download=download,
                max_train=max_train,
                max_test=eval_examples,
                seed=args.seed,
                sigma=RECIPE["init_sigma"],
                layers=RECIPE["layers"],
            )
            print(f"data: {data['source']}", file=log)
            report["config"]["data"] = {k: v for k, v in data.items() if k != "dir"}
            e2e_spec = {"data_dir": data["dir"], "epochs": epochs, "seed": args.seed}
        # --quick runs a library's kernels and its training run in one process (each
        # library import is paid once); full runs keep them apart, so that an epoch's
        # peak RSS is the training run's alone.
        merge = quick and do_kernels and do_e2e
        libs: list[tuple[str, str | None]] = [
            ("pydrop", isa) for isa in ISAS if isa_plan[isa] == "run"
        ]
        libs.append(("numpy", None))
        if torch_state == "run":
            libs.append(("torch", None))
        specs: list[dict[str, Any]] = []
        for n in threads:
            for lib, isa in libs:
                if not do_kernels:
                    break
                both = merge and (lib != "pydrop" or isa == ref_isa)
                specs.append(
                    {"task": "both" if both else "kernels", "lib": lib, "isa": isa, "threads": n}
                )
        if do_e2e and not merge:
            e2e_libs: list[tuple[str, str | None]] = [("pydrop", None), ("numpy", None)]
            if torch_state == "run":
                e2e_libs.append(("torch", None))
            if not quick:  # the recipe hand-written on pydrop's ops, for reference
                e2e_libs.append(("pydrop", "pydrop-ops"))
            for n in threads:
                for lib, impl in e2e_libs:
                    isa = ref_isa if lib == "pydrop" else None
                    specs.append(
                        {"task": "e2e", "lib": lib, "isa": isa, "impl": impl, "threads": n}
                    )
        if do_kernels:
            cases = K.kernel_cases(quick)
        for spec in specs:
            if spec["task"] in ("kernels", "both"):
                spec.update(cases=cases, timing=timing)
            if spec["task"] in ("e2e", "both"):
                spec["e2e"] = e2e_spec
            if spec["task"] == "both":
                report["workers"].append(run_worker(spec, work, log))
        # Everything else runs round robin at each thread count: the libraries take
        # turns repeat by repeat in each kernel case, then epoch by epoch. With one
        # thread no library has a pool left spinning, so no pause is needed.
        for task, turns, what, pause in (
            ("kernels", len(cases) if do_kernels else 0, "case", 0.25),
            ("e2e", epochs, "epoch", 0.5),
        ):
            for n in threads:
                group = [s for s in specs if s["task"] == task and s["threads"] == n]
                if group:
                    wait = pause if n > 1 else 0.0
                    report["workers"] += run_round_robin(group, turns, what, work, log, wait)
        if merge:
            report["notes"].append(
                "Quick mode: each library's training run shares its process with its kernel "
                "runs, so its peak RSS includes them."
            )
    report["total_s"] = time.perf_counter() - t_start
    torch_workers = [w for w in report["workers"] if w["lib"] == "torch"]
    if torch_workers and all(w["status"] == "not installed" for w in torch_workers):
        report["torch"] = "not installed"
    load = report["machine"].get("load_average")
    if load and load[0] > 0.5:
        report["notes"].append(
            f"The 1-minute load average was {load[0]:.2f} when the run started: other "
            "processes were using the CPU, so timings (2-thread ones most) are noisy."
        )
    from .report import summarize

    summarize(report)
    for w in report["workers"]:  # folded into report["kernels"] / report["e2e"]
        w.pop("records", None)
        w.pop("e2e", None)
    if log is not sys.stderr:
        log.close()
    return report


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None, so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None, *, command: str | None = None) -> int:
    """Entry point of ``pydrop bench``; returns the process exit code.

    ``command`` replaces the command line recorded in the report (for wrappers).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = command or "pydrop bench " + " ".join(argv)
    from .report import to_markdown, write_plots

    if args.render is not None:
        report = json.loads(args.render.read_text())
        if report.get("schema") != SCHEMA:
            print(f"pydrop bench: {args.render} is not a {SCHEMA} report", file=sys.stderr)
            return 2
        report["pydrop"].setdefault("reference_isa", report["pydrop"]["default_isa"])
    else:
        report = run(args)
    md_path = args.markdown or (args.out / "bench.md" if args.out else None)
    json_path = args.json or (args.out / "bench.json" if args.out else None)
    plot_dir = args.plots or args.out
    if plot_dir is not None:
        report["figures"] = write_plots(report, plot_dir)
    md = to_markdown(report)
    text_json = json.dumps(_finite(report), indent=1, allow_nan=False) + "\n"
    for path, text in ((json_path, text_json), (md_path, md)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    print(md)
    errors = [w for w in report["workers"] if str(w.get("status", "")).startswith("error")]
    for w in errors:
        print(f"pydrop bench: {w['lib']} worker failed: {w['status']}", file=sys.stderr)
    return 1 if errors else 0
