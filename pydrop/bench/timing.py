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
    number, elapsed = _calibrate(fn, min_time, max_number)
    if max_total is not None and elapsed * repeats > max_total:
        repeats = max(min(3, repeats), int(max_total / max(elapsed, 1e-9)))
    samples = [_run(fn, number) for _ in range(repeats)]
    return _summary(samples, number)


def _calibrate(
    fn: Callable[[], object], min_time: float, max_number: int = 1 << 20
) -> tuple[int, float]:
    """(calls per repeat, seconds they took): doubling until a repeat lasts at least
    min_time. The calibration runs double as the warm-up."""
    number = 1
    while True:
        elapsed = _run(fn, number) * number
        if elapsed >= min_time or number >= max_number:
            return number, elapsed
        # Jump close to the target at once when the first runs are very short.
        grow = min_time / max(elapsed, 1e-9)
        number = min(max_number, max(number * 2, int(number * min(grow, 1000.0) * 1.1)))


def _run(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def _summary(samples: list[float], number: int) -> Timing:
    return Timing(
        median=statistics.median(samples),
        min=min(samples),
        max=max(samples),
        number=number,
        repeats=len(samples),
    )


def measure_paired(
    fa: Callable[[], object],
    fb: Callable[[], object],
    *,
    repeats: int = 15,
    min_time: float = 0.05,
) -> tuple[Timing, Timing, float]:
    """Time two callables in alternating repeats (a, b, a, b, ...) and return both
    timings and the median over repeats of time(a) / time(b).

    On a shared machine whose speed drifts over seconds, each ratio compares two
    runs made a fraction of a second apart, so the drift cancels from the ratio
    where it would not from two medians taken one after the other."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    (na, _), (nb, _) = _calibrate(fa, min_time), _calibrate(fb, min_time)
    sa, sb = [], []
    for _ in range(repeats):
        sa.append(_run(fa, na))
        sb.append(_run(fb, nb))
    ratio = statistics.median(a / b for a, b in zip(sa, sb, strict=True))
    return _summary(sa, na), _summary(sb, nb), ratio
