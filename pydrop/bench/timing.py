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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


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
    timings, _ = measure_interleaved(
        [fn],
        repeats=repeats,
        min_time=min_time,
        warmup=warmup,
        max_number=max_number,
        max_total=max_total,
    )
    return timings[0]


def measure_interleaved(
    fns: Sequence[Callable[[], object]], **options: Any
) -> tuple[list[Timing], list[list[float]]]:
    """Time several callables as :func:`measure` does, in round-robin repeats
    (f0, f1, ..., f0, f1, ...): returns their timings and per-repeat samples.

    On a shared machine whose speed drifts over seconds, repeat r of every callable
    runs within a fraction of a second of the others, so ratios between them (best
    taken per repeat, as :func:`measure_paired` does) do not carry the drift that
    two measurements made one after the other would. ``options`` are those of
    :class:`Interleaved`; its ``max_total`` bounds the time of all the callables'
    repeats together."""
    run = Interleaved(fns, **options)
    run.prepare()
    while run.left:
        run.repeat()
    return run.timings()


class Interleaved:
    """:func:`measure_interleaved` in steps: :meth:`prepare` warms up and
    calibrates, each :meth:`repeat` times one round (one repeat of every callable)
    while :attr:`left` is not 0, and :meth:`timings` sums up. The benchmark suite
    runs other processes' rounds between these, so libraries measured in processes
    of their own take turns repeat by repeat, as callables in one process do."""

    def __init__(
        self,
        fns: Sequence[Callable[[], object]],
        *,
        repeats: int = 7,
        min_time: float = 0.05,
        warmup: int = 1,
        max_number: int = 1 << 20,
        max_total: float | None = None,
    ) -> None:
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.fns = list(fns)
        self.left = repeats
        self._min_time, self._warmup = min_time, warmup
        self._max_number, self._max_total = max_number, max_total
        self._numbers: list[int] = []
        self.samples: list[list[float]] = [[] for _ in self.fns]
        self.started: list[float] = []  # wall clock at the start of each round

    def prepare(self) -> None:
        for fn in self.fns:
            for _ in range(self._warmup):
                fn()
        cal = [_calibrate(fn, self._min_time, self._max_number) for fn in self.fns]
        self._numbers = [number for number, _ in cal]
        per_round = sum(elapsed for _, elapsed in cal)
        if self._max_total is not None and per_round * self.left > self._max_total:
            self.left = max(min(3, self.left), int(self._max_total / max(per_round, 1e-9)))

    def repeat(self) -> None:
        self.started.append(time.time())
        for fn, number, out in zip(self.fns, self._numbers, self.samples, strict=True):
            out.append(_run(fn, number))
        self.left -= 1

    def timings(self) -> tuple[list[Timing], list[list[float]]]:
        timings = [_summary(s, n) for s, n in zip(self.samples, self._numbers, strict=True)]
        return timings, self.samples


def measure_paired(
    fa: Callable[[], object],
    fb: Callable[[], object],
    *,
    repeats: int = 15,
    min_time: float = 0.05,
) -> tuple[Timing, Timing, float]:
    """Time two callables in alternating repeats and return both timings and the
    median over repeats of time(a) / time(b) (see :func:`measure_interleaved`)."""
    (ta, tb), (sa, sb) = measure_interleaved([fa, fb], repeats=repeats, min_time=min_time, warmup=0)
    ratio = statistics.median(a / b for a, b in zip(sa, sb, strict=True))
    return ta, tb, ratio


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
