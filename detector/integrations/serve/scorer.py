"""The bounded queue in front of the one worker thread: each request carries its deadline, the worker takes
what is waiting in batches (one features/classifier call per batch) and never starts what would surely miss
its deadline.

The LM itself gets one window per pass whatever the batch (detector/lm/language_model.py, `batch_tokens=0`): batching
requests saves the classifier's per-call cost, and a text's answer is the same as when it is scored alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Any

from detector.facade.detector import Detector
from detector.integrations.serve.answers import failed, score_batch
from detector.integrations.serve.body import Parsed
from detector.integrations.serve.config import ServeConfig
from detector.integrations.serve.jobs import Job, Pace, too_late
from detector.integrations.serve.schemas import ApiError
from detector.integrations.serve.worker import Worker, settle

log = logging.getLogger("detector.integrations.serve")

SHUTDOWN_WAIT_S = 10.0  # at exit, how long a batch in progress may finish


class Scorer:
    """Owns the detector: one worker thread, fed by a bounded queue of jobs with deadlines."""

    def __init__(self, detector: Detector, config: ServeConfig):
        self.detector = detector
        self.config = config
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=config.queue_size)
        self.held: collections.deque[Job] = collections.deque()  # taken from the queue, for the next batch
        self.pace = Pace()
        self.worker = Worker()
        self.task: asyncio.Task | None = None
        self.stopped = False  # the worker thread has ended

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        waiting = [*self.held, *(self.queue.get_nowait() for _ in range(self.queue.qsize()))]
        for job in waiting:  # waiting requests get an answer, not a dropped connection
            settle(job.future, ApiError(503, "shutting down", {"Retry-After": str(self.config.retry_after_s)}), True)
        self.stopped = await self.worker.stop(SHUTDOWN_WAIT_S)

    def waiting(self) -> int:
        return self.queue.qsize() + len(self.held)

    async def submit(self, parsed: Parsed, render: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        job = Job(parsed, render, loop.create_future(), time.monotonic() + self.config.timeout_s)
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise ApiError(503, f"busy: {self.config.queue_size} requests are already waiting; retry later",
                           {"Retry-After": str(self.config.retry_after_s)}) from None
        try:
            # At the deadline the future is cancelled, so the worker skips the job if it has not started it.
            return await asyncio.wait_for(job.future, max(job.left(), 0))
        except asyncio.TimeoutError:
            raise too_late(job, self.config.timeout_s) from None

    async def _next(self, wait_s: float | None) -> Job | None:
        """The next job (held over first); None if none came within wait_s (None: wait for one)."""
        if self.held:
            return self.held.popleft()
        if wait_s is None:
            return await self.queue.get()
        if self.queue.empty():
            try:
                return await asyncio.wait_for(self.queue.get(), max(wait_s, 0))
            except asyncio.TimeoutError:
                return None
        return self.queue.get_nowait()

    async def _batch(self) -> list[Job]:
        """Jobs waiting now (up to batch_texts texts), lingering batch_wait_s for more: clients just answered
        send their next request within milliseconds. A job that would make the batch outlast the earliest
        deadline in it is held over for the next batch."""
        batch = [await self._next(None)]
        texts = list(batch[0].parsed.texts)
        linger_until = time.monotonic() + self.config.batch_wait_s
        while len(texts) < self.config.batch_texts:
            job = await self._next(linger_until - time.monotonic())
            if job is None:
                break
            if job.future.done():  # timed out while waiting
                continue
            if self.pace.seconds(texts + job.parsed.texts) > min(j.left() for j in batch):
                self.held.appendleft(job)
                break
            batch.append(job)
            texts += job.parsed.texts
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [job for job in await self._batch() if not job.future.done()]
            for job in batch:
                if self.pace.hopeless(job):  # answer now: it would miss its deadline anyway
                    settle(job.future, too_late(job, self.config.timeout_s), True)
            batch = [job for job in batch if not job.future.done()]
            if not batch:
                continue
            try:  # the worker settles each job as it is answered
                await self.worker.run(score_batch, (self.detector, self.config, self.pace, batch, loop))
            except Exception as err:  # keep draining: a dead worker would leave every request to time out
                log.exception("the worker failed")
                for job in batch:
                    settle(job.future, failed(err), True)
