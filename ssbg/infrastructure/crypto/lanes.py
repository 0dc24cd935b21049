"""Worker lanes: one thread each, running submitted calls in order, results as asyncio futures.

``hashlib`` (inputs over 2 KiB) and ``cryptography``'s AEAD release the GIL, so hashing and
AES-GCM on separate lanes run in parallel with each other and with the event loop. Used by the
streaming encryption of an upload, the streaming decryption of a restore and the local object
store's reads.
"""

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Lane:
    """One worker thread running submitted calls in order, results as asyncio futures.

    Leaner than a one-thread ``ThreadPoolExecutor`` behind ``run_in_executor``: a job is a
    tuple on a ``SimpleQueue`` and one ``call_soon_threadsafe`` brings the result back, so
    the worker holds the GIL for less time between two segments (measured: +6% throughput).
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        future: asyncio.Future[T] = self.future()
        self.enqueue(future, fn, *args)
        return future

    def future(self) -> "asyncio.Future[Any]":
        """A future for a job that another lane will :meth:`enqueue` (call on the loop)."""
        return self._loop.create_future()

    def enqueue(self, future: "asyncio.Future[Any]", fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn`` to settle ``future`` (from :meth:`future`); callable from any thread,
        so one lane hands its result straight to the next without a trip through the loop."""
        self._jobs.put((future, fn, args))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            try:
                outcome: tuple[Any, BaseException | None] = (fn(*args), None)
            except BaseException as exc:
                outcome = (None, exc)
            try:
                self._loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:
                return  # the loop is closed: an aborted upload's last queued jobs

    def close(self) -> None:
        """Let the thread finish the jobs already queued, then end."""
        self._jobs.put(None)


_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: "asyncio.Future[Any]", result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled while the worker was busy
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
