"""What dropout and ReLU compute, against NumPy."""

import numpy as np
import pytest

import pydrop


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def unpack(mask, n):
    return np.unpackbits(mask, bitorder="little")[:n].astype(bool)


def test_p0_is_identity_bit_for_bit(isa):
    x = rand(1001)
    x[[3, 5, 7]] = [np.nan, -0.0, np.inf]
    x.view(np.uint32)[11] = 0x7FC00123  # a NaN payload survives too
    y, mask = pydrop.dropout(x, 0.0, seed=1, return_mask=True)
    np.testing.assert_array_equal(y.view(np.uint32), x.view(np.uint32))
    assert unpack(mask, x.size).all()


def test_p1_is_positive_zero_even_for_nan_and_inf(isa):
    x = rand(1001)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    y, mask = pydrop.dropout(x, 1.0, seed=1, return_mask=True)
    assert (y.view(np.uint32) == 0).all()
    assert not mask.any()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_inverted_scaling_and_mean(isa, p):
    n = 1 << 20
    x = np.ones(n, dtype=np.float32)
    y, mask = pydrop.dropout(x, p, seed=5, return_mask=True)
    keep = unpack(mask, n)
    scale = np.float32(1.0 / (1.0 - np.float64(np.float32(p))))
    np.testing.assert_array_equal(y[keep], scale)
    np.testing.assert_array_equal(y[~keep], 0.0)
    # E[y] = 1; sd of the mean of n i.i.d. draws is sqrt((1-q)/(q n)).
    q = 1 - p
    assert abs(y.mean(dtype=np.float64) - 1.0) < 5 * np.sqrt((1 - q) / (q * n))


def test_backward_uses_forward_mask(isa):
    x = rand((64, 130), 1)
    dy = rand((64, 130), 2)
    y, mask = pydrop.dropout(x, 0.3, seed=9, return_mask=True)
    dx = pydrop.dropout_backward(dy, mask, 0.3)
    keep = unpack(mask, x.size).reshape(x.shape)
    s = np.float32(1 / (1 - np.float64(np.float32(0.3))))
    np.testing.assert_array_equal(dx, np.where(keep, dy * s, np.float32(0)))
    np.testing.assert_array_equal(keep, y != 0)


def test_padding_bits_are_zero():
    _, mask = pydrop.dropout(np.ones(13, np.float32), 0.0, seed=1, return_mask=True)
    assert mask.tolist() == [0xFF, 0x1F]


def test_eval_mode_returns_input_unchanged():
    x = rand(100)
    assert pydrop.dropout(x, 0.5, training=False) is x
    out = np.empty_like(x)
    assert pydrop.dropout(x, 0.5, training=False, out=out) is out
    np.testing.assert_array_equal(out, x)


