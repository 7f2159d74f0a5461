"""SGEMM (pydrop.matmul / pd_sgemm) on every ISA path against a float64 reference.

Error bound. Each output element is alpha * (a dot product of length k) + beta * c.
With round-off unit u = eps32 / 2, a float32 dot product (any summation order, FMA or
not) satisfies |fl(x.y) - x.y| <= gamma_k |x|.|y|, gamma_k = k u / (1 - k u) (Higham,
Accuracy and Stability of Numerical Algorithms, 3.1). Scaling by alpha, by beta and
the final addition add at most three more roundings, so we test the looser, simpler

    |C - C_ref| <= GAMMA(k + 2) * (|alpha| |op(A)| |op(B)| + |beta| |C_in|),
    GAMMA(j) = j * eps32 / (1 - j * eps32)        (eps32 = 2^-23, i.e. u doubled)

elementwise, where C_ref is computed in float64 from the same float32 inputs. The
bound is a named function below; a kernel that drops a term, double counts a k chunk
or mishandles an edge is off by O(1) relative error and fails it.
"""

import itertools

import numpy as np
import pytest
from pydrop._native import ffi, lib

import pydrop

EPS32 = float(np.finfo(np.float32).eps)
F = np.float32


def gamma(j: int) -> float:
    """Higham's gamma with eps32 in place of u: a safe bound for j roundings."""
    return j * EPS32 / (1.0 - j * EPS32)


def operand(rng, rows, cols, trans, pad=0):
    """A float32 operand of logical shape (rows, cols): C-contiguous, or the transposed
    view of a C-contiguous (cols, rows) array; pad > 0 makes the leading dimension
    larger than the logical width (a column slice of a wider array)."""
    shape = (cols, rows) if trans else (rows, cols)
    base = rng.standard_normal((shape[0], shape[1] + pad)).astype(F)
    x = base[:, : shape[1]]
    return x.T if trans else x


def check(c, a, b, c_in, alpha, beta):
    """Assert the GAMMA(k + 2) bound (see the module docstring) elementwise."""
    k = a.shape[1]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = alpha * (a64 @ b64)
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0.0:
        ref += beta * c_in.astype(np.float64)
        scale += abs(beta) * np.abs(c_in.astype(np.float64))
    bound = gamma(k + 2) * scale
    err = np.abs(c.astype(np.float64) - ref)
    bad = ~(err <= bound)  # catches NaN too
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AssertionError(
            f"{int(bad.sum())} elements out of bound, first at ({i}, {j}): got {c[i, j]!r}, "
            f"want {ref[i, j]!r} +- {bound[i, j]!r} (k={k}, alpha={alpha}, beta={beta})"
        )


def run(a, b, alpha=1.0, beta=0.0, c_in=None, out_pad=0, nan_out=False):
    m, n = a.shape[0], b.shape[1]
    base = np.empty((m, n + out_pad), dtype=F)
    base[:] = np.nan if nan_out else 0.0
    out = base[:, :n]
    if c_in is not None:
        out[:] = c_in
    got = pydrop.matmul(a, b, out=out, alpha=alpha, beta=beta)
    assert got is out or np.shares_memory(got, out)
    if out_pad:
        # columns past n (inside the leading dimension) are never written
        assert np.all(np.isnan(base[:, n:])) if nan_out else np.all(base[:, n:] == 0)
    return out


TRANS = list(itertools.product((False, True), repeat=2))


def test_gamma_is_tight_enough_to_fail():
    # The bound must catch a wrong answer: one dropped k term is far outside it.
    rng = np.random.default_rng(0)
    a, b = operand(rng, 8, 40, False), operand(rng, 40, 8, False)
    wrong = (a[:, :-1].astype(np.float64) @ b[:-1].astype(np.float64)).astype(F)
    with pytest.raises(AssertionError):
        check(wrong, a, b, None, 1.0, 0.0)


SWEEP_ALPHA_BETA = [(1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.25, -1.5)]


