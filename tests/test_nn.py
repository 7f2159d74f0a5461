"""Layers, models, loss and optimizer: finite-difference gradients, state, modes, buffers.

Gradient checks use central differences on float32 parameters with the objective
accumulated in float64. Tolerance: the kernels compute in float32, so each
objective value carries a rounding error of about |f| * k * 2^-24 (k = the longest
dot product, at most 10 here), i.e. < 1e-5 for these sizes; divided by the 2*eps
step (eps = 1e-2 after float32 rounding) that is < 1e-3 in the difference quotient,
while the truncation error of a central difference is 0 for the piecewise-linear
layers (the probes are kept away from every ReLU kink, asserted below) and
O(eps^2) = 1e-4 relative for the smooth loss. Hence atol = 2e-3, rtol = 1e-2.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pydrop
from pydrop import nn
from pydrop.losses import SoftmaxCrossEntropy, accuracy
from pydrop.models import MLP, DropoutMLP, DropoutMLPScratch
from pydrop.optim import SGD

EPS = 1e-2
ATOL, RTOL = 2e-3, 1e-2


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _relu_pattern(module):
    """Which ReLU units are on after the last forward (Dense('relu') and ReLU layers)."""
    outs = [m._y for m in module.modules() if isinstance(m, nn.ReLU)]
    outs += [m._fwd.y for m in module.modules() if isinstance(m, nn.Dense) and m.activation]
    return np.concatenate([o.ravel() > 0 for o in outs]) if outs else np.zeros(0, bool)


def _fd_check(f, arrays, analytic, n_probe=40, pattern=None):
    """Compare analytic gradients with central differences of f() (float64) over
    up to n_probe random coordinates of each array (perturbed in place).

    With ``pattern`` (the on/off state of every ReLU after f()), a probe whose +EPS or
    -EPS evaluation switches any ReLU is too close to a kink and is skipped; at least
    80% of the probes must be usable, so the check cannot pass vacuously."""
    rng = np.random.default_rng(0)
    checked = total = 0
    for a, g in zip(arrays, analytic, strict=True):
        flat, gflat = a.reshape(-1), g.reshape(-1)
        idx = rng.choice(flat.size, size=min(n_probe, flat.size), replace=False)
        base = None
        if pattern is not None:
            f()
            base = pattern()
        for i in idx:
            total += 1
            old = flat[i]
            flat[i] = old + np.float32(EPS)
            up, h_up = f(), float(flat[i]) - float(old)
            kink = base is not None and not np.array_equal(pattern(), base)
            flat[i] = old - np.float32(EPS)
            down, h_down = f(), float(old) - float(flat[i])
            kink = kink or (base is not None and not np.array_equal(pattern(), base))
            flat[i] = old
            if kink:
                continue
            checked += 1
            num = (up - down) / (h_up + h_down)
            assert abs(num - gflat[i]) <= ATOL + RTOL * abs(num), (i, num, gflat[i])
    assert checked >= 0.8 * total, f"only {checked} of {total} probes were away from kinks"


# -- single layers ------------------------------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu"])
def test_dense_gradients(activation):
    rng = np.random.default_rng(1)
    X = _rand(rng, 5, 7)
    layer = nn.Dense(6, activation=activation, in_units=7, seed=3)
    layer.weight.data[...] = _rand(rng, 7, 6, scale=0.5)
    layer.bias.data[...] = _rand(rng, 6, scale=0.5)
    R = _rand(rng, 5, 6).astype(np.float64)  # f = sum(R * layer(X))
    z = X.astype(np.float64) @ layer.weight.data + layer.bias.data

    def f():
        return float((layer.forward(X).astype(np.float64) * R).sum())

    f()
    layer.zero_grad()
    dX = layer.backward(R.astype(np.float32)).copy()
    grads = [dX, layer.weight.grad.copy(), layer.bias.grad.copy()]
    _fd_check(
        f, [X, layer.weight.data, layer.bias.data], grads, pattern=lambda: _relu_pattern(layer)
    )
    # A float64 NumPy oracle as well.
    mask = (z > 0) if activation else np.ones_like(z, dtype=bool)
    dz = R * mask
    np.testing.assert_allclose(grads[1], X.T.astype(np.float64) @ dz, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads[2], dz.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads[0], dz @ layer.weight.data.T, rtol=1e-5, atol=1e-5)


def test_relu_gradient():
    rng = np.random.default_rng(2)
    X = _rand(rng, 4, 9)
    X[np.abs(X) < 2 * EPS] = 0.5  # every probe stays on one side of the kink
    layer = nn.ReLU()
    R = _rand(rng, 4, 9).astype(np.float64)

    def f():
        return float((layer.forward(X).astype(np.float64) * R).sum())

    f()
    _fd_check(f, [X], [layer.backward(R.astype(np.float32)).copy()])


def test_dropout_gradient_uses_the_forward_mask():
    rng = np.random.default_rng(3)
    X = _rand(rng, 6, 11)
    layer = nn.Dropout(0.3, seed=9, stream=2)
    R = _rand(rng, 6, 11).astype(np.float64)

    def f():
        layer.step = 4  # same (seed, stream, step): same mask at every probe
        return float((layer.forward(X).astype(np.float64) * R).sum())

    f()
    dX = layer.backward(R.astype(np.float32)).copy()
    _fd_check(f, [X], [dX], n_probe=66)
    layer.step = 4
    kept = layer.forward(X) != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_array_equal(dX != 0, kept)  # X has no zeros, R has none either


def test_loss_gradient_and_oracle():
    rng = np.random.default_rng(4)
    logits = _rand(rng, 8, 10, scale=3.0)
    y = rng.integers(0, 10, 8)
    loss = SoftmaxCrossEntropy()

    def f():
        return loss.forward(logits, y)

    value = f()
    grad = loss.backward().copy()
    z = logits.astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    assert value == pytest.approx(float(np.mean(lse - z[np.arange(8), y])), rel=1e-6)
    p = np.exp(z - lse[:, None])
    p[np.arange(8), y] -= 1
    np.testing.assert_allclose(grad, p / 8, rtol=1e-5, atol=1e-7)
    _fd_check(f, [logits], [grad], n_probe=80)


def test_loss_kept_calls_read_new_values_and_never_a_stale_copy():
    rng = np.random.default_rng(13)
    loss = SoftmaxCrossEntropy()
    logits, y = _rand(rng, 8, 5), rng.integers(0, 5, 8)

    def fresh(z, labels):
        ref = SoftmaxCrossEntropy()
        return ref.forward(z.copy(), labels), ref.backward().copy()

    for _ in range(2):  # the same objects, new contents: the kept calls read them
        want, want_grad = fresh(logits, y)
        assert loss.forward(logits, y) == want
        np.testing.assert_array_equal(loss.backward(), want_grad)
        logits *= 2.0
        y = (y + 1) % 5
    # logits that are the loss's own gradient buffer are copied afresh every call
    for _ in range(2):
        g = loss.backward()
        want, want_grad = fresh(g, y)
        assert loss.forward(g, y) == want
        np.testing.assert_array_equal(loss.backward(), want_grad)


def test_loss_is_stable_for_huge_logits():
    logits = np.array([[1e30, 0.0, -1e30], [-5e4, 5e4, 0.0]], dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    assert loss.forward(logits, np.array([0, 1])) == 0.0
    assert loss.forward(logits, np.array([2, 2])) == pytest.approx(1e30, rel=1e-6)
    assert loss.forward(logits[1:], np.array([0])) == pytest.approx(1e5, rel=1e-6)
    g = loss.backward()
    assert np.isfinite(g).all()
    assert accuracy(logits, np.array([0, 1])) == 1.0
    assert accuracy(logits, np.array([0, 0])) == 0.5


# -- whole models --------------------------------------------------------------------


def _small(cls, **kw):
    return cls(num_outputs=3, num_hiddens_1=5, num_hiddens_2=4, lr=0.1, seed=7, **kw)


def _model_fd(model, X, y, before_forward=lambda: None):
    loss = SoftmaxCrossEntropy()
    model.forward(X)  # creates the lazy weights
    for p in model.parameters():  # larger weights so that signals are far from 0
        p.data[...] = np.random.default_rng(p.data.size).standard_normal(p.shape) * 0.7

    def f():
        before_forward()
        return loss.forward(model.forward(X), y)

    f()
    model.zero_grad()
    model.backward(loss.backward())
    grads = [p.grad.copy() for p in model.parameters()]
    return f, grads


@pytest.mark.parametrize(
    "cls,p", [(MLP, 0.0), (DropoutMLP, 0.4), (DropoutMLPScratch, 0.4)], ids=["mlp", "fw", "scr"]
)
def test_model_gradients(cls, p):
    rng = np.random.default_rng(5)
    X = _rand(rng, 6, 8)
    y = rng.integers(0, 3, 6)
    model = _small(cls, dropout_1=p, dropout_2=p)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def same_masks():
        pydrop.seed(11)  # the scratch model's dropout_layer: default generator
        for d in drops:
            d.step = 0

    f, grads = _model_fd(model, X, y, same_masks)
    params = [p.data for p in model.parameters()]
    _fd_check(f, params, grads, n_probe=25, pattern=lambda: _relu_pattern(model))


def test_scratch_and_framework_grads_agree_without_dropout():
    rng = np.random.default_rng(6)
    X, y = _rand(rng, 6, 8), rng.integers(0, 3, 6)
    a = _small(DropoutMLPScratch, dropout_1=0.0, dropout_2=0.0)
    b = _small(DropoutMLP, dropout_1=0.0, dropout_2=0.0)
    _, ga = _model_fd(a, X, y)
    _, gb = _model_fd(b, X, y)
    for u, v in zip(ga, gb, strict=True):
        np.testing.assert_array_equal(u, v)


def _as_plain(state):
    """DropoutMLP's state dict renamed for MLP (Dense layers 0, 2, 4 -> 0, 1, 2)."""
    names = {"net.0": "net.0", "net.2": "net.1", "net.4": "net.2"}
    return {names[k[:5]] + k[5:]: v for k, v in state.items() if "step" not in k}


