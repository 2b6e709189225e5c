"""Wall-clock timing for the labs' growth experiments (not for grading: tests never time)."""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from typing import Any

from ._validate import describe, require_int, require_number


def time_call(fn: Callable[..., Any], *args: Any, repeat: int = 5,
              min_time: float = 0.02, **kwargs: Any) -> float:
    """Median seconds per call of ``fn(*args, **kwargs)``.

    Each of ``repeat`` measurements runs the call enough times in a row to last at least
    ``min_time`` seconds (as ``timeit`` does), so fast functions are timed precisely too.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a function, got {describe(fn)}")
    require_int("repeat", repeat, minimum=1)
    require_number("min_time", min_time, minimum=0.0)
    timer = timeit.Timer(lambda: fn(*args, **kwargs))
    number, elapsed = 1, timer.timeit(1)
    while elapsed < min_time:
        number *= 2 if elapsed == 0 else max(2, min(10, int(min_time / elapsed) + 1))
        elapsed = timer.timeit(number)
    samples = [elapsed] + [timer.timeit(number) for _ in range(repeat - 1)]
    return statistics.median(samples) / number
