"""pd_linear_forward_f32 (bias + ReLU + dropout in the GEMM epilogue) against the
unfused sequence it documents in pydrop.h: bit for bit, on every ISA path, for any
thread count. The unfused GEMM itself is checked against float64 in test_matmul.py."""

import numpy as np
import pytest
from pydrop._native import ffi, lib

import pydrop

F = np.float32


def fp(a):
    return ffi.cast("float *", a.ctypes.data) if a is not None else ffi.NULL


def u8(a):
    return ffi.cast("uint8_t *", a.ctypes.data) if a is not None else ffi.NULL


def operands(rng, m, n, k, trans_w, with_bias):
    x = rng.standard_normal((m, k)).astype(F)
    w = rng.standard_normal((n, k) if trans_w else (k, n)).astype(F)
    b = rng.standard_normal(n).astype(F) if with_bias else None
    return x, w, b


def fused(x, w, b, m, n, k, trans_w, act, p, seed, stream, step, with_mask=True):
    y = np.full((m, n), np.nan, F)
    mask = np.full((m * n + 7) // 8, 0xA5, np.uint8) if with_mask else None
    st = lib.pd_linear_forward_f32(
        fp(x),
        k,
        fp(w),
        k if trans_w else n,
        trans_w,
        fp(b),
        fp(y),
        u8(mask),
        m,
        n,
        k,
        act,
        p,
        seed,
        stream,
        step,
    )
    assert st == lib.PD_OK
    return y, mask


def unfused(x, w, b, m, n, k, trans_w, act, p, seed, stream, step):
    y = np.empty((m, n), F)
    if b is not None:
        y[:] = b
    st = lib.pd_sgemm(
        0,
        trans_w,
        m,
        n,
        k,
        1.0,
        fp(x),
        k,
        fp(w),
        k if trans_w else n,
        1.0 if b is not None else 0.0,
        fp(y),
        n,
    )
    assert st == lib.PD_OK
    if act:
        assert lib.pd_relu_forward_f32(fp(y), fp(y), m * n) == lib.PD_OK
    mask = np.zeros((m * n + 7) // 8, np.uint8)
    assert (
        lib.pd_dropout_forward_f32(fp(y), fp(y), u8(mask), m * n, p, seed, stream, step)
        == lib.PD_OK
    )
    return y, mask


SHAPES = [  # (m, n, k): the MLP's three layers, then edges and the unfused fallback
    (256, 256, 784),
    (256, 256, 256),
    (256, 10, 256),
    (67, 40, 33),
    (1, 8, 1),
    (13, 24, 400),
    (7, 16, 0),
    (5, 9, 3),
]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_fused_equals_unfused(any_isa, m, n, k, p):
    rng = np.random.default_rng(m * 1000 + n + k)
    for trans_w, act, with_bias in [(0, 1, True), (1, 1, True), (0, 0, False), (1, 0, True)]:
        x, w, b = operands(rng, m, n, k, trans_w, with_bias)
        args = (x, w, b, m, n, k, trans_w, act, p, 1234, 3, 77)
        y1, m1 = fused(*args)
        y2, m2 = unfused(*args)
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(y1.view(np.uint32), y2.view(np.uint32))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_fused_relu_dropout_special_values(any_isa, p):
    """ReLU and dropout share one pass in the epilogue: outputs that are NaN, -0.0,
    +0.0, negative or +inf must come out bit for bit as relu, then dropout."""
    m, n, k = 64, 48, 5
    rng = np.random.default_rng(17)
    x, w, b = operands(rng, m, n, k, 0, True)
    x[0] = np.nan  # a NaN row
    x[1] = 1e-30  # times w = -1e-20 below: an FMA rounds to -0.0, and with b = -0.0 so is y
    x[2] = 3e38  # overflows to +-inf
    b[:8] = -0.0
    w[:, :8] = -1e-20
    for act in (1, 0):
        args = (x, w, b, m, n, k, 0, act, p, 99, 2, 5)
        y1, m1 = fused(*args)
        y2, m2 = unfused(*args)
        # the cases are there: NaN and inf (and -0.0 where the GEMM fuses its
        # multiply-adds, as the native AVX2 and AVX-512 kernels do)
        assert np.isnan(y2[0]).any() and np.isinf(y2[2]).any()
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(y1.view(np.uint32), y2.view(np.uint32))


# 256x256x784 and 96x200x100 run in column groups when threaded (uneven ones in
# the second), 64x150x90 too with its dropout as a second pass (n % 8 != 0), the
# others in row blocks. In column groups the epilogue takes column strips (row
# pairs, whole rows of vectors, and odd rows and an 8-wide last strip, which
# 67x136x250 and 33x264x120 have on the AVX2 and AVX-512 paths); one thread, whole
# rows: each strip's bits are those of the one-run kernel.
@pytest.mark.parametrize(
    "m,n,k",
    [
        (256, 256, 784),
        (96, 200, 100),
        (64, 150, 90),
        (67, 40, 33),
        (300, 64, 700),
        (67, 136, 250),
        (33, 264, 120),
    ],
)
def test_fused_same_for_1_2_4_threads(any_isa, restore_threads, m, n, k):
    rng = np.random.default_rng(9)
    x, w, b = operands(rng, m, n, k, 0, True)
    outs = []
    for threads in (1, 2, 4):
        pydrop.set_num_threads(threads)
        outs.append(fused(x, w, b, m, n, k, 0, 1, 0.5, 5, 1, 2))
    for y, mask in outs[1:]:
        np.testing.assert_array_equal(mask, outs[0][1])
        np.testing.assert_array_equal(y.view(np.uint32), outs[0][0].view(np.uint32))


def test_mask_matches_pydrop_dropout():
    # The documented mask rule, through the public dropout op on the same values.
    rng = np.random.default_rng(10)
    m, n, k = 32, 64, 48
    x, w, b = operands(rng, m, n, k, 0, True)
    y, mask = fused(x, w, b, m, n, k, 0, 1, 0.3, 42, 0, 5)
    h = np.maximum(x @ w + b, 0)  # only the sign pattern matters for the mask check
    _, ref_mask = pydrop.dropout(np.ones_like(h), 0.3, seed=42, stream=0, step=5, return_mask=True)
    np.testing.assert_array_equal(mask, ref_mask)
    kept = np.unpackbits(mask, bitorder="little")[: m * n].reshape(m, n).astype(bool)
    assert np.all(y[~kept] == 0)
    assert 0.6 < kept.mean() < 0.8


def test_no_mask_when_p_is_zero():
    rng = np.random.default_rng(11)
    x, w, b = operands(rng, 9, 16, 5, 0, True)
    y, _ = fused(x, w, b, 9, 16, 5, 0, 1, 0.0, 0, 0, 0, with_mask=False)
    y2, _ = unfused(x, w, b, 9, 16, 5, 0, 1, 0.0, 0, 0, 0)
    np.testing.assert_array_equal(y, y2)


def test_bad_arguments():
    x = np.ones((4, 4), F)
    y = np.empty((4, 4), F)
    mask = np.empty(2, np.uint8)
    bias = np.zeros(4, F)

    def call(**kw):
        a = dict(
            x=fp(x),
            ldx=4,
            w=fp(x),
            ldw=4,
            tw=0,
            b=ffi.NULL,
            y=fp(y),
            mask=u8(mask),
            m=4,
            n=4,
            k=4,
            act=1,
            p=0.5,
        )
        a.update(kw)
        return lib.pd_linear_forward_f32(
            a["x"],
            a["ldx"],
            a["w"],
            a["ldw"],
            a["tw"],
            a["b"],
            a["y"],
            a["mask"],
            a["m"],
            a["n"],
            a["k"],
            a["act"],
            a["p"],
            0,
            0,
            0,
        )

    assert call() == lib.PD_OK
    for bad in [
        dict(m=-1),
        dict(k=-2),
        dict(ldx=3),
        dict(ldw=3),
        dict(tw=2),
        dict(act=2),
        dict(p=1.5),
        dict(p=float("nan")),
        dict(mask=ffi.NULL),
        dict(y=ffi.NULL),
        dict(x=ffi.NULL),
        dict(y=fp(x)),
        dict(mask=ffi.cast("uint8_t *", y.ctypes.data)),
        # the mask (written in the epilogue) on the bias (read by the GEMM)
        dict(b=fp(bias), mask=ffi.cast("uint8_t *", bias.ctypes.data)),
    ]:
        assert call(**bad) == lib.PD_ERR_ARG, bad
    assert call(b=fp(bias)) == lib.PD_OK


# ---- backward -------------------------------------------------------------------


def backward_fused(dy, mask, y, m, n, act, p, db0, in_place=False):
    dz = dy.copy() if in_place else np.full((m, n), np.nan, F)
    src = dz if in_place else dy
    db = None if db0 is None else db0.copy()
    st = lib.pd_linear_backward_f32(
        fp(src), u8(mask), fp(y), fp(dz), fp(db), 1, m, n, act, p, ffi.NULL, ffi.NULL
    )
    assert st == lib.PD_OK
    return dz, db


def backward_unfused(dy, mask, y, m, n, act, p, db0):
    dz = np.empty((m, n), F)
    if mask is not None:
        assert lib.pd_dropout_backward_f32(fp(dy), u8(mask), fp(dz), m * n, p) == lib.PD_OK
    else:
        dz[:] = dy
    if act:
        assert lib.pd_relu_backward_f32(fp(dz), fp(y), fp(dz), m * n) == lib.PD_OK
    db = None
    if db0 is not None:
        db = db0.copy()
        for row in dz:  # the documented order: row by row, float32 adds
            db += row
    return dz, db


@pytest.mark.parametrize(
    "m,n,k", [(256, 256, 64), (256, 10, 32), (67, 40, 33), (5, 9, 3), (600, 264, 8)]
)  # the last one splits over threads
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_backward_fused_equals_unfused(any_isa, restore_threads, m, n, k, p):
    rng = np.random.default_rng(m + n + k)
    x, w, b = operands(rng, m, n, k, 0, True)
    for act in (1, 0):
        y, mask = fused(x, w, b, m, n, k, 0, act, p, 7, 1, 3, with_mask=p != 0.0)
        dy = rng.standard_normal((m, n)).astype(F)
        db0 = rng.standard_normal(n).astype(F)
        ref_dz, ref_db = backward_unfused(dy, mask, y, m, n, act, p, db0)
        for threads in (1, 2, 4):
            pydrop.set_num_threads(threads)
            for in_place in (False, True):
                dz, db = backward_fused(dy, mask, y, m, n, act, p, db0, in_place)
                np.testing.assert_array_equal(dz.view(np.uint32), ref_dz.view(np.uint32))
                np.testing.assert_array_equal(db.view(np.uint32), ref_db.view(np.uint32))
        dz, db = backward_fused(dy, mask, y, m, n, act, p, None)
        assert db is None
        np.testing.assert_array_equal(dz.view(np.uint32), ref_dz.view(np.uint32))


def test_backward_bad_arguments():
    dy = np.ones((4, 8), F)
    y = np.ones((4, 8), F)
    dz = np.empty((4, 8), F)
    db = np.zeros(8, F)
    mask = np.full(4, 0xFF, np.uint8)

    def call(**kw):
        a = dict(dy=fp(dy), mask=u8(mask), y=fp(y), dz=fp(dz), db=fp(db), m=4, n=8, act=1, p=0.5)
        a.update(acc=1, gw=ffi.NULL, gx=ffi.NULL)
        a.update(kw)
        return lib.pd_linear_backward_f32(
            a["dy"],
            a["mask"],
            a["y"],
            a["dz"],
            a["db"],
            a["acc"],
            a["m"],
            a["n"],
            a["act"],
            a["p"],
            a["gw"],
            a["gx"],
        )

    assert call() == lib.PD_OK
    for bad in [
        dict(m=-1),
        dict(n=-1),
        dict(act=3),
        dict(p=-0.1),
        dict(mask=ffi.NULL),
        dict(dz=ffi.NULL),
        dict(y=ffi.NULL),
        dict(dz=fp(y)),
        dict(db=ffi.cast("float *", dz.ctypes.data)),
        # db is written while y and the mask are read
        dict(db=ffi.cast("float *", y.ctypes.data)),
        dict(db=ffi.cast("float *", mask.ctypes.data)),
        dict(acc=2),
    ]:
        assert call(**bad) == lib.PD_ERR_ARG, bad


def test_backward_checks_both_gemms_before_writing():
    """dW = x.T dz and dX = dz w.T run in the same call: a GEMM output over anything
    the elementwise part reads or writes is rejected, and nothing is written."""
    m, n, k = 4, 8, 3
    rng = np.random.default_rng(5)
    x = rng.standard_normal((m, k)).astype(F)
    w = rng.standard_normal((k, n)).astype(F)
    dy = rng.standard_normal((m, n)).astype(F)
    y = np.abs(rng.standard_normal((m, n))).astype(F)
    mask = np.full(4, 0xAA, np.uint8)
    dz = np.full((m, n), 7.0, F)
    db = np.full(n, 3.0, F)
    dw = np.full((k, n), 5.0, F)
    dx = np.full((m, k), 5.0, F)

    def gemm(c, a, b, ta, tb, mm, nn, kk, lda, ldb, beta=0.0):
        return ffi.new("pd_sgemm_args *", (ta, tb, mm, nn, kk, 1.0, a, lda, b, ldb, beta, c, nn))

    def call(gw_c=None, gx_c=None, acc=1, xp=None, wp=None, dzp=None, dbp=None):
        xp, wp, dzp, dbp = xp or fp(x), wp or fp(w), dzp or fp(dz), dbp or fp(db)
        gw = gemm(gw_c or fp(dw), xp, dzp, 1, 0, k, n, m, k, n)
        gx = gemm(gx_c or fp(dx), dzp, wp, 0, 1, m, k, n, n, n)
        return lib.pd_linear_backward_f32(
            fp(dy), u8(mask), fp(y), dzp, dbp, acc, m, n, 1, 0.5, gw, gx
        )

    for name, target in [("dy", dy), ("y", y), ("mask", mask), ("db", db), ("dz", dz)]:
        addr = ffi.cast("float *", target.ctypes.data)
        for which in ("gw_c", "gx_c"):
            assert call(**{which: addr}) == lib.PD_ERR_ARG, (which, name)
            np.testing.assert_array_equal(dz, 7.0)
            np.testing.assert_array_equal(db, 3.0)
            np.testing.assert_array_equal(dw, 5.0)
            np.testing.assert_array_equal(dx, 5.0)
    # what the elementwise part writes must not be under what a GEMM then reads
    for name, src in (("x", x), ("w", w)):
        buf = np.zeros(64, F)  # room for dz (32 floats) over the operand
        buf[: src.size] = src.ravel()
        under = ffi.cast("float *", buf.ctypes.data)
        operand = {"xp": under} if name == "x" else {"wp": under}
        for written in ("dzp", "dbp"):
            assert call(**operand, **{written: under}) == lib.PD_ERR_ARG, (name, written)
            np.testing.assert_array_equal(buf[: src.size], src.ravel())
            np.testing.assert_array_equal(dw, 5.0)
            np.testing.assert_array_equal(dx, 5.0)
    assert call(acc=0) == lib.PD_OK
    ref_dz = np.where(np.unpackbits(mask, bitorder="little").reshape(m, n) == 1, dy * 2, 0)
    ref_dz = np.where(y > 0, ref_dz, 0).astype(F)
    np.testing.assert_array_equal(dz, ref_dz)
    np.testing.assert_array_equal(db, ref_dz.sum(axis=0, dtype=F))  # zero-filled first
    np.testing.assert_allclose(dw, x.T @ ref_dz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, ref_dz @ w.T, rtol=1e-5, atol=1e-6)
