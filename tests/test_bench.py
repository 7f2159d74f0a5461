"""`pydrop bench --quick` completes and writes valid JSON, with and without torch.

Speed is never asserted. Each run is a subprocess (`python -m pydrop.bench`) with
the smallest settings; the torch-less run hides torch (and matplotlib) behind
stub packages that raise ImportError, which the bench's worker processes inherit
through PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pydrop

ROOT = Path(pydrop.__file__).resolve().parent.parent
FAST = [
    "--quick",
    "--threads",
    "1",
    "--min-time",
    "0.001",
    "--repeats",
    "1",
    "--epochs",
    "1",
    "--batches",
    "2",
    "--no-download",
    "--eval-examples",
    "512",
    # AVX-512 (and zen4) stay out: under `make emulate` they are SIMDe-emulated and slow
    "--isa",
    "scalar,avx2",
]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def _reject_constant(name: str) -> None:
    raise ValueError(f"bench.json holds {name}, which strict JSON does not allow")


def _run(
    tmp_path: Path, extra: list[str], hide: tuple[str, ...] = (), log: list[str] | None = None
) -> tuple[dict, str]:
    env = dict(os.environ)
    paths = [str(ROOT)]
    if hide:
        stubs = tmp_path / "hidden"
        for name in hide:
            pkg = stubs / name
            pkg.mkdir(parents=True)
            (pkg / "__init__.py").write_text(f"raise ImportError('{name} hidden by test_bench')\n")
        paths.insert(0, str(stubs))
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pydrop.bench", *FAST, "--out", str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads((out / "bench.json").read_text(), parse_constant=_reject_constant)
    md = (out / "bench.md").read_text()
    assert md in proc.stdout
    if log is not None:
        log.extend(proc.stderr.splitlines())
    return report, md


def _compared(report: dict) -> list[dict]:
    """The kernel rows with peers (all but pydrop's own FMA peak loop)."""
    return [r for r in report["kernels"] if r["group"] != "peak"]


def _check_structure(report: dict, md: str) -> None:
    assert report["schema"] == "pydrop-bench/1"
    for key in ("machine", "config", "pydrop", "kernels", "e2e", "headline", "workers"):
        assert key in report
    assert report["machine"]["cpu_model"]
    paths = report["pydrop"]["isa_paths"]
    assert set(paths) == {"scalar", "avx2", "avx512", "zen4"}
    supported = pydrop.info()["supported_isas"]
    for isa, state in paths.items():
        if isa not in supported:
            assert state == "not supported on this CPU"
        else:
            assert state == ("skipped (--isa)" if isa in ("avx512", "zen4") else "run")
    assert all(w["status"] in ("ok", "not installed") for w in report["workers"]), [
        (w["lib"], w["status"]) for w in report["workers"]
    ]
    # at one thread every worker that ran shares one CPU
    cpus = {w["pinning"]["cpu"] for w in report["workers"] if w["status"] == "ok"}
    assert len(cpus) == 1 and cpus.pop().startswith("CPU "), cpus
    groups = {r["group"] for r in report["kernels"]}
    assert {"dropout", "relu", "matmul", "sparse", "linear"} <= groups
    for row in report["kernels"]:
        assert row["threads"] == 1
        for isa in paths:
            cell = row["results"][f"pydrop {isa}"]
            if paths[isa] == "run" and row["group"] != "linear":
                assert cell["status"] == "ok"
                assert 0 < cell["min"] <= cell["median"] <= cell["max"]
            elif isa not in supported:
                assert cell["status"] == "not supported on this CPU"
        for name, ratio in row["speedup"].items():
            assert ratio is None or ratio > 0, name
    mm = [r for r in report["kernels"] if r["group"] == "matmul"]
    assert len(mm) == 9 and all(r["results"]["numpy"]["gflops"] > 0 for r in mm)
    sparse = [r for r in report["kernels"] if r["group"] == "sparse"]
    assert sparse and all(r["speedup"]["pydrop dense"] > 0 for r in sparse)
    e2e = {r["lib"]: r for r in report["e2e"]}
    for lib in ("pydrop", "numpy"):
        row = e2e[lib]
        assert row["status"] == "ok" and row["train_s"]["median"] > 0
        assert 0 <= row["final_val_acc"] <= 1 and row["peak_rss_mb"] > 0
    assert report["headline"]["dropout"] and report["headline"]["gemm"]
    # the FMA peak: one row, GFLOP/s per ISA path, and SGEMM's fraction of it
    (peak,) = [r for r in report["kernels"] if r["group"] == "peak"]
    assert all(peak["results"][f"pydrop {i}"]["gflops"] > 0 for i in supported if paths[i] == "run")
    if "avx2" in supported:
        (frac,) = report["headline"]["peak"]
        assert frac["isa"] == "avx2" and frac["threads"] == 1
        # SGEMM cannot beat the FMA units; the slack is for a shared machine's noise
        # between the two cases, a wrong flop count (2x) fails it
        assert 0 < frac["fraction"] < 1.5
        assert "SGEMM 256x784x256 on the avx2 path / its register-only FMA peak" in md
    assert "| op | size | thr |" in md
    assert "## Summary against the project's goals" in md


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed; the torch-less run covers it")
def test_quick_bench_with_torch(tmp_path: Path) -> None:
    report, md = _run(tmp_path, [])
    _check_structure(report, md)
    assert report["torch"] == "run"
    for row in _compared(report):
        assert row["results"]["torch"]["status"] == "ok"
    assert {r["lib"] for r in report["e2e"]} == {"pydrop", "numpy", "torch"}
    assert all(e["vs_torch"] for e in report["headline"]["dropout"])
    if HAS_MPL:
        for f in report["figures"]["files"]:
            assert Path(f).stat().st_size > 1000


def test_quick_bench_without_torch(tmp_path: Path) -> None:
    report, md = _run(tmp_path, [], hide=("torch", "matplotlib"))
    _check_structure(report, md)
    # --render re-creates the markdown from the saved JSON without measuring anything
    from pydrop.bench import main

    rendered = tmp_path / "rendered.md"
    assert (
        main(["--render", str(tmp_path / "out" / "bench.json"), "--markdown", str(rendered)]) == 0
    )
    assert rendered.read_text() == md
    assert report["torch"] == "not installed"
    for row in _compared(report):
        assert row["results"]["torch"] == {"status": "not installed"}
        assert row["speedup"]["torch"] is None
    torch_rows = [r for r in report["e2e"] if r["lib"] == "torch"]
    assert torch_rows and all(r["status"] == "not installed" for r in torch_rows)
    assert "not installed" in md
    assert report["figures"]["files"] == [] and "matplotlib" in report["figures"]["note"]


def _plot_report() -> dict:
    """A saved report's fields that the figures read: two thread counts, a dropout and
    a matmul case with peers, and two libraries' epochs."""
    ok = {"status": "ok", "gflops": 50.0}
    kernels = [
        {
            "group": group,
            "op": "forward",
            "case": "256x256",
            "threads": n,
            "speedup": {"numpy": 1.5, "torch": 2.0 if group == "dropout" else None},
            "results": {"pydrop avx2": ok, "numpy": ok, "torch": {"status": "not installed"}},
        }
        for n in (1, 2)
        for group in ("dropout", "matmul")
    ]
    e2e = [
        {
            "lib": lib,
            "threads": n,
            "batches_per_epoch": 235,
            "train_s": {"median": 1.0 / n, "min": 0.9 / n, "max": 1.2 / n},
        }
        for lib in ("pydrop", "numpy")
        for n in (1, 2)
    ]
    return {"pydrop": {"reference_isa": "avx2"}, "kernels": kernels, "e2e": e2e}


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib is not installed")
def test_plots_draw_the_three_figures(tmp_path: Path) -> None:
    from pydrop.bench.report import write_plots

    files = write_plots(_plot_report(), tmp_path)["files"]
    names = sorted(Path(f).name for f in files)
    assert names == ["bench_epoch.png", "bench_gemm.png", "bench_kernels.png"]
    for f in files:
        data = Path(f).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, f


def test_e2e_runs_take_turns_epoch_by_epoch(tmp_path: Path) -> None:
    """Without kernel runs the training runs are round robin: every library's epoch e
    starts before any library's epoch e + 1, each after the previous one ended."""
    report, md = _run(tmp_path, ["--only", "e2e", "--epochs", "3"], hide=("torch", "matplotlib"))
    runs = [r for r in report["e2e"] if r["status"] == "ok"]
    assert {r["lib"] for r in runs} == {"pydrop", "numpy"}
    turns = sorted(
        (e["started"], e["epoch"], r["lib"], e["train_s"]) for r in runs for e in r["epochs"]
    )
    assert [t[1] for t in turns] == [1, 1, 2, 2, 3, 3]
    assert [t[2] for t in turns[:2]] * 3 == [t[2] for t in turns]
    for (s0, _, _, train), (s1, _, _, _) in zip(turns[:-1], turns[1:], strict=True):
        assert s1 >= s0 + train  # one trains at a time
    assert "take turns epoch by epoch" in md


def test_kernel_runs_take_turns_repeat_by_repeat(tmp_path: Path) -> None:
    """Without training runs the kernel runs are round robin too: each case is
    measured by every library before the next case starts, and within a case every
    library's repeat r starts before any library's repeat r + 1."""
    log: list[str] = []
    report, _ = _run(tmp_path, ["--only", "kernels"], hide=("torch", "matplotlib"), log=log)
    turns = [line for line in log if "round robin, 1t, case" in line]
    assert len(turns) == len(report["kernels"]) > 0
    isas = [i for i in ("scalar", "avx2") if i in pydrop.supported_isas()]
    names = [f"pydrop {i}" for i in isas] + ["numpy"]
    for line in turns:  # each line: one case, every library's turn in order
        where = [line.find(f" {name} ") for name in names]
        assert -1 not in where and where == sorted(where), line
    for row in report["kernels"]:
        for isa in isas:
            assert row["results"][f"pydrop {isa}"]["status"] == "ok", row["case"]
        starts = [
            cell["repeats_started"] for cell in row["results"].values() if cell["status"] == "ok"
        ]
        libs = len(isas) if row["group"] == "peak" else len(names)  # (pydrop's own loop)
        assert len(starts) >= libs and all(len(s) >= 1 for s in starts)
        for r in range(min(len(s) for s in starts) - 1):
            assert max(s[r] for s in starts) < min(s[r + 1] for s in starts), row["case"]


def test_bench_rejects_bad_flags() -> None:
    from pydrop.bench import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--isa", "sse9"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--threads", "0"])