def test_one_seed_one_start():
    X = np.ones((2, 12), dtype=np.float32)
    a, b, c = (cls(10, 8, 8, 0.5, 0.5, 0.1, seed=3) for cls in (DropoutMLP, MLP, DropoutMLPScratch))
    for m in (a, b, c):
        m.forward(X)
    wa = [p.data for p in a.parameters()]
    for m in (b, c):
        for u, v in zip(wa, [p.data for p in m.parameters()], strict=True):
            np.testing.assert_array_equal(u, v)


# -- layer API -----------------------------------------------------------------------


def test_lazy_init_and_seeded_normal():
    layer = nn.Dense(300, seed=1)
    assert layer.weight is None and layer.parameters() == []
    layer.forward(np.zeros((2, 400), dtype=np.float32))
    assert layer.weight.shape == (400, 300) and layer.in_units == 400
    w = layer.weight.data
    assert abs(float(w.mean())) < 1e-3 and 0.0099 < float(w.std()) < 0.0101
    assert not layer.bias.data.any()
    again = nn.Dense(300, in_units=400, seed=1)
    np.testing.assert_array_equal(again.weight.data, w)
    seq = nn.Sequential(nn.Dense(300), nn.Dense(300), seed=1)
    seq.forward(np.zeros((2, 300), dtype=np.float32))
    assert not np.array_equal(seq[0].weight.data, seq[1].weight.data)  # distinct seeds
    with pytest.raises(ValueError, match="400 input features"):
        layer.forward(np.zeros((2, 5), dtype=np.float32))


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="units"):
        nn.Dense(0)
    with pytest.raises(ValueError, match="activation"):
        nn.Dense(3, activation="tanh")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match="Modules"):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DropoutMLP(10, 8, 8, dropout_1=-0.1, dropout_2=0.5, lr=0.1)


