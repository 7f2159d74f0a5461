"""Layers with explicit forward and backward passes over pydrop's array ops.

Buffers. Every layer owns its output and gradient buffers and reuses them from
step to step (rows are sliced off a buffer sized for the largest batch seen), so
a training step allocates no batch-sized arrays. The price: ``forward`` and
``backward`` return views that the next call overwrites. ``module(X)`` returns a
copy and is the safe call for casual use; the Trainer uses ``forward``.

Gradients accumulate into ``Parameter.grad`` (``zero_grad()`` clears them).

Kernel calls. A Dense layer keeps the checked C call of its last forward and of
its last backward (``_ops``' call objects) and reruns it while every array is the
same object: the buffers above, the parameters and the loader's reused batch are,
step after step, so a training step skips the Python argument checks. Replacing an
array (``Parameter.data = ...``, another batch size) makes a new, fully checked
call; C checks every call either way.

Initialisation. Dense weights are drawn from normal(0, 0.01) by NumPy's PCG64
seeded with the layer's ``seed``; biases start at zero. A container assigns each
child that has no seed of its own ``seed = SeedSequence([container seed, index])``
(so two layers never share a stream), a standalone layer uses seed 0.

Dropout randomness is counter-based: the mask of a training forward is a pure
function of (seed, stream, step, element). The stream is the layer's index in
its container, the step counts the layer's training forwards and is part of
``state_dict()``, so a run is reproducible and a checkpoint resumes it exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ._ops import (
    _U64,
    _check_int,
    _check_min_int,
    _check_p,
    _LinearBackwardCall,
    _LinearCall,
    dropout,
    dropout_backward,
    relu,
    relu_backward,
)

__all__ = ["Parameter", "Module", "Dense", "ReLU", "Dropout", "Sequential", "softmax"]

# Dropout streams at or above this are used by MC-dropout prediction, so that
# sampling never reuses (or advances) the masks of training.
MC_STREAM_BASE = 1 << 31


def _as_input(X: Any, name: str = "X") -> np.ndarray:
    """A float32, C-contiguous 2-D view of X: (n, ...) is flattened to (n, features).
    Float and integer arrays are converted (uint8 pixels, float64 data); complex,
    bool, string and object arrays are rejected."""
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(X).__name__}")
    if X.ndim < 2:
        raise ValueError(f"{name} must have a batch axis and features (ndim >= 2), got {X.shape}")
    if X.dtype.kind not in "fiu":
        raise TypeError(
            f"{name} must hold real numbers (a float or integer dtype, taken as float32), "
            f"got dtype {X.dtype}"
        )
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    if X.dtype != np.float32 or not X.flags.c_contiguous:
        X = np.ascontiguousarray(X, dtype=np.float32)
    return X


def _as_grad(dY: Any, shape: tuple[int, ...]) -> np.ndarray:
    """dY made a 2-D float32 view as X is by _as_input, checked to have ``shape``:
    that of the forward output it is the gradient of (the layer's cached forward)."""
    dY = _as_input(dY, "dY")
    if dY.shape != shape:
        raise ValueError(f"dY must have the forward output's shape {shape}, got {dY.shape}")
    return dY


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in a new float32 array (max-subtracted, so exp cannot overflow)."""
    z = np.subtract(logits, logits.max(axis=1, keepdims=True), dtype=np.float32)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class Parameter:
    """A trainable float32 array and its gradient (same shape).

    ``zero_grad()`` clears the gradient lazily, as PyTorch's ``set_to_none`` does
    without the None: the next backward pass writes it instead of adding to it (the
    weight-gradient GEMM with beta = 0, no separate pass of zeros), and reading
    ``grad`` before then fills it with zeros."""

    __slots__ = ("data", "_grad", "_grad_cleared")

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self._grad = np.zeros_like(self.data)
        self._grad_cleared = False

    @property
    def grad(self) -> np.ndarray:
        if self._grad_cleared:
            self._grad.fill(0.0)
            self._grad_cleared = False
        return self._grad

    def zero_grad(self) -> None:
        self._grad_cleared = True

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape})"


class Module:
    """Base class: forward/backward, parameters, train/eval, state dicts."""

    _params: dict[str, Parameter | None]
    _modules: dict[str, Module]
    _bufs: dict[str, np.ndarray]
    _views: dict[str, np.ndarray]

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_bufs", {})
        object.__setattr__(self, "_views", {})
        self.training = True
        self.input_grad = True  # False: backward may skip computing dX (first layer)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_params" not in self.__dict__:
            raise AttributeError(
                f"cannot set {name!r} before Module.__init__(); help: call "
                "super().__init__() first in your __init__"
            )
        if isinstance(value, Module):
            self._modules[name] = value
        elif isinstance(value, Parameter) or name in self._params:
            self._params[name] = value
        object.__setattr__(self, name, value)

    # -- computation ---------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dY: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return np.array(self.forward(X), copy=True)

    def _rows(self, key: str, n: int, cols: int) -> np.ndarray:
        """Rows 0..n of the reusable (rows, cols) float32 buffer ``key``: the same
        view object while n and cols stay (so a layer's checked kernel calls, which
        compare arrays by identity, are reused)."""
        view = self._views.get(key)
        if view is not None and view.shape == (n, cols) and view.dtype == np.float32:
            return view
        buf = self._bufs.get(key)
        if buf is None or buf.shape[0] < n or buf.shape[1] != cols:
            buf = np.empty((n, cols), dtype=np.float32)
            self._bufs[key] = buf
        view = self._views[key] = buf[:n]
        return view

    # -- structure -----------------------------------------------------------------
    def children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def modules(self) -> Iterator[Module]:
        yield self
        for _, m in self.children():
            yield from m.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._params.items():
            if p is not None:
                yield prefix + name, p
        for name, m in self.children():
            yield from m.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        """named_parameters' Parameters, in its order (without the name strings and
        generators: the Trainer clears them every step)."""
        params = [p for p in self._params.values() if p is not None]
        for _, m in self.children():
            params += m.parameters()
        return params

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state ---------------------------------------------------------------------
    def _extra_state(self) -> dict[str, np.ndarray]:
        """Non-parameter state to checkpoint (e.g. a dropout step counter)."""
        return {}

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        pass

    def _load_param(self, name: str, value: np.ndarray) -> None:
        p = self._params[name]
        if p is None:
            raise ValueError(f"parameter {name!r} has no shape yet, found shape {value.shape}")
        if p.data.shape != value.shape:
            raise ValueError(
                f"parameter {name!r}: expected shape {p.data.shape}, found {value.shape}"
            )
        p.data[...] = value

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Copies of all parameters and extra state, keyed by dotted names."""
        out: dict[str, np.ndarray] = {}
        for name, p in self._params.items():
            if p is not None:
                out[prefix + name] = p.data.copy()
        for name, v in self._extra_state().items():
            out[prefix + name] = np.array(v, copy=True)
        for name, m in self.children():
            out.update(m.state_dict(f"{prefix}{name}."))
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
        """Load what ``state_dict`` produced; lazy layers take their shapes from it.

        With ``strict`` a missing or unexpected key raises KeyError. A value that does
        not fit raises ValueError naming the layer (its dotted name in this module).
        """
        used: set[str] = set()
        self._load(dict(state), "", used, strict)
        extra = set(state) - used
        if strict and extra:
            raise KeyError(f"unexpected keys in state dict: {sorted(extra)}")

    def _load(self, state: dict[str, np.ndarray], prefix: str, used: set[str], strict: bool):
        layer = f"layer {prefix[:-1]!r} ({type(self).__name__})" if prefix else type(self).__name__
        for name in self._params:
            key = prefix + name
            if key in state:
                try:
                    self._load_param(name, np.asarray(state[key]))
                except ValueError as e:
                    raise ValueError(f"{layer}: {e}") from None
                used.add(key)
            elif strict and self._params[name] is not None:
                raise KeyError(f"state dict has no {key!r}")
        extra_keys = self._extra_state().keys()
        mine = {k: state[prefix + k] for k in extra_keys if prefix + k in state}
        if strict and len(mine) != len(extra_keys):
            missing = sorted(prefix + k for k in extra_keys if k not in mine)
            raise KeyError(f"state dict has no {missing}")
        try:
            self._load_extra_state(mine)
        except ValueError as e:
            raise ValueError(f"{layer}: {e}") from None
        used.update(prefix + k for k in mine)
        for name, m in self.children():
            m._load(state, f"{prefix}{name}.", used, strict)

    # -- seeding by a container ------------------------------------------------------
    def _adopt(self, seed: int, index: int) -> None:
        """Called by a container that holds this module at ``index``."""

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = list(self.children())
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in kids:
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"


