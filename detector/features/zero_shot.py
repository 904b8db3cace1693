"""Zero-shot detection scores: pure functions of `TokenStats`, each oriented so higher = machine.

These are the published baselines the trained detector builds on, and features of it:
likelihood (Gehrmann et al. 2019; Solaiman et al. 2019), log-rank (Mitchell et al. 2023),
LRR (Su et al. 2023, DetectLLM), entropy (Gehrmann et al. 2019), Fast-DetectGPT's analytic
sampling discrepancy (Bao et al. 2024), the Binoculars ratio with one model (Hans et al. 2024),
and GLTR rank buckets (Gehrmann et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from detector.lm.token_stats import TokenStats

_EPS = 1e-6


def likelihood(stats: TokenStats) -> float:
    """Mean log p of the tokens: machine text is more probable."""
    return float(np.mean(stats.logp)) if len(stats) else float("nan")


def log_rank(stats: TokenStats) -> float:
    """Negative mean log-rank: machine text sits at low ranks."""
    return float(-np.mean(np.log(stats.rank))) if len(stats) else float("nan")


def lrr(stats: TokenStats) -> float:
    """Log-likelihood / log-rank ratio, |mean log p| / mean log rank (DetectLLM LRR)."""
    if not len(stats):
        return float("nan")
    return float(-np.mean(stats.logp) / (np.mean(np.log(stats.rank)) + _EPS))


def entropy(stats: TokenStats) -> float:
    """Negative mean predictive entropy: the model is surer around machine text."""
    return float(-np.mean(stats.entropy)) if len(stats) else float("nan")


def fast_detectgpt(stats: TokenStats) -> float:
    """Analytic sampling discrepancy: how far log p sits above what the model's own samples get."""
    if not len(stats):
        return float("nan")
    mean_expected = -stats.entropy  # E[log p] under the model
    return float((np.sum(stats.logp) - np.sum(mean_expected)) / np.sqrt(np.sum(stats.var_logp) + _EPS))


def binoculars(stats: TokenStats) -> float:
    """Negative ratio of log-perplexity to mean entropy (Binoculars with one model as both roles)."""
    if not len(stats):
        return float("nan")
    return float(-np.mean(-stats.logp) / (np.mean(stats.entropy) + _EPS))


# GLTR rank buckets: the lowest rank of each bucket after the first, one label and one colour each
# (green: the LM's top 10 ... purple: beyond 1000). Features, plots and the HTML report all use these.
GLTR_EDGES = (11, 101, 1001)
GLTR_LABELS = ("rank 1-10", "11-100", "101-1000", ">1000")
GLTR_COLOURS = ("#8fd694", "#f5e663", "#f2a65a", "#c39bd3")
GLTR_BUCKETS = tuple(zip((1, *GLTR_EDGES), (*(e - 1 for e in GLTR_EDGES), None), strict=True))  # (lo, hi) ranks


def gltr_bucket(ranks) -> np.ndarray:
    """The GLTR bucket (0-3) of each token rank (1 = the LM's top choice)."""
    return np.digitize(np.asarray(ranks), GLTR_EDGES)


def gltr_fractions(stats: TokenStats) -> np.ndarray:
    """Share of tokens with rank in top-10, 11-100, 101-1000, and beyond (GLTR)."""
    if not len(stats):
        return np.full(len(GLTR_LABELS), np.nan)
    return np.bincount(gltr_bucket(stats.rank), minlength=len(GLTR_LABELS)) / len(stats)


class ZeroShot(NamedTuple):
    """A single-number zero-shot detector: its score (higher = machine) and the feature column that
    holds it (`features.lm_features` stores it with the sign of `MACHINE_DIRECTION`)."""

    score: Callable[[TokenStats], float]
    feature: str


# The single-number zero-shot detectors, by name (the benchmark's contenders): the one table of them.
ZERO_SHOT = {
    "likelihood": ZeroShot(likelihood, "logp_mean"),
    "log_rank": ZeroShot(log_rank, "logrank_mean"),
    "lrr": ZeroShot(lrr, "lrr"),
    "entropy": ZeroShot(entropy, "entropy_mean"),
    "fast_detectgpt": ZeroShot(fast_detectgpt, "fast_detectgpt"),
    "binoculars": ZeroShot(binoculars, "binoculars"),
}
