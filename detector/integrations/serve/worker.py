"""The one thread that runs the scoring calls, and how its outcomes reach the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any


def settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    """Give a future its result or exception, unless it already has one (cancelled at its deadline)."""
    if not future.done():
        (future.set_exception if failed else future.set_result)(outcome)


def settle_from_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future, outcome: Any) -> None:
    """`settle`, called from another thread; an Exception as outcome is raised to whoever awaits."""
    with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody is waiting
        loop.call_soon_threadsafe(settle, future, outcome, isinstance(outcome, Exception))


class Worker:
    """One daemon thread running the scoring calls. Unlike a ThreadPoolExecutor's thread, a batch still in
    progress at exit does not hold the process (a long batch on a busy machine takes minutes)."""

    def __init__(self):
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="detector-worker", daemon=True)
        self.thread.start()

    def run(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future:
        """fn(arg) in the worker thread; the future gets its return value or its exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.calls.put((fn, arg, loop, future))
        return future

    async def stop(self, wait_s: float) -> bool:
        """Finish the call in progress (waiting at most wait_s); False if it is still running."""
        self.calls.put(None)
        await asyncio.to_thread(self.thread.join, wait_s)
        return not self.thread.is_alive()

    def _loop(self) -> None:
        while (call := self.calls.get()) is not None:
            fn, arg, loop, future = call
            try:
                outcome = fn(arg)
            except Exception as err:
                outcome = err
            settle_from_thread(loop, future, outcome)
