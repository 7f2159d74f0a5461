"""Wall-clock timing: warm-up, automatic inner-loop count, repeats, median/min/max.

Each repeat runs the callable ``number`` times back to back and records the mean
time per call; ``number`` is chosen (doubling, as ``timeit.Timer.autorange``
does) so that one repeat lasts at least ``min_time`` seconds, which keeps the
timer's resolution and the call overhead of tiny kernels out of the figures. The
calibration runs double as the warm-up (first-touch page faults, lazy
initialisation, thread-pool start-up); ``warmup`` further untimed calls precede
them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` repeats of ``number`` calls each."""

    median: float
    min: float
    max: float
    number: int
    repeats: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def measure(
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    min_time: float = 0.05,
    warmup: int = 1,
    max_number: int = 1 << 20,
    max_total: float | None = None,
) -> Timing:
    """Time ``fn()``; see the module docstring for the method.

    ``max_total`` (seconds) lowers the number of repeats, never below 3, for calls
    so slow that ``repeats`` of them would take longer than that.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    clock = time.perf_counter
    number = 1
    while True:
        t0 = clock()
        for _ in range(number):
            fn()
        elapsed = clock() - t0
        if elapsed >= min_time or number >= max_number:
            break
        # Jump close to the target at once when the first runs are very short.
        grow = min_time / max(elapsed, 1e-9)
        number = min(max_number, max(number * 2, int(number * min(grow, 1000.0) * 1.1)))
    if max_total is not None and elapsed * repeats > max_total:
        repeats = max(min(3, repeats), int(max_total / max(elapsed, 1e-9)))
    samples = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - t0) / number)
    return Timing(
        median=statistics.median(samples),
        min=min(samples),
        max=max(samples),
        number=number,
        repeats=repeats,
    )
