"""Kernel benchmark cases and, per library, the callables that run them.

A case is a plain dict (it travels to the worker processes as JSON):

* ``{"group": "dropout", "op": "forward" | "forward, allocating" | "forward+backward",
  "shape": [rows, cols], "p": p}``
* ``{"group": "relu", "op": "forward" | "backward", "shape": [rows, cols]}``
* ``{"group": "matmul", "op": name, "m": m, "k": k, "n": n, "trans_a": 0|1, "trans_b": 0|1}``
  computes ``C (m x n) = op(A) (m x k) @ op(B) (k x n)``; a transposed operand is a
  transposed view of a C-contiguous array, as in training (Xᵀ·dY, dY·Wᵀ).
* ``{"group": "linear", "op": "forward", "m", "k", "n", "p"}``: Dense + ReLU + dropout.
* ``{"group": "peak", "op": "FMA peak", "flop": n}``: pydrop's register-only FMA loop
  (``pd_fma_peak``) per ISA path and thread count, the ceiling of the SGEMM numbers;
  the other libraries have no such case.
* ``{"group": "sparse", ...}``: a matmul case plus ``"density_a"`` / ``"density_b"``, the
  fraction of each operand left nonzero, as in training: ReLU then dropout p = 0.5
  leave about a third of a hidden layer (and of its gradient) nonzero, and about half
  of Fashion-MNIST's pixels are 0. The matmul group keeps dense operands, so it
  measures the dense kernels against the BLAS libraries.

``implementations(lib, case)`` returns ``[(impl_name, fn)]`` for one library;
each ``fn()`` runs the case once. Outputs are preallocated where the library's
API allows it (``out=``), so what is timed is the kernel, not the allocator,
except where an implementation is allocating by definition (the tutorial's
dropout, ``torch.nn.functional.dropout``, the "allocating" dropout row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Case = dict[str, Any]
Impl = tuple[str, Callable[[], object]]

SIZES_FULL = ((256, 256), (256, 1024), (4096, 4096))
SIZES_QUICK = ((256, 1024),)
PS_FULL = (0.1, 0.5)
PS_QUICK = (0.5,)

BATCH = 256
# Operations per call of the FMA peak loop: whole rounds of 12 chains of 16-float FMAs
# on 1 or 2 threads (about 1 ms at 100 GFLOP/s).
PEAK_FLOP = 384 * 2**18
LAYERS = (784, 256, 256, 10)


def mlp_products(batch: int = BATCH, layers: tuple[int, ...] = LAYERS) -> list[Case]:
    """The nine SGEMMs of one training step of the tutorial MLP (m x k x n)."""
    out: list[Case] = []
    for i, (d_in, d_out) in enumerate(zip(layers[:-1], layers[1:], strict=True), start=1):
        out.append(_mm(f"L{i} X·W", batch, d_in, d_out, 0, 0))
        out.append(_mm(f"L{i} Xᵀ·dY", d_in, batch, d_out, 1, 0))
        out.append(_mm(f"L{i} dY·Wᵀ", batch, d_out, d_in, 0, 1))
    return out


def _mm(name: str, m: int, k: int, n: int, ta: int, tb: int) -> Case:
    return {"group": "matmul", "op": name, "m": m, "k": k, "n": n, "trans_a": ta, "trans_b": tb}


HIDDEN_DENSITY = 1 / 3  # measured 0.31-0.34 after the first epoch
PIXEL_DENSITY = 0.5


def sparse_products(quick: bool) -> list[Case]:
    """The training products whose operands carry ReLU and dropout zeros."""
    b, h = BATCH, LAYERS[1]
    specs = [("L2 X·W", b, h, h, 0, 0, HIDDEN_DENSITY, 1.0)]
    if not quick:
        specs += [
            ("L2 Xᵀ·dY", h, b, h, 1, 0, HIDDEN_DENSITY, HIDDEN_DENSITY),
            ("L2 dY·Wᵀ", b, h, h, 0, 1, HIDDEN_DENSITY, 1.0),
            ("L1 X·W", b, LAYERS[0], h, 0, 0, PIXEL_DENSITY, 1.0),
            ("L1 Xᵀ·dY", LAYERS[0], b, h, 1, 0, PIXEL_DENSITY, HIDDEN_DENSITY),
        ]
    return [
        {**_mm(name, m, k, n, ta, tb), "group": "sparse", "density_a": da, "density_b": db}
        for name, m, k, n, ta, tb, da, db in specs
    ]


def kernel_cases(quick: bool) -> list[Case]:
    sizes = SIZES_QUICK if quick else SIZES_FULL
    ps = PS_QUICK if quick else PS_FULL
    cases: list[Case] = []
    for op in ("forward", "forward, allocating", "forward+backward"):
        for shape in sizes:
            for p in ps:
                cases.append({"group": "dropout", "op": op, "shape": list(shape), "p": p})
    for op in ("forward", "backward"):
        for shape in sizes:
            cases.append({"group": "relu", "op": op, "shape": list(shape)})
    cases += mlp_products()
    cases += sparse_products(quick)
    if not quick:
        cases.append(_mm("1024³", 1024, 1024, 1024, 0, 0))
    for m, k, n in ((BATCH, 784, 256),) if quick else ((BATCH, 784, 256), (BATCH, 256, 256)):
        cases.append({"group": "linear", "op": "forward", "m": m, "k": k, "n": n, "p": 0.5})
    cases.append({"group": "peak", "op": "FMA peak", "flop": PEAK_FLOP})
    return cases


def case_label(case: Case) -> str:
    """A short human label for the size part of a case."""
    if case["group"] in ("dropout", "relu"):
        r, c = case["shape"]
        label = f"{r}x{c}"
        if "p" in case:
            label += f" p={case['p']}"
        return label
    if case["group"] == "peak":
        return "registers only"
    label = f"{case['m']}x{case['k']}x{case['n']}"
    if case["group"] == "linear":
        label += f" p={case['p']}"
    return label


def flops(case: Case) -> float | None:
    if case["group"] == "peak":
        return float(case["flop"])
    if case["group"] in ("matmul", "sparse", "linear"):
        return 2.0 * case["m"] * case["k"] * case["n"]
    return None


def _rand(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _operands(case: Case, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, k, n = case["m"], case["k"], case["n"]
    a = _rand(rng, (k, m)).T if case["trans_a"] else _rand(rng, (m, k))
    b = _rand(rng, (n, k)).T if case["trans_b"] else _rand(rng, (k, n))
    for x, key in ((a, "density_a"), (b, "density_b")):
        if key in case:
            x[rng.random(x.shape) >= case[key]] = 0.0
    return a, b, np.empty((m, n), dtype=np.float32)


# --------------------------------------------------------------------------- numpy


def numpy_impls(case: Case) -> list[Impl]:
    from . import reference as ref

    rng = np.random.default_rng(1)
    g = case["group"]
    if g == "peak":
        return []  # pydrop's own loop: nothing to compare
    if g == "dropout":
        shape, p = tuple(case["shape"]), case["p"]
        x, dy = _rand(rng, shape), _rand(rng, shape)
        y, dx = np.empty_like(x), np.empty_like(x)
        best = ref.BestNumpyDropout(shape, p)
        if case["op"] == "forward+backward":

            def tut_fb() -> object:
                _, mask = ref.dropout_layer_with_mask(x, p)
                return ref.dropout_layer_backward(dy, mask, p)

            def best_fb() -> object:
                best.forward(x, y)
                return best.backward(dy, dx)

            return [("numpy tutorial", tut_fb), ("numpy best", best_fb)]
        tut = ("numpy tutorial", lambda: ref.dropout_layer(x, p))
        if case["op"] == "forward, allocating":
            return [tut, ("numpy best", lambda: best.forward(x, np.empty_like(x)))]
        return [tut, ("numpy best", lambda: best.forward(x, y))]
    if g == "relu":
        shape = tuple(case["shape"])
        x, dy = _rand(rng, shape), _rand(rng, shape)
        y = np.empty_like(x)
        pos = np.empty(shape, dtype=bool)
        if case["op"] == "forward":
            return [("numpy", lambda: np.maximum(x, np.float32(0), out=y))]

        def relu_bw() -> object:
            np.greater(x, np.float32(0), out=pos)
            return np.multiply(dy, pos, out=y)

        return [("numpy", relu_bw)]
    if g in ("matmul", "sparse"):
        a, b, c = _operands(case, rng)
        return [("numpy", lambda: np.matmul(a, b, out=c))]
    if g == "linear":
        m, k, n, p = case["m"], case["k"], case["n"], case["p"]
        x, w, bias = _rand(rng, (m, k)), _rand(rng, (k, n)), _rand(rng, (n,))
        z = np.empty((m, n), dtype=np.float32)
        y = np.empty_like(z)
        best = ref.BestNumpyDropout((m, n), p)

        def lin() -> object:
            np.matmul(x, w, out=z)
            np.add(z, bias, out=z)
            np.maximum(z, np.float32(0), out=z)
            return best.forward(z, y)

        return [("numpy", lin)]
    raise ValueError(f"unknown case group {g!r}")


# --------------------------------------------------------------------------- torch


def torch_impls(case: Case) -> list[Impl]:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    g = case["group"]
    aten = torch.ops.aten
    if g == "peak":
        return []
    if g == "dropout":
        shape, p = tuple(case["shape"]), case["p"]
        x, dy = torch.from_numpy(_rand(rng, shape)), torch.from_numpy(_rand(rng, shape))
        if case["op"] == "forward+backward":
            scale = 1.0 / (1.0 - p)

            def fb() -> object:
                # What autograd runs for F.dropout: native_dropout and its backward.
                _, mask = aten.native_dropout(x, p, True)
                return aten.native_dropout_backward(dy, mask, scale)

            return [("torch", fb)]
        return [("torch", lambda: F.dropout(x, p, training=True))]
    if g == "relu":
        shape = tuple(case["shape"])
        x, dy = torch.from_numpy(_rand(rng, shape)), torch.from_numpy(_rand(rng, shape))
        if case["op"] == "forward":
            return [("torch", lambda: torch.relu(x))]
        return [("torch", lambda: aten.threshold_backward(dy, x, 0.0))]
    if g in ("matmul", "sparse"):
        a, b, c = (torch.from_numpy(t) for t in _operands(case, rng))
        return [("torch", lambda: torch.mm(a, b, out=c))]
    if g == "linear":
        m, k, n, p = case["m"], case["k"], case["n"], case["p"]
        x = torch.from_numpy(_rand(rng, (m, k)))
        w = torch.from_numpy(_rand(rng, (n, k)))  # torch stores (out, in)
        bias = torch.from_numpy(_rand(rng, (n,)))
        return [("torch", lambda: F.dropout(F.relu(F.linear(x, w, bias)), p, training=True))]
    raise ValueError(f"unknown case group {g!r}")


# --------------------------------------------------------------------------- pydrop


def pydrop_impls(case: Case) -> list[Impl]:
    import pydrop
    from pydrop._ops import fma_peak

    rng = np.random.default_rng(1)
    g = case["group"]
    if g == "peak":
        flop = case["flop"]
        return [("pydrop", lambda: fma_peak(flop))]
    if g == "dropout":
        shape, p = tuple(case["shape"]), case["p"]
        x, dy = _rand(rng, shape), _rand(rng, shape)
        y, dx = np.empty_like(x), np.empty_like(x)
        if case["op"] == "forward+backward":
            mbuf = np.empty((x.size + 7) // 8, dtype=np.uint8)

            def fb() -> object:  # the mask goes into a reused buffer, as in training
                pydrop.dropout(x, p, out=y, mask_out=mbuf)
                return pydrop.dropout_backward(dy, mbuf, p, out=dx)

            return [("pydrop", fb)]
        if case["op"] == "forward, allocating":
            return [("pydrop", lambda: pydrop.dropout_layer(x, p))]
        return [("pydrop", lambda: pydrop.dropout(x, p, out=y))]
    if g == "relu":
        shape = tuple(case["shape"])
        x, dy = _rand(rng, shape), _rand(rng, shape)
        y = np.empty_like(x)
        if case["op"] == "forward":
            return [("pydrop", lambda: pydrop.relu(x, out=y))]
        return [("pydrop", lambda: pydrop.relu_backward(dy, x, out=y))]
    if g == "matmul":
        a, b, c = _operands(case, rng)
        return [("pydrop", lambda: pydrop.matmul(a, b, out=c))]
    if g == "sparse":
        a, b, c = _operands(case, rng)

        def dense() -> object:
            with pydrop.use_sparse_gemm("off"):
                return pydrop.matmul(a, b, out=c)

        return [("pydrop", lambda: pydrop.matmul(a, b, out=c)), ("pydrop dense", dense)]
    if g == "linear":
        m, k, n, p = case["m"], case["k"], case["n"], case["p"]
        x, w, bias = _rand(rng, (m, k)), _rand(rng, (k, n)), _rand(rng, (n,))
        z = np.empty((m, n), dtype=np.float32)
        y = np.empty_like(z)
        mask = np.empty((m * n + 7) // 8, dtype=np.uint8)  # both write into reused buffers

        def unfused() -> object:
            pydrop.matmul(x, w, out=z)
            np.add(z, bias, out=z)
            pydrop.relu(z, out=z)
            return pydrop.dropout(z, p, out=y, mask_out=mask)

        def fused() -> object:
            return pydrop.linear(x, w, bias, activation="relu", dropout=p, out=y, mask_out=mask)

        return [
            ("pydrop", fused),
            ("pydrop unfused", unfused),
            ("pydrop GEMM only", lambda: pydrop.matmul(x, w, out=z)),
        ]
    raise ValueError(f"unknown case group {g!r}")


IMPLS = {"numpy": numpy_impls, "torch": torch_impls, "pydrop": pydrop_impls}
