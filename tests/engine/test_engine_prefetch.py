"""Prefetcher: the wrapped iterable's order and exceptions, an early exit stops the thread, a fit is unchanged."""

from __future__ import annotations

import threading
import time

import pytest

from posekit.engine.prefetch import Prefetcher, prefetched
from posekit.errors import DataError


def test_same_items_in_order() -> None:
    assert list(Prefetcher(range(50), depth=3)) == list(range(50))
    assert list(prefetched([], 2)) == []
    assert list(prefetched(range(3), 0)) == [0, 1, 2]


def test_runs_ahead_of_the_consumer() -> None:
    produced: list[int] = []

    def slow_source():
        for i in range(4):
            produced.append(i)
            yield i

    it = Prefetcher(slow_source(), depth=2)
    deadline = time.monotonic() + 5
    while len(produced) < 3 and time.monotonic() < deadline:  # 2 queued + 1 blocked in put
        time.sleep(0.01)
    assert produced == [0, 1, 2]  # nothing consumed yet, at most depth + 1 made
    assert list(it) == [0, 1, 2, 3]


def test_exception_reaches_the_consumer_after_earlier_items() -> None:
    def source():
        yield 1
        yield 2
        raise DataError("image x.jpg: cannot decode")

    it = Prefetcher(source(), depth=4)
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(DataError, match="x.jpg"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_close_stops_the_thread_of_an_endless_source() -> None:
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    it = Prefetcher(endless(), depth=2)
    assert next(it) == 0
    it.close()
    assert not any(t.name == "posekit-prefetch" and t.is_alive() for t in threading.enumerate())


def test_bad_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(range(3), depth=0)