def test_train_eval_modes_and_eval_disables_dropout():
    rng = np.random.default_rng(7)
    X = _rand(rng, 16, 20)
    model = DropoutMLP(10, 32, 32, 0.5, 0.5, 0.1)
    assert model.training and all(m.training for m in model.modules())
    t1, t2 = model(X), model(X)
    assert not np.array_equal(t1, t2)  # fresh masks each training forward
    model.eval()
    assert not any(m.training for m in model.modules())
    steps = [d.step for d in model.modules() if isinstance(d, nn.Dropout)]
    e1, e2 = model(X), model(X)
    np.testing.assert_array_equal(e1, e2)
    assert [d.step for d in model.modules() if isinstance(d, nn.Dropout)] == steps
    plain = MLP(10, 32, 32, lr=0.1)
    plain.load_state_dict(_as_plain(model.state_dict()))
    np.testing.assert_array_equal(e1, plain(X))  # eval == the same net without dropout
    scratch = DropoutMLPScratch(10, 32, 32, 0.5, 0.5, 0.1).eval()
    scratch.forward(X)
    scratch.load_state_dict(
        {
            k.replace("net.0", "lin1").replace("net.2", "lin2").replace("net.4", "lin3"): v
            for k, v in model.state_dict().items()
            if "step" not in k
        }
    )
    np.testing.assert_array_equal(scratch(X), e1)
    d = nn.Dropout(0.5).eval()
    assert d.forward(X) is X


