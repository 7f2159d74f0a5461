"""What machine and software a benchmark ran on (collected without importing torch)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# Environment variables that change what the measured libraries do.
ENV_VARS = (
    "PYDROP_ISA",
    "PYDROP_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)

# CPU flags (as /proc/cpuinfo names them) that matter for the kernels measured here.
ISA_FLAGS = (
    "sse2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
)


def _cpuinfo() -> tuple[str, list[str]]:
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value.split()
    return model, flags


def _caches() -> dict[str, str]:
    out: dict[str, str] = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")):
        try:
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
        except OSError:
            continue
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[name] = size
    return out


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> dict[str, object]:
    """CPU model, ISA flags, caches, cores, OS, Python, and the relevant environment."""
    model, flags = _cpuinfo()
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in ISA_FLAGS if f in flags],
        "caches": _caches(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "environment": {k: os.environ.get(k) for k in ENV_VARS if os.environ.get(k) is not None},
    }


def blas_info() -> list[dict[str, object]] | str:
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries, if it is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed"
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: d.get(k) for k in keep} for d in threadpoolctl.threadpool_info()]
