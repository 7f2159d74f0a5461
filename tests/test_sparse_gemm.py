"""SGEMM's sparse paths (pydrop.set_sparse_gemm) against its dense path, bit for bit.

Each row of C sums only the nonzero terms of its row of op(A), in the dense order with
the dense arithmetic: adding 0 * x (x finite) to a running sum never changes it, so
the two paths agree to the bit, on every ISA and for any thread count. When op(B) is
the sparser operand, the product runs as C^T = op(B)^T op(A)^T with C written
transposed: the same products summed in the same order (x * y == y * x). Past one k
chunk (320), each chunk's sum is made so and added to C as the dense path adds it.
'always' takes the sparser operand of every product whose other operand, packed,
fits one block, so these tests reach every edge of the kernels whatever the density.
The operands are standard normal, so no product comes near underflow: a sum that
underflows to -0.0 is the one place the paths may differ (the dense path's next
0 * x term turns it into +0.0).
"""

import numpy as np
import pytest
from test_matmul import check, operand, run

import pydrop

F = np.float32


def sparse_operand(rng, rows, cols, trans, density, pad=0):
    """operand() with all but about `density` of its elements set to zero."""
    a = operand(rng, rows, cols, trans, pad)
    a[rng.random(a.shape) >= density] = 0.0
    return a


def both_paths(a, b, alpha=1.0, beta=0.0, c_in=None):
    """C from the dense path and from the sparse path, as raw bits."""
    out = []
    for mode in ("off", "always"):
        with pydrop.use_sparse_gemm(mode):
            out.append(run(a, b, alpha, beta, c_in).view(np.uint32).copy())
    return out


# (m, k, n): rows odd and even, n around the 8-wide vectors, the 16- and 32-wide packed
# panels and the 48-column blocks of the kernels, k across the 128-row segments and
# past one k chunk (k > 320: 2, 3 and 4 chunks, the last shorter)
SHAPES = [
    (1, 1, 1),
    (7, 9, 5),
    (6, 16, 8),
    (13, 127, 17),
    (20, 128, 31),
    (33, 129, 32),
    (64, 255, 33),
    (9, 256, 47),
    (40, 300, 48),
    (3, 64, 49),
    (150, 200, 100),
    (21, 321, 50),
    (40, 700, 48),
    (6, 1153, 17),
]


def operands(rng, m, k, n, ta, tb, side, density):
    """op(A) and op(B), the one on `side` ('a' or 'b') mostly zeros."""
    if side == "a":
        return sparse_operand(rng, m, k, ta, density, pad=3), operand(rng, k, n, tb)
    return operand(rng, m, k, ta, 3), sparse_operand(rng, k, n, tb, density)


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_sparse_equals_dense_bit_for_bit(any_isa, m, k, n, ta, tb, side):
    rng = np.random.default_rng(m * 1000 + k + n)
    for density in (0.0, 0.3, 1.0):
        a, b = operands(rng, m, k, n, ta, tb, side, density)
        dense, sparse = both_paths(a, b)
        np.testing.assert_array_equal(dense, sparse)
        check(sparse.view(F), a, b, None, 1.0, 0.0)
        # (m, n) swapped: the other side's kernels see this shape's edges
        dense, sparse = both_paths(b.T, a.T)
        np.testing.assert_array_equal(dense, sparse)


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.0), (1.0, 1.0), (-2.0, 0.25)])
@pytest.mark.parametrize("k", [150, 650])
def test_alpha_beta(any_isa, alpha, beta, side, k):
    """beta scales C into the first k chunk's sum only; later chunks add to C."""
    rng = np.random.default_rng(11)
    a, b = operands(rng, 37, k, 45, True, False, side, 0.3)
    c_in = rng.standard_normal((37, 45)).astype(F)
    dense, sparse = both_paths(a, b, alpha, beta, c_in)
    np.testing.assert_array_equal(dense, sparse)
    check(sparse.view(F), a, b, c_in, alpha, beta)


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("k", [256, 700])
def test_bit_identical_for_1_2_3_threads(any_isa, restore_threads, side, k):
    rng = np.random.default_rng(12)
    a, b = operands(rng, 256, k, 200, False, True, side, 0.3)
    results = []
    with pydrop.use_sparse_gemm("always"):
        for threads in (1, 2, 3):
            pydrop.set_num_threads(threads)
            results.append(run(a, b).view(np.uint32).copy())
    with pydrop.use_sparse_gemm("off"):
        results.append(run(a, b).view(np.uint32).copy())
    for r in results[1:]:
        np.testing.assert_array_equal(results[0], r)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize(
    "k, p, j", [(100, 17, 3), (100, 17, 12), (100, 0, 0), (100, 99, 49), (700, 480, 7)]
)
def test_inf_or_nan_in_the_dense_operand_takes_the_dense_path(
    any_isa, restore_threads, bad, k, p, j
):
    """0 * Inf is NaN: with an Inf or NaN in the dense operand, skipping the zeros of
    the sparse one would drop it, so such a product runs dense and propagates it as
    the dense path does (op(A) sparse with op(B) bad, then the transposed case). The
    spots fall in either half of a 16-float run of packed B, in its last panel, and
    in the last of three k chunks (after the first two were summed sparse)."""
    rng = np.random.default_rng(13)
    a, b = sparse_operand(rng, 40, k, False, 0.3), operand(rng, k, 50, False)
    b[p, j] = bad
    a[:, p] = 0.0
    a[5, p] = 1.0  # row 5 meets it, the rest multiply it by zero
    for threads in (1, 2):
        pydrop.set_num_threads(threads)
        for x, y, got_col in ((a, b, lambda c: c[:, j]), (b.T, a.T, lambda c: c[j])):
            dense, sparse = both_paths(x, y)
            np.testing.assert_array_equal(dense, sparse)
            col = got_col(sparse.view(F))
            if np.isnan(bad):
                assert np.isnan(col).all()
            else:
                assert np.isnan(np.delete(col, 5)).all() and np.isinf(col[5])
            assert np.isnan(sparse.view(F)).sum() == np.isnan(col).sum()