def test_state_dict_round_trip_into_lazy_model():
    rng = np.random.default_rng(8)
    X = _rand(rng, 4, 30)
    a = DropoutMLP(10, 16, 8, 0.5, 0.5, 0.1, seed=1)
    a(X)
    a(X)  # advances the dropout steps
    state = a.state_dict()
    assert state["net.1.step"] == 2
    b = DropoutMLP(10, 16, 8, 0.5, 0.5, 0.1, seed=1)
    b.load_state_dict(state)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    np.testing.assert_array_equal(a(X), b(X))  # same weights and the same next masks
    with pytest.raises(KeyError):
        b.load_state_dict({k: v for k, v in state.items() if k != "net.0.bias"})
    with pytest.raises(KeyError):
        b.load_state_dict({**state, "net.9.weight": state["net.0.weight"]})
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict({**state, "net.0.weight": state["net.0.weight"][:3]})


def test_repr_is_readable():
    text = repr(nn.Sequential(nn.Dense(8, activation="relu"), nn.Dropout(0.5), nn.Dense(2)))
    assert "Dense(units=8, activation='relu'" in text and "Dropout(p=0.5" in text
    assert "(2): Dense(units=2" in text


def test_call_returns_a_copy_forward_a_reused_buffer():
    X = np.ones((3, 4), dtype=np.float32)
    layer = nn.Dense(2, in_units=4)
    y1 = layer.forward(X)
    y2 = layer.forward(X * 2)
    assert np.shares_memory(y1, y2)
    c = layer(X)
    layer.forward(X * 3)
    np.testing.assert_array_equal(c, layer(X))


def test_dense_reruns_its_checked_call_until_an_array_is_replaced():
    """Dense keeps its checked kernel calls while every array is the same object; a
    replaced array (Parameter.data, another batch size) gets a new, fully checked
    call, and in-place updates are read by the kept one."""
    rng = np.random.default_rng(12)
    layer = nn.Dense(5, activation="relu", in_units=7, seed=1)
    X = _rand(rng, 6, 7)

    def expect(x):
        return pydrop.linear(x, layer.weight.data, layer.bias.data, activation="relu")

    layer.forward(X)
    first = layer._fwd
    layer.weight.data *= -1.0  # in place: the same call, the new values
    np.testing.assert_array_equal(layer.forward(X), expect(X))
    assert layer._fwd is first
    layer.weight.data = _rand(rng, 7, 5)
    np.testing.assert_array_equal(layer.forward(X), expect(X))
    assert layer._fwd is not first
    X3 = _rand(rng, 3, 7)
    np.testing.assert_array_equal(layer.forward(X3), expect(X3))

    dY = _rand(rng, 3, 5)
    layer.zero_grad()
    dX = layer.backward(dY).copy()
    dx, dw, db = pydrop.linear_backward(dY, X3, layer.weight.data, layer._fwd.y, activation="relu")
    np.testing.assert_array_equal(dX, dx)
    np.testing.assert_array_equal(layer.weight.grad, dw)
    np.testing.assert_array_equal(layer.bias.grad, db)
    layer.weight._grad = np.zeros((7, 5), dtype=np.float32)  # a new gradient buffer
    layer.backward(dY)
    np.testing.assert_array_equal(layer.weight._grad, dw)

    layer.weight.data = np.zeros((7, 5))  # float64: the full checks run again
    with pytest.raises(TypeError, match="w must have dtype float32"):
        layer.forward(X3)


