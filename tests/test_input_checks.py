"""Bad arguments to the models, the data module, the trainer and the optimizer: a
TypeError (wrong type) or ValueError (bad value) naming the argument, NumPy scalars
accepted wherever Python numbers are, and NaN metrics for an empty split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from idx_files import write_fake_dataset

import pydrop
from pydrop import nn
from pydrop.data import DataLoader, FashionMNIST
from pydrop.models import MLP, DropoutMLP, DropoutMLPScratch
from pydrop.optim import SGD
from pydrop.train import Trainer

HP = {
    "num_outputs": 10,
    "num_hiddens_1": 16,
    "num_hiddens_2": 16,
    "dropout_1": 0.5,
    "dropout_2": 0.5,
    "lr": 0.1,
}
X = np.random.default_rng(0).random((5, 784), dtype=np.float32)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    return root, write_fake_dataset(root, n_train=64, n_test=32)


def _data(fake, **kw):
    root, sums = fake
    return FashionMNIST(**{"batch_size": 16, "root": root, "download": False, "sha256": sums, **kw})


def _raises(exc, name, call):
    with pytest.raises(exc) as info:
        call()
    assert name in str(info.value), str(info.value)


# -- models ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,exc,name",
    [
        ({"batch_size": -1}, ValueError, "batch_size"),  # used to return np.empty garbage
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"batch_size": -1, "mc_samples": 2}, ValueError, "batch_size"),
        ({"mc_samples": -1}, ValueError, "mc_samples"),
        ({"mc_samples": 1.5}, TypeError, "mc_samples"),
        ({"mc_samples": True}, TypeError, "mc_samples"),
    ],
)
def test_predict_rejects(kw, exc, name):
    _raises(exc, name, lambda: DropoutMLP(**HP).predict(X, **kw))


def test_predict_accepts_numpy_integers():
    model = DropoutMLP(**HP)
    np.testing.assert_array_equal(model.predict(X, batch_size=np.int64(2)), model.predict(X))
    mean, std = model.predict(X, mc_samples=np.int64(3), batch_size=np.uint8(2))
    mean3, std3 = model.predict(X, mc_samples=3, batch_size=2)
    np.testing.assert_array_equal(mean, mean3)
    np.testing.assert_array_equal(std, std3)


@pytest.mark.parametrize("cls", [MLP, DropoutMLP, DropoutMLPScratch])
@pytest.mark.parametrize(
    "kw,exc,name",
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**64}, ValueError, "seed"),  # the Philox key is 64 bits
        ({"seed": 1.7}, TypeError, "seed"),
        ({"seed": None}, TypeError, "seed"),
        ({"num_outputs": 0}, ValueError, "num_outputs"),
        ({"num_hiddens_1": 2.5}, TypeError, "num_hiddens_1"),
        ({"dropout_1": 10**400}, ValueError, "dropout_1"),
        ({"dropout_2": "0.5"}, TypeError, "dropout_2"),
        ({"lr": 10**400}, ValueError, "lr"),
        ({"momentum": "0.9"}, TypeError, "momentum"),
    ],
)
def test_model_constructor_rejects(cls, kw, exc, name):
    _raises(exc, name, lambda: cls(**{**HP, **kw}))


def test_model_accepts_numpy_scalars():
    hp = {**HP, "num_hiddens_1": np.int64(16), "dropout_1": np.float32(0.5), "lr": np.float32(0.1)}
    model = DropoutMLP(**hp, seed=np.uint64(2**64 - 1))
    assert model.seed == 2**64 - 1 and type(model.seed) is int
    assert type(model.num_hiddens_1) is int and type(model.lr) is float


# -- data -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,exc,name",
    [
        ({"num_train": -5}, ValueError, "num_train"),  # used to keep all but the last 5
        ({"num_val": -1}, ValueError, "num_val"),
        ({"num_train": 2.5}, TypeError, "num_train"),
        ({"num_val": "10"}, TypeError, "num_val"),
        ({"seed": -1}, ValueError, "seed"),  # used to fail only at the first batch
        ({"seed": 1.7}, TypeError, "seed"),  # used to be truncated to 1
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"batch_size": True}, TypeError, "batch_size"),
    ],
)
def test_fashion_mnist_rejects(fake, kw, exc, name):
    _raises(exc, name, lambda: _data(fake, **kw))


def test_fashion_mnist_accepts_numpy_integers(fake):
    data = _data(fake, num_train=np.int64(10), num_val=np.uint16(0), seed=np.int32(3))
    assert (data.num_train, data.num_val, data.seed) == (10, 0, 3)
    assert type(data.seed) is int


@pytest.mark.parametrize(
    "kw,exc,name",
    [
        ({"batch_size": -2}, ValueError, "batch_size"),
        ({"batch_size": 1.0}, TypeError, "batch_size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 0.5}, TypeError, "seed"),
    ],
)
def test_data_loader_rejects(kw, exc, name):
    args = {"batch_size": 4, "shuffle": True, **kw}
    _raises(exc, name, lambda: DataLoader(X, np.zeros(5, np.int64), **args))


# -- trainer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,kw,exc,name",
    [
        ((-1,), {}, ValueError, "max_epochs"),
        ((2.0,), {}, TypeError, "max_epochs"),
        ((True,), {}, TypeError, "max_epochs"),
        ((1,), {"seed": -1}, ValueError, "seed"),
        ((1,), {"seed": 2**64}, ValueError, "seed"),
        ((1,), {"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_trainer_rejects(args, kw, exc, name):
    _raises(exc, name, lambda: Trainer(*args, **kw))


def test_trainer_methods_that_need_a_run_say_so():
    trainer = Trainer(max_epochs=1)
    with pytest.raises(RuntimeError, match=r"call fit\(\) \(or prepare\(\)\) before evaluate"):
        trainer.evaluate()
    with pytest.raises(RuntimeError, match=r"call prepare\(\) before restore"):
        trainer.restore("checkpoint.npz")


def test_trainer_accepts_numpy_integers():
    trainer = Trainer(np.int64(3), seed=np.uint64(7))
    assert (trainer.max_epochs, trainer.seed) == (3, 7)
    assert type(trainer.max_epochs) is int and type(trainer.seed) is int


@pytest.mark.parametrize("cls", [DropoutMLP, DropoutMLPScratch])
def test_empty_splits_report_nan(cls, fake):
    lines = []
    trainer = Trainer(1, progress=False, log=lines.append)
    history = trainer.fit(cls(**HP), _data(fake, num_train=0, num_val=0))
    assert len(history) == 1
    for key in ("train_loss", "val_loss", "val_acc"):
        assert math.isnan(history[key][0]), key
    assert "train_loss nan  val_loss nan  val_acc nan" in lines[0]


def test_empty_validation_split_reports_nan(fake):
    history = Trainer(1, progress=False).fit(MLP(**HP), _data(fake, num_val=0))
    assert math.isfinite(history.train_loss[0])
    assert math.isnan(history.val_loss[0]) and math.isnan(history.val_acc[0])


def test_empty_training_split_reports_nan(fake):
    trainer = Trainer(1, progress=False)
    history = trainer.fit(MLP(**HP), _data(fake, num_train=0))
    assert math.isnan(history.train_loss[0])
    assert math.isfinite(history.val_loss[0]) and math.isfinite(history.val_acc[0])
    assert trainer.evaluate() == (history.val_loss[0], history.val_acc[0])


# -- optimizer ------------------------------------------------------------------------


def _params():
    return [nn.Parameter(np.ones((3, 2), np.float32)), nn.Parameter(np.ones(2, np.float32))]


@pytest.mark.parametrize("name", ["lr", "momentum", "weight_decay"])
@pytest.mark.parametrize(
    "value,exc",
    [
        (10**400, ValueError),  # used to be a TypeError from np.isfinite
        (-(10**400), ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (-0.5, ValueError),
        ("0.1", TypeError),
        (None, TypeError),
        (True, TypeError),
        (np.bool_(True), TypeError),
    ],
    ids=["huge", "-huge", "nan", "inf", "negative", "str", "None", "bool", "np.bool_"],
)
def test_sgd_rejects(name, value, exc):
    kw = {"lr": 0.1, name: value}
    _raises(exc, name, lambda: SGD(_params(), **kw))


@pytest.mark.parametrize("scalar", [np.float32, np.float64, np.float16])
def test_sgd_accepts_numpy_scalars(scalar):
    params = _params()
    opt = SGD(params, lr=scalar(0.5), momentum=scalar(0.5), weight_decay=scalar(0.25))
    assert (opt.lr, opt.momentum, opt.weight_decay) == (0.5, 0.5, 0.25)
    ref = _params()
    ref_opt = SGD(ref, lr=0.5, momentum=0.5, weight_decay=0.25)
    for p, r in zip(params, ref, strict=True):
        p.grad[...] = r.grad[...] = 1.0
    opt.step()
    ref_opt.step()
    for p, r in zip(params, ref, strict=True):
        np.testing.assert_array_equal(p.data, r.data)


def test_sgd_resume_with_momentum_from_a_state_without(fake, tmp_path):
    state = SGD(_params(), lr=0.1).state_dict()
    with pytest.raises(ValueError, match="momentum") as info:
        SGD(_params(), lr=0.1, momentum=0.9).load_state_dict(state)
    assert "velocity" in str(info.value)
    # the same through a checkpoint
    path = tmp_path / "run.npz"
    Trainer(1, progress=False, checkpoint=path).fit(MLP(**HP), _data(fake))
    with pytest.raises(ValueError, match="momentum 0") as info:
        Trainer(2, progress=False).fit(MLP(**HP, momentum=0.9), _data(fake), resume=path)
    assert str(info.value).startswith(f"{path}: ")  # the file is named


def test_sgd_state_for_fewer_parameters():
    opt = SGD(_params()[:1], lr=0.1, momentum=0.9)
    opt.step()
    with pytest.raises(ValueError, match="velocity.1"):
        SGD(_params(), lr=0.1, momentum=0.9).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("flag", ["training", "return_mask"])
@pytest.mark.parametrize("value", ["no", 1, None])
def test_op_flags_must_be_booleans(flag, value):
    x = np.ones((2, 8), dtype=np.float32)
    w = np.ones((8, 8), dtype=np.float32)
    for call in (
        lambda: pydrop.dropout(x, 0.5, seed=1, **{flag: value}),
        lambda: pydrop.linear(x, w, dropout=0.5, seed=1, **{flag: value}),
    ):
        with pytest.raises(TypeError, match=f"{flag} must be True or False, got"):
            call()


def test_op_flags_take_numpy_booleans():
    x = np.ones((2, 8), dtype=np.float32)
    y, mask = pydrop.dropout(x, 0.5, seed=1, training=np.bool_(True), return_mask=np.True_)
    assert mask.shape == (2,)
