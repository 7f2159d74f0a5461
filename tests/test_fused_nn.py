"""Sequential fuses Dense -> Dropout into pydrop.linear; results equal the layers
run one by one, bit for bit (outputs, masks, gradients, step counters)."""

import numpy as np
import pytest

from pydrop import nn


def net():
    return nn.Sequential(
        nn.Dense(64, activation="relu", in_units=30),
        nn.Dropout(0.5),
        nn.Dense(40, activation="relu"),
        nn.Dropout(0.3),
        nn.Dense(10),
        seed=7,
    )


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


@pytest.mark.parametrize("steps", [1, 3])
def test_fused_sequential_equals_layer_by_layer(isa, steps):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((37, 30)).astype(np.float32)
    dY = rng.standard_normal((37, 10)).astype(np.float32)
    a, b = net(), net()
    for _ in range(steps):
        ya, ga = run(a, X, dY, fused=True)
        yb, gb = run(b, X, dY, fused=False)
    np.testing.assert_array_equal(ya, yb)
    for x, y in zip(ga, gb, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.layers[1].step == b.layers[1].step == steps


def test_fused_path_is_taken_and_eval_is_unfused():
    model = net()
    X = np.ones((4, 30), np.float32)
    model.forward(X)
    assert model._plan == [model.layers[0], model.layers[2], model.layers[4]]
    model.eval()
    model.forward(X)
    assert model._plan == model.layers
    assert model.layers[1].step == 1  # eval draws nothing
