"""The C library checks its own arguments (C never trusts Python): called directly,
with sizes whose arithmetic would wrap, NULLs, or an index another thread changes
during the call, it returns PD_ERR_ARG and writes nothing out of bounds."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pydrop._native import ffi, lib

BIG = (1 << 62) - 1  # (rows - 1) * BIG wraps a 64-bit byte count


def fptr(a: np.ndarray):
    return ffi.cast("float *", a.ctypes.data)


def iptr(a: np.ndarray):
    return ffi.cast("int64_t *", a.ctypes.data)


@pytest.mark.parametrize("ld", [BIG, 2**63 - 1])
def test_sgemm_rejects_a_leading_dimension_whose_span_wraps(ld):
    """C shares A's buffer; with the span computed modulo 2^64 the overlap test
    passed and the kernel wrote before C."""
    buf = np.arange(16, dtype=np.float32)
    before = buf.copy()
    b = np.ones(1, dtype=np.float32)
    c = fptr(buf) + 4
    status = lib.pd_sgemm(0, 0, 2, 1, 1, 1.0, c, 1, fptr(b), 1, 0.0, c, ld)
    assert status == lib.PD_ERR_ARG
    np.testing.assert_array_equal(buf, before)
    status = lib.pd_sgemm(0, 0, 2, 1, 1, 1.0, fptr(buf), ld, fptr(b), 1, 0.0, c, 1)
    assert status == lib.PD_ERR_ARG


@pytest.mark.parametrize("which", ["a", "b", "c"])
def test_sgemm_rejects_a_pointer_that_is_not_a_floats_address(which):
    """matmul's common call leaves the alignment test to C."""
    buf = np.arange(64, dtype=np.float32)
    before = buf.copy()
    ptr = {n: fptr(buf) + 16 * i for i, n in enumerate("abc")}
    ptr[which] = ffi.cast("float *", ffi.cast("char *", ptr[which]) + 1)
    status = lib.pd_sgemm(0, 0, 2, 2, 2, 1.0, ptr["a"], 2, ptr["b"], 2, 0.0, ptr["c"], 2)
    assert status == lib.PD_ERR_ARG
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("which", ["x", "w", "bias", "y"])
def test_linear_forward_rejects_a_pointer_that_is_not_a_floats_address(which):
    """C checks alignment itself, whatever Python tested (C never trusts Python)."""
    buf = np.arange(64, dtype=np.float32)
    before = buf.copy()
    mask = np.full(1, 0xAB, np.uint8)
    ptr = {n: fptr(buf) + 16 * i for i, n in enumerate(["x", "w", "bias", "y"])}
    ptr[which] = ffi.cast("float *", ffi.cast("char *", ptr[which]) + 1)
    status = lib.pd_linear_forward_f32(
        ptr["x"],
        2,
        ptr["w"],
        4,
        0,
        ptr["bias"],
        ptr["y"],
        ffi.cast("uint8_t *", mask.ctypes.data),
        2,
        4,
        2,
        1,
        0.5,
        1,
        0,
        0,
    )
    assert status == lib.PD_ERR_ARG
    np.testing.assert_array_equal(buf, before)
    assert mask[0] == 0xAB


def test_linear_forward_rejects_a_wrapping_span():
    x = np.ones((2, 2), dtype=np.float32)
    w = np.ones((2, 2), dtype=np.float32)
    y = np.zeros((2, 2), dtype=np.float32)
    args = (2, 2, 2, 0, 0.0, 0, 0, 0)
    status = lib.pd_linear_forward_f32(
        fptr(x), BIG, fptr(w), 2, 0, ffi.NULL, fptr(y), ffi.NULL, *args
    )
    assert status == lib.PD_ERR_ARG
    assert not y.any()