def derive_seed(seed: int, index: int) -> int:
    """The init seed a container gives its child at ``index``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class Dense(Module):
    """Fully connected layer ``Y = act(X @ W + b)``; W is (in_units, units).

    ``in_units=None`` defers creating W until the first forward (lazy, like the
    tutorial's framework). ``activation`` is None or ``'relu'`` (applied in place
    on the layer's own output buffer).
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        in_units: int | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.units = _check_min_int("units", units, 1)
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        self.activation = activation
        self.in_units = None if in_units is None else _check_min_int("in_units", in_units, 1)
        self.seed = None if seed is None else _check_int("seed", seed, _U64)
        self._params["weight"] = None
        self._params["bias"] = None
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        # the last forward's kernel call (its x, y and fused-dropout mask are what
        # backward needs) and the last backward's
        self._fwd: _LinearCall | None = None
        self._bwd: _LinearBackwardCall | None = None
        if self.in_units is not None:
            self.initialize(self.in_units)

    def _adopt(self, seed: int, index: int) -> None:
        if self.seed is None:
            self.seed = derive_seed(seed, index)

    def initialize(self, in_units: int) -> None:
        """Create W ~ normal(0, 0.01) from the layer seed and b = 0."""
        rng = np.random.default_rng(0 if self.seed is None else self.seed)
        self.in_units = int(in_units)
        self.weight = Parameter(rng.normal(0.0, 0.01, (self.in_units, self.units)))
        self.bias = Parameter(np.zeros(self.units, dtype=np.float32))

    def _load_param(self, name: str, value: np.ndarray) -> None:
        if self.weight is None:
            if name == "weight" and value.ndim == 2 and value.shape[1] == self.units:
                self.initialize(value.shape[0])
            elif name == "weight":
                raise ValueError(
                    f"parameter 'weight': expected shape (in_units, {self.units}), "
                    f"found {value.shape}"
                )
            elif name == "bias":
                raise ValueError("load 'weight' before 'bias' for a lazy Dense layer")
        super()._load_param(name, value)

    def forward(
        self, X: np.ndarray, dropout: Dropout | None = None, relu: bool = False
    ) -> np.ndarray:
        """Y = act(X @ W + b); with ``relu`` (a ReLU layer that follows this one) act
        is ReLU, and with ``dropout`` (a training Dropout layer that follows), its
        dropout too, fused into the same pass over Y: ``Sequential`` does this for
        consecutive layers, with results bit for bit those of the layers run one
        after the other. backward() then gives the gradient of the whole step."""
        X = _as_input(X)
        if self.weight is None:
            self.initialize(X.shape[1])
        assert self.weight is not None and self.bias is not None
        if X.shape[1] != self.in_units:
            raise ValueError(
                f"Dense expects {self.in_units} input features, got X with shape {X.shape}"
            )
        Y = self._rows("y", X.shape[0], self.units)
        if dropout is None:
            mask, p, counters = None, 0.0, (0, 0, 0)
        else:
            mask, p = dropout._mask_rows(Y.size), dropout.p
            counters = dropout._draw()
        W, b = self.weight.data, self.bias.data
        act = "relu" if relu else self.activation
        call = self._fwd
        if call is None or not call.matches((X, W, b, Y, mask), (act, p)):
            call = self._fwd = _LinearCall(X, W, b, act, p, Y, mask, mask is not None)
        seed, stream, step = counters
        call.run(seed, stream, step)
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray | None:
        fwd = self._fwd
        if fwd is None:
            raise RuntimeError("Dense.backward called before forward")
        assert self.weight is not None and self.bias is not None
        X, _, _, Y, mask = fwd.arrays
        act, p = fwd.scalars  # the forward's (a fused ReLU's too)
        dY = _as_grad(dY, fwd.y.shape)
        n = dY.shape[0]
        # One pass for dZ = act'(Y) * dropout'(dY) and db += column sums of dZ, then
        # dW += X^T dZ and dX = dZ W^T on the GEMM kernel (transposes read in place).
        dX = self._rows("dx", n, self.weight.data.shape[0]) if self.input_grad else None
        w, b = self.weight, self.bias
        dZ = self._rows("dz", n, self.units)
        dx_on = self.input_grad
        # after zero_grad() the gradients are overwritten, not added to
        acc = (not w._grad_cleared, not b._grad_cleared)
        arrays = (dY, X, w.data, Y, mask, w._grad, b._grad, dX, dZ)
        call = self._bwd
        if call is None or not call.matches(arrays, (act, p, dx_on, acc)):
            call = self._bwd = _LinearBackwardCall(
                dY, X, w.data, Y, mask, act, p, w._grad, b._grad, dX, dZ, dx_on, acc
            )
        call.run()
        w._grad_cleared = b._grad_cleared = False
        return call.dx

    def extra_repr(self) -> str:
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"units={self.units}{act}, in_units={self.in_units}"


class ReLU(Module):
    """``max(x, 0)`` elementwise (NaN propagates; see the C header for -0.0)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None  # the last forward's output, for backward

    def forward(self, X: np.ndarray) -> np.ndarray:
        X = _as_input(X)
        Y = self._rows("y", X.shape[0], X.shape[1])
        relu(X, out=Y)
        self._y = Y
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        if self._y is None:
            raise RuntimeError("ReLU.backward called before forward")
        dY = _as_grad(dY, self._y.shape)
        dX = self._rows("dx", dY.shape[0], dY.shape[1])
        relu_backward(dY, self._y, out=dX)
        return dX


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale
    the rest by 1/(1-p); in eval mode, the identity (returns its input).

    ``seed``/``stream`` default to the container's seed and this layer's index in it
    (0 and 0 when standalone); ``step`` counts training forwards. ``seed`` and
    ``step`` are in [0, 2**64) and ``stream`` in [0, 2**31), checked whenever they
    are set: streams from 2**31 up are MC-dropout prediction's (``MC_STREAM_BASE``).
    """

    def __init__(self, p: float, *, seed: int | None = None, stream: int | None = None):
        super().__init__()
        self.p = _check_p(p)
        self.seed = seed
        self.stream = stream
        self.step = 0
        self._mask: np.ndarray | None = None  # the last training forward's keep bits
        self._y_shape: tuple[int, ...] | None = None  # the last forward's output shape
        self._mask_buf = np.empty(0, dtype=np.uint8)  # reused across steps
        self._mask_view = self._mask_buf
        self._mc: tuple[int, int] | None = None  # (stream offset, step) while MC sampling

    # The fused Dense -> Dropout kernel call takes seed, stream and step unchecked, so
    # they are checked here, with the bounds and messages of the dropout op.
    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self._seed = None if value is None else _check_int("seed", value, _U64)

    @property
    def stream(self) -> int | None:
        return self._stream

    @stream.setter
    def stream(self, value: int | None) -> None:
        # MC-dropout prediction adds MC_STREAM_BASE, and the sum must fit in 32 bits
        self._stream = None if value is None else _check_int("stream", value, MC_STREAM_BASE)

    @property
    def step(self) -> int:
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = _check_int("step", value, _U64)

    def _adopt(self, seed: int, index: int) -> None:
        if self.seed is None:
            self.seed = seed
        if self.stream is None:
            self.stream = index

    def _draw(self) -> tuple[int, int, int]:
        """(seed, stream, step) of the next training forward; advances the step."""
        seed = 0 if self.seed is None else self.seed
        stream = 0 if self.stream is None else self.stream
        if self._mc is not None:
            return seed, stream + self._mc[0], self._mc[1]
        self.step += 1
        return seed, stream, self.step - 1

    def _mask_rows(self, n: int) -> np.ndarray:
        """The reused mask buffer, sized for n elements (the same view object while n
        stays, as Module._rows)."""
        n_bytes = (n + 7) // 8
        view = self._mask_view
        if view.shape == (n_bytes,) and view.dtype == np.uint8:
            return view
        if self._mask_buf.size < n_bytes:
            self._mask_buf = np.empty(n_bytes, dtype=np.uint8)
        self._mask_view = self._mask_buf[:n_bytes]
        return self._mask_view

    def forward(self, X: np.ndarray) -> np.ndarray:
        if not self.training:
            self._mask, self._y_shape = None, np.shape(X)
            return X
        X = _as_input(X)
        seed, stream, step = self._draw()
        Y = self._rows("y", X.shape[0], X.shape[1])
        self._mask = self._mask_rows(X.size)
        dropout(X, self.p, seed=seed, stream=stream, step=step, out=Y, mask_out=self._mask)
        self._y_shape = Y.shape
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        if self._y_shape is None:
            raise RuntimeError("Dropout.backward called before forward")
        if self._mask is None:  # eval mode: identity
            return dY
        dY = _as_grad(dY, self._y_shape)
        dX = self._rows("dx", dY.shape[0], dY.shape[1])
        dropout_backward(dY, self._mask, self.p, out=dX)
        return dX

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"step": np.array(self.step, dtype=np.int64)}

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        if "step" in state:
            step = np.asarray(state["step"])
            if step.shape != () or step.dtype.kind not in "iu":
                raise ValueError(
                    f"step must be an integer scalar, got {step.dtype} array of shape {step.shape}"
                )
            self.step = step.item()

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}, stream={self.stream}"


