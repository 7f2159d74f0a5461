"""Philox4x32-10 known answers and stored streams, on every ISA path."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import pydrop
from pydrop._ops import lib, philox4x32_10, philox_blocks

DATA = Path(__file__).parent / "data"


def _plain_python_philox():
    """The independent Philox4x32-10 that generated the stored streams."""
    spec = importlib.util.spec_from_file_location(
        "gen_philox_stream", DATA / "gen_philox_stream.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.philox4x32_10


# Random123's kat_vectors for philox4x32_10: (ctr, key, expected output).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("ctr", "key", "expected"), KAT)
def test_known_answers_scalar_reference(ctr, key, expected):
    assert philox4x32_10(ctr, key) == expected


@pytest.mark.parametrize(("ctr", "key", "expected"), KAT)
@pytest.mark.parametrize("lane", [0, 5, 13, 31, 40])
def test_known_answers_every_isa(isa, ctr, key, expected, lane):
    # Place the known block at several positions of a run, so it lands in different
    # SIMD lanes and iterations (and in the scalar tail for lane 40 of 45). Counter 0
    # can only be the first block of a run.
    seed = key[0] | key[1] << 32
    step = ctr[2] | ctr[3] << 32
    lane = min(lane, ctr[0])
    first = ctr[0] - lane
    n = min(45 if lane == 40 else 64, (1 << 32) - first)
    blocks = philox_blocks(seed, ctr[1], step, first, n)
    assert tuple(int(w) for w in blocks[lane]) == expected


@pytest.mark.parametrize("seed", [0, 20141103])
def test_stored_stream(isa, seed):
    expected = np.array(
        [int(line, 16) for line in (DATA / f"philox_seed{seed}.txt").read_text().split()],
        dtype=np.uint32,
    )
    got = philox_blocks(seed, 0, 0, 0, expected.size // 4).reshape(-1)
    np.testing.assert_array_equal(got, expected)


def test_blocks_are_independent_of_run_split(isa):
    whole = philox_blocks(7, 3, 11, 100, 301)
    parts = np.concatenate(
        [
            philox_blocks(7, 3, 11, 100 + a, b - a)
            for a, b in [(0, 1), (1, 17), (17, 160), (160, 301)]
        ]
    )
    np.testing.assert_array_equal(whole, parts)


def _threshold(p: float) -> int:
    """t = round(p * 65536), p rounded to float32 first (README, "Keep rule")."""
    return int(np.float64(np.float32(p)) * 65536 + 0.5)


def test_threshold_follows_the_documented_rule():
    ps = np.concatenate(
        [np.linspace(0, 1, 100_001, dtype=np.float32), np.float32([1e-7, 0.5 + 2**-18, 1 - 1e-7])]
    )
    got = [lib.pd_dropout_threshold(float(p)) for p in ps]
    assert got == [_threshold(float(p)) for p in ps]


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.75, 0.9, "tie"])
def test_mask_follows_the_documented_keep_rule(isa, p):
    # Element i takes u_i = half i % 2 (low first) of word (i % 8) // 2 of block i // 8,
    # block b from counter (b, stream, step & 0xffffffff, step >> 32), key (seed low,
    # seed high); kept iff u_i >= t. Built here from the plain-Python Philox, with
    # seed, stream and step words all nonzero and 8 * 50 + 3 elements (a ragged tail).
    # "tie" puts t on a drawn value, so that u_i == t decides one element.
    seed, stream, step, n = (0xDEADBEEF << 32) | 0x12345678, 0x9ABCDEF0, (3 << 32) | 5, 403
    philox = _plain_python_philox()
    key = [seed & 0xFFFFFFFF, seed >> 32]
    words = [philox([b, stream, step & 0xFFFFFFFF, step >> 32], key) for b in range(n // 8 + 1)]
    u = np.array([(words[i // 8][i % 8 // 2] >> (16 * (i % 2))) & 0xFFFF for i in range(n)])
    if p == "tie":
        p = float(u[17]) / 65536  # exact in float32, so t == u[17]
    expected = u >= _threshold(p)
    x = np.ones(n, dtype=np.float32)
    y, mask = pydrop.dropout(x, p, seed=seed, stream=stream, step=step, return_mask=True)
    np.testing.assert_array_equal(np.unpackbits(mask, bitorder="little")[:n].astype(bool), expected)
    scale = np.float32(1 / (1 - np.float64(np.float32(p))))
    np.testing.assert_array_equal(y, np.where(expected, scale, np.float32(0)))
    assert 0 < expected.sum() < n  # each p keeps some elements and drops others