def test_fused_dropout_reads_a_changed_p_and_rejects_a_bad_one():
    rng = np.random.default_rng(14)
    model = nn.Sequential(nn.Dense(8, activation="relu", in_units=5), nn.Dropout(0.5))
    X = _rand(rng, 4, 5)
    model.forward(X)
    model.layers[1].p = 0.0
    dense = model.layers[0]
    want = pydrop.linear(X, dense.weight.data, dense.bias.data, activation="relu")
    np.testing.assert_array_equal(model.forward(X), want)
    model.layers[1].p = 1.5
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\]"):
        model.forward(X)


def test_sgd_notices_new_hyperparameters_and_arrays():
    p = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    opt = SGD([p], lr=0.5)
    p.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(p.data, 0.5)
    opt.lr = 0.25
    opt.step()
    np.testing.assert_array_equal(p.data, 0.25)
    p.data = np.full((2, 3), 4.0, dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(p.data, 3.75)
    p.data = np.zeros((2, 3), dtype=np.float16)
    with pytest.raises(TypeError, match="w must have dtype float32"):
        opt.step()


# -- optimizer ------------------------------------------------------------------------


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.0, 1e-3), (0.9, 5e-4)])
def test_sgd_matches_the_formula(momentum, wd):
    rng = np.random.default_rng(9)
    p = nn.Parameter(_rand(rng, 5, 3))
    w, v = p.data.astype(np.float64), np.zeros((5, 3))
    opt = SGD([p], lr=0.05, momentum=momentum, weight_decay=wd)
    for _ in range(4):
        g = _rand(rng, 5, 3)
        p.grad[...] = g
        opt.step()
        d = g + wd * w
        v = momentum * v + d if momentum else d
        w = w - 0.05 * v
    np.testing.assert_allclose(p.data, w, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lr"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        SGD([p], lr=0.1, momentum=1.0)


# -- MC dropout -----------------------------------------------------------------------


def test_mc_dropout_predict():
    rng = np.random.default_rng(10)
    X = _rand(rng, 7, 20)
    model = DropoutMLP(10, 64, 64, 0.5, 0.5, 0.1)
    model(X)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.3
    steps = [d.step for d in model.modules() if isinstance(d, nn.Dropout)]
    mean, std = model.predict(X, mc_samples=20)
    assert mean.shape == std.shape == (7, 10)
    np.testing.assert_allclose(mean.sum(1), 1.0, rtol=1e-5)
    assert (std > 0).any()
    assert model.training  # mode restored
    assert [d.step for d in model.modules() if isinstance(d, nn.Dropout)] == steps
    mean2, std2 = model.predict(X, mc_samples=20)
    np.testing.assert_array_equal(mean, mean2)  # reproducible
    probs = model.predict(X)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert not np.array_equal(probs, mean)
    plain = MLP(10, 64, 64, lr=0.1)
    plain.load_state_dict(_as_plain(model.state_dict()))
    pm, ps = plain.predict(X, mc_samples=5)
    assert not ps.any()  # no dropout, no spread
    np.testing.assert_allclose(pm, probs, rtol=1e-6, atol=1e-7)


# -- buffers --------------------------------------------------------------------------


def test_training_step_allocates_no_batch_sized_arrays():
    rng = np.random.default_rng(11)
    X = rng.random((256, 784), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    model = DropoutMLP(10, 256, 256, 0.5, 0.5, 0.1)
    loss = SoftmaxCrossEntropy()
    opt = SGD(model, lr=0.1, momentum=0.9)

    def step():
        model.zero_grad()
        loss.forward(model.forward(X), y)
        model.backward(loss.backward())
        opt.step()

    step()
    step()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # One (256, 256) float32 activation is 256 KiB; the packed masks are 8 KiB each.
    assert peak < 64 * 1024, f"a training step allocated {peak} bytes"


# -- properties (Hypothesis) ------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    c=st.integers(2, 12),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_loss_properties(n, c, scale, seed):
    rng = np.random.default_rng(seed)
    logits = _rand(rng, n, c, scale=scale)
    y = rng.integers(0, c, n)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, y)
    g = loss.backward()
    assert np.isfinite(value) and value >= 0.0
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-6)  # softmax - onehot sums to 0
    assert (g[np.arange(n), y] <= 0).all()
    # Shifting every logit of a row leaves the loss unchanged (up to rounding).
    shifted = loss.forward(logits + np.float32(7.0), y)
    assert shifted == pytest.approx(value, rel=1e-4, abs=1e-4 * max(1.0, scale / 1e3))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 64),
    d=st.integers(1, 40),
    units=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_matches_numpy_for_any_shape(n, d, units, seed):
    rng = np.random.default_rng(seed)
    X = _rand(rng, n, d)
    layer = nn.Dense(units, activation="relu", seed=seed)
    Y = layer.forward(X)
    ref = np.maximum(X.astype(np.float64) @ layer.weight.data + layer.bias.data, 0)
    np.testing.assert_allclose(Y, ref, rtol=1e-5, atol=1e-5 * np.sqrt(d))
    dY = _rand(rng, n, units)
    layer.zero_grad()
    dX = layer.backward(dY)
    dz = np.where(ref > 0, dY, 0.0)
    np.testing.assert_allclose(dX, dz @ layer.weight.data.T.astype(np.float64), atol=1e-4)
    np.testing.assert_allclose(layer.weight.grad, X.T.astype(np.float64) @ dz, atol=1e-4)


