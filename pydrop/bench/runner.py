"""Run the worker processes and collect their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Unset for the NumPy processes only: they select slower OpenBLAS kernels.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYDROP_NUM_THREADS")


def _package_root() -> str:
    import pydrop

    return str(Path(pydrop.__file__).resolve().parent.parent)


def worker_env(lib: str, threads: int, isa: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # The workers import the same pydrop as this process, installed or in-place.
    root = _package_root()
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    for var in THREAD_VARS:
        env[var] = str(threads)
    if lib == "numpy":
        for var in OPENBLAS_OVERRIDES:
            env.pop(var, None)
    env.pop("PYDROP_ISA", None)
    if isa:
        env["PYDROP_ISA"] = isa
    return env


def _paths(spec: dict[str, Any], workdir: Path) -> tuple[str, Path, Path]:
    """(tag, spec path, output path) of a worker; the spec is written out."""
    tag = f"{spec['task']}-{spec['lib']}-{spec.get('isa') or 'default'}-{spec['threads']}t"
    if spec.get("impl"):
        tag += f"-{spec['impl']}"
    spec_path, out_path = workdir / f"{tag}.spec.json", workdir / f"{tag}.out.json"
    spec_path.write_text(json.dumps(spec))
    return tag, spec_path, out_path


def _worker_cmd(spec_path: Path, out_path: Path) -> list[str]:
    return [sys.executable, "-m", "pydrop.bench.worker", str(spec_path), str(out_path)]


def _result(
    spec: dict[str, Any], out_path: Path, returncode: int, stderr: str, took: float, log: Any
) -> dict[str, Any]:
    """The worker's result dict, or one with an error status; logged."""
    if returncode != 0 or not out_path.exists():
        res = {
            "task": spec["task"],
            "lib": spec["lib"],
            "threads": spec["threads"],
            "isa": spec.get("isa"),
            "impl": spec.get("impl"),
            "status": f"error: worker exited with {returncode}",
            "stderr": stderr[-4000:],
        }
    else:
        res = json.loads(out_path.read_text())
    res["wall_s"] = took
    print(f" {res['status']} ({took:.1f} s)", file=log, flush=True)
    if res["status"].startswith("error") and res.get("traceback"):
        print(res["traceback"], file=log)
    return res


