"""Misuse of layers and the loss: a clear exception naming the argument or layer, or
the right answer; never a crash from C or cffi, never silently wrong gradients."""

from __future__ import annotations

import numpy as np
import pytest

import pydrop
from pydrop import nn
from pydrop.losses import SoftmaxCrossEntropy
from pydrop.models import DropoutMLP

X = np.ones((2, 4), dtype=np.float32)


def test_loss_backward_twice_gives_the_same_gradient():
    loss = SoftmaxCrossEntropy()
    loss.forward(np.zeros((2, 3), dtype=np.float32), np.array([0, 1]))
    first = loss.backward().copy()
    np.testing.assert_allclose(first[0], [-1 / 3, 1 / 6, 1 / 6], rtol=1e-6)
    np.testing.assert_array_equal(loss.backward(), first)
    # the probabilities survive too: the gradient of a new forward is not shifted
    loss.forward(np.zeros((2, 3), dtype=np.float32), np.array([0, 1]))
    np.testing.assert_array_equal(loss.backward(), first)


def test_a_module_is_accepted_once_per_sequential():
    dense = nn.Dense(4, in_units=4)
    with pytest.raises(ValueError, match="Dense as layer 2.*already in this Sequential.*tied"):
        nn.Sequential(dense, nn.ReLU(), dense)
    seq = nn.Sequential(dense, nn.ReLU())
    with pytest.raises(ValueError, match="layer 2.*already in this Sequential"):
        seq.add(dense)
    with pytest.raises(ValueError, match="Sequential as layer 2.*already in this Sequential"):
        seq.add(nn.Sequential(dense))  # nested in a new child
    with pytest.raises(ValueError, match="already in this Sequential"):
        seq.add(seq)
    assert len(seq) == 2  # nothing was added
    seq.forward(X)
    seq.backward(X)


@pytest.mark.parametrize(
    "kw,exc,arg",
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**64}, ValueError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"seed": 1.0}, TypeError, "seed"),
        ({"stream": -1}, ValueError, "stream"),
        ({"stream": 2**32}, ValueError, "stream"),
    ],
)
def test_dropout_checks_seed_and_stream_when_they_are_set(kw, exc, arg):
    with pytest.raises(exc, match=arg):
        nn.Dropout(0.5, **kw)
    layer = nn.Dropout(0.5)
    name, value = next(iter(kw.items()))
    with pytest.raises(exc, match=arg):
        setattr(layer, name, value)
    # so the fused Dense -> Dropout path never hands cffi a value it cannot convert
    model = nn.Sequential(nn.Dense(4), layer)
    model.forward(X)
    assert layer.step == 1


def test_dropout_seed_and_step_messages_are_the_dropout_ops():
    for name in ("seed", "step"):
        with pytest.raises(ValueError) as op:
            pydrop.dropout(X, 0.5, **{"seed": 0, name: -1})
        with pytest.raises(ValueError) as layer:
            setattr(nn.Dropout(0.5), name, -1)
        assert str(layer.value) == str(op.value)


def test_dropout_stream_leaves_room_for_mc_dropout():
    """predict(mc_samples=...) adds MC_STREAM_BASE to every stream: a stream that
    would not fit in 32 bits after that is rejected when it is set."""
    with pytest.raises(ValueError, match=r"stream must be in \[0, 2147483648\)"):
        nn.Dropout(0.5, stream=nn.MC_STREAM_BASE)
    model = DropoutMLP(10, 8, 8, 0.5, 0.5, 0.1)
    model.net[1].stream = nn.MC_STREAM_BASE - 1
    mean, std = model.predict(X, mc_samples=2)
    assert mean.shape == std.shape == (2, 10)


def test_sequential_checks_its_seed():
    with pytest.raises(ValueError, match="seed"):
        nn.Sequential(nn.Dense(4), seed=-1)
    with pytest.raises(TypeError, match="seed"):
        nn.Sequential(nn.Dropout(0.5), seed=True)


def test_loaded_dropout_step_is_checked_and_the_layer_named():
    model = DropoutMLP(10, 8, 8, 0.5, 0.5, 0.1)
    model.forward(X)
    for step in (np.array(-1), np.array([1, 2]), np.array(1.5)):
        state = {**model.state_dict(), "net.1.step": step}
        with pytest.raises(ValueError, match=r"layer 'net\.1' \(Dropout\): step"):
            DropoutMLP(10, 8, 8, 0.5, 0.5, 0.1).load_state_dict(state)