def test_zero_grad_is_lazy_and_backward_overwrites_then_accumulates():
    """zero_grad() leaves the buffers alone: grad reads as zeros, and the next
    backward writes the gradient (the old contents, NaN here, never leak in)."""
    rng = np.random.default_rng(4)
    X, dY = _rand(rng, 9, 7), _rand(rng, 9, 6)
    layer = nn.Dense(6, activation="relu", in_units=7, seed=2)
    layer.forward(X)
    layer.backward(dY)
    once = [layer.weight.grad.copy(), layer.bias.grad.copy()]
    layer.backward(dY)  # no zero_grad: adds
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0], rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1], rtol=1e-6)

    layer.weight._grad[...] = np.nan  # stale contents a cleared gradient must not read
    layer.bias._grad[...] = np.nan
    layer.zero_grad()
    assert np.isnan(layer.weight._grad).all()  # zero_grad() wrote nothing
    layer.backward(dY)
    np.testing.assert_array_equal(layer.weight.grad, once[0])
    np.testing.assert_array_equal(layer.bias.grad, once[1])

    layer.zero_grad()
    np.testing.assert_array_equal(layer.weight.grad, 0.0)  # reading fills the zeros
    layer.backward(dY)
    np.testing.assert_array_equal(layer.weight.grad, once[0])


def test_optimizer_zero_grad_clears_lazily_too():
    layer = nn.Dense(3, in_units=4, seed=0)
    layer.weight.grad[...] = 1.0
    SGD(layer.parameters(), lr=0.1).zero_grad()
    np.testing.assert_array_equal(layer.weight.grad, 0.0)
    np.testing.assert_array_equal(layer.bias.grad, 0.0)
