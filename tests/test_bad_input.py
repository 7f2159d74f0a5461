"""Bad input: a clear TypeError/ValueError naming the argument, never a crash."""

import numpy as np
import pytest
from arrays import misaligned, read_only
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pydrop

F = np.float32


X = np.ones((4, 8), F)
MASK = pydrop.dropout(X, 0.5, seed=1, return_mask=True)[1]

# (call, exception, text the message must contain)
CASES = {
    # dtype and type
    "dropout x float64": (lambda: pydrop.dropout(X.astype(np.float64), 0.5), TypeError, "x"),
    "dropout x int": (lambda: pydrop.dropout(X.astype(np.int32), 0.5), TypeError, "float32"),
    "dropout x list": (lambda: pydrop.dropout([1.0, 2.0], 0.5), TypeError, "ndarray"),
    "dropout x big-endian": (lambda: pydrop.dropout(X.astype(">f4"), 0.5), TypeError, "x"),
    "dropout x masked": (lambda: pydrop.dropout(np.ma.masked_array(X), 0.5), TypeError, "x"),
    "relu x float16": (lambda: pydrop.relu(X.astype(np.float16)), TypeError, "x"),
    "relu_backward dy int": (lambda: pydrop.relu_backward(X.astype(int), X), TypeError, "dy"),
    "dropout_backward mask float": (lambda: pydrop.dropout_backward(X, X, 0.5), TypeError, "mask"),
    "matmul a float64": (lambda: pydrop.matmul(X.astype(np.float64), X.T), TypeError, "a"),
    "matmul b None": (lambda: pydrop.matmul(X, None), TypeError, "b"),
    "dropout_layer X float64": (lambda: pydrop.dropout_layer(X.astype(float), 0.5), TypeError, "X"),
    # ndim and shape
    "matmul a 1-D": (lambda: pydrop.matmul(np.ones(3, F), X), ValueError, "2-D"),
    "matmul b 3-D": (lambda: pydrop.matmul(X, np.ones((8, 2, 2), F)), ValueError, "2-D"),
    "matmul k mismatch": (lambda: pydrop.matmul(X, X), ValueError, "b.shape[0]"),
    "matmul out shape": (lambda: pydrop.matmul(X, X.T, out=np.empty((4, 5), F)), ValueError, "out"),
    "relu_backward shapes": (lambda: pydrop.relu_backward(X, X[:2]), ValueError, "same shape"),
    "relu out shape": (lambda: pydrop.relu(X, out=np.empty((8, 4), F)), ValueError, "out"),
    "dropout_backward mask size": (
        lambda: pydrop.dropout_backward(X, MASK[:-1], 0.5),
        ValueError,
        "mask",
    ),
    "dropout_backward mask 2-D": (
        lambda: pydrop.dropout_backward(X, MASK.reshape(2, 2), 0.5),
        ValueError,
        "mask",
    ),
    # layout
    "dropout x strided": (lambda: pydrop.dropout(X[:, ::2], 0.5), ValueError, "C-contiguous"),
    "relu x transposed": (lambda: pydrop.relu(X.T), ValueError, "C-contiguous"),
    "relu x misaligned": (lambda: pydrop.relu(misaligned(8)), ValueError, "aligned"),
    "matmul a misaligned": (
        lambda: pydrop.matmul(misaligned(16).reshape(4, 4), X[:4, :4].copy()),
        ValueError,
        "aligned",
    ),
    "matmul b misaligned": (
        lambda: pydrop.matmul(X[:4, :4].copy(), misaligned(16).reshape(4, 4)),
        ValueError,
        "aligned",
    ),
    "matmul out misaligned": (
        lambda: pydrop.matmul(X[:4, :4].copy(), X[:4, :4].copy(), out=misaligned(16).reshape(4, 4)),
        ValueError,
        "aligned",
    ),
    "matmul a 2-D strided": (lambda: pydrop.matmul(X[::2, ::2], X[:4]), ValueError, "unit stride"),
    "matmul out strided": (
        lambda: pydrop.matmul(X, X.T, out=np.empty((4, 8), F)[:, ::2]),
        ValueError,
        "out",
    ),
    "dropout out strided": (
        lambda: pydrop.dropout(X, 0.5, out=np.empty((4, 16), F)[:, ::2]),
        ValueError,
        "out",
    ),
    # outputs
    "relu out read-only": (
        lambda: pydrop.relu(X, out=read_only(np.empty_like(X))),
        ValueError,
        "read-only",
    ),
    "dropout out read-only": (
        lambda: pydrop.dropout(X, 0.5, out=read_only(np.empty_like(X))),
        ValueError,
        "read-only",
    ),
    "matmul out read-only": (
        lambda: pydrop.matmul(X, X.T, out=read_only(np.empty((4, 4), F))),
        ValueError,
        "read-only",
    ),
    "dropout out dtype": (lambda: pydrop.dropout(X, 0.5, out=np.empty((4, 8))), TypeError, "out"),
    "relu out overlaps x": (
        lambda: (lambda b: pydrop.relu(b[:8], out=b[4:12]))(np.ones(16, F)),
        ValueError,
        "overlaps",
    ),
    "dropout out partial overlap": (
        lambda: (lambda b: pydrop.dropout(b[:8], 0.5, out=b[1:9]))(np.ones(9, F)),
        ValueError,
        "overlaps",
    ),
    "dropout_backward out overlaps mask": (
        lambda: (
            lambda buf: pydrop.dropout_backward(
                np.ones(64, F), buf.view(np.uint8)[:8], 0.5, out=buf
            )
        )(np.ones(64, F)),
        ValueError,
        "overlaps",
    ),
    "matmul out is a": (
        lambda: (lambda a: pydrop.matmul(a, np.eye(4, dtype=F), out=a))(np.ones((4, 4), F)),
        ValueError,
        "overlaps",
    ),
    "matmul beta without out": (lambda: pydrop.matmul(X, X.T, beta=1.0), ValueError, "out"),
    "matmul alpha str": (lambda: pydrop.matmul(X, X.T, alpha="2"), TypeError, "alpha"),
    "mask_out wrong size": (
        lambda: pydrop.dropout(X, 0.5, mask_out=np.empty(3, np.uint8)),
        ValueError,
        "mask_out",
    ),
    "mask_out float": (
        lambda: pydrop.dropout(X, 0.5, mask_out=np.empty(4, F)),
        TypeError,
        "mask_out",
    ),
    "mask_out read-only": (
        lambda: pydrop.dropout(X, 0.5, mask_out=read_only(np.empty(4, np.uint8))),
        ValueError,
        "read-only",
    ),
    "mask_out overlaps x": (
        lambda: (lambda b: pydrop.dropout(b[:8], 0.5, mask_out=b[7:8].view(np.uint8)[:1]))(
            np.ones(16, F)
        ),
        ValueError,
        "overlaps",
    ),
    # p
    "p negative": (lambda: pydrop.dropout(X, -0.1), ValueError, "p"),
    "p above one": (lambda: pydrop.dropout(X, 1.0001), ValueError, "p"),
    "p nan": (lambda: pydrop.dropout(X, float("nan")), ValueError, "p"),
    "p inf": (lambda: pydrop.dropout(X, float("inf")), ValueError, "p"),
    "p str": (lambda: pydrop.dropout(X, "0.5"), TypeError, "p"),
    "p None": (lambda: pydrop.dropout(X, None), TypeError, "p"),
    "p bool": (lambda: pydrop.dropout(X, True), TypeError, "p"),
    "backward p nan": (lambda: pydrop.dropout_backward(X, MASK, float("nan")), ValueError, "p"),
    "dropout_layer dropout 2": (lambda: pydrop.dropout_layer(X, 2.0), ValueError, "dropout"),
    # Python ints beyond the float range
    "p huge int": (lambda: pydrop.dropout(X, 10**400, seed=1), ValueError, "p"),
    "backward p huge int": (lambda: pydrop.dropout_backward(X, MASK, 10**400), ValueError, "p"),
    "dropout_layer huge int": (lambda: pydrop.dropout_layer(X, 10**400), ValueError, "dropout"),
    "matmul alpha huge int": (lambda: pydrop.matmul(X, X.T, alpha=10**400), ValueError, "alpha"),
    "matmul beta huge negative int": (
        lambda: pydrop.matmul(X, X.T, out=np.zeros((4, 4), F), beta=-(10**400)),
        ValueError,
        "beta",
    ),
    # seed, stream, step
    "seed negative": (lambda: pydrop.dropout(X, 0.5, seed=-1), ValueError, "seed"),
    "seed too big": (lambda: pydrop.dropout(X, 0.5, seed=2**64), ValueError, "seed"),
    "seed float": (lambda: pydrop.dropout(X, 0.5, seed=1.5), TypeError, "seed"),
    "seed str": (lambda: pydrop.dropout(X, 0.5, seed="1"), TypeError, "seed"),
    "seed bool": (lambda: pydrop.dropout(X, 0.5, seed=True), TypeError, "seed"),
    "pydrop.seed negative": (lambda: pydrop.seed(-5), ValueError, "seed"),
    "pydrop.seed float": (lambda: pydrop.seed(0.5), TypeError, "seed"),
    "stream too big": (lambda: pydrop.dropout(X, 0.5, seed=1, stream=2**32), ValueError, "stream"),
    "step negative": (lambda: pydrop.dropout(X, 0.5, seed=1, step=-1), ValueError, "step"),
    "step without seed": (lambda: pydrop.dropout(X, 0.5, step=3), ValueError, "seed"),
    # threads
    "threads zero": (lambda: pydrop.set_num_threads(0), ValueError, "n"),
    "threads float": (lambda: pydrop.set_num_threads(2.0), TypeError, "n"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_raises(name):
    call, exc, text = CASES[name]
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value), str(info.value)


def test_seed_accepts_numpy_integers():
    a = pydrop.dropout(X, 0.5, seed=np.uint64(2**64 - 1))
    b = pydrop.dropout(X, 0.5, seed=2**64 - 1)
    np.testing.assert_array_equal(a, b)


# --- Hypothesis: arbitrary arrays either work correctly or raise cleanly ------

dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, ">f4"])
arrays = dtypes.flatmap(
    lambda dt: hnp.arrays(
        dt,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9),
        elements=st.just(1) if np.dtype(dt).kind in "iu" else None,
    )
)
slicers = st.sampled_from(
    [
        lambda a: a,
        lambda a: a[..., ::2] if a.ndim else a,
        lambda a: a.T,
        lambda a: a[::-1] if a.ndim else a,
    ]
)
ps = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.just(0.0),
    st.just(1.0),
    st.integers(-2, 2),
)


