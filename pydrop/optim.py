"""Stochastic gradient descent with optional momentum and (coupled) weight decay.

    g = grad + weight_decay * w
    v = momentum * v + g          (when momentum > 0; v starts at 0)
    w = w - lr * (v or g)

This is the update of torch.optim.SGD (dampening 0, no Nesterov). All arithmetic
is float32, in place, one pass over all the parameters (one C call,
pd_sgd_step_multi_f32), and bit for bit that of the NumPy float32 expressions
above, for any thread count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from ._ops import _check_real, _SGDCall
from .nn import Module, Parameter

__all__ = ["SGD"]


class SGD:
    """``SGD(params, lr, momentum=0.0, weight_decay=0.0)``.

    ``params`` is a Module (its parameters are looked up at the first ``step``,
    so lazy layers may still be uninitialised when the optimizer is made) or an
    iterable of Parameters.
    """

    def __init__(
        self,
        params: Module | Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        hyper = []
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            v = _check_real(name, value)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
            hyper.append(v)
        self.lr, self.momentum, self.weight_decay = hyper
        if self.momentum >= 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum!r}")
        self._module: Module | None = None
        self._params: list[Parameter] | None = None
        if isinstance(params, Module):
            self._module = params
        else:
            self._params = list(params)
        self._velocity: list[np.ndarray] = []
        self._call: _SGDCall | None = None  # the checked kernel call over all parameters
        self.steps = 0

    @property
    def params(self) -> list[Parameter]:
        if self._params is None:
            assert self._module is not None
            params = self._module.parameters()
            if not params:
                raise RuntimeError("the model has no parameters yet (run a forward pass first)")
            self._params = params
        return self._params

    def _ensure_state(self) -> None:
        if len(self._velocity) != len(self.params):
            self._velocity = [np.zeros_like(p.data) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        self._ensure_state()
        hyper = (self.lr, self.momentum, self.weight_decay)
        arrays = tuple(
            a for p, v in zip(self.params, self._velocity, strict=True) for a in (p.data, p.grad, v)
        )
        call = self._call
        if call is None or not call.matches(arrays, hyper):
            call = self._call = _SGDCall(arrays, *hyper)
        call.run()
        self.steps += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"steps": np.array(self.steps, dtype=np.int64)}
        if self.momentum:
            self._ensure_state()
            for i, v in enumerate(self._velocity):
                out[f"velocity.{i}"] = v.copy()
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.steps = int(state.get("steps", 0))
        if self.momentum:
            if not any(k.startswith("velocity.") for k in state):
                raise ValueError(
                    f"optimizer state has no velocity, which momentum={self.momentum} needs: "
                    "it was saved with momentum 0; help: resume with momentum 0"
                )
            self._ensure_state()
            for i, v in enumerate(self._velocity):
                key = f"velocity.{i}"
                if key not in state:
                    raise ValueError(
                        f"optimizer state has no {key!r}: it was saved for fewer than the "
                        f"{len(self._velocity)} parameters this optimizer has"
                    )
                if state[key].shape != v.shape:
                    raise ValueError(f"{key}: expected shape {v.shape}, got {state[key].shape}")
                v[...] = state[key]

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay})"
