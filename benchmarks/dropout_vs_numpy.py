"""pydrop.dropout against the tutorial's NumPy dropout_layer, in one run.

    python benchmarks/dropout_vs_numpy.py [--rows 256 --cols 1024 --p 0.5 --threads 1]

Both run in this process on the same float32 input, one thread each: pydrop via
``pydrop.set_num_threads``, NumPy's BLAS via threadpoolctl when installed (the
tutorial's dropout is elementwise NumPy and single-threaded anyway). Each is
warmed up, then the two are timed in alternating repeats (median, min, max per
call). Printed: both timings, the active ISA, and the ratio tutorial / pydrop,
for pydrop writing into a preallocated ``out=`` and for the allocating
``pydrop.dropout_layer``: the median of the per-repeat ratios, each taken from two
runs a fraction of a second apart, so that the machine's drift cancels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import pydrop  # noqa: E402
from pydrop.bench.reference import dropout_layer  # noqa: E402
from pydrop.bench.timing import measure_paired  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cols", type=int, default=1024)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--min-time", type=float, default=0.1)
    args = ap.parse_args()

    pydrop.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=args.threads)  # noqa: F841 (held until exit)
        pin = f"threadpoolctl {args.threads}"
    except ImportError:
        pin = "unpinned (threadpoolctl not installed)"

    x = np.random.default_rng(0).standard_normal((args.rows, args.cols), dtype=np.float32)
    y = np.empty_like(x)
    p = args.p
    kw = {"repeats": args.repeats, "min_time": args.min_time}
    t_tut, t_pd, r_pd = measure_paired(
        lambda: dropout_layer(x, p), lambda: pydrop.dropout(x, p, out=y), **kw
    )
    t_tut2, t_pd_alloc, r_alloc = measure_paired(
        lambda: dropout_layer(x, p), lambda: pydrop.dropout_layer(x, p), **kw
    )

    def show(name: str, t) -> None:  # noqa: ANN001
        print(
            f"{name:<34} {t.median * 1e6:10.1f} µs  (min {t.min * 1e6:.1f}, max {t.max * 1e6:.1f};"
            f" {t.repeats} x {t.number} calls)"
        )

    print(
        f"dropout on {args.rows}x{args.cols} float32, p={p}, {args.threads} thread(s); "
        f"pydrop {pydrop.__version__} ISA {pydrop.get_isa()}; NumPy {np.__version__} BLAS {pin}"
    )
    show("tutorial NumPy dropout_layer", t_tut)
    show("pydrop.dropout(x, p, out=y)", t_pd)
    show("tutorial NumPy dropout_layer", t_tut2)
    show("pydrop.dropout_layer(x, p)", t_pd_alloc)
    print(f"ratio tutorial / pydrop.dropout(out=):   {r_pd:.1f}x (median of paired repeats)")
    print(f"ratio tutorial / pydrop.dropout_layer:   {r_alloc:.1f}x (median of paired repeats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