def test_every_dimension_1_to_67(any_isa):
    """Every value 1..67 of m, n and k (the other two rotating through the same range),
    with all four transpose combinations cycled, each with every (alpha, beta) of
    SWEEP_ALPHA_BETA, and non-unit leading dimensions on some."""
    rng = np.random.default_rng(67)
    dims = np.arange(1, 68)
    for axis in range(3):
        others = rng.permutation(dims), rng.permutation(dims)
        for idx, d in enumerate(dims):
            mnk = [int(others[0][idx]), int(others[1][idx])]
            mnk.insert(axis, int(d))
            m, n, k = mnk
            ta, tb = TRANS[(idx + axis) % 4]
            pad = idx % 3  # 0: dense, else a leading dimension larger than the width
            alpha, beta = SWEEP_ALPHA_BETA[idx // 4 % 4]
            a = operand(rng, m, k, ta, pad)
            b = operand(rng, k, n, tb, pad)
            c_in = rng.standard_normal((m, n)).astype(F) if beta else None
            c = run(a, b, alpha, beta, c_in, out_pad=pad)
            check(c, a, b, c_in, alpha, beta)


TAILS = [1, 5, 6, 7, 8, 9, 12, 13, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65]


@pytest.mark.parametrize("ta,tb", TRANS)
def test_tail_grid(any_isa, ta, tb):
    """m x n over the micro-tile tails (MR 4/6/12, NR 8/16/32) at a few k."""
    rng = np.random.default_rng(1)
    for m, n in itertools.product(TAILS, TAILS):
        k = (m * 7 + n * 3) % 67 + 1
        a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
        check(run(a, b), a, b, None, 1.0, 0.0)


@pytest.mark.parametrize(
    "alpha,beta",
    [
        (1.0, 0.0),
        (-0.5, 0.0),
        (2.0, 1.0),
        (1.0, -1.5),
        (0.25, 0.5),
        (0.0, 0.5),
        (0.0, 0.0),
        (3.0, 1e-3),
    ],
)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_alpha_beta(any_isa, ta, tb, alpha, beta):
    rng = np.random.default_rng(2)
    for m, n, k in [(1, 1, 1), (7, 17, 9), (13, 33, 65), (66, 31, 400)]:
        a, b = operand(rng, m, k, ta, 1), operand(rng, k, n, tb, 2)
        c_in = rng.standard_normal((m, n)).astype(F)
        if beta == 0.0:
            # beta == 0 never reads C: NaN there must not leak into the result
            c = run(a, b, alpha, beta, nan_out=True, out_pad=3)
            assert np.isfinite(c).all()
            check(c, a, b, None, alpha, 0.0)
        else:
            c = run(a, b, alpha, beta, c_in=c_in, out_pad=3)
            check(c, a, b, c_in, alpha, beta)


# Operands a product never reads: k == 0 (empty), or alpha == 0 (as in BLAS, so an
# Inf or a NaN there does not reach the result; the README says so).
UNREAD = {
    "k_zero": (np.empty((5, 0), F), np.empty((0, 7), F), 1.0),
    "alpha_zero": (np.array([[np.inf, 1.0], [np.nan, 2.0]], F), np.ones((2, 3), F), 0.0),
}


@pytest.mark.parametrize("case", sorted(UNREAD))
@pytest.mark.parametrize("beta", [0.0, 1.0, -2.0])
def test_unread_operands_give_beta_times_c(any_isa, case, beta):
    a, b, alpha = UNREAD[case]
    m, n = a.shape[0], b.shape[1]
    c_in = np.arange(m * n, dtype=F).reshape(m, n)
    if beta == 0.0:
        c = run(a, b, alpha, beta, nan_out=True)
        np.testing.assert_array_equal(c, np.zeros((m, n), F))
    else:
        c = run(a, b, alpha, beta, c_in=c_in)
        np.testing.assert_array_equal(c, beta * c_in)


def test_empty_outputs(any_isa):
    for m, n, k in [(0, 5, 3), (4, 0, 3), (0, 0, 0)]:
        c = pydrop.matmul(np.ones((m, k), F), np.ones((k, n), F))
        assert c.shape == (m, n)


def same_bits_on_every_isa(compute):
    """compute() on every ISA path this build can run, as raw bytes; asserts they agree."""
    isas = pydrop.supported_isas()
    if len(isas) < 2:
        pytest.skip(f"one ISA path here ({isas})")
    got = {}
    for isa in isas:
        with pydrop.use_isa(isa):
            got[isa] = [np.ascontiguousarray(x).view(np.uint8).copy() for x in compute()]
    for isa in isas[1:]:
        for want, have in zip(got[isas[0]], got[isa], strict=True):
            np.testing.assert_array_equal(want, have, err_msg=f"{isas[0]} vs {isa}")


@pytest.mark.parametrize("sparse", ["off", "always"])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_every_isa_path_gives_the_same_bits(restore_threads, ta, tb, sparse):
    """One k chunking (PD_GEMM_KC_MAX) and, per element, one fused multiply-add per
    term in k order on every path: the scalar kernel and the SIMD ones agree bit for
    bit, dense and sparse, past a k chunk (320), an m block and the panel edges, with
    alpha and beta, at 1 and 2 threads (so trained weights do not depend on the path),
    and on the narrow kernels (C with fewer columns than a micro-tile)."""
    rng = np.random.default_rng(21)
    shapes = [(1, 1, 1), (7, 321, 33), (67, 700, 45), (145, 1000, 70), (13, 64, 130)]
    # narrow C (n < NR): ragged last row panel, k past a chunk, 1 to 3 column parts;
    # the ten-column kernel (n 9 or 10, op(A) untransposed) with ragged rows
    shapes += [(40, 700, 10), (256, 256, 10), (33, 50, 5), (70, 321, 15), (64, 64, 31)]
    shapes += [(37, 400, 9), (21, 30, 10)]
    operands = []
    for m, k, n in shapes:
        a, b = operand(rng, m, k, ta, 3), operand(rng, k, n, tb)
        a[rng.random(a.shape) < 0.7] = 0.0  # sparse enough for either path
        operands.append((a, b, rng.standard_normal((m, n)).astype(F)))

    def compute():
        out = []
        with pydrop.use_sparse_gemm(sparse):
            for threads in (1, 2):
                pydrop.set_num_threads(threads)
                for a, b, c_in in operands:
                    out.append(run(a, b, 1.0, 0.0))
                    out.append(run(a, b, 0.5, -1.5, c_in=c_in))
        return out

    same_bits_on_every_isa(compute)


def test_narrow_panels_at_every_alignment(restore_threads):
    """The narrow path reads an op(A) with adjacent rows (Xᵀ·dY) in place: on AVX2 its
    panels start on 32-byte boundaries (the first one shorter), and a short last panel
    reads the rows that end it. X at every start within a cache line, whole and ragged
    row counts, leading dimensions that do and do not keep the alignment, 1 and 2
    threads: within the float64 bound, and the same bits on every path."""
    rng = np.random.default_rng(8)
    operands = []
    for off in range(16):
        for m, k, n in ((256, 40, 10), (40, 33, 5), (250, 9, 7), (37, 8, 15), (16, 300, 3)):
            buf = np.empty(k * m + 32, dtype=F)
            start = (-buf.ctypes.data % 64) // 4 + off
            x = buf[start : start + k * m].reshape(k, m)  # op(A) = x.T, rows adjacent
            x[:] = rng.standard_normal((k, m))
            c_in = rng.standard_normal((m, n)).astype(F)
            operands.append((x.T, operand(rng, k, n, False), c_in))

    def compute():
        out = []
        for threads in (1, 2):
            pydrop.set_num_threads(threads)
            for a, b, c_in in operands:
                out.append(run(a, b))
                out.append(run(a, b, 0.5, -1.5, c_in=c_in))
        return out

    got = compute()
    for i, (a, b, c_in) in enumerate(operands):
        check(got[2 * i], a, b, None, 1.0, 0.0)
        check(got[2 * i + 1], a, b, c_in, 0.5, -1.5)
    same_bits_on_every_isa(compute)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_blocking_boundaries(any_isa, ta, tb):
    """Shapes past one k chunk (kc_max 320-384), one m block (mc 128-144) and, for n,
    several micro-panels, with beta != 0 so every k chunk's accumulate is checked."""
    rng = np.random.default_rng(3)
    for m, n, k in [(300, 70, 700), (145, 33, 321), (13, 130, 1153)]:
        a, b = operand(rng, m, k, ta, 3), operand(rng, k, n, tb)
        c_in = rng.standard_normal((m, n)).astype(F)
        check(run(a, b, 0.5, 2.0, c_in=c_in), a, b, c_in, 0.5, 2.0)


def test_huge_b_is_done_in_blocks(any_isa):
    """op(B) bigger than the packed-B cap (2^21 floats) and wider than NC (4096):
    several column blocks and k groups."""
    rng = np.random.default_rng(4)
    for m, n, k in [(3, 1100, 2100), (2, 4100, 9)]:
        a, b = operand(rng, m, k, False), operand(rng, k, n, True)
        c_in = rng.standard_normal((m, n)).astype(F)
        check(run(a, b, 1.0, 1.0, c_in=c_in), a, b, c_in, 1.0, 1.0)


MLP = [  # (m, k, n, trans_a, trans_b): the nine products of the 784-256-256-10 MLP
    (256, 784, 256, False, False),
    (256, 256, 256, False, False),
    (256, 256, 10, False, False),
    (784, 256, 256, True, False),
    (256, 256, 256, True, False),
    (256, 256, 10, True, False),
    (256, 10, 256, False, True),
    (256, 256, 256, False, True),
    (256, 256, 784, False, True),
]


@pytest.mark.parametrize("m,k,n,ta,tb", MLP)
def test_mlp_products(any_isa, m, k, n, ta, tb):
    rng = np.random.default_rng(5)
    a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
    check(run(a, b), a, b, None, 1.0, 0.0)


THREAD_SHAPES = MLP[:4] + [
    (67, 300, 65, True, True),  # odd edges on both sides
    (5, 400, 2000, False, False),  # too few rows: the split goes over columns
    (1000, 37, 9, False, True),  # narrow n
    (130, 1153, 70, False, False),  # several k chunks
    (256, 10, 256, False, True),  # short k: tiles go along rows of C
    (200, 700, 200, True, False),  # column groups of 8 and 5 panels, 3 k chunks
    (100, 300, 190, False, True),  # 3 column groups at 4 threads: one task only takes over
    (256, 256, 784, False, True),  # groups of 6 and 7 packing units (3, 3, 3, 4 at 4 threads)
    (70, 300, 300, False, False),  # NR = 16: A packed at 1 thread (19 panels), in place in groups
]


@pytest.mark.parametrize("m,k,n,ta,tb", THREAD_SHAPES)
def test_bit_identical_for_1_2_4_threads(any_isa, restore_threads, m, k, n, ta, tb):
    rng = np.random.default_rng(6)
    a, b = operand(rng, m, k, ta, 1), operand(rng, k, n, tb)
    c_in = rng.standard_normal((m, n)).astype(F)
    results = []
    for threads in (1, 2, 4):
        pydrop.set_num_threads(threads)
        results.append(run(a, b, 0.75, 0.5, c_in=c_in).view(np.uint32).copy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    check(results[0].view(F), a, b, c_in, 0.75, 0.5)


def test_c_leading_dimensions_direct(any_isa):
    """lda, ldb, ldc all larger than the logical widths, through the C entry point."""
    rng = np.random.default_rng(7)
    m, n, k, lda, ldb, ldc = 19, 23, 29, 40, 31, 50
    abuf = rng.standard_normal((m, lda)).astype(F)
    bbuf = rng.standard_normal((k, ldb)).astype(F)
    cbuf = np.full((m, ldc), np.nan, F)
    p = lambda x: ffi.cast("float *", x.ctypes.data)  # noqa: E731
    st = lib.pd_sgemm(0, 0, m, n, k, 1.0, p(abuf), lda, p(bbuf), ldb, 0.0, p(cbuf), ldc)
    assert st == lib.PD_OK
    check(cbuf[:, :n], abuf[:, :k], bbuf[:, :n], None, 1.0, 0.0)
    assert np.isnan(cbuf[:, n:]).all()


_BUFS = [np.ones(1024, F) for _ in range(3)]  # A, B and C, disjoint


def _call(ta=0, tb=0, m=4, n=5, k=6, lda=None, ldb=None, ldc=None, a=True, b=True, c=True):
    pa, pb, pc = (ffi.cast("float *", buf.ctypes.data) for buf in _BUFS)
    lda = (m if ta else k) if lda is None else lda
    ldb = (k if tb else n) if ldb is None else ldb
    ldc = n if ldc is None else ldc
    return lib.pd_sgemm(
        ta,
        tb,
        m,
        n,
        k,
        1.0,
        pa if a else ffi.NULL,
        lda,
        pb if b else ffi.NULL,
        ldb,
        0.0,
        pc if c else ffi.NULL,
        ldc,
    )


def test_c_overlapping_a_or_b_is_rejected_in_c():
    buf = np.ones(256, F)
    base = buf.ctypes.data
    p = lambda off: ffi.cast("float *", base + 4 * off)  # noqa: E731

    # A = buf[0:24] (4 x 6), B = buf[32:62] (6 x 5); C placed on each, then past both.
    def run(c_off):
        return lib.pd_sgemm(0, 0, 4, 5, 6, 1.0, p(0), 6, p(32), 5, 0.0, p(c_off), 5)

    assert run(10) == lib.PD_ERR_ARG  # inside A
    assert run(40) == lib.PD_ERR_ARG  # inside B
    assert run(61) == lib.PD_ERR_ARG  # C's first element on B's last
    assert run(62) == lib.PD_OK  # just past B

    # With trans_b and ldb = 40, B (5 x 6) has rows at 32, 72, ..., 192: its span
    # ends at 198, far past its 30 elements.
    def run_t(c_off):
        return lib.pd_sgemm(0, 1, 4, 5, 6, 1.0, p(0), 6, p(32), 40, 0.0, p(c_off), 5)

    assert run_t(190) == lib.PD_ERR_ARG
    assert run_t(198) == lib.PD_OK


BAD_ARGS = {
    "m < 0": dict(m=-1),
    "n < 0": dict(n=-1),
    "k < 0": dict(k=-1),
    "trans_a = 2": dict(ta=2),
    "trans_b = -1": dict(tb=-1),
    "lda < k": dict(lda=5),
    "lda < m (trans_a)": dict(ta=1, lda=3),
    "ldb < n": dict(ldb=4),
    "ldb < k (trans_b)": dict(tb=1, ldb=5),
    "ldc < n": dict(ldc=4),
    "a NULL": dict(a=False),
    "b NULL": dict(b=False),
    "c NULL": dict(c=False),
}


@pytest.mark.parametrize("name", list(BAD_ARGS))
def test_bad_arguments_return_err_arg(name):
    assert _call() == lib.PD_OK
    assert _call(**BAD_ARGS[name]) == lib.PD_ERR_ARG


def test_null_allowed_when_nothing_is_read():
    # m == 0: nothing to write; k == 0: A and B are not read.
    assert _call(m=0, a=False, c=False, lda=6) == lib.PD_OK
    assert _call(k=0, a=False, b=False) == lib.PD_OK


def test_concurrent_callers(any_isa, restore_threads):
    """Python threads calling matmul at once (cffi releases the GIL): each caller has
    its own packing buffers, and results equal the single-caller ones."""
    from concurrent.futures import ThreadPoolExecutor

    pydrop.set_num_threads(2)
    rng = np.random.default_rng(8)
    cases = [
        (operand(rng, m, k, ta), operand(rng, k, n, tb))
        for m, k, n, ta, tb in MLP[:3] + [(70, 300, 33, True, True)]
    ]
    expected = [pydrop.matmul(a, b) for a, b in cases]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: pydrop.matmul(*cases[i % len(cases)]), range(24)))
    for i, c in enumerate(got):
        np.testing.assert_array_equal(c, expected[i % len(cases)])


