"""The detector's settings, each defined once: LM choices and limits, environment variable names, places.

Imports nothing heavy (no torch, numpy or scikit-learn), so the command line takes its choices from here
and `detector --help` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from platformdirs import user_cache_dir

# The packaged LM a plain `Detector()` reads with.
DEFAULT_LM = "smollm2-135m-instruct"
# "torch" runs the transformers model; "openvino" a graph of body, output layer and token statistics
# compiled from the same weights at first use (detector/lm/openvino_engine.py). Which runs fastest depends on the
# CPU: detector/lm/runtime.py measures it (detector_bench/SPEED.md).
ENGINES = ("torch", "openvino")
DEFAULT_ENGINE = "openvino"
DTYPES = ("float32", "bfloat16", "float16")
# bfloat16 uses the CPU's bf16 units; p(machine) stays within the differences SPEED.md shows.
DEFAULT_DTYPE = "bfloat16"
# 512 tokens is what detectors such as Binoculars read; more adds cost, not evidence. WINDOW is the most
# tokens one LM pass reads (longer texts are scored in overlapping windows).
DEFAULT_MAX_TOKENS = 512
WINDOW = 512


@dataclass(frozen=True)
class LMSettings:
    """How texts become token statistics, declared once: the scoring engine is built from these, and a
    pipeline's feature extractor takes exactly these as its parameters.

    lm : LM name: the packaged default, another packaged name, or any transformers model id or path.
    device, dtype : where and in what precision to run the LM.
    max_tokens : only the first `max_tokens` tokens of a text are scored.
    cache : "default" (the user cache directory), a path to a cache file, or None to keep nothing.
    chunk_size : texts per LM call; the cache is written after each, so an interrupted run resumes.
    progress : show a progress bar over texts.
    engine : "torch" or "openvino" (ENGINES); None: this install's default engine.
    """

    lm: str = DEFAULT_LM
    device: str = "cpu"
    dtype: str = DEFAULT_DTYPE
    max_tokens: int = DEFAULT_MAX_TOKENS
    cache: str | None = "default"
    chunk_size: int = 64
    progress: bool = False
    engine: str | None = None

# Environment variables the library reads (each names a place or a secret, never a scoring parameter).
CACHE_DIR_ENV = "DETECTOR_CACHE_DIR"
STATS_CACHE_ENV = "DETECTOR_STATS_CACHE"
TOKEN_ENV = "DETECTOR_TOKEN"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
INTERRUPT_AT_ENV = "DETECTOR_TEST_INTERRUPT_AT"  # tests only: a moment to send SIGINT at (detector.core.interrupts)

# mlflow's own default when nothing is configured; also what `detector train` uses.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# The shipped default model (model.skops, its card, novelty.npz); the card of a model, in its folder.
DEFAULT_MODEL_DIR = Path(str(resources.files("detector") / "default_model"))
CARD_FILE = "model_card.json"

# Dequantised LM weights, OpenVINO graphs and compiled blobs, the runtime choice and the stats cache.
CACHE_DIR = Path(os.environ.get(CACHE_DIR_ENV, user_cache_dir("mgt-detector")))


def cpu_threads() -> int:
    """Threads for the LM on this machine: $OMP_NUM_THREADS where set (as torch honours it), else the
    cores this process may run on."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
