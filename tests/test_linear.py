"""pydrop.linear / linear_backward (the fused Dense step) against the unfused ops."""

import numpy as np
import pytest
from arrays import misaligned, read_only

import pydrop

F = np.float32


def operands(m, n, k, trans_w, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(F)
    w = (
        rng.standard_normal((n, k)).astype(F).T
        if trans_w
        else rng.standard_normal((k, n)).astype(F)
    )
    b = rng.standard_normal(n).astype(F)
    return x, w, b


def unfused(x, w, b, act, p, seed, stream, step):
    y = np.empty((x.shape[0], w.shape[1]), F)
    if b is None:
        pydrop.matmul(x, w, out=y)
    else:
        y[...] = b
        pydrop.matmul(x, w, out=y, beta=1.0)
    if act == "relu":
        pydrop.relu(y, out=y)
    return pydrop.dropout(y, p, seed=seed, stream=stream, step=step, out=y, return_mask=True)


SHAPES = [(1, 1, 1), (7, 9, 5), (33, 24, 17), (256, 256, 784), (64, 10, 256), (50, 13, 3)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("act", [None, "relu"])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("trans_w", [False, True])
def test_forward_equals_unfused_bit_for_bit(isa, m, n, k, act, p, trans_w):
    x, w, b = operands(m, n, k, trans_w, seed=m + n + k)
    y0, m0 = unfused(x, w, b, act, p, 5, 2, 9)
    y1, m1 = pydrop.linear(
        x, w, b, activation=act, dropout=p, seed=5, stream=2, step=9, return_mask=True
    )
    np.testing.assert_array_equal(m1, m0)
    np.testing.assert_array_equal(y1.view(np.uint32), y0.view(np.uint32))


def test_forward_without_bias_and_eval(isa):
    x, w, _ = operands(20, 16, 8, False)
    y0, _ = unfused(x, w, None, "relu", 0.0, 1, 0, 0)
    np.testing.assert_array_equal(pydrop.linear(x, w, activation="relu", training=False), y0)
    state = pydrop.get_rng_state()
    pydrop.linear(x, w, dropout=0.5, training=False)
    assert pydrop.get_rng_state() == state


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_forward_same_for_1_and_2_threads(restore_threads, p):
    """At 2 threads the epilogue runs strip by strip (column groups); p = 0 and
    p = 1 fill the mask without it."""
    x, w, b = operands(256, 256, 784, False)
    y0, m0 = unfused(x, w, b, "relu", p, 3, 0, 0)
    for t in (1, 2):
        pydrop.set_num_threads(t)
        y1, m1 = pydrop.linear(x, w, b, activation="relu", dropout=p, seed=3, return_mask=True)
        np.testing.assert_array_equal(m1, m0)
        np.testing.assert_array_equal(y1.view(np.uint32), y0.view(np.uint32))


@pytest.mark.parametrize("act", [None, "relu"])
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_backward_matches_unfused_and_float64(isa, act, p):
    m, n, k = 48, 40, 24
    x, w, b = operands(m, n, k, False, seed=1)
    dy = np.random.default_rng(2).standard_normal((m, n)).astype(F)
    y, mask = pydrop.linear(x, w, b, activation=act, dropout=p, seed=4, return_mask=True)
    dz_fused = np.empty_like(dy)
    dx, dw, db = pydrop.linear_backward(
        dy, x, w, y, mask, activation=act, dropout=p, dz_out=dz_fused
    )
    # The fused elementwise pass equals the unfused ops bit for bit ...
    dz = pydrop.dropout_backward(dy, mask, p)
    if act == "relu":
        dz = pydrop.relu_backward(dz, y)
    np.testing.assert_array_equal(dz_fused.view(np.uint32), dz.view(np.uint32))
    # ... and the products and sums meet their k * eps32 bounds against float64.
    eps = np.finfo(F).eps
    z64, x64, w64 = dz.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    assert (np.abs(dw - x64.T @ z64) <= 2 * m * eps * (np.abs(x64).T @ np.abs(z64))).all()
    assert (np.abs(dx - z64 @ w64.T) <= 2 * n * eps * (np.abs(z64) @ np.abs(w64).T)).all()
    assert (np.abs(db - z64.sum(axis=0)) <= m * eps * np.abs(z64).sum(axis=0)).all()


@pytest.mark.parametrize("accumulate", [True, False])
def test_backward_accumulates_into_grads_or_overwrites_them(accumulate):
    """grad_w / grad_b are added to, or with accumulate=(False, False) written without
    their old contents (NaN here) being read."""
    x, w, b = operands(16, 8, 4, False)
    dy = np.ones((16, 8), F)
    y, mask = pydrop.linear(x, w, b, activation="relu", dropout=0.5, seed=1, return_mask=True)
    _, dw, db = pydrop.linear_backward(dy, x, w, y, mask, activation="relu", dropout=0.5)
    old = 1.0 if accumulate else np.nan
    gw, gb = np.full_like(w, old), np.full_like(b, old)
    dx, dw2, db2 = pydrop.linear_backward(
        dy,
        x,
        w,
        y,
        mask,
        activation="relu",
        dropout=0.5,
        grad_w=gw,
        grad_b=gb,
        input_grad=False,
        accumulate=(accumulate, accumulate),
    )
    assert dx is None and dw2 is gw and db2 is gb
    if accumulate:
        np.testing.assert_allclose(gw, 1 + dw, rtol=1e-6)
        np.testing.assert_allclose(gb, 1 + db, rtol=1e-6)
    else:
        np.testing.assert_array_equal(gw, dw)
        np.testing.assert_array_equal(gb, db)
    with pytest.raises(TypeError, match="accumulate"):
        pydrop.linear_backward(dy, x, w, y, mask, dropout=0.5, accumulate=False)


@pytest.mark.parametrize(
    "call, exc, text",
    [
        (lambda x, w, b: pydrop.linear(x, w, b, activation="tanh"), ValueError, "activation"),
        (lambda x, w, b: pydrop.linear(x, w[:3], b), ValueError, "w.shape[0]"),
        (lambda x, w, b: pydrop.linear(x, w, b[:2]), ValueError, "b must have shape"),
        (lambda x, w, b: pydrop.linear(x.T.copy().T, w, b), ValueError, "rows"),
        (lambda x, w, b: pydrop.linear(x, w, b, dropout=2.0), ValueError, "dropout"),
        (lambda x, w, b: pydrop.linear(x.astype(float), w, b), TypeError, "x"),
        (lambda x, w, b: pydrop.linear(x, w, b, out=x), ValueError, "out"),
        (
            lambda x, w, b: pydrop.linear_backward(
                np.ones((6, 5), F), x, w, np.ones((6, 5), F), dropout=0.5
            ),
            ValueError,
            "mask",
        ),
        (
            lambda x, w, b: pydrop.linear_backward(np.ones((6, 4), F), x, w, np.ones((6, 5), F)),
            ValueError,
            "shapes",
        ),
    ],
)
def test_bad_input(call, exc, text):
    x, w, b = operands(6, 5, 4, False)
    with pytest.raises(exc, match=None) as info:
        call(x, w, b)
    assert text in str(info.value)


def _misaligned(a):
    """a's values in an array that starts one byte past a float's address."""
    out = misaligned(a.size).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("which", ["x", "w", "b", "out", "out read-only", "mask_out read-only"])
def test_misaligned_or_read_only_arguments_are_named_before_any_draw(which):
    """linear()'s common call tests writability through its buffer exports: a
    misaligned operand or a read-only output gets its named error, and y, the mask
    and the default generator are left as they were."""
    x, w, b = operands(6, 16, 5, False)
    args = {"x": x, "w": w, "b": b}
    out, mask = np.full((6, 16), 7.0, F), np.full(12, 0xAB, np.uint8)
    kw = {"out": out, "mask_out": mask}
    if which in args:
        args[which] = _misaligned(args[which])
    elif which == "out":
        kw["out"] = out = _misaligned(out)
    else:
        read_only(kw[which.split()[0]])
    state = pydrop.get_rng_state()
    with pytest.raises(ValueError, match="read-only" if "read-only" in which else "aligned") as e:
        pydrop.linear(args["x"], args["w"], args["b"], activation="relu", dropout=0.5, **kw)
    assert which.split()[0] in str(e.value)
    assert (out == 7.0).all() and (mask == 0xAB).all()
    assert pydrop.get_rng_state() == state


def _widened(a, extra):
    """a as a view into a wider buffer (rows keep unit stride, ld = cols + extra)."""
    buf = np.full((a.shape[0], a.shape[1] + extra), np.nan, a.dtype)
    buf[:, : a.shape[1]] = a
    return buf[:, : a.shape[1]]


def test_argument_layouts_give_one_result():
    """linear() takes its common call (dense float32 operands, float p) by a shorter
    path than the rest: every layout it accepts gives the same y and mask."""
    x, w, b = operands(6, 16, 5, False)
    want, want_mask = pydrop.linear(
        x, w, b, activation="relu", dropout=0.5, seed=7, return_mask=True
    )
    b2 = np.repeat(b, 2)[::2]  # a strided bias leaves the short path; the full checks reject it
    wide = np.zeros(32, np.uint8)
    variants = {
        "dense": dict(x=x, w=w, b=b),
        "w transposed view": dict(x=x, w=np.ascontiguousarray(w.T).T, b=b),
        "x row slice": dict(x=_widened(x, 3), w=w, b=b),
        "w row slice": dict(x=x, w=_widened(w, 5), b=b),
        "float64 p": dict(x=x, w=w, b=b, dropout=np.float64(0.5)),
        "np.str_ activation": dict(x=x, w=w, b=b, activation=np.str_("relu")),
        "mask_out in a wider buffer": dict(x=x, w=w, b=b, mask_out=wide[4:16]),
    }
    for name, kw in variants.items():
        args = dict(activation="relu", dropout=0.5, seed=7, return_mask=True) | kw
        y, mask = pydrop.linear(args.pop("x"), args.pop("w"), args.pop("b"), **args)
        np.testing.assert_array_equal(y, want, err_msg=name)
        np.testing.assert_array_equal(mask, want_mask, err_msg=name)
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        pydrop.linear(x, w, b2)


@pytest.mark.parametrize(
    "kw, exc, text",
    [
        (dict(mask_out=np.zeros(24, np.uint8)[::2]), ValueError, "mask_out must be a contiguous"),
        (dict(mask_out=np.zeros(11, np.uint8)), ValueError, "mask_out must be a contiguous"),
        (dict(mask_out=np.zeros(3, F)), TypeError, "mask_out must be a uint8"),
        (dict(out=np.zeros((6, 16), F).T.copy().T), ValueError, "out must be C-contiguous"),
        (dict(out=np.zeros((6, 15), F)), ValueError, "out must have shape"),
        (dict(out=np.zeros((6, 16))), TypeError, "out"),
    ],
)
def test_bad_outputs_named(kw, exc, text):
    x, w, b = operands(6, 16, 5, False)
    with pytest.raises(exc) as info:
        pydrop.linear(x, w, b, dropout=0.5, seed=1, **kw)
    assert text in str(info.value)


def test_read_only_and_overlapping_outputs_named():
    x, w, b = operands(6, 16, 5, False)
    ro = np.zeros((6, 16), F)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        pydrop.linear(x, w, b, out=ro)
    ro_mask = np.zeros(12, np.uint8)
    ro_mask.flags.writeable = False
    with pytest.raises(ValueError, match="mask_out is read-only"):
        pydrop.linear(x, w, b, dropout=0.5, seed=1, mask_out=ro_mask)
    buf = np.zeros(200, F)
    xs = buf[:30].reshape(6, 5)
    xs[...] = x
    with pytest.raises(ValueError, match="out overlaps x"):
        pydrop.linear(xs, w, b, out=buf[20:116].reshape(6, 16))
    y = np.zeros((6, 16), F)
    with pytest.raises(ValueError, match="mask_out overlaps out"):
        pydrop.linear(
            x, w, b, dropout=0.5, seed=1, out=y, mask_out=y.reshape(-1).view(np.uint8)[:12]
        )
    np.testing.assert_array_equal(xs, x)


@pytest.mark.parametrize("threads", [1, 2])
def test_backward_outputs_must_not_overlap(restore_threads, threads):
    """dw and dx are computed side by side: each output is checked against the other
    and against every input, and a rejected call names the pair."""
    pydrop.set_num_threads(threads)
    x, w, b = operands(6, 5, 4, False)
    y = pydrop.linear(x, w, b)
    dy = np.ones((6, 5), F)
    buf = np.zeros(64, F)
    gw, dx = buf[:20].reshape(4, 5), buf[10:34].reshape(6, 4)  # overlapping views
    with pytest.raises(ValueError, match="grad_w overlaps out"):
        pydrop.linear_backward(dy, x, w, y, grad_w=gw, out=dx)
    with pytest.raises(ValueError, match="out overlaps x"):
        pydrop.linear_backward(dy, x, w, y, out=x)
    gb = np.ones(5, F)
    with pytest.raises(ValueError, match="grad_w overlaps w"):
        pydrop.linear_backward(dy, x, w, y, grad_w=w, grad_b=gb)
    np.testing.assert_array_equal(gb, 1.0)  # rejected before anything was written
    raw = np.zeros(64, np.uint8)  # the mask's 4 bytes, then grad_b's 20 over them
    y2 = pydrop.linear(x, w, b, dropout=0.5, seed=3, mask_out=raw[:4])
    with pytest.raises(ValueError, match="grad_b overlaps mask"):
        pydrop.linear_backward(dy, x, w, y2, raw[:4], dropout=0.5, grad_b=raw[:20].view(F))
    # dz and db are written before the GEMMs read x and w
    xbuf = np.zeros(64, F)
    xbuf[:24] = x.ravel()
    xs = xbuf[:24].reshape(6, 4)
    with pytest.raises(ValueError, match="dz_out overlaps x"):
        pydrop.linear_backward(dy, xs, w, y, dz_out=xbuf[:30].reshape(6, 5))
    with pytest.raises(ValueError, match="grad_b overlaps w"):
        pydrop.linear_backward(dy, x, w, y, grad_b=w.ravel()[:5])
    np.testing.assert_array_equal(xs, x)
    dx, dw, _ = pydrop.linear_backward(
        dy, x, w, y, grad_w=buf[:20].reshape(4, 5), out=buf[20:44].reshape(6, 4)
    )
    np.testing.assert_allclose(dx, dy @ w.T, rtol=1e-5)
    np.testing.assert_allclose(dw, x.T @ dy, rtol=1e-5)
