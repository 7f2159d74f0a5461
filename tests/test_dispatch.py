"""ISA selection and PYDROP_* environment variables, checked in fresh interpreters."""

import os
import subprocess
import sys

import pytest

import pydrop

ALL = pydrop._ops.ISAS


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYDROP_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("isa", ALL)
def test_forced_isa_is_the_active_one(isa):
    r = run("import pydrop; print(pydrop.get_isa(), pydrop.info()['isa'])", PYDROP_ISA=isa)
    if isa in pydrop.supported_isas():
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [isa, isa]
    else:
        assert r.returncode != 0
        assert "RuntimeError" in r.stderr and f"PYDROP_ISA={isa}" in r.stderr
        assert "Segmentation" not in r.stderr


def test_default_isa_is_the_fastest_supported():
    # the widest, but zen4 where AVX-512 runs in two 256-bit passes (AMD Zen 4)
    features = pydrop.info()["cpu_features"]
    supported = pydrop.supported_isas()
    want = "avx512" if "avx512" in supported else supported[-1]
    if "avx512_half" in features:
        assert "avx512f" in features
        want = "zen4"
    assert ("zen4" in supported) == ("avx512" in supported)
    r = run("import pydrop; print(pydrop.get_isa())")
    assert r.stdout.strip() == want


def test_unknown_isa_name_is_a_clean_error():
    r = run("import pydrop", PYDROP_ISA="sse9")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "sse9" in r.stderr


def test_set_isa_rejects_missing_and_unknown():
    with pytest.raises(ValueError, match="one of"):
        pydrop.set_isa("neon")
    with pytest.raises(TypeError):
        pydrop.set_isa(2)
    for isa in ALL:
        if isa not in pydrop.supported_isas():
            with pytest.raises(RuntimeError, match="not supported"):
                pydrop.set_isa(isa)


def test_num_threads_env():
    r = run("import pydrop; print(pydrop.get_num_threads())", PYDROP_NUM_THREADS="3")
    assert r.stdout.strip() == "3"
    r = run("import pydrop", PYDROP_NUM_THREADS="many")
    assert r.returncode != 0 and "PYDROP_NUM_THREADS" in r.stderr
    r = run("import pydrop; print(pydrop.get_num_threads())", PYDROP_NUM_THREADS="100")
    assert r.stdout.strip() == "64"
    assert "RuntimeWarning: PYDROP_NUM_THREADS=100 is above pydrop's limit of 64" in r.stderr


def test_default_threads_are_the_usable_cores():
    r = run("import os, pydrop; print(pydrop.get_num_threads(), len(os.sched_getaffinity(0)))")
    got, cores = r.stdout.split()
    assert int(got) == min(int(cores), 64)


def test_info_fields():
    info = pydrop.info()
    assert info["version"] == pydrop.__version__
    assert info["isa"] in info["supported_isas"]
    assert "scalar" in info["supported_isas"]
    assert isinstance(info["cpu_features"], list)
    assert info["num_threads"] == pydrop.get_num_threads()


def test_fma_peak_runs_whole_rounds_on_each_path(isa, restore_threads):
    # the benchmark's SGEMM ceiling: 12 chains of FMAs on 1, 8 or 16 floats per thread
    # (zen4's SGEMM is ymm: 8)
    from pydrop._ops import fma_peak

    lanes = {"scalar": 1, "avx2": 8, "avx512": 16, "zen4": 8}[isa]
    for threads in (1, 2):
        pydrop.set_num_threads(threads)
        per_round = 2 * 12 * lanes * threads
        assert fma_peak(10**6) == 10**6 // per_round * per_round
    assert fma_peak(0) == 0
    with pytest.raises(ValueError, match="flops"):
        fma_peak(-1)
    with pytest.raises(TypeError, match="flops"):
        fma_peak(1.5)