@pytest.mark.parametrize("bad_col", [250, 500])
def test_threaded_column_groups_with_inf_and_beta(any_isa, restore_threads, bad_col):
    """Threaded, a large enough sparse product splits its columns into groups, one per
    thread, each packing its own part of B: an Inf in one group's part must send the
    whole product down the dense path (in the last packing unit of either group), and beta != 0
    (C is read) keeps the product in full-width row blocks. Same bits for 1-3 threads,
    over repeated calls (which thread takes which group varies with their timing)."""
    rng = np.random.default_rng(16)
    a, b = sparse_operand(rng, 128, 300, False, 0.3), operand(rng, 300, 512, False)
    c_in = rng.standard_normal((128, 512)).astype(F)
    bad = b.copy()
    bad[17, bad_col] = np.inf
    for x, y, c, beta in (
        (a, b, None, 0.0),
        (a, bad, None, 0.0),
        (a, b, c_in, 0.5),
        (a, bad, c_in, 0.5),
    ):
        for xx, yy, cc in ((x, y, c), (y.T, x.T, None if c is None else c.T.copy())):
            want = both_paths(xx, yy, 1.0, beta, cc)[0]
            for threads in (1, 2, 3):
                pydrop.set_num_threads(threads)
                for _ in range(1 if threads == 1 else 10):
                    got = both_paths(xx, yy, 1.0, beta, cc)
                    np.testing.assert_array_equal(got[0], want)
                    np.testing.assert_array_equal(got[1], want)
            pydrop.set_num_threads(1)
    got = both_paths(a, bad)[1].view(F)
    assert np.isinf(got[:, bad_col]).any() and np.isnan(got[:, bad_col]).any()


def test_product_past_one_block_runs_dense(any_isa):
    """A product whose other operand, packed, is more than one block (here 2112 x 1100
    floats of B in 4 k chunks, over 2**21) takes the dense path even in 'always'."""
    rng = np.random.default_rng(17)
    a, b = sparse_operand(rng, 3, 1100, False, 0.3), operand(rng, 1100, 2100, False)
    dense, sparse = both_paths(a, b)
    np.testing.assert_array_equal(dense, sparse)
    check(sparse.view(F), a, b, None, 1.0, 0.0)


def test_nan_in_a_propagates(any_isa):
    rng = np.random.default_rng(14)
    a, b = sparse_operand(rng, 30, 60, False, 0.3), operand(rng, 60, 40, False)
    a[4, 9] = np.nan
    dense, sparse = both_paths(a, b)
    np.testing.assert_array_equal(dense, sparse)
    got = sparse.view(F)
    assert np.isnan(got[4]).all() and not np.isnan(np.delete(got, 4, axis=0)).any()


@pytest.mark.parametrize("k, density", [(256, 0.3), (784, 0.5)])
def test_fused_linear_forward_and_backward(any_isa, restore_threads, k, density):
    """The training products: the fused Dense+ReLU+Dropout forward on a sparse input
    (the bias epilogue and the mask draw), and its backward with both GEMMs; 784
    inputs half zeros as layer 1 meets a Fashion-MNIST batch (3 k chunks)."""
    rng = np.random.default_rng(15)
    x = sparse_operand(rng, 256, k, False, density)
    w = (rng.standard_normal((k, 256)) * 0.05).astype(F)
    bias = rng.standard_normal(256).astype(F)
    dy = rng.standard_normal((256, 256)).astype(F)
    out = {}
    for mode in ("off", "always", "auto"):
        with pydrop.use_sparse_gemm(mode):
            for threads in (1, 2):
                pydrop.set_num_threads(threads)
                y, mask = pydrop.linear(
                    x, w, bias, activation="relu", dropout=0.5, seed=3, return_mask=True
                )
                dx, dw, db = pydrop.linear_backward(
                    dy, x, w, y, mask, activation="relu", dropout=0.5
                )
                out[mode, threads] = [v.view(np.uint8).copy() for v in (y, mask, dx, dw, db)]
    first = out["off", 1]
    for key, got in out.items():
        for want, have in zip(first, got, strict=True):
            np.testing.assert_array_equal(want, have, err_msg=str(key))


def test_mode_round_trip_and_bad_values():
    before = pydrop.get_sparse_gemm()
    assert before == "auto" and pydrop.info()["sparse_gemm"] == "auto"
    with pydrop.use_sparse_gemm("off"):
        assert pydrop.get_sparse_gemm() == "off" and pydrop.info()["sparse_gemm"] == "off"
    assert pydrop.get_sparse_gemm() == before
    with pytest.raises(ValueError, match="mode must be one of"):
        pydrop.set_sparse_gemm("sometimes")
    with pytest.raises(TypeError, match="mode must be a str"):
        pydrop.set_sparse_gemm(1)
    assert pydrop.get_sparse_gemm() == before
