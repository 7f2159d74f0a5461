"""Results are bit-identical for any thread count."""

import numpy as np
import pytest

import pydrop
from pydrop._ops import take_rows


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


def test_oversubscribed_pool_back_to_back_jobs_match_one_thread(restore_threads):
    """Four threads on fewer cores: workers are often late or preempted, so callers
    run several tasks of a job and workers wake to jobs that are already over. Every
    result must still be the 1-thread one, bit for bit."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal(300_000).astype(np.float32)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 256)).astype(np.float32)
    idx = rng.integers(0, 256, 700)

    def run(i):
        y = pydrop.dropout(x, 0.5, seed=3, step=i)
        c = pydrop.matmul(a, b.T if i % 2 else b)
        rows = take_rows(a, idx)
        return y.view(np.uint32), c.view(np.uint32), rows

    pydrop.set_num_threads(1)
    want = [run(i) for i in range(4)]
    pydrop.set_num_threads(4)
    for i in range(200):
        for got, ref in zip(run(i % 4), want[i % 4], strict=True):
            np.testing.assert_array_equal(got, ref)
