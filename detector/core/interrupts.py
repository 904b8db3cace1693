"""Interrupt points: where the tests of Ctrl-C handling make a Ctrl-C land, deterministically.

A real Ctrl-C lands wherever the process happens to be; a test cannot wait for it to land at a chosen
moment without racing. The moments that matter (start-up, LM loading, after the first record, while a
record is written, shutdown) call `interrupt_point(name)`, which sends this process SIGINT when
$DETECTOR_TEST_INTERRUPT_AT names that moment, exactly as a Ctrl-C would, and otherwise does nothing.
"""

from __future__ import annotations

import os
import signal

from detector.core.settings import INTERRUPT_AT_ENV

POINTS = ("start-up", "lm-loading", "first-record", "write", "shutdown")


def interrupt_point(name: str) -> None:
    """SIGINT to this process if $DETECTOR_TEST_INTERRUPT_AT is `name` (one of POINTS)."""
    if os.environ.get(INTERRUPT_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGINT)
