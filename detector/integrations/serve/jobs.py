"""A queued request and what the worker knows of time: its deadline, the pace of scoring here, and the
answer a request gets when it cannot be scored in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from detector.core.settings import DEFAULT_MAX_TOKENS
from detector.integrations.serve.body import Parsed
from detector.integrations.serve.schemas import ApiError

# A request is refused rather than started when less than this share of its estimated time is left: the
# estimate is an average, and refusing work that would have finished is worse than starting some that won't.
MARGIN = 0.5


@dataclass
class Job:
    parsed: Parsed
    render: bool
    future: asyncio.Future
    deadline: float  # time.monotonic() by which the answer is due: its arrival + --timeout

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Pace:
    """Seconds per unit of work, learned from the requests scored so far (None before the first).

    A text's units: the characters the LM reads (at most `LM_CHARS`, ~4 per token) plus `PER_TEXT` for what
    every text costs whatever its length (features, classifier). Read by the event loop, written by the
    worker: one float, replaced whole."""

    LM_CHARS = 4 * DEFAULT_MAX_TOKENS
    PER_TEXT = 500

    def __init__(self) -> None:
        self.seconds_per_unit: float | None = None

    @classmethod
    def units(cls, texts: Sequence[str]) -> int:
        return sum(min(len(t), cls.LM_CHARS) + cls.PER_TEXT for t in texts)

    def seconds(self, texts: Sequence[str]) -> float:
        """The estimated time to score `texts`; 0 while nothing is known."""
        return 0.0 if self.seconds_per_unit is None else self.seconds_per_unit * self.units(texts)

    def learn(self, texts: Sequence[str], seconds: float) -> None:
        rate = seconds / max(self.units(texts), 1)
        known = self.seconds_per_unit
        self.seconds_per_unit = rate if known is None else 0.8 * known + 0.2 * rate

    def hopeless(self, job: Job) -> bool:
        """Whether `job` cannot be answered by its deadline if started now."""
        return job.left() <= MARGIN * self.seconds(job.parsed.texts)


def too_late(job: Job, timeout_s: float) -> ApiError:
    return ApiError(504, f"not scored within {timeout_s:g} s (--timeout); retry with fewer or shorter texts, "
                         "or when the server is less busy")
