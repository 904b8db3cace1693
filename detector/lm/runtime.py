"""Which LM runtime runs fastest on this machine: measured once, checked against the reference, remembered.

The candidates run the LM at the model's trained precision: OpenVINO (one stream, as many threads as
the process has cores: the LATENCY set-up, fastest for one text at a time in the measurements of
detector_bench/SPEED.md) and torch. Each scores a fixed snippet (one warm-up, then the best of a few
runs); the fastest is kept only if its per-token statistics on the snippet agree with those of the
reference engine (the one the model card records) within `TOLERANCE`, else the reference runs. The
choice is remembered in the user cache (runtime.json), keyed by CPU model, library versions, LM and
precision, so only the first use on a machine measures. The stats-cache key names the engine and
precision that ran (detector.lm.language_model.stats_key), so statistics of one runtime are never served as another's.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from detector.core.settings import CACHE_DIR, cpu_threads

log = logging.getLogger(__name__)

CHOICE_FILE = "runtime.json"
# Bump when the candidates, the snippet or the check change: part of the key, so old choices are redone.
CHOICE_VERSION = 1

# A runtime may differ from the reference by at most this, per token of the snippet: the mean |change of
# log p| and of entropy, in nats. Derived from differences measured on the seed and two human paragraphs
# (AMD EPYC, 2026-12-01): bfloat16 against float32 is 0.028 (openvino) and 0.034 (torch) mean |change of
# log p|, 0.024 and 0.028 of entropy; torch bfloat16 against openvino bfloat16, two independent roundings
# of that size, 0.042 and 0.035; the float32 engines agree to 1e-5 and openvino on 1 or 2 threads exactly.
# So 0.05 admits another bfloat16 runtime (whose effect on the shipped model detector_bench/SPEED.md shows:
# AUROC within 0.005) and refuses anything computing something else.
TOLERANCE = {"logp": 0.05, "entropy": 0.05}

# The snippet every candidate scores (our own text, 148 tokens: long enough to time, short enough
# to keep the first use quick).
SNIPPET = (
    "The library on Mill Street will close for three weeks in March while the roof is replaced. Staff "
    "said the work had been planned for two years, but the money only arrived in the autumn, after the "
    "council moved funds from a road scheme that had stalled. Readers can return books at the sports "
    "centre, where a small lending shelf will be kept, and the mobile library will stop outside the "
    "school on Tuesdays and Fridays. The children's reading group will meet in the church hall. Some "
    "residents asked why the closure could not wait until the summer, when fewer people use the "
    "building; the council replied that roofers are easier to book in spring and that the old roof "
    "would not survive another winter without leaking onto the local history collection."
)


CANDIDATES = ("openvino", "torch")


@dataclass
class Choice:
    """The runtime kept for one machine, LM and precision, with the measurements that chose it."""

    engine: str
    reference: str  # the reference engine the statistics were checked against
    tokens_per_s: dict[str, float]  # by engine
    differences: dict[str, dict[str, float]]  # by engine: mean |change| per token against the reference
    fell_back: bool  # the fastest engine failed the check and the reference was kept


def cpu_name() -> str:
    """The CPU's model name (e.g. "AMD EPYC 9654 96-Core Processor"), as the OS reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def choice_key(lm: str, dtype: str, reference: str, threads: int) -> str:
    """What a choice depends on: the CPU, the threads available, the runtimes' versions, LM and precision."""
    versions = ",".join(f"{p}={_version(p)}" for p in ("openvino", "torch", "transformers"))
    return f"{cpu_name()}|{threads} threads|{versions}|{lm}|{dtype}|ref {reference}|v{CHOICE_VERSION}"


def difference(stats, reference) -> dict[str, float]:
    """Mean |change| per token of each checked statistic between two `TokenStats` of the same text."""
    if len(stats) != len(reference):
        return dict.fromkeys(TOLERANCE, float("inf"))
    return {k: float(np.mean(np.abs(getattr(stats, k) - getattr(reference, k)))) for k in TOLERANCE}


def within_tolerance(diff: dict[str, float]) -> bool:
    return all(diff[k] <= limit for k, limit in TOLERANCE.items())


def pick(rates: dict[str, float], diffs: dict[str, dict[str, float]], reference: str) -> tuple[str, bool]:
    """The fastest candidate whose statistics agree with the reference's; the reference otherwise.
    Returns (chosen, whether the fastest was refused)."""
    fastest = max(rates, key=rates.get)
    if within_tolerance(diffs[fastest]):
        return fastest, False
    return reference, True


