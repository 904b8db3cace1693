"""Which engine runs the LM (OpenVINO or torch), what keys its statistics in the cache, and loading it in torch."""

from __future__ import annotations

from detector.core.errors import LMUnavailable
from detector.core.settings import DEFAULT_DTYPE, DEFAULT_ENGINE, ENGINES, WINDOW
from detector.lm import openvino_engine
from detector.lm.packaged import PACKAGED, packaged_folder, packaged_revision
from detector.lm.token_stats import STATS_VERSION


def stats_key(revision: str, dtype: str, max_tokens: int, window: int = WINDOW, engine: str = DEFAULT_ENGINE) -> str:
    """The stats-cache key: model revision, engine and precision, windowing and stats version. Token
    statistics of different engines or precisions differ slightly, so they never share a key."""
    return f"{revision}|{engine}-{dtype}|w{window}|m{max_tokens}|s{STATS_VERSION}"


def known_stats_key(name: str, dtype: str, max_tokens: int, window: int = WINDOW,
                    engine: str = DEFAULT_ENGINE) -> str | None:
    """The stats-cache key of a packaged LM without loading it (None for others: their revision is
    only known once loaded), so that fully cached texts need no LM at all."""
    if name not in PACKAGED:
        return None
    return stats_key(packaged_revision(name), dtype, max_tokens, window, engine)


def default_engine(device: str = "cpu", dtype: str = DEFAULT_DTYPE) -> str:
    """DEFAULT_ENGINE where it can run; torch for what only torch runs (a GPU, float16)."""
    if DEFAULT_ENGINE == "openvino" and (device != "cpu" or dtype not in openvino_engine.PRECISION_HINTS
                                         or not openvino_engine.available()):
        return "torch"
    return DEFAULT_ENGINE


def engine_name(engine: str | None, device: str, dtype: str) -> str:
    """The engine that runs: `engine` where one is chosen, else this install's default where it can run."""
    return engine or default_engine(device, dtype)


def check_engine(engine: str) -> str:
    """`engine` if this install can run it, else a clear error."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    if engine == "openvino" and not openvino_engine.available():
        raise LMUnavailable("the openvino engine needs the openvino package: run `pip install openvino==2026.4.1`")
    return engine


def load_torch(name: str, dtype: str):
    """(torch model, transformers tokenizer, revision) of LM `name` (packaged, hub id or path)."""
    from detector.lm import torch_engine

    if name in PACKAGED:
        model, tokenizer, _ = torch_engine.load_folder_or_hub(packaged_folder(name), dtype)
        return model, tokenizer, packaged_revision(name)
    return torch_engine.load_hub_or_path(name, dtype, LMUnavailable)
