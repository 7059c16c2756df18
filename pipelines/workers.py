"""Thread pools that run blocking model calls off the event loop, with priorities for ASR.

ASR is the bottleneck on a CPU: one model is shared by every call and decodes are queued.
Finals go before partials, and a call keeps at most one partial waiting (a newer one replaces
it), so a busy server degrades partial cadence, not turn latency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

PRIORITY_FINAL = 0
PRIORITY_SPECULATIVE = 1
PRIORITY_PARTIAL = 2


class PriorityWorkers:
    """``workers`` threads that take the lowest priority number first (FIFO within a priority)."""

    def __init__(self, workers: int, name: str) -> None:
        self._heap: list[tuple[int, int, Callable[[], Any], concurrent.futures.Future[Any]]] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if self._closed and not self._heap:
                    return
                _, _, fn, fut = heapq.heappop(self._heap)
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                fut.set_exception(exc)

    def submit(self, priority: int, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("worker pool is closed")
            heapq.heappush(self._heap, (priority, next(self._seq), fn, fut))
            self._cv.notify()
        return fut

    async def run(self, priority: int, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``fn`` in a worker; cancelling the caller cancels the job if it has not started."""
        fut = self.submit(priority, fn)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        finally:
            fut.cancel()

    def queued(self) -> int:
        with self._cv:
            return len(self._heap)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for _, _, _, fut in self._heap:
                fut.cancel()
            self._heap.clear()
            self._cv.notify_all()
        for t in self._threads:
            with contextlib.suppress(RuntimeError):
                t.join(timeout=5)