def read_choices(path: Path) -> dict[str, dict]:
    """The remembered choices; an unreadable file is no choice (it is measured again), never an error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(path: Path, key: str) -> Choice | None:
    entry = read_choices(path).get(key)
    try:
        return Choice(**entry) if isinstance(entry, dict) else None
    except TypeError:  # an entry of another shape
        return None


def remember(path: Path, key: str, choice: Choice) -> None:
    """Add `choice` to the file atomically (a failure to write only means measuring again next time)."""
    choices = read_choices(path)
    choices[key] = asdict(choice)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".runtime-", suffix=".json",
                                         delete=False, encoding="utf-8") as tmp:
            json.dump(choices, tmp, indent=2)
        os.replace(tmp.name, path)
    except OSError as err:
        log.warning("warning: cannot remember the runtime choice in %s (%s)", path, err)


def _rate(lm, repeats: int = 3) -> float:
    """Tokens per second of `lm` on the snippet: one warm-up, then the best of `repeats`."""
    lm.token_stats([SNIPPET])
    n = len(lm.tokenize(SNIPPET)[0])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        lm.token_stats([SNIPPET])
        best = min(best, time.perf_counter() - started)
    return n / best


def measure(lm: str, dtype: str, reference: str) -> Choice:
    """Time every engine on the snippet and check the fastest against the reference engine."""
    from detector.core.errors import LMUnavailable
    from detector.lm import openvino_engine
    from detector.lm.language_model import LanguageModel

    reference_lm = LanguageModel(lm, dtype=dtype, engine=reference)
    reference_stats = reference_lm.token_stats([SNIPPET])[0]
    rates, diffs = {}, {}
    for engine in dict.fromkeys([reference, *CANDIDATES]):
        if engine == "openvino" and (dtype not in openvino_engine.PRECISION_HINTS or not openvino_engine.available()):
            continue
        try:
            model = reference_lm if engine == reference else LanguageModel(lm, dtype=dtype, engine=engine)
        except (LMUnavailable, ImportError) as err:  # e.g. torch not installed: not a candidate here
            log.info("runtime %s unavailable: %s", engine, err)
            continue
        rates[engine] = _rate(model)
        diffs[engine] = difference(model.token_stats([SNIPPET])[0], reference_stats)
        del model
    chosen, fell_back = pick(rates, diffs, reference)
    return Choice(chosen, reference, rates, diffs, fell_back)


def decides_engine(params: dict, trained: str) -> bool:
    """Whether the runtime choice picks the LM engine of a model whose feature extractor has the settings
    `params` and which was trained on `trained` statistics (e.g. "openvino-bfloat16"): where the model
    leaves its engine open (the shipped one does) and its packaged LM runs on the CPU at the trained
    precision, with the trained engine as this install's default."""
    from detector.lm.engines import engine_name
    from detector.lm.packaged import PACKAGED

    trained_engine, _, trained_dtype = trained.rpartition("-")
    device, dtype = params.get("device"), params.get("dtype")
    return (params.get("engine") is None and device == "cpu" and params.get("lm") in PACKAGED
            and trained_dtype == dtype and trained_engine == engine_name(None, device, dtype))


def remembered_choice(lm: str, dtype: str, reference_engine: str, cache_dir: Path = CACHE_DIR) -> Choice | None:
    """The choice made for this machine, LM and precision, or None where none was made yet."""
    return remembered(cache_dir / CHOICE_FILE, choice_key(lm, dtype, reference_engine, cpu_threads()))


def choose(lm: str, dtype: str, reference_engine: str, cache_dir: Path = CACHE_DIR) -> Choice:
    """The remembered choice for this machine, else measured now (once: seconds) and remembered."""
    from detector.lm.packaged import preparing

    key = choice_key(lm, dtype, reference_engine, cpu_threads())
    path = cache_dir / CHOICE_FILE
    choice = remembered(path, key)
    if choice is None:
        with preparing(f"the language model {lm} for this CPU ({cpu_name()}): its weights and OpenVINO graph "
                       "were not yet made, and the fastest runtime, measured"):
            choice = measure(lm, dtype, reference_engine)
        remember(path, key, choice)
    return choice
