"""The only module that touches the compiled library.

It validates and converts every argument, then calls C. Policy, applied by the
helpers below and documented in the README:

* arrays must be ``numpy.ndarray`` of native float32 (no silent casts: a cast
  would hide a bug and cost a copy), aligned and C-contiguous; ``matmul`` also
  takes views whose rows or columns have unit stride (``w.T``, ``w[:, :10]``)
  and passes them to SGEMM as transposes / leading dimensions, never copies;
* labels and row indices are contiguous 1-D int64 arrays; C checks their range
  and an entry outside it raises ValueError;
* non-contiguous inputs are rejected, not copied, so ``out=`` and the cost of a
  call stay predictable;
* ``out=`` must be writable, of the result's shape, and must not overlap an
  input, except that elementwise ops may write exactly in place (``out is x``).
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeGuard

import numpy as np

from ._native import ffi, lib
from ._version import __version__

# zen4: AVX2 kernels with AVX-512 where it pays on 256-bit units (AMD Zen 4)
ISAS = ("scalar", "avx2", "avx512", "zen4")
_CPU_FLAGS = {
    "sse2": lib.PD_CPU_SSE2,
    "avx": lib.PD_CPU_AVX,
    "avx2": lib.PD_CPU_AVX2,
    "fma": lib.PD_CPU_FMA,
    "avx512f": lib.PD_CPU_AVX512F,
    "avx512bw": lib.PD_CPU_AVX512BW,
    "avx512vl": lib.PD_CPU_AVX512VL,
    "avx512dq": lib.PD_CPU_AVX512DQ,
    "avx512_half": lib.PD_CPU_AVX512_HALF,  # 512-bit ops in two passes: zen4 is the default
}
_U64 = 1 << 64
_U32 = 1 << 32


# --- status codes -----------------------------------------------------------


def _check(status: int, what: str) -> None:
    if status == lib.PD_OK:
        return
    if status == lib.PD_ERR_NOMEM:
        raise MemoryError(f"{what}: out of memory")
    if status == lib.PD_ERR_THREAD:
        raise RuntimeError(f"{what}: could not start a worker thread")
    # The checks below should have caught anything C rejects; say so plainly.
    raise ValueError(f"{what}: invalid arguments (C status {status})")


# --- ISA and threads --------------------------------------------------------


def supported_isas() -> list[str]:
    """The ISA paths this CPU, OS and build can run (get_isa() tells the default)."""
    return [name for i, name in enumerate(ISAS) if lib.pd_isa_supported(i)]


def get_isa() -> str:
    """The active kernel path: 'scalar', 'avx2', 'avx512' or 'zen4'."""
    return ISAS[lib.pd_isa_active()]


def set_isa(name: str) -> None:
    """Switch every kernel to one ISA path (PYDROP_ISA does this at import)."""
    if not isinstance(name, str):
        raise TypeError(f"isa must be a str, one of {ISAS}, got {type(name).__name__}")
    if name not in ISAS:
        raise ValueError(f"isa must be one of {ISAS}, got {name!r}")
    if lib.pd_isa_set(ISAS.index(name)) != lib.PD_OK:
        raise RuntimeError(
            f"ISA {name!r} is not supported here (CPU features: {cpu_features()}); "
            f"supported: {supported_isas()}"
        )


@contextmanager
def _switched(get: Callable[[], str], set_: Callable[[str], None], value: str) -> Iterator[None]:
    """Run a block with one runtime setting, then restore the previous value."""
    previous = get()
    set_(value)
    try:
        yield
    finally:
        set_(previous)


def use_isa(name: str) -> AbstractContextManager[None]:
    """Run a block on one ISA path, then restore the previous one."""
    return _switched(get_isa, set_isa, name)


SPARSE_GEMM_MODES = ("off", "auto", "always")


def get_sparse_gemm() -> str:
    """SGEMM's sparse-operand mode: 'off', 'auto' (the default) or 'always'."""
    return SPARSE_GEMM_MODES[lib.pd_get_sparse_gemm()]


def set_sparse_gemm(mode: str) -> None:
    """Choose when SGEMM sums only the nonzero terms of its sparser operand (after
    ReLU and dropout most of a hidden layer, and of its gradient, is zeros; so is half
    of a Fashion-MNIST image). 'auto' does so when op(A) or op(B) is at most 60%
    nonzeros by a sample, 'always' whenever the product qualifies (its other operand,
    packed, fits one block of 2**21 floats), 'off' never.
    Results are bit-identical in every mode (but for a sum that underflows to -0.0,
    which may stay -0.0): each sum skips only terms 0 * x with x finite, and a product
    whose other operand holds an Inf or a NaN takes the dense path."""
    if not isinstance(mode, str):
        raise TypeError(
            f"mode must be a str, one of {SPARSE_GEMM_MODES}, got {type(mode).__name__}"
        )
    if mode not in SPARSE_GEMM_MODES:
        raise ValueError(f"mode must be one of {SPARSE_GEMM_MODES}, got {mode!r}")
    _check(lib.pd_set_sparse_gemm(SPARSE_GEMM_MODES.index(mode)), "set_sparse_gemm")


def use_sparse_gemm(mode: str) -> AbstractContextManager[None]:
    """Run a block in one sparse-operand mode, then restore the previous one."""
    return _switched(get_sparse_gemm, set_sparse_gemm, mode)


def cpu_features() -> list[str]:
    bits = lib.pd_cpu_features()
    return [name for name, bit in _CPU_FLAGS.items() if bits & bit]


def _init_isa() -> None:
    isa = ffi.new("int32_t *")
    status = lib.pd_isa_default(isa)
    forced = os.environ.get("PYDROP_ISA")
    if status == lib.PD_ERR_ARG:
        raise ValueError(f"PYDROP_ISA must be one of {ISAS} (or unset), got {forced!r}")
    if status == lib.PD_ERR_UNSUPPORTED:
        raise RuntimeError(
            f"PYDROP_ISA={forced} but this CPU/OS cannot run it (CPU features: "
            f"{cpu_features()}); supported: {supported_isas()}. help: unset PYDROP_ISA"
        )
    _check(lib.pd_isa_set(isa[0]), "select ISA")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# The thread pool's size limit (PD_MAX_THREADS in threads.c).
