"""Run the benchmark suite from a source checkout: ``python benchmarks/run.py [flags]``.

The suite itself lives in ``pydrop.bench`` so that ``pydrop bench`` works from an
installed wheel; this script only adds the checkout to ``sys.path`` and, without
``--out``/``--json``/``--markdown``, writes to ``benchmarks/results/``. Flags are
those of ``pydrop bench --help``.

    python benchmarks/run.py            # full suite -> benchmarks/results/
    python benchmarks/run.py --quick    # < 60 s
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pydrop.bench import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    command = " ".join(["python benchmarks/run.py", *argv])
    if not any(
        a.split("=")[0] in ("--out", "--json", "--markdown", "--plots", "-h", "--help")
        for a in argv
    ):
        argv += ["--out", str(HERE / "results")]
    sys.exit(main(argv, command=command))