class Sequential(Module):
    """Layers applied in order; ``add(*layers)`` appends. Children get seeds (Dense)
    and dropout streams (Dropout) derived from ``seed`` and their index.

    A module may appear only once (ValueError otherwise, also for one nested in
    another child): a layer caches its last forward's inputs for backward, so a
    second use would overwrite what the first one's backward needs. Tied weights
    are not supported.
    """

    def __init__(self, *layers: Module, seed: int = 0) -> None:
        super().__init__()
        # < 2**64: the children's dropout seed (a Philox key) and Dense seeds
        self.seed = _check_int("seed", seed, _U64)
        self.layers: list[Module] = []
        self._plan: list[Module] | None = None  # what the last forward ran, for backward
        self.add(*layers)

    def add(self, *layers: Module) -> Sequential:
        for layer in layers:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, got {type(layer).__name__}")
            index = len(self.layers)
            mine = {id(m) for m in self.modules()}
            if any(id(m) in mine for m in layer.modules()):
                raise ValueError(
                    f"cannot add {type(layer).__name__} as layer {index}: it (or a module in "
                    "it) is already in this Sequential, and layers cache their forward's "
                    "inputs for backward, so a module cannot be used twice (tied weights are "
                    "not supported); help: create a separate layer"
                )
            layer._adopt(self.seed, index)
            self.layers.append(layer)
            self._modules[str(index)] = layer
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Run the layers in order. A Dense runs as one fused step with what follows it
        of a ReLU (when the Dense has no activation of its own) and then a training
        Dropout: ``Dense -> Dropout``, ``Dense -> ReLU``, ``Dense -> ReLU -> Dropout``
        (PyTorch's spelling of ``Dense(activation='relu') -> Dropout``). Same results
        as the layers one by one, in one pass over the activations; the ReLU and
        Dropout modules are then not called (Dropout's step still advances)."""
        if self.layers:
            self.layers[0].input_grad = self.input_grad
        self._plan = None  # a forward that raises leaves nothing for backward
        plan: list[Module] = []
        layers, i = self.layers, 0
        while i < len(layers):
            layer = layers[i]
            i += 1
            if not isinstance(layer, Dense):
                X = layer.forward(X)
            else:
                relu_next = (
                    layer.activation is None and i < len(layers) and isinstance(layers[i], ReLU)
                )
                i += relu_next
                after = layers[i] if i < len(layers) else None
                drop = after if isinstance(after, Dropout) and after.training else None
                i += drop is not None
                X = layer.forward(X, dropout=drop, relu=relu_next)
            plan.append(layer)
        self._plan = plan
        return X

    def backward(self, dY: np.ndarray) -> np.ndarray | None:
        if self._plan is None:
            raise RuntimeError("Sequential.backward called before forward")
        d: np.ndarray | None = dY
        for layer in reversed(self._plan):
            assert d is not None
            d = layer.backward(d)
        return d

    def extra_repr(self) -> str:
        return f"seed={self.seed}" if not self.layers else ""