# --- pd_sgemm_pair: two SGEMMs in one call (the Dense backward's dW and dX) -----------

PAIR_CASES = [  # (ta, tb, m, n, k) for each of the two products, then alpha, beta
    ((1, 0, 256, 256, 256), (0, 1, 256, 256, 256), 1.0, 1.0),  # the MLP's layer 2
    ((1, 0, 256, 10, 256), (0, 1, 256, 256, 10), 1.0, 0.0),  # layer 3
    ((0, 0, 37, 19, 53), (1, 1, 5, 67, 13), 0.75, 0.5),  # odd edges, both transposed
    ((0, 0, 9, 7, 0), (0, 0, 0, 3, 4), 1.0, 0.5),  # k = 0 (C = beta * C), m = 0
]


def _args(ta, tb, m, n, k, alpha, beta, rng):
    """(A, B, C, pd_sgemm argument list) with dense operands, op() by the flags."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(F)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(F)
    c = rng.standard_normal((m, n)).astype(F)
    p = lambda x: ffi.cast("float *", x.ctypes.data)  # noqa: E731
    lda, ldb = max(a.shape[1], 1), max(b.shape[1], 1)
    return a, b, c, [ta, tb, m, n, k, alpha, p(a), lda, p(b), ldb, beta, p(c), max(n, 1)]


@pytest.mark.parametrize("case", PAIR_CASES, ids=lambda c: "x".join(map(str, c[0][2:])))
def test_pair_equals_two_calls_bit_for_bit(any_isa, restore_threads, case):
    g0, g1, alpha, beta = case
    for threads in (1, 2, 3):
        pydrop.set_num_threads(threads)
        got, want = [], []
        for out in (got, want):
            rng = np.random.default_rng(11)
            # (A, B, C, args) each; the arrays stay referenced while C reads them
            p0 = _args(*g0, alpha, beta, rng)
            p1 = _args(*g1, alpha, beta, rng)
            if out is got:
                st = lib.pd_sgemm_pair(
                    ffi.new("pd_sgemm_args *", p0[3]), ffi.new("pd_sgemm_args *", p1[3])
                )
                assert st == lib.PD_OK
            else:
                assert lib.pd_sgemm(*p0[3]) == lib.PD_OK
                assert lib.pd_sgemm(*p1[3]) == lib.PD_OK
            out += [p0[2].view(np.uint32).copy(), p1[2].view(np.uint32).copy()]
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_pair_rejects_cross_overlap_and_writes_nothing(restore_threads):
    """Run side by side, neither C may touch the other product's A, B or C."""
    pydrop.set_num_threads(2)
    buf = np.ones(512, F)
    base = buf.ctypes.data
    p = lambda off: ffi.cast("float *", base + 4 * off)  # noqa: E731

    def pair(c0, a1=100, b1=140, c1=200):
        # product 0: A = buf[0:24] (4 x 6), B = buf[32:62] (6 x 5), C 4 x 5 at c0;
        # product 1: the same shapes at a1, b1, c1
        g0 = ffi.new("pd_sgemm_args *", [0, 0, 4, 5, 6, 1.0, p(0), 6, p(32), 5, 0.0, p(c0), 5])
        g1 = ffi.new("pd_sgemm_args *", [0, 0, 4, 5, 6, 1.0, p(a1), 6, p(b1), 5, 0.0, p(c1), 5])
        return lib.pd_sgemm_pair(g0, g1)

    before = buf.copy()
    assert pair(c0=105) == lib.PD_ERR_ARG  # C0 inside A1
    assert pair(c0=150) == lib.PD_ERR_ARG  # C0 inside B1
    assert pair(c0=210) == lib.PD_ERR_ARG  # C0 overlaps C1
    assert pair(c0=300, c1=10) == lib.PD_ERR_ARG  # C1 inside A0
    assert pair(c0=300, c1=40) == lib.PD_ERR_ARG  # C1 inside B0
    assert pair(c0=10) == lib.PD_ERR_ARG  # pd_sgemm's own check: C0 inside A0
    np.testing.assert_array_equal(buf, before)
    assert pair(c0=300) == lib.PD_OK
    assert lib.pd_sgemm_pair(ffi.NULL, ffi.NULL) == lib.PD_ERR_ARG
