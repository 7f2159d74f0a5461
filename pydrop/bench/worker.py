"""One measurement process: ``python -m pydrop.bench.worker SPEC.json OUT.json``.

Every library (and every pydrop ISA path) is measured in a process of its own, so
each sees only the environment meant for it (``PYDROP_ISA``; no
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` for NumPy), thread pools are pinned
before anything runs, one library's pools cannot steal cores from another's, and
the peak RSS of an end-to-end run belongs to that run alone.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

from .timing import Interleaved

_LIMITER: object = None  # threadpoolctl's limiter, held for the life of the process


def _pin(lib: str, threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Import the library, pin every thread pool it uses; return (pinning, versions).

    The parent already set OMP/OPENBLAS/MKL/PYDROP_NUM_THREADS, which pin the pools
    as they load; the calls here enforce it in-process and record what took effect.
    The library is imported first: threadpoolctl only limits pools already loaded.
    """
    global _LIMITER
    import numpy as np

    pinning: dict[str, Any] = {}
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        # Every 1-thread worker runs on the same CPU. This VM's CPUs have slow spells
        # of their own (the same call took 20 us on one and 29 us on the other, at the
        # same time), so libraries on different CPUs would not share them, and taking
        # turns repeat by repeat would not cancel them out.
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinning["cpu"] = f"CPU {cpu}, as every 1-thread worker"
    versions: dict[str, Any] = {"numpy": np.__version__}
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        pinning["torch"] = f"torch.set_num_threads({threads}) -> {torch.get_num_threads()}"
        versions["torch"] = torch.__version__
        cfg = torch.__config__.show()
        m = re.search(r"Math Kernel Library Version ([^\n]*)", cfg)
        versions["torch_blas"] = f"MKL {m.group(1).strip()}" if m else "see torch.__config__"
    if lib == "pydrop":
        import pydrop

        pydrop.set_num_threads(threads)
        pinning["pydrop"] = f"pydrop.set_num_threads({threads}) -> {pydrop.get_num_threads()}"
        versions["pydrop"] = pydrop.__version__
    try:
        import threadpoolctl

        _LIMITER = threadpoolctl.threadpool_limits(limits=threads)
        pinning["blas"] = f"threadpoolctl: {threads}"
    except ImportError:
        pinning["blas"] = "unpinned (threadpoolctl not installed; OPENBLAS_NUM_THREADS set)"
    return pinning, versions


def _active_isa() -> str | None:
    import pydrop

    info = pydrop.info()
    return str(info.get("isa"))


def case_steps(
    lib: str, case: dict[str, Any], timing: dict[str, Any]
) -> Iterator[list[dict[str, Any]] | None]:
    """One kernel case in steps: the first warms up and calibrates, each next one
    times one repeat; every step but the last yields None, the last the case's
    records (one per implementation of the library). Between two steps the suite
    runs the other libraries' steps of the case, so they all take turns repeat by
    repeat."""
    from .kernels import IMPLS

    try:
        impls = IMPLS[lib](case)
    except Exception as e:  # a missing op in one library must not sink the run
        yield [{**case, "impl": lib, "status": f"error: {e}"}]
        return
    # One library's variants of a case (pydrop: fused, unfused, GEMM only) take
    # turns within each repeat, so their ratios carry no drift of the machine.
    records, working = [], []
    for name, fn in impls:
        try:
            fn()
            working.append((name, fn))
        except Exception as e:
            records.append({**case, "impl": name, "status": f"error: {type(e).__name__}: {e}"})
    try:
        run = Interleaved([fn for _, fn in working], **timing)
        run.prepare()
        while run.left:
            yield None
            run.repeat()
        timings, _ = run.timings()
    except Exception as e:
        status = f"error: {type(e).__name__}: {e}"
        yield records + [{**case, "impl": name, "status": status} for name, _ in working]
        return
    for (name, _), t in zip(working, timings, strict=True):
        records.append(
            {**case, "impl": name, "status": "ok", **t.as_dict(), "repeats_started": run.started}
        )
    yield records


def case_records(lib: str, case: dict[str, Any], timing: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of one kernel case, measured in one go."""
    *_, records = case_steps(lib, case, timing)
    assert records is not None  # (only the last step yields them)
    return records


def run_kernels(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for case in spec["cases"] for r in case_records(spec["lib"], case, spec["timing"])]


# Round-robin protocol (runner.run_round_robin): the worker prints READY once set
# up, then runs one step of a turn (a training epoch, or a step of a kernel case)
# per "next" line on stdin and answers with TURN and the step's result as JSON,
# whose "more" is true while the turn has steps left; any other line (or EOF) ends
# the run.
READY, TURN = "pydrop-bench ready", "pydrop-bench turn "


def _serve(steps: Iterator[Any]) -> list[Any]:
    """Run `steps` one per request (the protocol above); the results, in order. A
    step whose result is None is not a turn's last."""
    print(READY, flush=True)
    results = []
    for line in sys.stdin:
        if line.strip() != "next":
            break
        started = time.time()  # wall clock: comparable across the workers
        result = next(steps)
        out = {"started": started, "result": result, "more": result is None}
        results.append(out)
        print(TURN + json.dumps(out), flush=True)
    return results


def _kernels_on_request(spec: dict[str, Any]) -> list[dict[str, Any]]:
    steps = (
        step for case in spec["cases"] for step in case_steps(spec["lib"], case, spec["timing"])
    )
    return [r for out in _serve(steps) if not out["more"] for r in out["result"]]


def _e2e_on_request(lib: str, spec: dict[str, Any]) -> dict[str, Any]:
    from .e2e import e2e_session

    head, epochs = e2e_session(lib, spec)
    served = _serve(epochs)
    return {**head, "epochs": [{**t["result"], "started": t["started"]} for t in served]}


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    lib, threads = spec["lib"], spec["threads"]
    result: dict[str, Any] = {
        "task": spec["task"],
        "lib": lib,
        "threads": threads,
        "isa": spec.get("isa"),
        "impl": spec.get("impl"),
    }
    try:
        pinning, versions = _pin(lib, threads)
    except ImportError as e:
        result["status"] = "not installed"
        result["detail"] = str(e)
        _write(out_path, result)
        return 0
    result.update(pinning=pinning, versions=versions)
    try:
        if lib == "pydrop":
            result["isa"] = _active_isa()
            if spec.get("isa") and result["isa"] != spec["isa"]:
                raise RuntimeError(f"asked for ISA {spec['isa']}, running {result['isa']}")
        if spec["task"] == "kernels" and spec.get("round_robin"):
            result["records"] = _kernels_on_request(spec)
        elif spec["task"] in ("kernels", "both"):
            result["records"] = run_kernels(spec)
        if spec["task"] in ("e2e", "both") and spec.get("round_robin"):
            result["e2e"] = _e2e_on_request(lib, spec)
        elif spec["task"] in ("e2e", "both"):
            from .e2e import run_e2e

            result["e2e"] = run_e2e(lib, spec)
        from .machine import blas_info

        result["blas"] = blas_info()
        result["status"] = "ok"
    except Exception as e:
        result["status"] = f"error: {type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
    result["peak_rss_mb"] = peak_rss_mb()
    _write(out_path, result)
    return 0


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    /proc's VmHWM belongs to the address space made at exec; ru_maxrss is the
    fallback, but on Linux it starts from the parent's RSS at fork, so a worker
    started by a parent holding the data set would report the parent's memory.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _write(path: str, obj: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