def test_measure_reports_ordered_stats() -> None:
    from pydrop.bench.timing import measure

    calls = []
    t = measure(lambda: calls.append(1), repeats=3, min_time=0.001, warmup=2)
    assert t.repeats == 3 and t.number >= 1
    assert 0 <= t.min <= t.median <= t.max
    assert len(calls) >= 2 + 3 * t.number


def test_measure_paired_alternates_and_pairs_the_ratio() -> None:
    from pydrop.bench.timing import measure_paired

    order: list[str] = []
    ta, tb, ratio = measure_paired(
        lambda: order.append("a"), lambda: order.append("b"), repeats=4, min_time=0.001
    )
    assert ta.repeats == tb.repeats == 4
    assert 0 <= ta.min <= ta.median <= ta.max and 0 <= tb.min <= tb.median <= tb.max
    assert ratio > 0
    # After both calibrations, the timed repeats alternate: na calls of a, nb of b.
    timed = order[-4 * (ta.number + tb.number) :]
    block = ["a"] * ta.number + ["b"] * tb.number
    assert timed == block * 4
    with pytest.raises(ValueError, match="repeats"):
        measure_paired(lambda: None, lambda: None, repeats=0)


def test_strict_json_replaces_non_finite() -> None:
    from pydrop.bench import _finite

    clean = _finite({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"})
    assert clean == {"a": None, "b": [1.0, None], "c": "x"}
    json.dumps(clean, allow_nan=False)