def test_element_counts_beyond_any_array_are_rejected():
    buf = np.zeros(8, dtype=np.float32)
    idx = np.zeros(1, dtype=np.int64)
    # dst == src: the overlap test must see the real (huge) source span
    assert lib.pd_take_rows_f32(fptr(buf), 1 << 62, 1, iptr(idx), 1, fptr(buf)) == lib.PD_ERR_ARG
    assert lib.pd_relu_forward_f32(fptr(buf), fptr(buf), 1 << 61) == lib.PD_ERR_ARG
    assert lib.pd_relu_backward_f32(fptr(buf), fptr(buf), fptr(buf), 1 << 61) == lib.PD_ERR_ARG
    out = ffi.new("double *")
    labels = iptr(idx)
    assert lib.pd_softmax_xent_f32(fptr(buf), labels, fptr(buf), 1 << 31, 1 << 31, out) == (
        lib.PD_ERR_ARG
    )


def test_philox_block_rejects_null():
    out = ffi.new("uint32_t[4]")
    assert lib.pd_philox4x32_10(ffi.NULL, ffi.NULL, ffi.NULL) == lib.PD_ERR_ARG
    assert lib.pd_philox4x32_10([0, 0, 0, 0], ffi.NULL, out) == lib.PD_ERR_ARG
    assert lib.pd_philox4x32_10([0, 0, 0, 0], [0, 0], out) == lib.PD_OK


def test_sgd_multi_takes_no_velocity_without_momentum():
    w = np.ones(4, dtype=np.float32)
    g = np.ones(4, dtype=np.float32)
    ws, gs = ffi.new("float *[1]", [fptr(w)]), ffi.new("float *[1]", [fptr(g)])
    n = ffi.new("int64_t[1]", [4])
    assert lib.pd_sgd_step_multi_f32(ws, gs, ffi.NULL, n, 1, 0.5, 0.0, 0.0) == lib.PD_OK
    np.testing.assert_array_equal(w, np.full(4, 0.5, dtype=np.float32))
    assert lib.pd_sgd_step_multi_f32(ws, gs, ffi.NULL, n, 1, 0.5, 0.9, 0.0) == lib.PD_ERR_ARG


def test_fused_backward_with_p_one_ignores_set_mask_bits():
    """p == 1 keeps nothing: dz = 0 whatever the mask says, on the fused path (rows of
    whole mask bytes) as in pd_dropout_backward_f32, not dy * inf."""
    m, n = 2, 8
    dy = np.ones((m, n), dtype=np.float32)
    y = np.ones((m, n), dtype=np.float32)
    mask = np.full(m * n // 8, 0xFF, dtype=np.uint8)
    dz = np.full((m, n), 7.0, dtype=np.float32)
    db = np.zeros(n, dtype=np.float32)
    mp = ffi.cast("uint8_t *", mask.ctypes.data)
    status = lib.pd_linear_backward_f32(
        fptr(dy), mp, fptr(y), fptr(dz), fptr(db), 0, m, n, 0, 1.0, ffi.NULL, ffi.NULL
    )
    assert status == lib.PD_OK
    np.testing.assert_array_equal(dz, np.zeros((m, n), dtype=np.float32))
    ref = np.full(m * n, 7.0, dtype=np.float32)
    assert lib.pd_dropout_backward_f32(fptr(dy), mp, fptr(ref), m * n, 1.0) == lib.PD_OK
    np.testing.assert_array_equal(ref, 0.0)


def test_an_index_changed_during_a_gather_is_caught_where_used():
    """all_below checks every index first; each is read again where it is used, and
    one that left the range since is rejected there, never read out of bounds. The
    first index is checked first and used last (after a million more checks), so
    another thread flipping it hits that window within a few hundred calls."""
    n = 1 << 20
    idx = np.zeros(n, dtype=np.int64)
    src = np.zeros((4, 4), dtype=np.float32)
    dst = np.zeros((n, 4), dtype=np.float32)
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            idx[0] = 0
            for _ in range(200):
                pass
            idx[0] = 1 << 40
            for _ in range(200):
                pass

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        seen = {lib.pd_take_rows_f32(fptr(src), 4, 4, iptr(idx), n, fptr(dst)) for _ in range(2000)}
    finally:
        stop.set()
        flipper.join()
    assert seen <= {lib.PD_OK, lib.PD_ERR_ARG}
    assert not dst.any()
