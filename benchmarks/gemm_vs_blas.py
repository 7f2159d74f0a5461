"""pydrop.matmul against NumPy's BLAS (and PyTorch's when installed) on the nine
SGEMMs of a tutorial training step, in one process.

    python benchmarks/gemm_vs_blas.py [--repeats 15] [--no-torch]

The suite (``benchmarks/run.py``) times each library in a process of its own, one
after the other, so a machine whose speed drifts over minutes shifts its ratios.
Here the libraries take turns repeat by repeat on the same operands (transposes
as views, as training reads them), and each ratio is the median over repeats of
peer time / pydrop time. One thread each (``pydrop.set_num_threads``, the BLAS
thread variables set before NumPy loads, ``torch.set_num_threads``): with more, each
library's idle pool (OpenMP, OpenBLAS and pydrop workers all spin for a while
after a call) steals the cores from the next one's turn, so the multi-threaded
comparison stays in the suite's one-process-per-library runs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# One BLAS thread, set before NumPy (or PyTorch) loads its BLAS, which reads these once.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

import pydrop  # noqa: E402
from pydrop.bench.kernels import _operands, mlp_products  # noqa: E402
from pydrop.bench.timing import measure_interleaved  # noqa: E402


def _impls(a: np.ndarray, b: np.ndarray, c: np.ndarray, torch: object) -> list:
    """pydrop, NumPy, then (when given) PyTorch computing c = a @ b in place."""
    fns = [lambda: pydrop.matmul(a, b, out=c), lambda: np.matmul(a, b, out=c)]
    if torch is not None:
        ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))  # type: ignore[attr-defined]
        fns.append(lambda: torch.mm(ta, tb, out=tc))  # type: ignore[attr-defined]
    return fns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--min-time", type=float, default=0.05)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass
    peers = ["numpy"] + (["torch"] if torch is not None else [])
    print(
        f"pydrop {pydrop.__version__} ISA {pydrop.get_isa()}; NumPy {np.__version__}"
        + (f"; PyTorch {torch.__version__}" if torch is not None else "")
    )
    print("1 thread; speed-up = peer time / pydrop time, median of paired repeats; GFLOP/s")
    pydrop.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    geo: dict[str, list[float]] = {p: [] for p in peers}
    head = f"{'product':<12} {'m x k x n':>13} {'pydrop':>8}"
    print(head + "".join(f" {p:>8} {'x ' + p:>9}" for p in peers))
    for case in mlp_products():
        a, b, c = _operands(case, np.random.default_rng(1))
        timings, samples = measure_interleaved(
            _impls(a, b, c, torch), repeats=args.repeats, min_time=args.min_time
        )
        flop = 2.0 * case["m"] * case["k"] * case["n"]
        shape = f"{case['m']}x{case['k']}x{case['n']}"
        row = f"{case['op']:<12} {shape:>13} {flop / timings[0].median / 1e9:8.1f}"
        for i, p in enumerate(peers, start=1):
            ratio = statistics.median(s / s0 for s, s0 in zip(samples[i], samples[0], strict=True))
            geo[p].append(ratio)
            row += f" {flop / timings[i].median / 1e9:8.1f} {ratio:8.2f}x"
        print(row)
    for p in peers:
        g = math.exp(statistics.fmean(math.log(r) for r in geo[p]))
        print(f"geomean vs {p}: {g:.2f}x (min {min(geo[p]):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
