"""Philox4x32-10 known answers and stored streams, on every ISA path."""

from pathlib import Path

import numpy as np
import pytest

from pydrop._ops import philox4x32_10, philox_blocks

DATA = Path(__file__).parent / "data"

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