def expect_clean(fn, *args, **kw):
    try:
        return fn(*args, **kw), None
    except (TypeError, ValueError) as e:
        assert str(e)
        return None, e


@settings(max_examples=300, deadline=None)
@given(arrays, slicers, ps)
def test_hypothesis_dropout(a, slicer, p):
    x = slicer(a)
    y, err = expect_clean(pydrop.dropout, x, p, seed=7, return_mask=True)
    ok = (
        isinstance(x, np.ndarray)
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and not isinstance(p, bool)
        and p == p
        and 0 <= p <= 1
    )
    assert (err is None) == ok, err
    if ok:
        out, mask = y
        keep = np.unpackbits(mask, bitorder="little")[: x.size].astype(bool).reshape(x.shape)
        if p == 0:
            np.testing.assert_array_equal(out.view(np.uint32), x.view(np.uint32))
        elif np.float32(p) == 1:
            assert not keep.any() and not out.view(np.uint32).any()
        else:
            s = np.float32(1 / (1 - np.float64(np.float32(p))))
            # Dropped entries of x * s are discarded, so their overflow is irrelevant.
            with np.errstate(over="ignore"):
                expected = np.where(keep, x * s, np.float32(0))
            np.testing.assert_array_equal(out, expected)
        dx, err = expect_clean(pydrop.dropout_backward, x, mask, p)
        assert err is None


