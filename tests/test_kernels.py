"""Every SIMD path equals the scalar reference bit for bit: masks, dropout, ReLU."""

import numpy as np
import pytest

import pydrop

SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099, 2**20 + 3]
PS = [0.0, 0.1, 0.5, 0.8, 1.0]
SIMD = [isa for isa in pydrop.supported_isas() if isa != "scalar"]
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs only the scalar path")


def special_values(n: int, seed: int) -> np.ndarray:
    """Normal values sprinkled with NaN, +-Inf, +-0.0, subnormals and extremes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    specials = np.array(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38], dtype=np.float32
    )
    idx = rng.integers(0, max(n, 1), size=min(n, 64))
    x[idx] = specials[np.arange(idx.size) % specials.size]
    return x


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)


def on(isa: str, fn):
    with pydrop.use_isa(isa):
        return fn()


@pytest.mark.parametrize("simd", SIMD)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("n", SIZES)
def test_dropout_forward_backward_match_scalar(simd, n, p):
    x = special_values(n, n)
    dy = special_values(n, n + 1)

    def run():
        y, mask = pydrop.dropout(x, p, seed=1234567, stream=3, step=n, return_mask=True)
        return y, mask, pydrop.dropout_backward(dy, mask, p)

    y0, m0, dx0 = on("scalar", run)
    y1, m1, dx1 = on(simd, run)
    np.testing.assert_array_equal(m1, m0)
    np.testing.assert_array_equal(bits(y1), bits(y0))
    np.testing.assert_array_equal(bits(dx1), bits(dx0))


# Keep thresholds t = round(p * 65536) at the edges of the SIMD compares: 0 (p > 0
# but below 2^-17: everything kept), 1, either side of 2^15, and 65535; over 2^20
# elements, so that t = 1 and t = 65535 each see a few of their rare outcomes.
EDGE_P = [1e-7, 2.0**-16, 32767 / 65536, 32769 / 65536, 65535 / 65536]


@pytest.mark.parametrize("simd", SIMD)
@pytest.mark.parametrize("p", EDGE_P)
def test_dropout_threshold_edges_match_scalar(simd, p):
    x = special_values(2**20 + 3, 7)

    def run():
        return pydrop.dropout(x, p, seed=99, step=5, return_mask=True)

    y0, m0 = on("scalar", run)
    y1, m1 = on(simd, run)
    np.testing.assert_array_equal(m1, m0)
    np.testing.assert_array_equal(bits(y1), bits(y0))
    kept = np.unpackbits(m0, bitorder="little")[: x.size].mean()
    if p < 2.0**-17:
        assert kept == 1.0
    else:
        assert 0.0 < kept < 1.0


@pytest.mark.parametrize("simd", SIMD)
@pytest.mark.parametrize("n", SIZES)
def test_relu_matches_scalar(simd, n):
    x = special_values(n, 7 * n)
    dy = special_values(n, 7 * n + 1)

    def run():
        return pydrop.relu(x), pydrop.relu_backward(dy, x)

    y0, dx0 = on("scalar", run)
    y1, dx1 = on(simd, run)
    np.testing.assert_array_equal(bits(y1), bits(y0))
    np.testing.assert_array_equal(bits(dx1), bits(dx0))


@pytest.mark.parametrize("simd", SIMD)
@pytest.mark.parametrize("offset", [1, 3, 8, 13])
def test_unaligned_subranges_match_scalar(simd, offset):
    # Views that start mid-vector exercise unaligned loads and stores.
    base = special_values(5000, offset)
    x = base[offset:]
    y0 = on("scalar", lambda: pydrop.dropout(x, 0.3, seed=5))
    y1 = on(simd, lambda: pydrop.dropout(x, 0.3, seed=5))
    np.testing.assert_array_equal(bits(y1), bits(y0))
