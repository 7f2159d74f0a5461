"""cffi out-of-line API-mode build of pydrop._native.

The cdef is the public header itself (minus its preprocessor guard lines), and the
generated C includes that same header, so a declaration that drifts from the C
source is a compile error rather than a silent ABI mismatch.

Build knobs (environment variables):
  PYDROP_SANITIZE=1  add -fsanitize=address,undefined (used by `make sanitize`)
  PYDROP_SIMDE=1     compile the x86 kernels against SIMDe's emulated intrinsics
                     (used by `make emulate` to run AVX-512 code on any CPU)
"""

import os
import platform
import re
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
HEADER = CSRC / "pydrop.h"


def header_cdef(text: str) -> str:
    """The header's declarations, without include guards and #include lines."""
    keep = []
    for line in text.splitlines():
        if re.match(r"\s*#\s*(ifndef|endif|include|define\s+PYDROP_H)", line):
            continue
        keep.append(line)
    return "\n".join(keep)


def compile_args() -> tuple[list[str], list[str], list[tuple[str, str | None]]]:
    if sys.platform == "win32":
        return ["/O2", "/W3"], [], []
    cflags = ["-std=c11", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden"]
    ldflags = ["-pthread"]
    macros: list[tuple[str, str | None]] = [("_GNU_SOURCE", None)]
    if os.environ.get("PYDROP_SANITIZE") == "1":
        san = [
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ]
        cflags += san + ["-O1", "-g"]
        ldflags += san
    if os.environ.get("PYDROP_SIMDE") == "1":
        macros.append(("PD_SIMDE", None))
        if platform.machine().lower() in ("x86_64", "amd64"):
            # SIMDe must not use the host's native AVX-512 (there is none to use), but
            # does use AVX2 and FMA: it then runs 512-bit operations as 256-bit halves
            # with fused multiply-adds (its portable fmadd rounds twice), so emulated
            # kernels give the bits of the real ones. Needs an AVX2 + FMA host.
            cflags += ["-mno-avx512f", "-mavx2", "-mfma", "-Wno-psabi"]
    return cflags, ldflags, macros


ffibuilder = FFI()
ffibuilder.cdef(header_cdef(HEADER.read_text()))
_cflags, _ldflags, _macros = compile_args()
ffibuilder.set_source(
    "pydrop._native",
    '#include "pydrop.h"\n',
    sources=[str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC.relative_to(ROOT))],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
    define_macros=_macros,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