def run_worker(
    spec: dict[str, Any], workdir: Path, log: Any, timeout: float | None = None
) -> dict[str, Any]:
    """Run one worker process; its result dict, or one with an error status."""
    tag, spec_path, out_path = _paths(spec, workdir)
    t0 = time.perf_counter()
    print(f"  {tag} ...", end="", file=log, flush=True)
    proc = subprocess.run(
        _worker_cmd(spec_path, out_path),
        env=worker_env(spec["lib"], spec["threads"], spec.get("isa")),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return _result(spec, out_path, proc.returncode, proc.stderr, time.perf_counter() - t0, log)


def run_round_robin(
    specs: list[dict[str, Any]], turns: int, what: str, workdir: Path, log: Any, pause: float
) -> list[dict[str, Any]]:
    """Workers side by side, one process each, taking turns: turn t (an epoch, or
    a kernel case: `what` names it in the log) of every worker runs before turn
    t + 1 of any, so a machine whose speed drifts over minutes slows them alike and
    their ratios keep no trace of it. A turn may come in steps (a kernel case: its
    calibration, then one step per repeat): the workers then take turns step by
    step, so drift over seconds is shared too. Only one runs at a time; between
    steps the last one's thread pools get `pause` seconds to go idle (they spin for
    a while after their work ends)."""
    from .worker import READY, TURN

    runs = []
    for spec in specs:
        tag, spec_path, out_path = _paths({**spec, "round_robin": True}, workdir)
        err = open(workdir / f"{tag}.stderr", "w+")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            _worker_cmd(spec_path, out_path),
            env=worker_env(spec["lib"], spec["threads"], spec.get("isa")),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        name = spec.get("impl") or spec["lib"]
        if spec["lib"] == "pydrop" and spec.get("isa") and not spec.get("impl"):
            name += f" {spec['isa']}"
        runs.append(
            {"spec": spec, "tag": tag, "name": name, "out": out_path, "proc": proc, "err": err}
        )
    t0 = time.perf_counter()
    # A worker that cannot run (say, torch not installed) exits without READY.
    live = [r for r in runs if _reply(r["proc"], READY) is not None]
    threads = specs[0]["threads"] if specs else 0
    for t in range(turns):
        print(f"  round robin, {threads}t, {what} {t + 1}/{turns}:", end="", file=log, flush=True)
        spent = {r["tag"]: 0.0 for r in live}
        pending = list(live)
        while pending:
            for r in list(pending):
                time.sleep(pause)
                try:
                    r["proc"].stdin.write("next\n")
                    r["proc"].stdin.flush()
                except BrokenPipeError:  # the worker died while waiting: _reply sees EOF
                    pass
                reply = _reply(r["proc"], TURN)
                if reply is None:
                    live.remove(r)
                    pending.remove(r)
                    spent.pop(r["tag"])
                    print(f" {r['name']} failed", end="", file=log, flush=True)
                    continue
                step = json.loads(reply)
                spent[r["tag"]] += time.time() - step["started"]
                if not step["more"]:
                    pending.remove(r)
        for r in live:
            print(f" {r['name']} {spent[r['tag']]:.2f} s", end="", file=log)
        print(file=log, flush=True)
    results = []
    for r in runs:
        proc = r["proc"]
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait()
        r["err"].seek(0)
        print(f"  {r['tag']} ...", end="", file=log, flush=True)
        took = time.perf_counter() - t0
        results.append(_result(r["spec"], r["out"], proc.returncode, r["err"].read(), took, log))
        r["err"].close()
    return results


def _reply(proc: subprocess.Popen[str], prefix: str) -> str | None:
    """The rest of the worker's next stdout line starting with prefix (other lines,
    a library's own prints, are skipped); None once its stdout ends."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def prepare_e2e_data(
    workdir: Path,
    *,
    data_dir: str | None,
    allow_download: bool,
    max_train: int | None,
    max_test: int | None = None,
    seed: int,
    sigma: float,
    layers: list[int],
) -> dict[str, Any]:
    """Write train/test arrays and the shared initial weights as .npy files."""
    from .reference import init_params

    source: str
    try:
        from pydrop.data import FashionMNIST

        data = FashionMNIST(batch_size=256, root=data_dir, download=allow_download, seed=seed)
        X, y, Xt, yt = data.X_train, data.y_train, data.X_val, data.y_val
        source = f"Fashion-MNIST ({data.root})"
    except (ImportError, OSError) as e:
        rng = np.random.default_rng(seed)
        n_train = max_train or 60000
        X = rng.random((n_train, layers[0]), dtype=np.float32)
        y = rng.integers(0, layers[-1], n_train).astype(np.int64)
        Xt = rng.random((10000, layers[0]), dtype=np.float32)
        yt = rng.integers(0, layers[-1], 10000).astype(np.int64)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        source = (
            f"synthetic random data (Fashion-MNIST unavailable: {first}); accuracy is meaningless"
        )
    if max_train:
        X, y = X[:max_train], y[:max_train]
    if max_test:
        Xt, yt = Xt[:max_test], yt[:max_test]
    out = workdir / "e2e-data"
    out.mkdir(exist_ok=True)
    for name, arr in (("X_train", X), ("y_train", y), ("X_test", Xt), ("y_test", yt)):
        np.save(out / f"{name}.npy", np.ascontiguousarray(arr))
    np.savez(out / "params.npz", *init_params(tuple(layers), sigma=sigma, seed=seed))
    return {"dir": str(out), "source": source, "n_train": len(y), "n_test": len(yt)}


def tempdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="pydrop-bench-")
