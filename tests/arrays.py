"""Arrays that the argument checks must refuse (shared by the tests)."""

import numpy as np


def misaligned(n: int) -> np.ndarray:
    """n float32 zeros starting one byte past a float's address."""
    raw = np.zeros(4 * n + 1, np.uint8)
    a = raw[1:].view(np.float32)
    assert not a.flags.aligned
    return a


def read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
