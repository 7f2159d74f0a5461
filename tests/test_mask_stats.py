"""Mask statistics at fixed seeds (deterministic, so never flaky; all |z| < 5).

Layout reminder: one Philox block yields the 8 elements of one mask byte, and a
SIMD path draws one block per 32-bit lane, so adjacent lanes are elements 8 apart
and a whole vector is 64 (AVX2) or 128 (AVX-512) elements. Each check targets a
known SIMD-RNG bug: lanes sharing a counter, counters stepped by the vector width,
a key/counter mix-up that ignores step or seed, and related start states.
"""

import numpy as np
import pytest

import pydrop

N = 1 << 20
Z = 5.0


def keep(n: int, p: float, seed: int, stream: int = 0, step: int = 0) -> np.ndarray:
    x = np.ones(n, dtype=np.float32)
    _, mask = pydrop.dropout(x, p, seed=seed, stream=stream, step=step, return_mask=True)
    return np.unpackbits(mask, bitorder="little")[:n].astype(np.float64)


def realised_keep(p: float) -> float:
    t = int(np.float64(np.float32(p)) * 65536 + 0.5)
    return (65536 - t) / 65536


def corr_z(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation scaled by sqrt(n): ~N(0, 1) for independent bits."""
    r = np.corrcoef(a, b)[0, 1]
    return float(r * np.sqrt(a.size))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction(isa, p):
    b = keep(N, p, seed=11)
    q = realised_keep(p)
    z = (b.sum() - N * q) / np.sqrt(N * q * (1 - q))
    assert abs(z) < Z, f"kept {b.mean():.5f}, expected {q:.5f} (z = {z:.2f})"


def test_keep_probability_bound():
    # The documented rule: |realised - (1 - p)| <= 2^-17 for every float32 p.
    ps = np.concatenate(
        [np.linspace(0, 1, 100_001, dtype=np.float32), np.float32([1e-7, 0.5 + 2**-18, 1 - 1e-7])]
    )
    worst = max(abs(realised_keep(float(p)) - (1 - float(p))) for p in ps)
    assert worst <= 2**-17


@pytest.mark.parametrize(
    "lag",
    [1, 2, 7, 8, 16, 64, 128],
    ids=[
        "adjacent-elements",
        "lag2",
        "lag7",
        "adjacent-lanes",
        "lag-2-lanes",
        "avx2-width",
        "avx512-width",
    ],
)
def test_no_correlation_at_lag(isa, lag):
    b = keep(N, 0.5, seed=12)
    z = corr_z(b[:-lag], b[lag:])
    assert abs(z) < Z, f"lag {lag}: z = {z:.2f}"


@pytest.mark.parametrize(
    "other",
    [dict(step=1), dict(seed=13), dict(stream=1)],
    ids=["step", "seed", "stream"],
)
def test_other_step_seed_stream_gives_independent_mask(isa, other):
    base = dict(seed=12, stream=0, step=0)
    a = keep(N, 0.5, **base)
    b = keep(N, 0.5, **{**base, **other})
    assert not np.array_equal(a, b)
    z = corr_z(a, b)
    assert abs(z) < Z, f"{other}: z = {z:.2f}"


def test_first_rows_after_seeding_independent_across_lanes(isa):
    # Small consecutive seeds, the first 128 elements each (one AVX-512 vector, two
    # AVX2 vectors): each element's column across seeds must look fair, and
    # elements one lane apart must be uncorrelated across seeds.
    seeds = range(4096)
    rows = np.stack([keep(128, 0.5, seed=s) for s in seeds])
    n = rows.shape[0]
    frac_z = (rows.sum(axis=0) - n / 2) / np.sqrt(n / 4)
    assert np.abs(frac_z).max() < Z
    lane_z = [corr_z(rows[:, j], rows[:, j + 8]) for j in range(120)]
    assert np.abs(lane_z).max() < Z
    seed_z = [corr_z(rows[i], rows[i + 1]) for i in range(0, 4095, 97)]
    assert np.abs(seed_z).max() < Z
