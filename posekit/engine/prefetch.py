"""Batches prepared ahead in one background thread, overlapping the data pipeline with the training step.

For WORKERS=0 (no loader processes): OpenCV, numpy and PyTorch release the GIL in their kernels, so the next
batch's decoding / warping / target generation runs while the network computes. Order, contents and exceptions
are those of the wrapped iterable; leaving the loop early (break, an exception, garbage collection) stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Iterator[T]):
    """Iterate `iterable` with up to `depth` items produced ahead by a daemon thread."""

    def __init__(self, iterable: Iterable[T], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, args=(iter(iterable),), daemon=True,
                                        name="posekit-prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, it: Iterator[T]) -> None:
        try:
            for item in it:
                if not self._put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Raised(e))
            return
        self._put(_DONE)

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self._finished = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Raised):
            self._finished = True
            self._thread.join()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the producer thread (items already prepared are dropped)."""
        self._finished = True
        self._stop.set()
        self._thread.join()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ raised
        if stop is not None:
            stop.set()


def prefetched(iterable: Iterable[T], depth: int) -> Iterator[T]:
    """`iterable` itself when depth is 0, else a Prefetcher over it."""
    return Prefetcher(iterable, depth) if depth > 0 else iter(iterable)
