"""The training-step kernels: softmax cross-entropy, the SGD update, the row gather.

NumPy is the oracle: the SGD step and the loss gradient bit for bit, the softmax
within float32 rounding (its exp is pydrop's own, faithfully rounded), the gather
exactly. Each C entry point also rejects bad labels, indices and overlaps itself.
"""

import numpy as np
import pytest
from pydrop._native import ffi, lib

import pydrop
from pydrop._ops import sgd_step, softmax_xent, softmax_xent_backward, take_rows
from pydrop.data import DataLoader
from pydrop.losses import SoftmaxCrossEntropy
from pydrop.nn import Parameter
from pydrop.optim import SGD

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23
TINY = float(np.finfo(np.float32).smallest_subnormal)
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099]


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)


def fptr(a: np.ndarray):
    return ffi.cast("float *", a.ctypes.data)


def iptr(a: np.ndarray):
    return ffi.cast("int64_t *", a.ctypes.data)


# --- softmax cross-entropy -------------------------------------------------------------


def numpy_xent(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The float32 NumPy formula the kernel replaced: P and the summed loss."""
    m = z.max(axis=1, keepdims=True)
    P = np.exp(z - m)
    s = P.sum(axis=1, keepdims=True)
    P /= s
    pick = z[np.arange(len(y)), y]
    total = np.log(s).sum(dtype=np.float64) + m.sum(dtype=np.float64)
    return P, float(total - pick.sum(dtype=np.float64))


def exact_xent(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The same in float64 from the float32 x = z - max(z) that both implementations
    start from (that rounding is the formula's: exp turns its absolute error into a
    relative one, up to |x| * 2^-24)."""
    m = z.max(axis=1, keepdims=True)
    e = np.exp((z - m).astype(np.float64))
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    m_minus_zy = m[:, 0].astype(np.float64) - z[rows, y].astype(np.float64)
    return e / s, float((np.log(s[:, 0]) + m_minus_zy).sum())


@pytest.mark.parametrize("c", [1, 2, 3, 10, 17, 33])
@pytest.mark.parametrize("n", [0, 1, 7, 63, 64, 65, 256, 300])
def test_softmax_xent_matches_numpy(n, c):
    rng = np.random.default_rng(n * 100 + c)
    z = (rng.standard_normal((n, c)) * 4).astype(np.float32)
    y = rng.integers(0, c, n)
    P = np.empty_like(z)
    total = softmax_xent(z, y, P)
    P64, total64 = exact_xent(z, y)
    P32, total32 = numpy_xent(z, y)
    # e = exp(z - m) within 1 ulp, a c-term float32 sum, one division: (c + 2) ulp.
    tol = (c + 2) * EPS32
    np.testing.assert_allclose(P, P64, rtol=tol, atol=8 * TINY)
    np.testing.assert_allclose(P, P32, rtol=2 * tol, atol=8 * TINY)
    # Each row's log(s) inherits the relative error of s as an absolute one.
    assert total == pytest.approx(total64, rel=1e-12, abs=n * tol)
    assert total == pytest.approx(total32, rel=1e-12, abs=n * 2 * tol)


def test_softmax_xent_exp_is_faithful():
    # Rows (0, x) with x <= -17.5: 1 + e^x rounds to 1, so p[:, 1] is the kernel's
    # exp(x) itself, down through the subnormals to 0.
    x = np.linspace(-104.0, -17.5, 200_003, dtype=np.float32)
    z = np.stack([np.zeros_like(x), x], axis=1)
    P = np.empty_like(z)
    softmax_xent(z, np.zeros(len(x), dtype=np.int64), P)
    assert (P[:, 0] == 1.0).all()
    ref = np.exp(x.astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert (np.abs(P[:, 1] - ref) <= ulp).all()  # within 1 ulp, subnormals included
    assert P[-1, 1] > 0 and P[0, 1] == 0.0  # exp(-104) is below half the least subnormal


def test_softmax_xent_special_values():
    inf, nan = np.float32(np.inf), np.float32(np.nan)
    z = np.array(
        [
            [1.0, nan, 2.0],  # NaN: row and loss NaN
            [1.0, 2.0, -inf],  # -inf: probability exactly 0, finite loss
            [inf, 0.0, 1.0],  # +inf: inf - inf, row NaN (as NumPy)
            [1e30, 0.0, -1e30],  # huge: the row max cancels
            [3.0, 3.0, 3.0],
        ],
        dtype=np.float32,
    )
    y = np.array([0, 1, 1, 0, 2])
    P = np.empty_like(z)
    with np.errstate(invalid="ignore"):
        P32, _ = numpy_xent(z, y)
    assert np.isnan(softmax_xent(z, y, P))
    np.testing.assert_array_equal(np.isnan(P), np.isnan(P32))
    assert P[1, 2] == 0.0 and P[3].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(P[4], 1 / 3, rtol=EPS32)
    np.testing.assert_allclose(P[1, :2], P32[1, :2], rtol=4 * EPS32)
    finite = softmax_xent(z[[1, 3, 4]], y[[1, 3, 4]], P[:3])
    assert finite == pytest.approx(np.log1p(np.exp(-1.0)) + 0.0 + np.log(3.0), rel=1e-6)
    # Equal huge logits: m - z_y cancels before log(2) is added, so it is not lost.
    two = np.full((1, 2), 1e30, dtype=np.float32)
    assert softmax_xent(two, np.array([1]), np.empty_like(two)) == pytest.approx(np.log(2))


@pytest.mark.parametrize("n", [1, 2, 7, 64, 65, 256])
def test_softmax_xent_backward_is_the_numpy_formula_bit_for_bit(n):
    rng = np.random.default_rng(n)
    z = rng.standard_normal((n, 10)).astype(np.float32)
    y = rng.integers(0, 10, n)
    P = np.empty_like(z)
    softmax_xent(z, y, P)
    ref = P.copy()
    ref[np.arange(n), y] -= np.float32(1.0)
    ref *= np.float32(1.0 / n)
    g = softmax_xent_backward(P, y)
    assert g is P
    np.testing.assert_array_equal(bits(g), bits(ref))


@pytest.mark.parametrize("bad", [-1, 10, 2**62])
def test_softmax_xent_rejects_labels_outside_the_classes(bad):
    z = np.zeros((4, 10), dtype=np.float32)
    y = np.array([1, 2, bad, 3])
    P = np.full_like(z, 7.0)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        softmax_xent(z, y, P)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        softmax_xent_backward(P, y)
    assert (P == 7.0).all()  # rejected before anything was written
    loss = SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        loss.forward(z, y)


def test_softmax_xent_c_checks_labels_and_overlap_itself():
    z = np.zeros((3, 4), dtype=np.float32)
    P = np.full_like(z, 7.0)
    out = ffi.new("double *", 5.0)
    bad = np.array([0, 4, 1], dtype=np.int64)
    good = np.array([0, 3, 1], dtype=np.int64)
    assert lib.pd_softmax_xent_f32(fptr(z), iptr(bad), fptr(P), 3, 4, out) == lib.PD_ERR_ARG
    assert lib.pd_softmax_xent_backward_f32(fptr(P), iptr(bad), 3, 4) == lib.PD_ERR_ARG
    assert (P == 7.0).all() and out[0] == 5.0
    assert lib.pd_softmax_xent_f32(fptr(z), iptr(good), fptr(z), 3, 4, out) == lib.PD_ERR_ARG
    assert lib.pd_softmax_xent_f32(fptr(z), iptr(good), fptr(P), 3, 0, out) == lib.PD_ERR_ARG
    assert lib.pd_softmax_xent_f32(fptr(z), iptr(good), fptr(P), -1, 4, out) == lib.PD_ERR_ARG
    assert lib.pd_softmax_xent_f32(ffi.NULL, ffi.NULL, ffi.NULL, 0, 4, out) == lib.PD_OK
    assert out[0] == 0.0
    assert lib.pd_softmax_xent_f32(fptr(z), iptr(good), fptr(P), 3, 4, ffi.NULL) == lib.PD_ERR_ARG


def test_softmax_xent_wrapper_rejects_bad_arrays():
    z = np.zeros((3, 4), dtype=np.float32)
    y = np.array([0, 1, 2])
    P = np.empty_like(z)
    with pytest.raises(TypeError, match="logits must have dtype float32"):
        softmax_xent(z.astype(np.float64), y, P)
    with pytest.raises(TypeError, match="y must be a numpy.ndarray of int64"):
        softmax_xent(z, y.astype(np.int32), P)
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        softmax_xent(z, y[:2], P)
    with pytest.raises(ValueError, match="out overlaps logits"):
        softmax_xent(z, y, z)
    with pytest.raises(ValueError, match="out must have shape"):
        softmax_xent(z, y, P[:2])


def test_loss_object_keeps_its_behaviour():
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((9, 5)) * 2).astype(np.float32)
    y = rng.integers(0, 5, 9)
    loss = SoftmaxCrossEntropy()
    ref = loss.forward(z, y)
    g = loss.backward()
    _, total64 = exact_xent(z, y)
    assert isinstance(ref, float) and ref == pytest.approx(total64 / 9, rel=1e-6)
    # Any integer label dtype; strided logits; the labels are copied at forward.
    for labels in (y.astype(np.uint8), y.astype(np.int32), y.astype(np.uint64)):
        assert loss.forward(np.asfortranarray(z), labels) == ref
    y_seen = y.copy()
    loss.forward(z, y_seen)
    y_seen[:] = 0
    np.testing.assert_array_equal(loss.backward(), g)
    assert np.shares_memory(loss.backward(), g)  # a view of the same internal buffer
    # Logits that are the loss's own gradient buffer are read before it is rewritten.
    again = g.copy()
    assert loss.forward(g, y) == SoftmaxCrossEntropy().forward(again, y)
    # An empty batch: NaN loss and an empty gradient.
    assert np.isnan(loss.forward(z[:0], y[:0]))
    assert loss.backward().shape == (0, 5)


# --- SGD -------------------------------------------------------------------------------


def numpy_sgd(w, g, v, lr, momentum, weight_decay):
    """The float32 NumPy expressions of pydrop/optim.py, in place on w and v."""
    lr, mu, wd = np.float32(lr), np.float32(momentum), np.float32(weight_decay)
    t = g
    if weight_decay:
        t = w * wd + g
    if momentum:
        v[...] = v * mu + t
        t = v
    w[...] = w - lr * t


CASES = [(0.0, 0.0), (0.9, 0.0), (0.0, 5e-4), (0.9, 1e-3)]


@pytest.mark.parametrize("momentum,wd", CASES)
@pytest.mark.parametrize("n", [*SIZES, 2**18 + 3])
def test_sgd_step_is_the_numpy_formula_bit_for_bit(n, momentum, wd):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    v = rng.standard_normal(n).astype(np.float32)
    w_ref, v_ref = w.copy(), v.copy()
    for _ in range(3):
        sgd_step(w, g, v, 0.1, momentum, wd)
        numpy_sgd(w_ref, g, v_ref, 0.1, momentum, wd)
    np.testing.assert_array_equal(bits(w), bits(w_ref))
    np.testing.assert_array_equal(bits(v), bits(v_ref))


@pytest.mark.parametrize("momentum,wd", CASES)
def test_sgd_step_same_for_1_and_2_threads(restore_threads, momentum, wd):
    rng = np.random.default_rng(5)
    n = 784 * 256 + 17  # the tutorial's largest weight, plus a ragged tail
    w0 = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    v0 = rng.standard_normal(n).astype(np.float32)
    out = []
    for threads in (1, 2):
        pydrop.set_num_threads(threads)
        w, v = w0.copy(), v0.copy()
        sgd_step(w, g, v, 0.05, momentum, wd)
        out.append((w, v))
    np.testing.assert_array_equal(bits(out[0][0]), bits(out[1][0]))
    np.testing.assert_array_equal(bits(out[0][1]), bits(out[1][1]))


@pytest.mark.parametrize("momentum,wd", CASES)
def test_sgd_optimizer_bit_for_bit_and_state(momentum, wd):
    rng = np.random.default_rng(6)
    params = [Parameter(rng.standard_normal(s)) for s in [(7, 5), (5,), (65, 3)]]
    ref_w = [p.data.copy() for p in params]
    ref_v = [np.zeros_like(p.data) for p in params]
    opt = SGD(params, lr=0.1, momentum=momentum, weight_decay=wd)
    for _ in range(4):
        for p, w, v in zip(params, ref_w, ref_v, strict=True):
            p.grad[...] = rng.standard_normal(p.shape)
            numpy_sgd(w, p.grad, v, 0.1, momentum, wd)
        opt.step()
    for p, w in zip(params, ref_w, strict=True):
        np.testing.assert_array_equal(bits(p.data), bits(w))
    state = opt.state_dict()
    assert int(state["steps"]) == 4
    if momentum:
        for i, v in enumerate(ref_v):
            np.testing.assert_array_equal(bits(state[f"velocity.{i}"]), bits(v))
    else:
        assert set(state) == {"steps"}
    fresh = SGD(params, lr=0.1, momentum=momentum, weight_decay=wd)
    fresh.load_state_dict(state)
    assert fresh.steps == 4
    if momentum:
        np.testing.assert_array_equal(fresh.state_dict()["velocity.2"], ref_v[2])


@pytest.mark.parametrize("momentum,wd", CASES)
def test_sgd_optimizer_one_call_split_across_parameters(restore_threads, momentum, wd):
    """One C call updates every parameter; its thread split cuts across parameter
    boundaries (at 2 threads the two shares meet inside the third), bit for bit
    the per-parameter formula at 1 and 2 threads."""
    rng = np.random.default_rng(7)
    shapes = [(3, 1000), (300,), (784 * 256 + 17,), (0,), (5,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    out = []
    for threads in (1, 2):
        pydrop.set_num_threads(threads)
        params = [Parameter(w.copy()) for w in init]
        opt = SGD(params, lr=0.05, momentum=momentum, weight_decay=wd)
        for _ in range(2):
            for p, g in zip(params, grads, strict=True):
                p.grad[...] = g
            opt.step()
        out.append([p.data for p in params])
    for w0, g, a, b in zip(init, grads, *out, strict=True):
        w, v = w0.copy(), np.zeros_like(w0)
        for _ in range(2):
            numpy_sgd(w, g, v, 0.05, momentum, wd)
        np.testing.assert_array_equal(bits(a), bits(w))
        np.testing.assert_array_equal(bits(b), bits(w))


def test_sgd_optimizer_rejects_parameters_that_overlap():
    first = Parameter(np.ones(8, dtype=np.float32))
    second = Parameter(first.data[4:])  # a view: writing one writes the other
    first.grad[...] = second.grad[...] = 1.0
    with pytest.raises(ValueError, match="parameters' w, g and v must not overlap"):
        SGD([first, second], lr=0.5).step()
    np.testing.assert_array_equal(first.data, 1.0)  # rejected before writing
    # a gradient two parameters only read is fine
    third = Parameter(np.ones(8, dtype=np.float32))
    third._grad = first._grad
    SGD([first, third], lr=0.5).step()
    np.testing.assert_array_equal(first.data, 0.5)
    np.testing.assert_array_equal(third.data, 0.5)


def test_sgd_step_rejects_bad_arrays():
    w = np.ones(8, dtype=np.float32)
    g = np.ones(8, dtype=np.float32)
    v = np.zeros(8, dtype=np.float32)
    with pytest.raises(TypeError, match="g must have dtype float32"):
        sgd_step(w, g.astype(np.float64), v, 0.1, 0.0, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        sgd_step(w, g[:7], v, 0.1, 0.0, 0.0)
    with pytest.raises(ValueError, match="must not overlap"):
        sgd_step(w, w, v, 0.1, 0.0, 0.0)
    with pytest.raises(ValueError, match="must not overlap"):
        sgd_step(w, g, w, 0.1, 0.9, 0.0)
    ro = w.copy()
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="w is read-only"):
        sgd_step(ro, g, v, 0.1, 0.0, 0.0)
    with pytest.raises(TypeError, match="lr must be a real number"):
        sgd_step(w, g, v, "0.1", 0.0, 0.0)
    assert (w == 1.0).all()


def test_sgd_c_checks_overlap_itself():
    a = np.ones(64, dtype=np.float32)
    b = np.ones(64, dtype=np.float32)
    assert lib.pd_sgd_step_f32(fptr(a), fptr(a[8:]), fptr(b), 32, 0.1, 0.0, 0.0) == lib.PD_ERR_ARG
    assert lib.pd_sgd_step_f32(fptr(a), fptr(b), fptr(a[16:]), 32, 0.1, 0.9, 0.0) == lib.PD_ERR_ARG
    assert lib.pd_sgd_step_f32(fptr(a), fptr(b), ffi.NULL, 64, 0.1, 0.9, 0.0) == lib.PD_ERR_ARG
    assert lib.pd_sgd_step_f32(fptr(a), fptr(b), ffi.NULL, -1, 0.1, 0.0, 0.0) == lib.PD_ERR_ARG
    assert (a == 1.0).all()
    # Without momentum v is never touched, so it may be NULL.
    assert lib.pd_sgd_step_f32(fptr(a), fptr(b), ffi.NULL, 64, 0.5, 0.0, 0.0) == lib.PD_OK
    assert (a == 0.5).all()


def test_sgd_multi_c_checks_every_parameter_and_pair():
    a, b, c, d = (np.ones(64, dtype=np.float32) for _ in range(4))

    def call(ws, gs, vs, ns, momentum=0.0, count=None):
        arr = [
            ffi.new("float *[]", [fptr(x) if x is not None else ffi.NULL for x in xs])
            for xs in (ws, gs, vs)
        ]
        n = ffi.new("int64_t[]", ns)
        k = len(ns) if count is None else count
        return lib.pd_sgd_step_multi_f32(*arr, n, k, 0.5, momentum, 0.0)

    assert call([a], [b], [c], [64], count=-1) == lib.PD_ERR_ARG
    assert lib.pd_sgd_step_multi_f32(ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, 1, 0.1, 0, 0) == (
        lib.PD_ERR_ARG
    )
    assert call([a, None], [b, d], [c, c], [64, 8]) == lib.PD_ERR_ARG  # NULL w, n > 0
    assert call([a, c], [b, d], [None, None], [64, -1]) == lib.PD_ERR_ARG
    assert call([a, c], [b, d], [None, None], [2**59, 2**59]) == lib.PD_ERR_ARG  # overflow
    assert call([a, c], [b, a[32:]], [None, None], [64, 16]) == lib.PD_ERR_ARG  # w0 under g1
    assert call([a, c], [b, d], [d, b[8:]], [64, 16], momentum=0.9) == lib.PD_ERR_ARG
    assert all((x == 1.0).all() for x in (a, b, c, d))  # nothing written
    # shared reads are fine, and v may be NULL without momentum
    assert call([a, c], [b, b], [None, None], [64, 64]) == lib.PD_OK
    assert (a == 0.5).all() and (c == 0.5).all()
    assert call([], [], [], [], count=0) == lib.PD_OK


# --- row gather ------------------------------------------------------------------------


@pytest.mark.parametrize("cols", [0, 1, 3, 16, 17, 784])
@pytest.mark.parametrize("n", [0, 1, 5, 64, 256, 1001])
def test_take_rows_matches_numpy(n, cols):
    rng = np.random.default_rng(n + cols)
    src = rng.standard_normal((500, cols)).astype(np.float32)
    src.setflags(write=False)  # the data module's arrays are read-only
    idx = rng.integers(0, 500, n)  # with repeats
    np.testing.assert_array_equal(take_rows(src, idx), src[idx])
    out = np.empty((n, cols), dtype=np.float32)
    assert take_rows(src, idx, out=out) is out
    np.testing.assert_array_equal(out, src[idx])


def test_take_rows_same_for_1_and_2_threads(restore_threads):
    rng = np.random.default_rng(8)
    src = rng.standard_normal((3000, 784)).astype(np.float32)
    idx = rng.permutation(3000)[:257]
    got = []
    for threads in (1, 2):
        pydrop.set_num_threads(threads)
        got.append(take_rows(src, idx))
    np.testing.assert_array_equal(got[0], src[idx])
    np.testing.assert_array_equal(got[1], src[idx])


@pytest.mark.parametrize("bad", [-1, 500, 2**40])
def test_take_rows_rejects_indices_out_of_range(bad):
    src = np.zeros((500, 4), dtype=np.float32)
    idx = np.array([3, 7, bad, 9])
    out = np.full((4, 4), 7.0, dtype=np.float32)
    msg = rf"idx\[2\] = {bad} is out of range for src with 500 rows"
    with pytest.raises(ValueError, match=msg):
        take_rows(src, idx, out=out)
    assert (out == 7.0).all()  # checked before anything was written
    # C checks too, whatever the caller checked.
    st = lib.pd_take_rows_f32(fptr(src), 500, 4, iptr(idx), 4, fptr(out))
    assert st == lib.PD_ERR_ARG and (out == 7.0).all()


def test_take_rows_rejects_bad_arrays():
    src = np.zeros((10, 4), dtype=np.float32)
    idx = np.array([1, 2])
    with pytest.raises(TypeError, match="idx must be a numpy.ndarray of int64"):
        take_rows(src, idx.astype(np.int32))
    with pytest.raises(ValueError, match="idx must be a contiguous 1-D array"):
        take_rows(src, np.array([1, 2, 3, 4])[::2])
    with pytest.raises(TypeError, match="src must have dtype float32"):
        take_rows(src.astype(np.float64), idx)
    with pytest.raises(ValueError, match="src must be C-contiguous"):
        take_rows(np.zeros((4, 10), dtype=np.float32).T, idx)
    with pytest.raises(ValueError, match="out overlaps src"):
        take_rows(src, idx, out=src[:2])
    ro = np.zeros((2, 4), dtype=np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="out is read-only"):
        take_rows(src, idx, out=ro)
    dst = np.zeros((2, 4), dtype=np.float32)
    assert lib.pd_take_rows_f32(fptr(src), 10, 4, iptr(idx), 2, fptr(src)) == lib.PD_ERR_ARG
    assert lib.pd_take_rows_f32(fptr(src), 10, 4, ffi.NULL, 2, fptr(dst)) == lib.PD_ERR_ARG
    assert lib.pd_take_rows_f32(fptr(src), 10, -4, iptr(idx), 2, fptr(dst)) == lib.PD_ERR_ARG


@pytest.mark.parametrize(
    "make", [lambda X: X, lambda X: X.astype(np.float64), lambda X: np.asfortranarray(X)]
)
def test_loader_reused_buffers_for_any_array(make):
    # float32 rows go through the C gather, anything else through np.take.
    X = make(np.arange(50 * 6, dtype=np.float32).reshape(50, 6))
    y = np.arange(50, dtype=np.int64)
    fresh = DataLoader(X, y, 16, shuffle=True, seed=2)
    reuse = DataLoader(X, y, 16, shuffle=True, seed=2, reuse_buffers=True)
    for (Xa, ya), (Xb, yb) in zip(fresh, reuse, strict=True):
        assert Xb.dtype == X.dtype
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