@settings(max_examples=300, deadline=None)
@given(arrays, slicers)
def test_hypothesis_relu(a, slicer):
    x = slicer(a)
    y, err = expect_clean(pydrop.relu, x)
    ok = x.dtype == np.float32 and x.flags.c_contiguous
    assert (err is None) == ok, err
    if ok:
        np.testing.assert_array_equal(y, np.where((x > 0) | np.isnan(x), x, np.float32(0)))
        dx, err = expect_clean(pydrop.relu_backward, x, x)
        assert err is None


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(0, 12),
    st.booleans(),
    st.booleans(),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 3),
    st.floats(-2, 2, width=32),
    st.sampled_from([0.0, 1.0, -0.5]),
)
def test_hypothesis_matmul(m, n, k, ta, tb, dt, pad, alpha, beta):
    rng = np.random.default_rng(m * 10000 + n * 100 + k)
    a_full = rng.standard_normal((k, m + pad) if ta else (m, k + pad)).astype(dt)
    b_full = rng.standard_normal((n, k + pad) if tb else (k, n + pad)).astype(dt)
    a = a_full[:, :m].T if ta else a_full[:, :k]
    b = b_full[:, :k].T if tb else b_full[:, :n]
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    got, err = expect_clean(pydrop.matmul, a, b, out=c, alpha=alpha, beta=beta)
    assert (err is None) == (dt == np.float32), err
    if err is None:
        ref = alpha * (a.astype(np.float64) @ b.astype(np.float64)) + beta * c0
        bound = (
            2
            * k
            * np.finfo(np.float32).eps
            * (
                abs(alpha) * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
                + abs(beta) * np.abs(c0)
            )
            + 1e-30
        )
        assert (np.abs(got - ref) <= bound + np.finfo(np.float32).eps * np.abs(ref)).all()