def test_same_seed_same_mask_and_explicit_step():
    x = rand(5000)
    a = pydrop.dropout(x, 0.5, seed=3, step=2)
    b = pydrop.dropout(x, 0.5, seed=3, step=2)
    c = pydrop.dropout(x, 0.5, seed=3, step=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_default_generator_is_seedable_and_advances():
    x = rand(5000)
    pydrop.seed(123)
    first = [pydrop.dropout(x, 0.5) for _ in range(3)]
    pydrop.seed(123)
    again = [pydrop.dropout(x, 0.5) for _ in range(3)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    # The default generator's call k equals an explicit (seed, step=k) call.
    np.testing.assert_array_equal(first[2], pydrop.dropout(x, 0.5, seed=123, step=2))


# 1000: the SIMD main loop, its 4-block loop and a scalar tail; 4099 and 2^20 + 3:
# several tiles and threads, ending mid-block.
@pytest.mark.parametrize("n", [1000, 4099, (1 << 20) + 3])
def test_in_place(any_isa, n):
    x = rand(n)
    expected = pydrop.dropout(x, 0.5, seed=4)
    y = pydrop.dropout(x, 0.5, seed=4, out=x)
    assert y is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [1, 9, 33, 100, 1000, 4099, (1 << 20) + 3])
def test_maskless_forward_equals_masked(any_isa, n, p):
    # Without return_mask / mask_out the C call gets no mask and skips its bytes;
    # y must not change.
    x = rand(n, seed=n)
    y_masked, _ = pydrop.dropout(x, p, seed=77, stream=2, step=5, return_mask=True)
    y = pydrop.dropout(x, p, seed=77, stream=2, step=5)
    np.testing.assert_array_equal(y.view(np.uint32), y_masked.view(np.uint32))


def test_dropout_layer_is_the_tutorial_function():
    X = np.arange(16, dtype=np.float32).reshape((2, 8))
    np.testing.assert_array_equal(pydrop.dropout_layer(X, 0.0), X)
    np.testing.assert_array_equal(pydrop.dropout_layer(X, 1.0), np.zeros_like(X))
    Y = pydrop.dropout_layer(X, 0.5)
    assert Y is not X and Y.shape == X.shape
    kept = Y != 0
    np.testing.assert_array_equal(Y[kept], 2 * X[kept])
    big = pydrop.dropout_layer(np.ones((256, 1024), np.float32), 0.5)
    assert abs((big == 0).mean() - 0.5) < 0.01


def test_relu_policy(isa):
    x = np.array([1.5, -2.0, 0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45], np.float32)
    y = pydrop.relu(x)
    expected = np.array([1.5, 0, 0, 0, np.nan, np.inf, 0, 1e-45, 0], np.float32)
    np.testing.assert_array_equal(y, expected)
    assert not np.signbit(y[~np.isnan(y)]).any()  # -0.0 and negatives give +0.0
    dy = np.full_like(x, 3.0)
    dx = pydrop.relu_backward(dy, x)
    np.testing.assert_array_equal(dx, [3, 0, 0, 0, np.nan, 3, 0, 3, 0])
    assert not np.signbit(dx[~np.isnan(dx)]).any()


def test_relu_matches_numpy_on_random_data(isa):
    x = rand((300, 77), 3)
    np.testing.assert_array_equal(pydrop.relu(x), np.maximum(x, 0))
    dy = rand((300, 77), 4)
    np.testing.assert_array_equal(pydrop.relu_backward(dy, x), np.where(x > 0, dy, 0))
    # Backward from ReLU's output gives the same result (for non-NaN input).
    np.testing.assert_array_equal(
        pydrop.relu_backward(dy, pydrop.relu(x)), pydrop.relu_backward(dy, x)
    )


@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0), (2, 0, 4)])
def test_zero_size_arrays(shape):
    x = np.zeros(shape, np.float32)
    y, mask = pydrop.dropout(x, 0.5, seed=1, return_mask=True)
    assert y.shape == shape and mask.size == 0
    assert pydrop.dropout_backward(x, mask, 0.5).shape == shape
    assert pydrop.relu(x).shape == shape
    assert pydrop.relu_backward(x, x).shape == shape
    assert pydrop.dropout_layer(x, 0.5).shape == shape


def test_matmul_zero_sizes_and_k0():
    a = np.zeros((3, 0), np.float32)
    b = np.zeros((0, 4), np.float32)
    np.testing.assert_array_equal(pydrop.matmul(a, b), np.zeros((3, 4)))
    out = np.ones((3, 4), np.float32)
    pydrop.matmul(a, b, out=out, beta=2.0)
    np.testing.assert_array_equal(out, 2.0)
    assert pydrop.matmul(np.zeros((0, 5), np.float32), np.zeros((5, 2), np.float32)).shape == (0, 2)


def test_mask_out_is_filled_and_returned():
    x = rand(1001)
    y0, m0 = pydrop.dropout(x, 0.4, seed=8, return_mask=True)
    buf = np.empty(126, np.uint8)
    y1, m1 = pydrop.dropout(x, 0.4, seed=8, return_mask=True, mask_out=buf)
    assert m1 is buf
    np.testing.assert_array_equal(buf, m0)
    np.testing.assert_array_equal(y1, y0)
    pydrop.dropout(x, 0.4, training=False, mask_out=buf)
    assert unpack(buf, x.size).all() and buf[-1] == 0x01


def test_rng_state_round_trip_and_eval_draws_nothing():
    x = rand(2000)
    pydrop.seed(77)
    pydrop.dropout(x, 0.5)
    state = pydrop.get_rng_state()
    assert state == (77, 1)
    pydrop.dropout(x, 0.5, training=False)
    assert pydrop.get_rng_state() == state
    a = pydrop.dropout(x, 0.5)
    pydrop.set_rng_state(state)
    np.testing.assert_array_equal(pydrop.dropout(x, 0.5), a)
    with pytest.raises(TypeError):
        pydrop.set_rng_state(5)
    with pytest.raises(ValueError, match="step"):
        pydrop.set_rng_state((1, -1))