_MAX_THREADS = 64


def set_num_threads(n: int) -> None:
    """Threads used by masks and GEMM. Results do not depend on it."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if not 1 <= int(n) <= _MAX_THREADS:
        raise ValueError(f"n must be in [1, {_MAX_THREADS}], got {n}")
    _check(lib.pd_set_num_threads(int(n)), "set_num_threads")


def get_num_threads() -> int:
    return int(lib.pd_get_num_threads())


def _init_threads() -> None:
    env = os.environ.get("PYDROP_NUM_THREADS")
    if env is None or env == "":
        set_num_threads(min(_usable_cores(), _MAX_THREADS))
        return
    try:
        n = int(env)
    except ValueError:
        raise ValueError(f"PYDROP_NUM_THREADS must be an integer >= 1, got {env!r}") from None
    if n < 1:
        raise ValueError(f"PYDROP_NUM_THREADS must be an integer >= 1, got {env!r}")
    if n > _MAX_THREADS:
        warnings.warn(
            f"PYDROP_NUM_THREADS={n} is above pydrop's limit of {_MAX_THREADS} threads; "
            f"using {_MAX_THREADS}",
            RuntimeWarning,
            stacklevel=2,
        )
        n = _MAX_THREADS
    set_num_threads(n)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def info() -> dict[str, Any]:
    """Version, active ISA, supported ISAs, CPU features, threads, sparse-GEMM mode."""
    return {
        "version": __version__,
        "isa": get_isa(),
        "supported_isas": supported_isas(),
        "cpu": _cpu_model(),
        "cpu_features": cpu_features(),
        "num_threads": get_num_threads(),
        "usable_cores": _usable_cores(),
        "sparse_gemm": get_sparse_gemm(),
        "numpy": np.__version__,
    }


# --- argument checks --------------------------------------------------------


# The checks below run on every call of every op, so each starts with a fast path
# for the common exact types before the general (slower, ABC-based) test.


def _check_int(name: str, value: object, bound: int) -> int:
    if type(value) is int:
        if 0 <= value < bound:
            return value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, {bound}), got {type(value).__name__}")
    v = int(value)
    if not 0 <= v < bound:
        raise ValueError(f"{name} must be in [0, {bound}), got {v}")
    return v


def _check_min_int(name: str, value: object, lo: int) -> int:
    """An integer >= lo (counts, sizes, seeds with no upper bound) as an int."""
    if type(value) is int:
        if value >= lo:
            return value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {lo}, got {type(value).__name__}")
    v = int(value)
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    return v


def _check_p(p: object, name: str = "p") -> float:
    if type(p) is float and 0.0 <= p <= 1.0:  # NaN fails the comparison
        return p
    v = _check_real(name, p)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


def _check_bool(name: str, value: object) -> bool:
    """A flag: True or False (NumPy's too), never a truthy stand-in such as 'no'."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__}")


def _check_real(name: str, value: object) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an int (or Fraction) beyond the float range, e.g. 10**400
        raise ValueError(
            f"{name} is too large for a float (magnitude >= 2**1024), got a huge "
            f"{type(value).__name__}"
        ) from None


_F32 = np.dtype(np.float32)
_U8 = np.dtype(np.uint8)


def _float_array(name: str, a: object, ndim: int | None = None) -> np.ndarray:
    if type(a) is not np.ndarray and (
        not isinstance(a, np.ndarray) or isinstance(a, np.ma.MaskedArray)
    ):
        raise TypeError(f"{name} must be a numpy.ndarray of float32, got {type(a).__name__}")
    if a.dtype is not _F32 and a.dtype != _F32:
        raise TypeError(
            f"{name} must have dtype float32 (native byte order), got {a.dtype}; "
            f"help: pass {name}.astype(np.float32)"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {a.ndim}-D with shape {a.shape}")
    if not a.flags.aligned:
        raise ValueError(f"{name} is not aligned to 4 bytes; help: pass {name}.copy()")
    return a


def _dense(name: str, a: object, ndim: int | None = None) -> np.ndarray:
    a = _float_array(name, a, ndim)
    if not a.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous, got strides {a.strides} for shape {a.shape}; "
            f"help: pass np.ascontiguousarray({name})"
        )
    return a


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the memory spans of a and b intersect: exact for dense arrays,
    conservative for strided views (matmul's operands)."""
    return bool(np.may_share_memory(a, b))


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.flags.c_contiguous
        and b.flags.c_contiguous
    )


def _out_array(name: str, out: object, shape: tuple[int, ...]) -> np.ndarray:
    """A caller's output array: dense float32 of `shape`, writable."""
    out = _dense(name, out)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only; help: pass a writable array or {name}=None")
    return out


def _check_overlaps(
    name: str, out: np.ndarray, inputs: dict[str, np.ndarray], in_place: bool
) -> None:
    """Raise if out overlaps an input (`in_place` allows it to be exactly one)."""
    for other, arr in inputs.items():
        if _overlap(out, arr) and not (in_place and _same_buffer(out, arr)):
            raise ValueError(
                f"{name} overlaps {other}"
                + (f"; only exact in-place ({name}={other}) is allowed" if in_place else "")
            )


def _out(
    out: object,
    shape: tuple[int, ...],
    inputs: dict[str, np.ndarray],
    in_place: bool,
    name: str = "out",
) -> np.ndarray:
    """Validate an output argument (or allocate it). `in_place` allows it to be
    exactly one of the inputs."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    out = _out_array(name, out, shape)
    _check_overlaps(name, out, inputs, in_place)
    return out


_from_buffer = ffi.from_buffer
# (from_buffer given a type, not its name, skips a lookup)
_FLOATS = ffi.typeof("float[]")
_BYTES = ffi.typeof("uint8_t[]")


def _fbuf(a: np.ndarray) -> Any:
    return _from_buffer(_FLOATS, a)


# --- default generator ------------------------------------------------------


class _DefaultGenerator:
    """(seed, step) source for calls without an explicit seed; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seed = secrets.randbits(64)
        self._step = 0

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._seed, self._step = seed, 0

    def state(self) -> tuple[int, int]:
        with self._lock:
            return self._seed, self._step

    def set_state(self, seed: int, step: int) -> None:
        with self._lock:
            self._seed, self._step = seed, step

    def draw(self) -> tuple[int, int]:
        with self._lock:
            step = self._step
            self._step = (self._step + 1) % _U64
            return self._seed, step


_default = _DefaultGenerator()


def seed(n: int) -> None:
    """Seed the default generator used by dropout calls without ``seed=``."""
    _default.reseed(_check_int("seed", n, _U64))


def get_rng_state() -> tuple[int, int]:
    """The default generator's (seed, step): the next call without ``seed=`` uses them."""
    return _default.state()


def set_rng_state(state: tuple[int, int]) -> None:
    """Restore a state from :func:`get_rng_state` (e.g. when resuming a run)."""
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"state must be a (seed, step) pair, got {state!r}")
    _default.set_state(_check_int("seed", state[0], _U64), _check_int("step", state[1], _U64))


