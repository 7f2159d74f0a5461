"""Sequential fuses Dense -> [ReLU ->] Dropout into pydrop.linear; results equal the
layers run one by one, bit for bit (outputs, masks, gradients, step counters)."""

import numpy as np
import pytest

from pydrop import nn


def net(spelling="activation"):
    """The same network in two spellings, with the same seeds and streams: ReLU as
    the Dense activation, or as a module of its own between Dense and Dropout."""
    if spelling == "activation":
        layers = [
            nn.Dense(64, activation="relu", in_units=30, seed=1),
            nn.Dropout(0.5, seed=5, stream=1),
            nn.Dense(40, activation="relu", seed=2),
            nn.Dropout(0.3, seed=5, stream=2),
        ]
    else:
        layers = [
            nn.Dense(64, in_units=30, seed=1),
            nn.ReLU(),
            nn.Dropout(0.5, seed=5, stream=1),
            nn.Dense(40, seed=2),
            nn.ReLU(),
            nn.Dropout(0.3, seed=5, stream=2),
        ]
    return nn.Sequential(*layers, nn.Dense(10, seed=3), seed=7)


def run(model, X, dY, fused):
    if fused:
        Y = model.forward(X)
        model.backward(dY)
    else:
        Y = X
        for layer in model.layers:
            Y = layer.forward(Y)
        d = dY
        for layer in reversed(model.layers):
            d = layer.backward(d)
    return Y.copy(), [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("spelling", ["activation", "module"])
@pytest.mark.parametrize("steps", [1, 3])
def test_fused_sequential_equals_layer_by_layer(isa, steps, spelling):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((37, 30)).astype(np.float32)
    dY = rng.standard_normal((37, 10)).astype(np.float32)
    a, b = net(spelling), net(spelling)
    for _ in range(steps):
        ya, ga = run(a, X, dY, fused=True)
        yb, gb = run(b, X, dY, fused=False)
    np.testing.assert_array_equal(ya, yb)
    for x, y in zip(ga, gb, strict=True):
        np.testing.assert_array_equal(x, y)
    drops = [m for m in a.layers if isinstance(m, nn.Dropout)]
    assert [m.step for m in drops] == [steps, steps]


def test_relu_module_spelling_equals_relu_activation(isa):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((37, 30)).astype(np.float32)
    dY = rng.standard_normal((37, 10)).astype(np.float32)
    a, b = net("activation"), net("module")
    for _ in range(2):
        ya, ga = run(a, X, dY, fused=True)
        yb, gb = run(b, X, dY, fused=True)
    np.testing.assert_array_equal(ya, yb)
    for x, y in zip(ga, gb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_fused_path_is_taken_and_eval_is_unfused():
    model = net()
    X = np.ones((4, 30), np.float32)
    model.forward(X)
    assert model._plan == [model.layers[0], model.layers[2], model.layers[4]]
    model.eval()
    model.forward(X)
    assert model._plan == model.layers
    assert model.layers[1].step == 1  # eval draws nothing


def test_relu_modules_are_fused_into_the_dense_before_them():
    model = net("module")
    layers = model.layers
    X = np.ones((4, 30), np.float32)
    model.forward(X)
    assert model._plan == [layers[0], layers[3], layers[6]]
    model.eval()  # Dense -> ReLU still runs as one step; Dropout is the identity
    model.forward(X)
    assert model._plan == [layers[0], layers[2], layers[3], layers[5], layers[6]]
    # a Dense with its own activation keeps a ReLU module after it as a layer
    seq = nn.Sequential(nn.Dense(4, activation="relu", in_units=30), nn.ReLU(), nn.Dropout(0.5))
    seq.forward(X)
    assert seq._plan == list(seq.layers)
