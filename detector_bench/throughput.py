"""Throughput on this machine: texts/s and tokens/s of each contender and of the bare LM forward pass.

Measured on a fixed small set of texts with the stats cache disabled, after a warm-up, best of
`repeats` runs. The zero-shot baselines and GLTR share one LM pass (normalise + token statistics), so
each is timed as that pass plus its own computation; the detector is timed end to end
(`Detector.score`). The bare forward pass is the LM alone on pre-tokenised inputs, every token once
(windows of the LM's width, batched by length like the detector's LM wrapper): the ceiling. Every
timed run is done once as a warm-up first, then the runs are interleaved in rounds.
"""

from __future__ import annotations

import copy
import os
import resource
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from detector import Detector
from detector.features.zero_shot import ZERO_SHOT, gltr_fractions
from detector.model.detector_model import DetectorModel
from detector.text.normalize import normalize
from detector_bench.contenders import DETECTOR, GLTR, GLTR_COLUMNS, ZERO_SHOT_NAMES

BARE = "LM forward pass (bare)"
SHARED = "normalise + LM token statistics"


class OtherLoad:
    """How much CPU other processes used while a block ran (the machine may be shared): from /proc/stat's
    busy time minus this process's own CPU time and that of `pids` (children not yet waited for, such as a
    server under test, whose CPU rusage does not count yet)."""

    def __init__(self, pids: tuple[int, ...] = ()):
        self.pids = pids

    def _own(self) -> float:
        return own_seconds() + sum(process_seconds(pid) for pid in self.pids)

    def __enter__(self) -> OtherLoad:
        self.start = (time.perf_counter(), busy_seconds(), self._own())
        return self

    def __exit__(self, *exc) -> None:
        wall, busy, own = (now - then for now, then in zip((time.perf_counter(), busy_seconds(), self._own()),
                                                           self.start, strict=True))
        self.share = max(busy - own, 0.0) / (wall * (os.cpu_count() or 1)) if busy == busy else float("nan")

    def describe(self) -> str:
        if self.share != self.share:
            return "load of other processes unknown"
        return f"other processes used {self.share:.0%} of the cores meanwhile"


def busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (NaN where /proc/stat is missing)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process and of the child processes it has waited for (they are ours too)."""
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def process_seconds(pid: int) -> float:
    """CPU seconds of a running process and of the children it has waited for (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Shortest wall time over `repeats` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def throughput_table(model: DetectorModel, gltr: Pipeline, texts: list[str], repeats: int = 2) -> pd.DataFrame:
    """One row per contender (and the bare forward pass): seconds, texts/s, tokens/s, share of the bare rate."""
    engine = replace(model.scoring_engine, cache=None, progress=False)
    lm = engine.language_model()
    normalised = [normalize(t).text for t in texts]
    batches = lm.input_batches(normalised)
    uncached = copy.deepcopy(model)
    uncached.set_lm(cache=None, progress=False)
    detector = Detector(uncached)

    def gltr_p(stats: list) -> np.ndarray:
        return gltr.predict_proba(pd.DataFrame([gltr_fractions(s) for s in stats], columns=GLTR_COLUMNS))[:, 1]

    runs: dict[str, Callable[[], object]] = {
        BARE: lambda: lm.bare_forward(batches),
        SHARED: lambda: engine.token_stats([normalize(t).text for t in texts]),
        DETECTOR: lambda: detector.score(texts),
    }
    for run in runs.values():  # warm-up: every shape once
        run()
    best: dict[str, float] = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):  # interleaved rounds, so drift in machine load hits all alike
        for name, run in runs.items():
            best[name] = min(best[name], best_time(run, 1)[0])
    stats = runs[SHARED]()
    n_tokens = int(sum(len(s) for s in stats))
    timings = {BARE: best[BARE], SHARED: best[SHARED]}
    for name in ZERO_SHOT_NAMES:
        timings[name] = best[SHARED] + best_time(lambda f=ZERO_SHOT[name].score: [f(s) for s in stats], repeats)[0]
    timings[GLTR] = best[SHARED] + best_time(lambda: gltr_p(stats), repeats)[0]
    timings[DETECTOR] = best[DETECTOR]

    bare_rate = n_tokens / timings[BARE]
    rows = [{"contender": name, "n_texts": len(texts), "n_tokens": n_tokens, "seconds": seconds,
             "texts_per_s": len(texts) / seconds, "tokens_per_s": n_tokens / seconds,
             "share_of_bare_forward": n_tokens / seconds / bare_rate}
            for name, seconds in timings.items()]
    return pd.DataFrame(rows)
