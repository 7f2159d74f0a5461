"""Results are bit-identical for any thread count."""

import numpy as np
import pytest

import pydrop


@pytest.mark.parametrize("n", [1000, 65536 + 5, 2**20 + 3, 3 * 2**20 + 17])
def test_dropout_same_for_1_2_4_threads(isa, restore_threads, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    results = []
    for threads in (1, 2, 4):
        pydrop.set_num_threads(threads)
        y, mask = pydrop.dropout(x, 0.5, seed=99, step=4, return_mask=True)
        dx = pydrop.dropout_backward(x, mask, 0.5)
        results.append((y.view(np.uint32), mask, dx.view(np.uint32)))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_num_threads_round_trip(restore_threads):
    pydrop.set_num_threads(3)
    assert pydrop.get_num_threads() == 3
    assert pydrop.info()["num_threads"] == 3


def test_concurrent_callers_get_correct_results(restore_threads):
    # Python threads calling in parallel (cffi releases the GIL) share one pool.
    from concurrent.futures import ThreadPoolExecutor

    pydrop.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal(300_000).astype(np.float32)
    expected = pydrop.dropout(x, 0.5, seed=1)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: pydrop.dropout(x, 0.5, seed=1), range(16)))
    for y in outs:
        np.testing.assert_array_equal(y, expected)
