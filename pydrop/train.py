"""The Trainer (d2l-shaped: ``Trainer(max_epochs).fit(model, data)``) and History.

One training step: zero the gradients, forward, softmax cross-entropy, backward,
SGD update. Every batch-sized array lives in a buffer that the layers, the loss
and the data loader reuse from step to step.

Reproducibility. A run is a pure function of the model seed (weights, dropout
masks of DropoutMLP), the data seed (shuffling, one permutation per epoch drawn
from (seed, epoch)) and, for DropoutMLPScratch, the default generator, which
``Trainer(seed=n)`` seeds with ``pydrop.seed(n)`` at the start of ``fit``. The
kernels give bit-identical results for any thread count, so the run is too.
A checkpoint holds everything else that changes (weights, dropout step counters,
momentum, the epoch, the history and the default generator's position), so
``fit(..., resume=path)`` continues exactly where the saved run stopped.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._ops import _U64, _check_int, _check_min_int, get_rng_state, seed, set_rng_state
from .checkpoint import in_file, load_checkpoint, save_checkpoint
from .data import FashionMNIST
from .losses import SoftmaxCrossEntropy, accuracy
from .models import Classifier
from .optim import SGD

__all__ = ["History", "Trainer"]


@dataclass
class History:
    """Per-epoch metrics of one ``fit``: lists indexed by epoch.

    ``train_loss`` is the mean loss over the epoch's batches as trained (dropout
    on); ``val_loss``/``val_acc`` are on the validation split (the 10,000 test
    images) with dropout off; ``seconds`` is the wall time of the training pass
    (validation excluded). A metric of an empty split is NaN, as NumPy's mean of
    nothing is.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def append(self, **record: float) -> None:
        for k, v in record.items():
            getattr(self, k).append(v)

    def __len__(self) -> int:
        return len(self.epoch)

    def __getitem__(self, key: str) -> list[Any]:
        return getattr(self, key)

    @property
    def gap(self) -> list[float]:
        """val_loss - train_loss per epoch (the generalisation gap)."""
        return [v - t for t, v in zip(self.train_loss, self.val_loss, strict=True)]

    def last(self) -> dict[str, float]:
        return {k: v[-1] for k, v in asdict(self).items() if v}

    def to_dict(self) -> dict[str, list[Any]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, list[Any]]) -> History:
        return cls(**{k: list(d.get(k, [])) for k in cls.__dataclass_fields__})


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Trainer:
    """``Trainer(max_epochs=10, *, progress=None, seed=None, checkpoint=None, log=None)``.

    - ``progress``: a tqdm bar with the live loss. None shows it only when stderr
      is a terminal; False never; True always (when tqdm is installed, the
      optional extra ``pydrop[progress]``; without it training runs bar-less).
    - ``seed``: an integer in [0, 2**64) that seeds pydrop's default generator at
      the start of ``fit`` (the scratch model's dropout_layer masks).
    - ``checkpoint``: a path written (atomically) after every epoch.
    - ``log``: called with one line of text per epoch (e.g. ``print``).
    """

    def __init__(
        self,
        max_epochs: int = 10,
        *,
        progress: bool | None = None,
        seed: int | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        log: Callable[[str], Any] | None = None,
    ) -> None:
        self.max_epochs = _check_min_int("max_epochs", max_epochs, 0)
        self.progress = progress
        # checked now, not when fit() seeds the default generator (a Philox key)
        self.seed = None if seed is None else _check_int("seed", seed, _U64)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.log = log
        self.history = History()
        self.epoch = 0
        self.model: Classifier | None = None
        self.data: FashionMNIST | None = None
        self.optim: SGD | None = None
        self.loss = SoftmaxCrossEntropy()

    # -- setup -----------------------------------------------------------------------
    def prepare(self, model: Classifier, data: FashionMNIST) -> None:
        self.model, self.data = model, data
        self.train_loader = data.train_dataloader()
        self.val_loader = data.val_dataloader()
        hp = getattr(model, "hparams", {})
        self.optim = SGD(
            model,
            lr=hp.get("lr", 0.1),
            momentum=hp.get("momentum", 0.0),
            weight_decay=hp.get("weight_decay", 0.0),
        )
        self.history = History()
        self.epoch = 0
        if self.seed is not None:
            seed(self.seed)

    def fit(
        self,
        model: Classifier,
        data: FashionMNIST,
        *,
        resume: str | os.PathLike[str] | None = None,
    ) -> History:
        """Train for ``max_epochs`` epochs (from the checkpoint's epoch with ``resume``)."""
        self.prepare(model, data)
        if resume is not None:
            self.restore(resume)
        while self.epoch < self.max_epochs:
            self.fit_epoch()
        return self.history

    # -- one epoch -------------------------------------------------------------------
    def _bar(self, total: int) -> Any:
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        tqdm = _tqdm()
        if tqdm is None:
            if self.progress:
                warnings.warn(
                    "progress=True but tqdm is not installed (pip install 'pydrop[progress]')",
                    stacklevel=3,
                )
            return None
        return tqdm(
            total=total,
            desc=f"epoch {self.epoch + 1}/{self.max_epochs}",
            leave=False,
            unit="batch",
            dynamic_ncols=True,
        )

    def fit_epoch(self) -> dict[str, float]:
        """One pass over the training data, then validation; appends to the history.

        An empty training split makes no step and records a NaN train_loss.
        """
        if self.model is None or self.optim is None:
            raise RuntimeError("call fit() (or prepare()) before fit_epoch()")
        model, optim, loss_fn = self.model, self.optim, self.loss
        loader = self.train_loader
        loader.reuse_buffers = True
        loader.epoch = self.epoch
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        bar = self._bar(len(loader))
        try:
            for i, (X, y) in enumerate(loader):
                model.zero_grad()
                loss = loss_fn.forward(model.forward(X), y)
                model.backward(loss_fn.backward())
                optim.step()
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} at epoch {self.epoch + 1}, batch "
                        f"{i + 1}; help: lower the learning rate"
                    )
                total += loss * len(y)
                count += len(y)
                if bar is not None:
                    bar.update(1)
                    if i % 10 == 0:
                        bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        train_seconds = time.perf_counter() - t0
        train_loss = total / count if count else math.nan
        val_loss, val_acc = self.evaluate()
        record = {
            "epoch": self.epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": train_seconds,
        }
        self.history.append(**record)
        self.epoch += 1
        if self.checkpoint is not None:
            self.save_checkpoint(self.checkpoint)
        if self.log is not None:
            self.log(
                f"epoch {self.epoch:>3}/{self.max_epochs}  train_loss {train_loss:.4f}"
                f"  val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  {train_seconds:.2f}s"
            )
        return record

    def evaluate(self) -> tuple[float, float]:
        """Mean loss and accuracy on the validation data, dropout off; both NaN when
        the validation split is empty."""
        if self.model is None:
            raise RuntimeError("call fit() (or prepare()) before evaluate()")
        was_training = self.model.training
        self.model.eval()
        total_loss = total_acc = 0.0
        n = 0
        try:
            for X, y in self.val_loader:
                logits = self.model.forward(X)
                total_loss += self.loss.forward(logits, y) * len(y)
                total_acc += accuracy(logits, y) * len(y)
                n += len(y)
        finally:
            self.model.train(was_training)
        if n == 0:
            return math.nan, math.nan
        return total_loss / n, total_acc / n

    # -- checkpoints -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "max_epochs": self.max_epochs,
            "history": self.history.to_dict(),
            "generator": list(get_rng_state()),
            "data_seed": getattr(self.data, "seed", None),
        }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Model, optimizer and trainer state, atomically, to ``path``."""
        if self.model is None:
            raise RuntimeError("nothing to save: call fit() first")
        return save_checkpoint(path, self.model, optimizer=self.optim, trainer=self.state())

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Load a checkpoint saved by ``save_checkpoint`` into the prepared run."""
        if self.model is None or self.optim is None:
            raise RuntimeError("call prepare() before restore()")
        ckpt = load_checkpoint(path)
        if ckpt.meta["model"] != type(self.model).__name__:
            raise ValueError(
                f"{path}: holds a {ckpt.meta['model']}, cannot resume a {type(self.model).__name__}"
            )
        try:
            self.model.load_state_dict(ckpt.model_state)
            self.optim.load_state_dict(ckpt.optim_state)
        except (KeyError, ValueError) as e:
            raise in_file(path, e) from None
        state = ckpt.trainer or {}
        self.epoch = int(state.get("epoch", 0))
        self.history = History.from_dict(state.get("history", {}))
        if state.get("generator") is not None:
            set_rng_state(state["generator"])
        saved_seed = state.get("data_seed")
        if saved_seed is not None and saved_seed != getattr(self.data, "seed", None):
            warnings.warn(
                f"{path}: saved with data seed {saved_seed}, resuming with "
                f"{getattr(self.data, 'seed', None)}; the shuffling will differ",
                stacklevel=2,
            )