def test_mismatched_weights_name_the_layer_and_both_shapes():
    model = DropoutMLP(10, 8, 8, 0.5, 0.5, 0.1)
    model.forward(X)
    state = model.state_dict()
    bad = {**state, "net.2.weight": state["net.2.weight"][:, :3]}
    lazy = DropoutMLP(10, 8, 8, 0.5, 0.5, 0.1)
    with pytest.raises(ValueError, match=r"layer 'net\.2' \(Dense\).*\(in_units, 8\).*\(8, 3\)"):
        lazy.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"layer 'net\.2' \(Dense\).*\(8, 8\).*\(8, 3\)"):
        model.load_state_dict(bad)


@pytest.mark.parametrize(
    "make", [nn.ReLU, lambda: nn.Dropout(0.5), lambda: nn.Dense(4), nn.Sequential]
)
def test_backward_before_forward(make):
    layer = make()
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.backward called before"):
        layer.backward(X)


def test_sequential_backward_after_a_failed_forward():
    model = nn.Sequential(nn.ReLU(), nn.Dense(3, in_units=5))
    with pytest.raises(ValueError, match="5 input features"):
        model.forward(X)
    with pytest.raises(RuntimeError, match="Sequential.backward called before forward"):
        model.backward(np.ones((2, 3), dtype=np.float32))


@pytest.mark.parametrize("make", [nn.ReLU, lambda: nn.Dropout(0.5), lambda: nn.Dense(4)])
@pytest.mark.parametrize(
    "dY,exc",
    [
        (np.ones((2, 5), dtype=np.float32), ValueError),
        (np.ones(8, dtype=np.float32), ValueError),
        ([[1.0] * 4] * 2, TypeError),
    ],
)
def test_backward_checks_dY_against_the_forward(make, dY, exc):
    layer = make()
    layer.forward(X)
    with pytest.raises(exc, match="dY"):
        layer.backward(dY)


@pytest.mark.parametrize(
    "kw, exc, arg",
    [
        ({"units": 0}, ValueError, "units"),
        ({"units": 2.5}, TypeError, "units"),
        ({"units": True}, TypeError, "units"),
        ({"units": 4, "in_units": 0}, ValueError, "in_units"),
        ({"units": 4, "in_units": "8"}, TypeError, "in_units"),
        ({"units": 4, "seed": -1}, ValueError, "seed"),
        ({"units": 4, "seed": 2**64}, ValueError, "seed"),
        ({"units": 4, "seed": 1.5}, TypeError, "seed"),
    ],
)
def test_dense_checks_its_arguments(kw, exc, arg):
    with pytest.raises(exc, match=rf"^{arg} must be"):
        nn.Dense(**kw)


def test_dense_accepts_numpy_integers():
    layer = nn.Dense(np.int64(3), in_units=np.int32(4), seed=np.uint64(7))
    assert (layer.units, layer.in_units, layer.seed) == (3, 4, 7)
    assert layer.forward(X).shape == (2, 3)


@pytest.mark.parametrize(
    "make",
    [lambda: nn.Dense(3), nn.ReLU, lambda: nn.Dropout(0.5)],
    ids=["Dense", "ReLU", "Dropout"],
)
@pytest.mark.parametrize("dtype", [np.complex64, np.bool_, "<U1", object])
def test_layers_reject_inputs_that_are_not_real_numbers(make, dtype):
    with pytest.raises(TypeError, match=r"X must hold real numbers .* got dtype"):
        make().forward(np.ones((2, 4)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float16, np.float64])
def test_layers_take_float_and_integer_inputs_as_float32(dtype):
    dense = nn.Dense(3, in_units=4, seed=1)
    want = dense.forward(X).copy()
    np.testing.assert_array_equal(dense.forward(X.astype(dtype)), want)


@pytest.mark.parametrize(
    ("p", "exc"), [("0.5", TypeError), (True, TypeError), (None, TypeError), (1.5, ValueError)]
)
def test_dropout_layer_checks_p_as_the_dropout_op_does(p, exc):
    with pytest.raises(exc, match="p must"):
        nn.Dropout(p)
    with pytest.raises(exc, match="p must"):
        pydrop.dropout(X, p)


def test_dropout_layer_accepts_numpy_scalars():
    assert nn.Dropout(np.float32(0.25)).p == 0.25 and nn.Dropout(1).p == 1.0
