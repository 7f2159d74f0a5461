"""Turn worker results into tables with ratio columns, markdown, and PNG bar charts."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from .._ops import ISAS
from .kernels import case_label, flops

# Peer columns per kernel group (pydrop's per-ISA columns come first).
PEERS = {
    "dropout": ("numpy tutorial", "numpy best", "torch"),
    "relu": ("numpy", "torch"),
    "matmul": ("numpy", "torch"),
    "sparse": ("pydrop dense", "numpy", "torch"),
    "linear": ("pydrop unfused", "pydrop GEMM only", "numpy", "torch"),
    "peak": (),
}
TITLES = {
    "dropout": "Dropout",
    "relu": "ReLU",
    "matmul": "Matmul (SGEMM)",
    "sparse": "Matmul on training operands (the zeros of ReLU and dropout, and of images)",
    "linear": "Fused linear (Dense + ReLU + dropout)",
    "peak": "Register-only FMA peak (12 chains per thread; scalar: a multiply and an add)",
}


def _ok(cell: Any) -> bool:
    return isinstance(cell, dict) and cell.get("status") == "ok"


def _key(case: dict[str, Any]) -> tuple[str, str, str]:
    return case["group"], case["op"], case_label(case)


# --------------------------------------------------------------------------- tables


def summarize(report: dict[str, Any]) -> None:
    """Add ``kernels``, ``e2e`` and ``headline`` to ``report`` from its ``workers``."""
    default_isa = report["pydrop"]["reference_isa"]
    isa_plan = report["pydrop"]["isa_paths"]
    torch_state = report["torch"]
    workers = report["workers"]
    report["kernels"] = _kernel_rows(workers, default_isa, isa_plan, torch_state)
    report["e2e"] = _e2e_rows(workers, torch_state)
    report["libraries"] = _libraries(workers, torch_state)
    report["headline"] = _headline(report)


def _kernel_rows(
    workers: list[dict[str, Any]], default_isa: str, isa_plan: dict[str, str], torch_state: str
) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    order: list[tuple[Any, ...]] = []
    kernel_workers = [w for w in workers if w.get("task") in ("kernels", "both")]
    for w in kernel_workers:
        for rec in w.get("records", []):
            k = (*_key(rec), w["threads"])
            if k not in rows:
                params = {
                    a: rec[a]
                    for a in ("shape", "p", "m", "k", "n", "trans_a", "trans_b", "flop")
                    if a in rec
                }
                rows[k] = {
                    "group": k[0],
                    "op": k[1],
                    "case": k[2],
                    "threads": k[3],
                    "params": params,
                    "results": {},
                }
                order.append(k)
            cell = {
                a: rec[a]
                for a in ("status", "median", "min", "max", "number", "repeats", "repeats_started")
                if a in rec
            }
            if w["lib"] == "pydrop":
                isa = w.get("isa") or default_isa
                col = f"pydrop {isa}" if rec["impl"] == "pydrop" else rec["impl"]
                if rec["impl"] != "pydrop" and isa != default_isa:
                    continue  # helper columns come from the default ISA only
            else:
                col = rec["impl"]
            rows[k]["results"][col] = cell
    failed = {
        (w["lib"], w.get("isa"), w["threads"]): w["status"]
        for w in kernel_workers
        if w.get("status") != "ok"
    }
    out = []
    for k in sorted(order, key=lambda k: (_group_rank(k[0]), k[3], order.index(k))):
        row = rows[k]
        res = row["results"]
        for isa in ISAS:
            col = f"pydrop {isa}"
            if col not in res:
                why = isa_plan.get(isa, "not measured")
                why = failed.get(("pydrop", isa, row["threads"]), why)
                if why == "run":
                    why = "missing"
                if row["group"] == "linear":
                    why = "no fused op (pydrop.linear)" if why == "missing" else why
                res[col] = {"status": why}
        for peer in PEERS[row["group"]]:
            if peer not in res:
                if peer.startswith("torch"):
                    why = torch_state if torch_state != "run" else "missing"
                    why = failed.get(("torch", None, row["threads"]), why)
                else:
                    why = failed.get((peer.split()[0], None, row["threads"]), "missing")
                res[peer] = {"status": why}
        ref_col = f"pydrop {default_isa}"
        if row["group"] == "linear" and not _ok(res.get(ref_col)):
            ref_col = "pydrop unfused"
        row["reference"] = ref_col
        ref = res.get(ref_col)
        ratios: dict[str, float | None] = {}
        for peer in ("pydrop scalar", *PEERS[row["group"]]):
            if peer == ref_col or (peer == "pydrop scalar" and default_isa == "scalar"):
                continue
            if _ok(ref) and _ok(res.get(peer)):
                ratios[peer] = res[peer]["median"] / ref["median"]
            else:
                ratios[peer] = None
        row["speedup"] = ratios  # peer time / pydrop time: > 1 means pydrop is faster
        f = flops({**row["params"], "group": row["group"]})
        if f:
            row["flop"] = f
            for cell in res.values():
                if _ok(cell):
                    cell["gflops"] = f / cell["median"] / 1e9
        out.append(row)
    return out


def _group_rank(g: str) -> int:
    return list(PEERS).index(g) if g in PEERS else 99


def _stats(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _e2e_rows(workers: list[dict[str, Any]], torch_state: str) -> list[dict[str, Any]]:
    rows = []
    e2e_workers = [w for w in workers if w.get("task") in ("e2e", "both")]
    if torch_state != "run" and e2e_workers and not any(w["lib"] == "torch" for w in e2e_workers):
        for n in sorted({w["threads"] for w in e2e_workers}):
            e2e_workers.append({"task": "e2e", "lib": "torch", "threads": n, "status": torch_state})
        workers = e2e_workers
    for w in workers:
        if w.get("task") not in ("e2e", "both"):
            continue
        lib = w.get("impl") or w["lib"]
        row: dict[str, Any] = {"lib": lib, "threads": w["threads"], "status": w["status"]}
        if w["lib"] == "pydrop":
            row["isa"] = w.get("isa")
        e = w.get("e2e")
        if w["status"] == "ok" and e:
            eps = e["epochs"]
            # The first epoch is the warm-up when there are enough to spare.
            timed = eps[1:] if len(eps) >= 3 else eps
            row.update(
                impl=e["impl"],
                batches_per_epoch=e["batches_per_epoch"],
                epochs_timed=len(timed),
                train_s=_stats([x["train_s"] for x in timed]),
                eval_s=_stats([x["eval_s"] for x in timed]),
                final_val_acc=eps[-1]["val_acc"],
                final_train_loss=eps[-1]["train_loss"],
                final_val_loss=eps[-1]["val_loss"],
                peak_rss_mb=w.get("peak_rss_mb"),
                epochs=eps,
            )
        rows.append(row)
    by = {(r["lib"], r["threads"]): r for r in rows}
    for r in rows:
        me = by.get(("pydrop", r["threads"]))
        if me and me.get("train_s") and r.get("train_s") and r["lib"] != "pydrop":
            r["pydrop_speedup"] = r["train_s"]["median"] / me["train_s"]["median"]
    return rows


def _libraries(workers: list[dict[str, Any]], torch_state: str) -> dict[str, Any]:
    libs: dict[str, Any] = {}
    for w in workers:
        if w.get("status") != "ok":
            continue
        v = dict(w.get("versions", {}))
        entry = libs.setdefault(w["lib"], {})
        entry.update(versions=v, pinning=w.get("pinning"))
        if w["lib"] in ("numpy", "torch"):
            entry["blas"] = w.get("blas")
    if "torch" not in libs:
        libs["torch"] = {"status": torch_state}
    return libs


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    h: dict[str, Any] = {"dropout": [], "gemm": [], "epoch": []}
    isa = report["pydrop"]["reference_isa"]
    for row in report["kernels"]:
        if (
            row["group"] == "dropout"
            and row["case"] == "256x1024 p=0.5"
            and row["op"] in ("forward", "forward, allocating", "forward+backward")
        ):
            h["dropout"].append(
                {
                    "op": row["op"],
                    "threads": row["threads"],
                    "isa": isa,
                    "case": row["case"],
                    "vs_numpy_tutorial": row["speedup"].get("numpy tutorial"),
                    "vs_numpy_best": row["speedup"].get("numpy best"),
                    "vs_torch": row["speedup"].get("torch"),
                }
            )
    threads = sorted({r["threads"] for r in report["kernels"]})
    for n in threads:
        mm = [r for r in report["kernels"] if r["group"] == "matmul" and r["threads"] == n]
        mlp = [r for r in mm if r["op"].startswith("L")]
        entry: dict[str, Any] = {"threads": n, "isa": isa, "products": len(mlp)}
        for peer, name in (("numpy", "vs_openblas"), ("torch", "vs_mkl")):
            vals = [r["speedup"].get(peer) for r in mlp]
            vals = [v for v in vals if v]
            if vals and len(vals) == len(mlp):
                entry[name] = {"min": min(vals), "geomean": _geomean(vals), "max": max(vals)}
            else:
                entry[name] = None
            big = [r for r in mm if r["op"] == "1024³"]
            if big:
                entry[name + "_1024"] = big[0]["speedup"].get(peer)
        cells = [r["results"].get(f"pydrop {isa}") for r in mm if r["op"] == "L1 X·W"]
        if cells and _ok(cells[0]):
            entry["gflops_256x784x256"] = cells[0].get("gflops")
        h["gemm"].append(entry)
    h["peak"] = []
    for n in threads:
        rows = {
            r["group"]: r
            for r in report["kernels"]
            if r["threads"] == n
            and (r["group"], r["op"]) in (("matmul", "L1 X·W"), ("peak", "FMA peak"))
        }
        for path in ISAS[1:]:  # the SIMD paths (ISAS[0] is scalar)
            gemm, peak = (
                rows.get(g, {}).get("results", {}).get(f"pydrop {path}") for g in ("matmul", "peak")
            )
            if _ok(gemm) and _ok(peak):
                h["peak"].append(
                    {
                        "threads": n,
                        "isa": path,
                        "gemm_gflops": gemm["gflops"],
                        "peak_gflops": peak["gflops"],
                        "fraction": gemm["gflops"] / peak["gflops"],
                    }
                )
    h["linear"] = []
    for row in report["kernels"]:
        if row["group"] != "linear" or row["reference"] != f"pydrop {isa}":
            continue
        gemm = row["speedup"].get("pydrop GEMM only")
        h["linear"].append(
            {
                "case": row["case"],
                "threads": row["threads"],
                "isa": isa,
                "time_vs_gemm_alone": 1.0 / gemm if gemm else None,
                "vs_unfused": row["speedup"].get("pydrop unfused"),
                "vs_numpy": row["speedup"].get("numpy"),
                "vs_torch": row["speedup"].get("torch"),
            }
        )
    for r in report["e2e"]:
        if r["lib"].startswith("pydrop") or not r.get("pydrop_speedup"):
            continue
        me = next(x for x in report["e2e"] if x["lib"] == "pydrop" and x["threads"] == r["threads"])
        h["epoch"].append(
            {
                "vs": r["lib"],
                "threads": r["threads"],
                "isa": me.get("isa") or isa,
                "speedup": r["pydrop_speedup"],
                "pydrop_s": me["train_s"]["median"],
                "peer_s": r["train_s"]["median"],
                "pydrop_acc": me["final_val_acc"],
                "peer_acc": r["final_val_acc"],
            }
        )
    return h


# --------------------------------------------------------------------------- markdown


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}×" if x < 100 else f"{x:.0f}×"


def _cell(cell: dict[str, Any] | None, group: str) -> str:
    if not cell:
        return "–"
    if not _ok(cell):
        return str(cell.get("status", "–"))
    if group in ("matmul", "sparse", "peak"):
        return f"{cell['gflops']:.1f}"
    return _fmt_time(cell["median"])


def _col_title(col: str, libs: dict[str, Any]) -> str:
    names = {
        "numpy tutorial": "NumPy tutorial",
        "numpy best": "NumPy best",
        "numpy": "NumPy",
        "torch": "PyTorch",
        "pydrop unfused": "pydrop unfused",
        "pydrop dense": "pydrop dense",
        "pydrop GEMM only": "pydrop GEMM only",
    }
    return names.get(col, col)


def _blas_name(libs: dict[str, Any], lib: str) -> str:
    entry = libs.get(lib) or {}
    if lib == "torch":
        return str((entry.get("versions") or {}).get("torch_blas", "MKL"))
    for d in entry.get("blas") or []:
        if isinstance(d, dict) and d.get("user_api") == "blas":
            arch = f", {d['architecture']} kernel" if d.get("architecture") else ""
            return f"{d.get('internal_api')} {d.get('version')}{arch}"
    return "BLAS unknown"


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    libs = report.get("libraries", {})
    pd = report["pydrop"]
    isa = pd["reference_isa"]
    cfg = report["config"]
    L: list[str] = []
    L.append("# pydrop benchmark")
    L.append("")
    L.append(
        f"Command: `{report['command'].strip()}` ({report['created']}, "
        f"{report.get('total_s', 0):.0f} s{', quick mode' if cfg['quick'] else ''})."
    )
    L.append("")
    paths = ", ".join(f"{k}: {'measured' if v == 'run' else v}" for k, v in pd["isa_paths"].items())
    torch_v = (libs.get("torch", {}).get("versions") or {}).get("torch")
    numpy_v = (libs.get("numpy", {}).get("versions") or {}).get("numpy")
    L.append(
        f"- **Machine**: {m['cpu_model']}, {m['usable_cpus']} usable cores, "
        f"caches {', '.join(f'{k} {v}' for k, v in m['caches'].items()) or 'unknown'}; "
        f"flags {' '.join(m['cpu_flags'])}; {m['platform']}; Python {m['python']}."
    )
    L.append(
        f"- **pydrop** {pd['version']}: default ISA **{pd['default_isa']}** ({paths}); ratios "
        f"use **{isa}**."
    )
    L.append(
        f"- **NumPy** {numpy_v or '?'} ({_blas_name(libs, 'numpy')}); "
        "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset for its processes."
    )
    if torch_v:
        L.append(f"- **PyTorch** {torch_v} ({_blas_name(libs, 'torch')}).")
    else:
        L.append(f"- **PyTorch**: {report['torch']}.")
    L.append(
        f"- **Threads**: {', '.join(map(str, cfg['threads']))}, pinned per library "
        f"({_pinning_note(libs)})."
    )
    t = cfg["timing"]
    turns = (
        ""
        if cfg.get("quick")
        else ", all alive at once and taking turns repeat by repeat (one running at a time)"
    )
    L.append(
        f"- **Method**: one process per library and ISA path{turns}; warm-up, then {t['repeats']} "
        f"repeats of ≥ {t['min_time'] * 1e3:.0f} ms each (at least 3 when "
        f"{t['repeats']} would take over {t.get('max_total') or 0:g} s), a library's "
        "variants of one case (pydrop: fused, unfused, GEMM only) taking turns repeat by "
        "repeat; median (min–max) per call (all three in the JSON). "
        "Speed-up = peer time / pydrop time (pydrop at its default ISA); > 1 means pydrop "
        "is faster."
    )
    L.append("")
    L.append("## Summary against the project's goals")
    L.append("")
    L += summary_table(report)
    L.append("")
    L += _headline_md(report)
    for group in PEERS:
        rows = [r for r in report["kernels"] if r["group"] == group]
        if not rows:
            continue
        L.append("")
        unit = {
            "matmul": "GFLOP/s (higher is better)",
            "peak": "GFLOP/s",
            "sparse": "GFLOP/s of the dense product, 2mnk / time (higher is better)",
        }.get(group, "time per call, median")
        L.append(f"## {TITLES[group]}: {unit}")
        L.append("")
        L += _kernel_table(rows, group, libs, isa)
    L += _e2e_md(report)
    notes = list(report.get("notes", []))
    if report.get("figures"):
        figs = report["figures"]
        if isinstance(figs, dict) and figs.get("note"):
            notes.append(figs["note"])
        elif isinstance(figs, dict):
            L.append("")
            for name in figs.get("files", []):
                L.append(f"![{Path(name).stem}]({Path(name).name})")
    if notes:
        L.append("")
        L.append("## Notes")
        L.append("")
        L += [f"- {n}" for n in notes]
    return "\n".join(L) + "\n"


def _pinning_note(libs: dict[str, Any]) -> str:
    parts = []
    for lib in ("pydrop", "numpy", "torch"):
        p = (libs.get(lib) or {}).get("pinning") or {}
        if p:
            parts.append(f"{lib}: " + "; ".join(str(v) for v in p.values()))
    return "; ".join(parts) or "no worker ran"


def _kernel_table(
    rows: list[dict[str, Any]], group: str, libs: dict[str, Any], isa: str
) -> list[str]:
    pd_cols = [f"pydrop {i}" for i in ISAS]
    peers = list(PEERS[group])
    ratio_cols = [c for c in rows[0]["speedup"]]
    head = ["op", "size", "thr"] + pd_cols + [_col_title(c, libs) for c in peers]
    head += [f"× {_col_title(c, libs)}" for c in ratio_cols]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["op"], r["case"], str(r["threads"])]
        for c in pd_cols + peers:
            txt = _cell(r["results"].get(c), group)
            if c == r["reference"] and _ok(r["results"].get(c)):
                txt = f"**{txt}**"
            cells.append(txt)
        cells += [_fmt_ratio(r["speedup"].get(c)) for c in ratio_cols]
        out.append("| " + " | ".join(cells) + " |")
    return out


# The project's speed goals (issue "Benchmark suite"), shown next to the measurements.
GOALS = {
    "dropout_tutorial": 40.0,
    "dropout_torch": 60.0,
    "gemm_mkl": 1.0,
    "gemm_openblas": 1.0,
    "epoch_numpy": 3.0,
    "epoch_torch": 4.0,
    "gemm_peak": 0.75,  # issue "GEMM at the roofline": of the AVX-512 FMA peak, 1 thread
}


def summary_table(report: dict[str, Any]) -> list[str]:
    """Measured ratio next to each project goal: the table for the README."""
    h = report["headline"]
    no_torch = report["torch"] if report["torch"] != "run" else None
    rows: list[tuple[str, str, str, str, str]] = []

    def add(what: str, d: dict[str, Any], val: float | None, goal: float, peer: str) -> None:
        if peer == "torch" and no_torch:
            txt = f"PyTorch {no_torch}"
        else:
            txt = _fmt_ratio(val)
        rows.append((what, str(d["threads"]), d["isa"], txt, f"≥ {goal:g}×"))

    for d in h["dropout"]:
        if d["op"] == "forward":
            add(
                "dropout fwd 256x1024 p=0.5 vs tutorial NumPy",
                d,
                d["vs_numpy_tutorial"],
                GOALS["dropout_tutorial"],
                "numpy",
            )
    for d in h["dropout"]:
        if d["op"] == "forward":
            add(
                "dropout fwd 256x1024 p=0.5 vs PyTorch",
                d,
                d["vs_torch"],
                GOALS["dropout_torch"],
                "torch",
            )
    for g in h["gemm"]:
        for key, peer, goal, name in (
            ("vs_openblas", "numpy", GOALS["gemm_openblas"], "OpenBLAS (NumPy)"),
            ("vs_mkl", "torch", GOALS["gemm_mkl"], "MKL (PyTorch)"),
        ):
            x = g.get(key)
            if peer == "torch" and no_torch:
                txt = f"PyTorch {no_torch}"
            else:
                txt = f"{x['geomean']:.2f}× (min {x['min']:.2f}×)" if x else "–"
            rows.append(
                (
                    f"SGEMM, 9 MLP products (geomean) vs {name}",
                    str(g["threads"]),
                    g["isa"],
                    txt,
                    f"≥ {goal:g}×",
                )
            )
    for p in h.get("peak", []):
        if p["threads"] == 1:
            rows.append(
                (
                    f"SGEMM 256x784x256 on the {p['isa']} path / its register-only FMA peak",
                    "1",
                    p["isa"],
                    f"{p['fraction']:.0%} "
                    f"({p['gemm_gflops']:.0f} of {p['peak_gflops']:.0f} GFLOP/s)",
                    f"≥ {GOALS['gemm_peak']:.0%}",
                )
            )
    for e in h["epoch"]:
        goal = GOALS["epoch_numpy" if e["vs"] == "numpy" else "epoch_torch"]
        name = "NumPy" if e["vs"] == "numpy" else "PyTorch"
        rows.append(
            (
                f"training epoch vs {name} (test acc {e['pydrop_acc']:.3f} vs {e['peer_acc']:.3f})",
                str(e["threads"]),
                e["isa"],
                f"{_fmt_ratio(e['speedup'])} ({e['pydrop_s']:.3g} s vs {e['peer_s']:.3g} s)",
                f"≥ {goal:g}×",
            )
        )
    if no_torch and h["epoch"]:
        rows.append(
            (
                "training epoch vs PyTorch",
                "–",
                "–",
                f"PyTorch {no_torch}",
                f"≥ {GOALS['epoch_torch']:g}×",
            )
        )
    out = [
        "| comparison | threads | pydrop ISA | measured speed-up | goal |",
        "|---|---|---|---|---|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _headline_md(report: dict[str, Any]) -> list[str]:
    h = report["headline"]
    L = ["## Headline", ""]
    no_torch = report["torch"] if report["torch"] != "run" else None

    def vs_torch(x: float | None, what: str = "PyTorch") -> str:
        return f"PyTorch {no_torch}" if no_torch else f"{_fmt_ratio(x)} {what}"

    for d in h["dropout"]:
        L.append(
            f"- dropout {d['op']} {d['case']}, {d['threads']} thread(s), {d['isa']}: "
            f"{_fmt_ratio(d['vs_numpy_tutorial'])} the tutorial's NumPy, "
            f"{_fmt_ratio(d['vs_numpy_best'])} best-effort NumPy, "
            f"{vs_torch(d['vs_torch'])}"
        )
    for g in h["gemm"]:

        def rng(x: dict[str, float] | None) -> str:
            if not x:
                return "–"
            return f"{x['geomean']:.2f}× (min {x['min']:.2f}×, max {x['max']:.2f}×)"

        extra = ""
        if g.get("gflops_256x784x256"):
            extra = f"; {g['gflops_256x784x256']:.0f} GFLOP/s on 256x784x256"
        L.append(
            f"- GEMM, {g['threads']} thread(s), {g['isa']}, the {g['products']} MLP "
            f"products: {rng(g['vs_openblas'])} OpenBLAS (NumPy), "
            f"{f'PyTorch (MKL) {no_torch}' if no_torch else rng(g['vs_mkl']) + ' MKL (PyTorch)'}"
            f"{extra}"
        )
    for f in h.get("linear", []):
        t = f["time_vs_gemm_alone"]
        L.append(
            f"- fused Dense+ReLU+dropout {f['case']}, {f['threads']} thread(s), {f['isa']}: "
            f"{f'{t:.2f}x' if t else '–'} the time of its GEMM alone, "
            f"{_fmt_ratio(f['vs_unfused'])} pydrop unfused, {_fmt_ratio(f['vs_numpy'])} NumPy, "
            f"{vs_torch(f['vs_torch'])}"
        )
    for e in h["epoch"]:
        L.append(
            f"- training epoch, {e['threads']} thread(s), {e['isa']}: "
            f"{_fmt_ratio(e['speedup'])} {e['vs']} ({e['pydrop_s']:.3g} s vs "
            f"{e['peer_s']:.3g} s; test accuracy {e['pydrop_acc']:.4f} vs {e['peer_acc']:.4f})"
        )
    return L


def _e2e_md(report: dict[str, Any]) -> list[str]:
    rows = report["e2e"]
    if not rows:
        return []
    cfg = report["config"]
    data = cfg.get("data", {})
    L = ["", "## Training epoch: the tutorial recipe", ""]
    ok = [r for r in rows if r.get("train_s")]
    if ok:
        r0 = ok[0]
        warm = " after a warm-up epoch" if r0["epochs_timed"] < len(r0["epochs"]) else ""
        L.append(
            f"784-256-256-10, dropout 0.5/0.5, SGD lr 0.1, batch 256, init normal(0, 0.01); "
            f"{len(r0['epochs'])} epoch(s) of {r0['batches_per_epoch']} batches on "
            f"{data.get('source', '?')} ({data.get('n_train', '?')} train / "
            f"{data.get('n_test', '?')} test examples); same initial weights and example "
            f"order for all; times are the median (min–max) over "
            f"{r0['epochs_timed']} epoch(s){warm}. Each implementation trains in a "
            f"process of its own, and at a thread count they take turns epoch by "
            f"epoch, so a drift of the machine's speed slows them alike."
        )
        L.append("")
    head = [
        "implementation",
        "threads",
        "train s/epoch",
        "eval s",
        "test acc",
        "final train loss",
        "peak RSS MB",
        "pydrop speed-up",
    ]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r.get("impl", r["lib"])
        if r["lib"] == "pydrop" and r.get("isa"):
            name += f" ({r['isa']})"
        if not r.get("train_s"):
            L.append(f"| {name} | {r['threads']} | {r['status']} | | | | | |")
            continue
        t, ev = r["train_s"], r["eval_s"]
        speedup = _fmt_ratio(r.get("pydrop_speedup")) if r["lib"] != "pydrop" else ""
        L.append(
            f"| {name} | {r['threads']} | {t['median']:.3f} ({t['min']:.3f}–{t['max']:.3f}) | "
            f"{ev['median']:.3f} | {r['final_val_acc']:.4f} | {r['final_train_loss']:.4f} | "
            f"{r['peak_rss_mb']:.0f} | {speedup} |"
        )
    return L


# --------------------------------------------------------------------------- figures


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _plot_kernels(
    plt: Any, rows: list[dict[str, Any]], threads: list[int], isa: str, out_dir: Path
) -> str:
    """Speed-ups of the elementwise kernels and the fused op; returns the file."""
    peers = ["numpy tutorial", "numpy best", "numpy", "torch"]
    fig, axes = plt.subplots(
        1,
        len(threads),
        figsize=(6.5 * len(threads), 0.32 * len(rows) + 2),
        squeeze=False,
        sharey=True,
    )
    for ax, n in zip(axes[0], threads, strict=True):
        sel = [r for r in rows if r["threads"] == n]
        labels = [f"{r['group']} {r['op']} {r['case']}" for r in sel]
        colors = dict(zip(peers, ("C0", "C1", "C2", "C3"), strict=True))
        seen: set[str] = set()
        for i, r in enumerate(sel):
            present = [(q, r["speedup"].get(q)) for q in peers if r["speedup"].get(q)]
            h = 0.8 / max(len(present), 1)
            for j, (peer, val) in enumerate(present):
                y = i + (j - (len(present) - 1) / 2) * h
                label = None if peer in seen else f"vs {_col_title(peer, {})}"
                seen.add(peer)
                ax.barh(y, val, height=h, color=colors[peer], label=label)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(range(len(sel)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_ylim(len(sel) - 0.5, -0.5)  # first row on top, no margins
        ax.set_title(f"pydrop ({isa}) speed-up, {n} thread(s)")
        ax.set_xlabel("peer time / pydrop time (log)")
        ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, out_dir / "bench_kernels.png")


def _plot_gemm(
    plt: Any, mm: list[dict[str, Any]], threads: list[int], numpy_blas: str, out_dir: Path
) -> str:
    """SGEMM GFLOP/s per product and library; returns the file."""
    cols = [f"pydrop {i}" for i in ISAS] + ["numpy", "torch"]
    names = {
        "numpy": f"NumPy ({numpy_blas})",
        "torch": "PyTorch (MKL)",
    }
    fig, axes = plt.subplots(
        1, len(threads), figsize=(6.5 * len(threads), 5), squeeze=False, sharey=True
    )
    for ax, n in zip(axes[0], threads, strict=True):
        sel = [r for r in mm if r["threads"] == n]
        present = [c for c in cols if any(_ok(r["results"].get(c)) for r in sel)]
        w = 0.8 / max(len(present), 1)
        for j, c in enumerate(present):
            vals = [(r["results"].get(c) or {}).get("gflops", 0) for r in sel]
            xs = [i + (j - (len(present) - 1) / 2) * w for i in range(len(sel))]
            ax.bar(xs, vals, width=w, label=names.get(c, c))
        ax.set_xticks(range(len(sel)))
        ax.set_xticklabels(
            [f"{r['op']}\n{r['case']}" for r in sel], fontsize=6, rotation=45, ha="right"
        )
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"SGEMM, {n} thread(s)")
        ax.legend(fontsize=7)
    return _save(plt, fig, out_dir / "bench_gemm.png")


def _plot_epochs(
    plt: Any, e2e: list[dict[str, Any]], threads: list[int], isa: str, out_dir: Path
) -> str:
    """Train seconds per epoch, per library and thread count; returns the file."""
    libs: list[str] = []
    for r in e2e:
        if r["lib"] not in libs:
            libs.append(r["lib"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    w = 0.8 / len(libs)
    for j, lib in enumerate(libs):
        xs: list[float] = []
        vals: list[float] = []
        errs: list[list[float]] = [[], []]  # below and above the median
        for i, n in enumerate(threads):
            run = next((x for x in e2e if x["lib"] == lib and x["threads"] == n), None)
            if not run:
                continue
            t = run["train_s"]
            xs.append(i + (j - (len(libs) - 1) / 2) * w)
            vals.append(t["median"])
            errs[0].append(t["median"] - t["min"])
            errs[1].append(t["max"] - t["median"])
        label = lib if lib != "pydrop" else f"pydrop ({isa})"
        ax.bar(xs, vals, width=w, yerr=errs, capsize=3, label=label)
    ax.set_xticks(range(len(threads)))
    ax.set_xticklabels([f"{n} thread(s)" for n in threads])
    b = e2e[0]["batches_per_epoch"]
    ax.set_ylabel(f"train seconds per epoch ({b} batches)")
    ax.set_title("Tutorial recipe, one training epoch (lower is better)")
    ax.legend()
    return _save(plt, fig, out_dir / "bench_epoch.png")


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Bar charts: kernel speed-ups, GEMM GFLOP/s, epoch times. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {
            "files": [],
            "note": "figures skipped: matplotlib is not installed (pip install matplotlib)",
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    isa = report["pydrop"]["reference_isa"]
    threads = sorted(
        {r["threads"] for r in report["kernels"]} | {r["threads"] for r in report["e2e"]}
    )
    rows = [r for r in report["kernels"] if r["group"] in ("dropout", "relu", "linear")]
    if rows:
        files.append(_plot_kernels(plt, rows, threads, isa, out_dir))
    mm = [r for r in report["kernels"] if r["group"] == "matmul"]
    if mm:
        numpy_blas = _blas_name(report.get("libraries", {}), "numpy").split(",")[0]
        files.append(_plot_gemm(plt, mm, threads, numpy_blas, out_dir))
    e2e = [r for r in report["e2e"] if r.get("train_s")]
    if e2e:
        files.append(_plot_epochs(plt, e2e, threads, isa, out_dir))
    return {"files": files}