# --- ops --------------------------------------------------------------------


def _mask_bytes(n: int) -> int:
    return (n + 7) // 8


def _explicit_counters(seed: object, step: object) -> tuple[int, int] | None:
    """Validated (seed, step) when a seed is given; None means the default generator
    supplies both (it is drawn from only when a mask is actually drawn)."""
    if seed is None:
        if step is not None:
            raise ValueError(
                "step= needs an explicit seed=; without one the default generator picks the step"
            )
        return None
    return _check_int("seed", seed, _U64), 0 if step is None else _check_int("step", step, _U64)


def _mask_out(mask_out: object, n: int, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Validate a caller's mask buffer for n elements: writable, no overlap."""
    mask = _mask_array("mask_out", mask_out, n)
    if not mask.flags.writeable:
        raise ValueError("mask_out is read-only; help: pass a writable array")
    for name, arr in inputs.items():
        if _overlap(mask, arr):
            raise ValueError(f"mask_out overlaps {name}")
    return mask


def _with_mask(
    y: np.ndarray, mask: np.ndarray | None, return_mask: bool
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """dropout()'s and linear()'s result: y, or (y, mask) with return_mask (which
    always has one)."""
    if not return_mask:
        return y
    assert mask is not None
    return y, mask


def dropout(
    x: np.ndarray,
    p: float,
    *,
    training: bool = True,
    seed: int | None = None,
    stream: int = 0,
    step: int | None = None,
    out: np.ndarray | None = None,
    return_mask: bool = False,
    mask_out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

    The keep mask is a pure function of (seed, stream, step, element index): the
    same on every ISA path and for any thread count. With ``seed=None`` the default
    generator supplies the seed and advances its step; with an explicit seed,
    ``step`` defaults to 0. ``training=False`` returns x itself (or copies it into
    out) and draws nothing. With ``return_mask=True`` also returns the packed keep
    bits: a uint8 array of (x.size + 7) // 8 bytes, bit k of byte j keeping element
    8j + k. ``mask_out=`` writes those bits into a caller's buffer instead of a new one.
    """
    x = _dense("x", x)
    pf = _check_p(p)
    training = _check_bool("training", training)
    return_mask = _check_bool("return_mask", return_mask)
    stream_v = _check_int("stream", stream, _U32)
    counters = _explicit_counters(seed, step)
    y = _out(out, x.shape, {"x": x}, in_place=True)
    # No mask asked for: C skips the mask bytes altogether.
    mask = None
    if mask_out is not None:
        mask = _mask_out(mask_out, x.size, {"x": x, "out": y})
    elif return_mask:
        mask = np.empty(_mask_bytes(x.size), dtype=np.uint8)
    if not training:
        if y is not x and not _same_buffer(y, x):
            np.copyto(y, x)
        result = x if out is None else y
        if mask is not None:
            mask.fill(0xFF)
            if x.size % 8:
                mask[-1] = (1 << (x.size % 8)) - 1
        return _with_mask(result, mask, return_mask)
    seed_v, step_v = counters if counters is not None else _default.draw()
    _check(
        lib.pd_dropout_forward_f32(
            _fbuf(x),
            _fbuf(y),
            ffi.NULL if mask is None else ffi.from_buffer("uint8_t[]", mask),
            x.size,
            pf,
            seed_v,
            stream_v,
            step_v,
        ),
        "dropout",
    )
    return _with_mask(y, mask, return_mask)


def _mask_array(name: str, mask: object, n: int) -> np.ndarray:
    """A packed keep mask for n elements: contiguous 1-D uint8 of (n + 7) // 8 bytes."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise TypeError(f"{name} must be a uint8 array of packed keep bits, got {got}")
    if mask.ndim != 1 or mask.size != _mask_bytes(n) or not mask.flags.c_contiguous:
        raise ValueError(
            f"{name} must be a contiguous 1-D array of {_mask_bytes(n)} bytes for "
            f"{n} elements, got shape {mask.shape}"
        )
    return mask


def dropout_backward(
    dy: np.ndarray, mask: np.ndarray, p: float, out: np.ndarray | None = None
) -> np.ndarray:
    """dx = keep ? dy / (1 - p) : 0, with keep read from the forward's packed mask."""
    dy = _dense("dy", dy)
    pf = _check_p(p)
    mask = _mask_array("mask", mask, dy.size)
    dx = _out(out, dy.shape, {"dy": dy, "mask": mask}, in_place=True)
    _check(
        lib.pd_dropout_backward_f32(
            _fbuf(dy), ffi.from_buffer("uint8_t[]", mask), _fbuf(dx), dy.size, pf
        ),
        "dropout_backward",
    )
    return dx


def dropout_layer(X: np.ndarray, dropout: float) -> np.ndarray:
    """The tutorial's function: a new array with elements zeroed with probability
    `dropout` and survivors scaled by 1/(1 - dropout), from the default generator."""
    X = _dense("X", X)
    # The tutorial's parameter name shadows the function, hence the alias.
    return _dropout(X, _check_p(dropout, "dropout"))  # type: ignore[return-value]


_dropout = dropout


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0) with NaN propagated and -0.0 mapped to +0.0."""
    x = _dense("x", x)
    y = _out(out, x.shape, {"x": x}, in_place=True)
    _check(lib.pd_relu_forward_f32(_fbuf(x), _fbuf(y), x.size), "relu")
    return y


def relu_backward(dy: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dx = dy where x > 0, NaN where x is NaN, else +0.0. x may be ReLU's input or output."""
    dy = _dense("dy", dy)
    x = _dense("x", x)
    if dy.shape != x.shape:
        raise ValueError(f"dy and x must have the same shape, got {dy.shape} and {x.shape}")
    dx = _out(out, dy.shape, {"dy": dy, "x": x}, in_place=True)
    _check(lib.pd_relu_backward_f32(_fbuf(dy), _fbuf(x), _fbuf(dx), dy.size), "relu_backward")
    return dx


def _dense_layout(a: np.ndarray) -> tuple[int, int] | None:
    """(trans, ld) of a 2-D float32 array that is C-contiguous (trans 0) or the
    transpose of one (trans 1), or None for any other layout."""
    rows, cols = a.shape
    s0, s1 = a.strides
    if s1 == 4 and s0 == 4 * cols:
        return 0, cols
    if s0 == 4 and s1 == 4 * rows:
        return 1, rows
    return None


def _gemm_operand(name: str, a: object) -> tuple[np.ndarray, int, int]:
    """(array, trans, ld) for a 2-D view with unit stride along rows or columns."""
    if type(a) is np.ndarray and a.dtype is _F32 and a.ndim == 2 and a.size and a.flags.aligned:
        # Fast path for the common operands: dense, or the transpose of dense.
        layout = _dense_layout(a)
        if layout is not None:
            return a, *layout
    a = _float_array(name, a, ndim=2)
    rows, cols = a.shape
    s0, s1 = a.strides
    if a.size == 0:
        return a, 0, max(cols, 1)
    if (s1 == 4 or cols == 1) and s0 % 4 == 0 and s0 >= 0 and (rows == 1 or s0 // 4 >= cols):
        return a, 0, max(s0 // 4 if rows > 1 else cols, cols, 1)
    if (s0 == 4 or rows == 1) and s1 % 4 == 0 and s1 >= 0 and (cols == 1 or s1 // 4 >= rows):
        return a, 1, max(s1 // 4 if cols > 1 else rows, rows, 1)
    raise ValueError(
        f"{name} must have unit stride along its rows or its columns (C-contiguous, "
        f"a transposed view, or a slice of one), got strides {a.strides} for shape "
        f"{a.shape}; help: pass np.ascontiguousarray({name})"
    )


def _ptr(a: np.ndarray, trans: int = 0) -> Any:
    """The address of a[0, 0] for an operand of _gemm_operand's layout `trans`: the
    buffer protocol where it applies (a, or its transpose, is C-contiguous), the
    array interface for a slice (asking first: a failed export costs microseconds)."""
    base = a.T if trans else a
    if base.flags.c_contiguous:
        return _fbuf(base)
    return ffi.cast("float *", a.__array_interface__["data"][0])


def _common_out(out: object, shape: tuple[int, int]) -> np.ndarray | None:
    """The output of a common call (the fast paths): a new array for None, out itself
    when it is an aligned, C-contiguous float32 array of `shape`, else None (the call
    then takes the full checks). Its writability is for the buffer export to test."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if (
        type(out) is np.ndarray
        and out.dtype is _F32
        and out.shape == shape
        and out.strides == (4 * shape[1], 4)
        and out.flags.aligned
    ):
        return out
    return None


def _plain_vector(a: object, dtype: np.dtype, size: int) -> TypeGuard[np.ndarray]:
    """Whether a is an aligned, contiguous 1-D array of `size` elements of `dtype`."""
    return (
        type(a) is np.ndarray
        and a.dtype is dtype
        and a.shape == (size,)
        and a.strides == (dtype.itemsize,)
        and a.flags.aligned
    )


def _sgemm_args(
    a: object,
    b: object,
    out: object,
    alpha: object,
    beta: object,
    names: tuple[str, str, str] = ("a", "b", "out"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[Any, ...]]:
    """Validated (a, b, c, pd_sgemm arguments) for c = alpha * a @ b + beta * c.
    The arguments are () when c is empty (nothing to compute). Overlap of c with a
    or b is C's to reject."""
    na, nb, nout = names
    a, trans_a, lda = _gemm_operand(na, a)
    b, trans_b, ldb = _gemm_operand(nb, b)
    alpha_f = _check_real("alpha", alpha)
    beta_f = _check_real("beta", beta)
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ValueError(
            f"{na}.shape[1] must equal {nb}.shape[0], got {na} {a.shape} and {nb} {b.shape}"
        )
    if out is None:
        if beta_f != 0.0:
            raise ValueError(f"beta != 0 accumulates into {nout}=, so {nout}= is required")
        c = np.empty((m, n), dtype=np.float32)
    else:
        c = _float_array(nout, out, ndim=2)
        if c.shape != (m, n):
            raise ValueError(f"{nout} must have shape {(m, n)}, got {c.shape}")
        if not c.flags.writeable:
            raise ValueError(f"{nout} is read-only; help: pass a writable array or {nout}=None")
    if m == 0 or n == 0:
        return a, b, c, ()
    s0, s1 = c.strides
    if not (s1 == 4 or n == 1):
        raise ValueError(f"{nout} must have unit column stride, got strides {c.strides}")
    if s0 < 0 or s0 % 4 or (m > 1 and s0 // 4 < n):
        raise ValueError(f"{nout} rows must not overlap each other, got strides {c.strides}")
    ldc = max(s0 // 4 if m > 1 else n, n)
    pa, pb, pc = _ptr(a, trans_a), _ptr(b, trans_b), _ptr(c)
    args = (trans_a, trans_b, m, n, k, alpha_f, pa, lda, pb, ldb, beta_f, pc, ldc)
    return a, b, c, args


def _matmul_fast(
    a: object, b: object, out: object, alpha: object, beta: object
) -> np.ndarray | None:
    """matmul's usual call in as few Python steps as it takes (for a 256x256x10
    product they cost as much as a seventh of the arithmetic): non-empty float32
    operands, each C-contiguous or the transpose of one, out None (beta 0) or a
    writable C-contiguous float32 array of the product's shape, alpha and beta floats.
    C checks the rest (the operands' alignment, overlap). Returns c, or None for any
    other call or one that C refused (nothing was written): matmul then checks it in
    full and names what is wrong."""
    if not (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and type(alpha) is float
        and type(beta) is float
        and a.dtype is _F32
        and b.dtype is _F32
        and a.ndim == 2
        and b.ndim == 2
    ):
        return None
    m, k = a.shape
    k2, n = b.shape
    if k != k2 or not (m and n and k):
        return None
    c: np.ndarray
    # (_common_out written out, as _dense_layout below: a call costs more than its tests;
    # C tests the alignment)
    if out is None:
        if beta != 0.0:
            return None
        c = np.empty((m, n), dtype=_F32)
    elif (
        type(out) is np.ndarray
        and out.dtype is _F32
        and out.shape == (m, n)
        and out.strides == (4 * n, 4)
    ):
        c = out
    else:
        return None
    # (_dense_layout written out, twice: a call costs more than its tests)
    s0, s1 = a.strides
    if s1 == 4 and s0 == 4 * k:
        ta, lda, pa = 0, k, _from_buffer(_FLOATS, a)
    elif s0 == 4 and s1 == 4 * m:
        ta, lda, pa = 1, m, _from_buffer(_FLOATS, a.T)
    else:
        return None
    s0, s1 = b.strides
    if s1 == 4 and s0 == 4 * n:
        tb, ldb, pb = 0, n, _from_buffer(_FLOATS, b)
    elif s0 == 4 and s1 == 4 * k:
        tb, ldb, pb = 1, k, _from_buffer(_FLOATS, b.T)
    else:
        return None
    try:
        pc = _from_buffer(_FLOATS, c, True)
    except ValueError:  # read-only out
        return None
    if lib.pd_sgemm(ta, tb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, n):
        return None
    return c


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> np.ndarray:
    """out = alpha * a @ b + beta * out (SGEMM). a and b may be transposed views or
    row/column slices; they are read in place, never copied. beta != 0 needs out=.
    out must have unit column stride and must not overlap a or b. As in BLAS, beta
    == 0 never reads out and alpha == 0 never reads a or b (no NaN from them)."""
    c = _matmul_fast(a, b, out, alpha, beta)
    if c is not None:
        return c
    a, b, c, args = _sgemm_args(a, b, out, alpha, beta)
    if not args:
        return c
    status = lib.pd_sgemm(*args)
    if not status:
        return c
    # C makes the overlap test (it must not trust the caller anyway); with every
    # other argument checked above, a rejection here is an overlap.
    if status == lib.PD_ERR_ARG:
        name = "a" if _overlap(c, a) else "b"
        raise ValueError(f"out overlaps {name}; matmul cannot run in place")
    _check(status, "matmul")
    return c


# --- fused Dense -------------------------------------------------------------


def _activation(activation: object) -> int:
    if activation is None:
        return 0
    if activation == "relu":
        return 1
    raise ValueError(f"activation must be None or 'relu', got {activation!r}")


def _row_major(name: str, a: object) -> tuple[np.ndarray, int]:
    """(array, ld) for a 2-D float32 view with unit column stride."""
    a, trans, ld = _gemm_operand(name, a)
    if trans and a.size and a.shape[1] > 1:
        raise ValueError(
            f"{name} must have unit stride along its rows (C-contiguous or a row slice), "
            f"got strides {a.strides}; help: pass np.ascontiguousarray({name})"
        )
    return a, ld


class _Call:
    """A kernel call checked once for a fixed set of arrays: a layer keeps one and
    reruns it, step after step, while ``matches`` holds, skipping the checks and the
    buffer exports. It holds the arrays (so their ids stay theirs) and compares them
    by identity, the other arguments by equality: a replaced array (a reassigned
    ``Parameter.data``, another batch size's view) gets a new, fully checked call.
    C still checks every call (shapes against spans, overlaps)."""

    __slots__ = ("arrays", "scalars")
    arrays: tuple[Any, ...]
    scalars: tuple[Any, ...]

    def matches(self, arrays: tuple[Any, ...], scalars: tuple[Any, ...]) -> bool:
        """Whether a call with these arguments would be this one: ``arrays`` are the
        constructor's array arguments and ``scalars`` its others, each in order."""
        return scalars == self.scalars and all(map(operator.is_, arrays, self.arrays))


class _LinearCall(_Call):
    """linear()'s checked arguments but the dropout counters, which ``run`` takes."""

    __slots__ = ("y", "mask", "_args")

    def __init__(
        self,
        x: object,
        w: object,
        b: object,
        activation: object,
        p: object,
        out: object,
        mask_out: object,
        want_mask: bool,
    ) -> None:
        self.arrays, self.scalars = (x, w, b, out, mask_out), (activation, p)
        args = (x, w, b, activation, p, out, mask_out, want_mask)
        if not self._common(args):
            self._checked(args)

    def _common(self, args: tuple[Any, ...]) -> bool:
        """_checked for the usual call, in fewer Python steps: non-empty float32 x
        C-contiguous, w C-contiguous or a transposed one, b None or dense (n,), out
        None or dense (m, n) and writable, mask_out None or a writable byte buffer of
        the right size, p a float in [0, 1]. False leaves every other call, and every
        error message, to _checked (writability: the buffer exports in _set test it)."""
        x, w, b, activation, p, out, mask_out, want_mask = args
        if not (
            type(x) is np.ndarray
            and type(w) is np.ndarray
            and x.dtype is _F32
            and w.dtype is _F32
            and x.ndim == 2
            and w.ndim == 2
            and type(p) is float
            and 0.0 <= p <= 1.0
            and (activation is None or activation == "relu")
        ):
            return False
        m, k = x.shape
        k2, n = w.shape
        if k != k2 or not (m and n and k) or x.strides != (4 * k, 4):
            return False
        # (tested here, though C tests it too: a call C rejects has drawn its counters)
        if not (x.flags.aligned and w.flags.aligned):
            return False
        layout = _dense_layout(w)
        if layout is None:
            return False
        trans_w, ldw = layout
        if b is not None and not _plain_vector(b, _F32, n):
            return False
        y = _common_out(out, (m, n))
        if y is None:
            return False
        mask = None
        if mask_out is not None:
            if not _plain_vector(mask_out, _U8, _mask_bytes(m * n)):
                return False
            mask = mask_out
        elif want_mask:
            mask = np.empty(_mask_bytes(m * n), dtype=np.uint8)
        act = int(activation is not None)
        pw = _fbuf(w.T if trans_w else w)
        try:
            self._set(x, _fbuf(x), k, w, pw, trans_w, ldw, b, y, mask, act, p)
        except ValueError:  # a read-only out or mask_out
            return False
        return True

    def _checked(self, args: tuple[Any, ...]) -> None:
        x, w, b, activation, p, out, mask_out, want_mask = args
        x, ldx = _row_major("x", x)
        w, trans_w, ldw = _gemm_operand("w", w)
        m, k = x.shape
        if w.shape[0] != k:
            raise ValueError(f"w.shape[0] must equal x.shape[1], got x {x.shape} and w {w.shape}")
        n = w.shape[1]
        if b is not None:
            b = _dense("b", b, ndim=1)
            if b.shape != (n,):
                raise ValueError(f"b must have shape ({n},), got {b.shape}")
        act = _activation(activation)
        pf = _check_p(p, "dropout")
        # Overlaps between y, the mask and the inputs are C's to reject (run).
        y = _out(out, (m, n), {}, in_place=False)
        mask = None
        if mask_out is not None:
            mask = _mask_out(mask_out, m * n, {})
        elif want_mask:
            mask = np.empty(_mask_bytes(m * n), dtype=np.uint8)
        self._set(x, _ptr(x), ldx, w, _ptr(w, trans_w), trans_w, ldw, b, y, mask, act, pf)

    def _set(
        self,
        x: np.ndarray,
        px: Any,
        ldx: int,
        w: np.ndarray,
        pw: Any,
        trans_w: int,
        ldw: int,
        b: np.ndarray | None,
        y: np.ndarray,
        mask: np.ndarray | None,
        act: int,
        p: float,
    ) -> None:
        """The checked call's outputs and C arguments (px, pw: x's and w's addresses).
        Raises ValueError for a read-only y or mask."""
        (m, k), n = x.shape, y.shape[1]
        self.y, self.mask = y, mask
        self._args = (
            (
                px,
                ldx,
                pw,
                ldw,
                trans_w,
                ffi.NULL if b is None else _fbuf(b),
                _from_buffer(_FLOATS, y, True),
                ffi.NULL if mask is None else _from_buffer(_BYTES, mask, True),
                m,
                n,
                k,
                act,
                p,
            )
            if y.size
            else ()
        )

    def run(self, seed: int, stream: int, step: int) -> None:
        if not self._args:
            return
        status = lib.pd_linear_forward_f32(*self._args, seed, stream, step)
        if status == lib.PD_ERR_ARG:
            # every other argument was checked: name the overlap C found
            x, w, b = self.arrays[:3]
            inputs = {"x": x, "w": w} if b is None else {"x": x, "w": w, "b": b}
            y = self.y
            _out(y, y.shape, inputs, in_place=False)
            if self.mask is not None:
                _mask_out(self.mask, y.size, {**inputs, "out": y})
        _check(status, "linear")


def linear(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    activation: str | None = None,
    dropout: float = 0.0,
    training: bool = True,
    seed: int | None = None,
    stream: int = 0,
    step: int | None = None,
    out: np.ndarray | None = None,
    return_mask: bool = False,
    mask_out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fused Dense forward: ``y = dropout(act(x @ w + b), p)`` in one pass over y.

    Bias, ReLU and dropout run in the GEMM epilogue while each block of y is in
    cache. y and the keep mask are bit for bit those of the unfused sequence
    ``y = b; matmul(x, w, out=y, beta=1); relu(y, out=y); dropout(y, p, out=y, ...)``.
    x is (m, k) with unit column stride; w is (k, n), C-contiguous or a transposed
    view; b is (n,) or None. Dropout arguments are those of :func:`dropout`;
    ``training=False`` turns dropout off and draws nothing.
    """
    pf = _check_p(dropout, "dropout")
    training = _check_bool("training", training)
    return_mask = _check_bool("return_mask", return_mask)
    want_mask = return_mask or (training and pf > 0.0)
    call = _LinearCall(x, w, b, activation, pf if training else 0.0, out, mask_out, want_mask)
    stream_v = _check_int("stream", stream, _U32)
    counters = _explicit_counters(seed, step)
    if not training:
        seed_v = step_v = 0
    else:
        seed_v, step_v = counters if counters is not None else _default.draw()
    call.run(seed_v, stream_v, step_v)
    return _with_mask(call.y, call.mask, return_mask)


class _LinearBackwardCall(_Call):
    """linear_backward()'s checked arguments; ``run`` makes the C call."""

    __slots__ = ("dx", "dw", "db", "_args", "_arrays")

    def __init__(
        self,
        dy: object,
        x: object,
        w: object,
        y: object,
        mask: object,
        activation: object,
        dropout: object,
        grad_w: object,
        grad_b: object,
        out: object,
        dz_out: object,
        input_grad: bool,
        accumulate: tuple[bool, bool],
    ) -> None:
        arrays = (dy, x, w, y, mask, grad_w, grad_b, out, dz_out)
        dy = _dense("dy", dy, ndim=2)
        x, _ = _row_major("x", x)
        w, _, _ = _gemm_operand("w", w)
        y = _dense("y", y, ndim=2)
        m, n = dy.shape
        k = x.shape[1]
        if y.shape != (m, n) or x.shape[0] != m or w.shape != (k, n):
            raise ValueError(
                f"shapes do not match a linear forward: dy {dy.shape}, x {x.shape}, "
                f"w {w.shape}, y {y.shape}"
            )
        act = _activation(activation)
        pf = _check_p(dropout, "dropout")
        if mask is not None:
            mask = _mask_array("mask", mask, m * n)
        elif pf != 0.0:
            raise ValueError("mask is required when dropout > 0 (the forward's return_mask)")
        if (
            not isinstance(accumulate, tuple)
            or len(accumulate) != 2
            or not all(isinstance(a, bool) for a in accumulate)
        ):
            raise TypeError(f"accumulate must be a pair of bools, got {accumulate!r}")
        # (a new db is zero-filled by C: db_accumulate is 0 for it)
        db = np.empty(n, dtype=np.float32) if grad_b is None else _out_array("grad_b", grad_b, (n,))
        dz = (
            np.empty((m, n), dtype=np.float32)
            if dz_out is None
            else _out_array("dz_out", dz_out, (m, n))
        )
        beta = 1.0 if grad_w is not None and accumulate[0] else 0.0
        _, _, dw, args_w = _sgemm_args(x.T, dz, grad_w, 1.0, beta, ("x.T", "dz", "grad_w"))
        dx, args_x = None, ()
        if input_grad:
            _, _, dx, args_x = _sgemm_args(dz, w.T, out, 1.0, 0.0, ("dz", "w.T", "out"))
        self.arrays, self.scalars = arrays, (activation, dropout, input_grad, accumulate)
        self.dx, self.dw, self.db = dx, dw, db
        self._arrays = (dy, x, w, y, mask, dz)
        self._args = (
            _fbuf(dy),
            ffi.NULL if mask is None else ffi.from_buffer("uint8_t[]", mask),
            _fbuf(y),
            _fbuf(dz),
            _fbuf(db),
            int(grad_b is not None and accumulate[1]),
            m,
            n,
            act,
            pf,
            ffi.new("pd_sgemm_args *", args_w) if args_w else ffi.NULL,
            ffi.new("pd_sgemm_args *", args_x) if args_x else ffi.NULL,
        )

    def run(self) -> None:
        status = lib.pd_linear_backward_f32(*self._args)
        if status == lib.PD_ERR_ARG:
            # C checks every overlap before it writes anything; these slow checks
            # only name the offending pair.
            dy, x, w, y, mask, dz = self._arrays
            db, dw, dx = self.db, self.dw, self.dx
            reads = {"dy": dy, "y": y} if mask is None else {"dy": dy, "y": y, "mask": mask}
            _check_overlaps("grad_b", db, {**reads, "x": x, "w": w}, in_place=False)
            _check_overlaps("dz_out", dz, {"y": y, "x": x, "w": w}, in_place=False)
            if _overlap(dz, dy) and not _same_buffer(dz, dy):
                raise ValueError("dz_out overlaps dy; only exact in-place (dz_out=dy) is allowed")
            outs = {"grad_w": dw} if dx is None else {"grad_w": dw, "out": dx}
            for name, c in outs.items():
                for other, arr in {"x": x, "dz": dz, "w": w, "grad_b": db, **reads, **outs}.items():
                    if other != name and _overlap(c, arr):
                        raise ValueError(f"{name} overlaps {other}")
        _check(status, "linear_backward")


def linear_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    activation: str | None = None,
    dropout: float = 0.0,
    grad_w: np.ndarray | None = None,
    grad_b: np.ndarray | None = None,
    out: np.ndarray | None = None,
    dz_out: np.ndarray | None = None,
    input_grad: bool = True,
    accumulate: tuple[bool, bool] = (True, True),
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Backward of :func:`linear`, given its inputs x, w, output y and mask.

    dz = act'(y) * dropout_backward(dy) and the bias gradient (column sums of dz,
    in row order) come from one pass; then dw = x.T @ dz and dx = dz @ w.T run on
    SGEMM. ``grad_w`` / ``grad_b``, when given, are accumulated into (``+=``), as
    layers do; otherwise new arrays are returned. ``accumulate=(False, ...)`` /
    ``(..., False)`` overwrites ``grad_w`` / ``grad_b`` instead (what a cleared
    gradient needs; the GEMM then never reads the old values). ``mask`` may be None
    only for dropout == 0. ``input_grad=False`` skips dx (returned as None). Returns
    (dx, dw, db).
    """
    call = _LinearBackwardCall(
        dy, x, w, y, mask, activation, dropout, grad_w, grad_b, out, dz_out, input_grad, accumulate
    )
    call.run()
    return call.dx, call.dw, call.db


# --- training-step kernels (for losses, optim and data; not public API) -------


_I64 = np.dtype(np.int64)


def _index_array(name: str, a: object) -> np.ndarray:
    """A contiguous 1-D int64 array (labels, row indices); its range is C's to check."""
    if not isinstance(a, np.ndarray) or (a.dtype is not _I64 and a.dtype != _I64):
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name} must be a numpy.ndarray of int64, got {got}")
    if a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(
            f"{name} must be a contiguous 1-D array, got shape {a.shape} and strides "
            f"{a.strides}; help: pass np.ascontiguousarray({name})"
        )
    return a


class _SoftmaxXentCall(_Call):
    """softmax_xent()'s checked arguments; ``run`` returns the summed loss."""

    __slots__ = ("_args", "_loss", "_c")

    def __init__(self, logits: object, y: object, out: object) -> None:
        arrays = (logits, y, out)
        logits = _dense("logits", logits, ndim=2)
        y = _index_array("y", y)
        n, c = logits.shape
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) for logits {logits.shape}, got {y.shape}")
        p = _out(out, (n, c), {"logits": logits, "y": y}, in_place=False)
        self.arrays, self.scalars = arrays, ()
        self._loss = ffi.new("double *")
        self._c = c
        self._args = (_fbuf(logits), ffi.from_buffer("int64_t[]", y), _fbuf(p), n, c, self._loss)

    def run(self) -> float:
        status = lib.pd_softmax_xent_f32(*self._args)
        if status == lib.PD_ERR_ARG:  # everything else was checked
            raise ValueError(f"labels must be in 0..{self._c - 1}")
        _check(status, "softmax_xent")
        return float(self._loss[0])


def softmax_xent(logits: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    """out = softmax(logits) row-wise; returns the summed (not mean) cross-entropy
    of the rows against labels y, accumulated in float64 (pd_softmax_xent_f32)."""
    return _SoftmaxXentCall(logits, y, out).run()


class _SoftmaxXentBackwardCall(_Call):
    """softmax_xent_backward()'s checked arguments; ``run`` returns p."""

    __slots__ = ("p", "_args", "_c")

    def __init__(self, p: object, y: object) -> None:
        arrays = (p, y)
        p = _dense("p", p, ndim=2)
        y = _index_array("y", y)
        n, c = p.shape
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) for p {p.shape}, got {y.shape}")
        if not p.flags.writeable:
            raise ValueError("p is read-only; help: pass the writable array softmax_xent wrote")
        if _overlap(p, y):
            raise ValueError("p overlaps y")
        self.arrays, self.scalars = arrays, ()
        self.p = p
        self._c = c
        self._args = (_fbuf(p), ffi.from_buffer("int64_t[]", y), n, c)

    def run(self) -> np.ndarray:
        status = lib.pd_softmax_xent_backward_f32(*self._args)
        if status == lib.PD_ERR_ARG:
            raise ValueError(f"labels must be in 0..{self._c - 1}")
        _check(status, "softmax_xent_backward")
        return self.p


def softmax_xent_backward(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """In place on softmax_xent's out: p = (p - onehot(y)) / n. Returns p."""
    return _SoftmaxXentBackwardCall(p, y).run()


class _SGDCall(_Call):
    """sgd_step()'s checked arguments for one or more parameters, ``arrays`` being
    (w, g, v) of each in turn; ``run`` updates them all in one C call."""

    __slots__ = ("_args", "_buffers", "_count")

    def __init__(
        self, arrays: tuple[Any, ...], lr: object, momentum: object, weight_decay: object
    ) -> None:
        ptrs: list[list[Any]] = [[], [], []]
        sizes = []
        for i in range(0, len(arrays), 3):
            w = _dense("w", arrays[i])
            g = _dense("g", arrays[i + 1])
            v = _dense("v", arrays[i + 2])
            if g.shape != w.shape or v.shape != w.shape:
                raise ValueError(
                    f"w, g and v must have the same shape, got {w.shape}, {g.shape} and {v.shape}"
                )
            for name, a in (("w", w), ("v", v)):
                if not a.flags.writeable:
                    raise ValueError(f"{name} is read-only; help: pass a writable array")
            for ptr, a in zip(ptrs, (w, g, v), strict=True):
                ptr.append(_fbuf(a))
            sizes.append(w.size)
        hyper = (
            _check_real("lr", lr),
            _check_real("momentum", momentum),
            _check_real("weight_decay", weight_decay),
        )
        self.arrays, self.scalars = arrays, (lr, momentum, weight_decay)
        # the cdata pointer arrays keep no reference to the buffer exports: this does
        self._buffers = ptrs
        self._count = len(sizes)
        self._args = (
            ffi.new("float *[]", ptrs[0]),
            ffi.new("float *[]", ptrs[1]),
            ffi.new("float *[]", ptrs[2]),
            ffi.new("int64_t[]", sizes),
            len(sizes),
            *hyper,
        )

    def run(self) -> None:
        status = lib.pd_sgd_step_multi_f32(*self._args)
        # The overlap test is left to C, which makes it anyway: np.may_share_memory
        # costs as much as the C call on a bias.
        if status == lib.PD_ERR_ARG:
            if self._count == 1:
                raise ValueError("w, g and v must not overlap each other")
            raise ValueError("the parameters' w, g and v must not overlap each other")
        _check(status, "sgd_step")


def sgd_step(
    w: np.ndarray,
    g: np.ndarray,
    v: np.ndarray,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> None:
    """One torch.optim.SGD step in place on w (and on v when momentum != 0), in
    float32, bit for bit the NumPy float32 formula (pd_sgd_step_f32; the optimizer
    updates all its parameters in one pd_sgd_step_multi_f32 call)."""
    _SGDCall((w, g, v), lr, momentum, weight_decay).run()


def take_rows(src: np.ndarray, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """out[i] = src[idx[i]] for a 2-D float32 src (pd_take_rows_f32, rows split
    over the threads); every index must be in [0, len(src))."""
    src = _dense("src", src, ndim=2)
    idx = _index_array("idx", idx)
    rows, cols = src.shape
    # (an overlap of out with src or idx is C's to reject: named below)
    dst = _out(out, (idx.size, cols), {}, in_place=False)
    status = lib.pd_take_rows_f32(
        _fbuf(src), rows, cols, ffi.from_buffer("int64_t[]", idx), idx.size, _fbuf(dst)
    )
    if status == lib.PD_ERR_ARG:  # everything else was checked above
        _check_overlaps("out", dst, {"src": src, "idx": idx}, in_place=False)
        i = int(np.flatnonzero((idx < 0) | (idx >= rows))[0])
        raise ValueError(f"idx[{i}] = {int(idx[i])} is out of range for src with {rows} rows")
    _check(status, "take_rows")
    return dst


# --- benchmark ceiling ---------------------------------------------------------


def fma_peak(flops: int) -> int:
    """Run about ``flops`` register-only fused multiply-add operations on the active
    ISA and thread count (the ceiling the benchmark suite measures SGEMM against; the
    caller times it). Returns how many ran."""
    done = lib.pd_fma_peak(_check_int("flops", flops, 1 << 62))
    if done < 0:
        raise RuntimeError("fma_peak: a worker thread could not be started")
    return int(done)


# --- RNG access for tests and data generators --------------------------------


def philox4x32_10(ctr: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, ...]:
    """One Philox4x32-10 block (scalar reference)."""
    if len(ctr) != 4 or len(key) != 2:
        raise ValueError("ctr must have 4 words and key 2 words")
    c = [_check_int("ctr word", v, _U32) for v in ctr]
    k = [_check_int("key word", v, _U32) for v in key]
    out = ffi.new("uint32_t[4]")
    _check(lib.pd_philox4x32_10(c, k, out), "philox4x32_10")
    return tuple(out)


def philox_blocks(seed: int, stream: int, step: int, first: int, n_blocks: int) -> np.ndarray:
    """Philox blocks with the dropout mask's counter layout, on the active ISA:
    row b = philox(ctr=(first + b, stream, step & 0xffffffff, step >> 32), key=seed)."""
    seed_v = _check_int("seed", seed, _U64)
    stream_v = _check_int("stream", stream, _U32)
    step_v = _check_int("step", step, _U64)
    first_v = _check_int("first", first, _U32 + 1)
    n = _check_int("n_blocks", n_blocks, _U32 + 1 - first_v + 1)
    out = np.empty((n, 4), dtype=np.uint32)
    _check(
        lib.pd_philox_stream(
            seed_v, stream_v, step_v, first_v, n, ffi.from_buffer("uint32_t[]", out)
        ),
        "philox_blocks",
    )
    return out


_init_isa()
_init_threads()
