"""Features of the surprisal *series*, not just its level: how log p moves from token to token, its
tails, and how it compares with what the text's own length of compressed bytes would predict.

All are functions of one `TokenStats` (and, for the zlib score, the text), so they cost no LM pass.
Sources of the ideas (definitions here are this project's own):
- surprisal dynamics: skew, kurtosis, first differences and lag-1 autocorrelation of the surprisal
  series, and the spread of the predictive entropy (DivEye, Basani & Chen 2025);
- per-token standardised surprisal (log p + H) / sd, the per-token form of Fast-DetectGPT's normaliser
  (Bao et al. 2024);
- Min-K% log p: the mean of the k% least likely tokens (Shi et al. 2024, Min-K% Prob);
- log p per zlib-compressed byte: the LM's surprise against a model-free one (Carlini et al. 2021);
- ordinal-pattern (permutation) entropy of the surprisal series at several scales (Bandt & Pompe
  2002; multiscale, as in Lastde, Xu et al. 2025).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from detector.lm.token_stats import TokenStats

_EPS = 1e-6
# Series shorter than this give no dynamics (NaN: the classifier imputes them).
MIN_SERIES = 8
ORDINAL_ORDER = 3
ORDINAL_SCALES = (1, 2, 4)

DYNAMICS_FEATURES = {
    "surprisal_skew": "skewness of token surprisal (-log p)",
    "surprisal_kurtosis": "excess kurtosis of token surprisal",
    "surprisal_diff_std": "spread (std) of the change in surprisal from one token to the next",
    "surprisal_acf1": "lag-1 autocorrelation of token surprisal",
    "entropy_std": "spread (std) of the predictive entropy",
    "zsurprisal_mean": "mean per-token standardised log p, (log p + H) / sd (Fast-DetectGPT per token)",
    "zsurprisal_std": "spread (std) of the per-token standardised log p",
    "mink10_logp": "mean log p of the 10% least likely tokens (Min-K%)",
    "mink25_logp": "mean log p of the 25% least likely tokens (Min-K%)",
    "zlib_ratio": "total surprisal (nats) per zlib-compressed byte of the text",
    **{f"ordinal_entropy_s{s}": f"ordinal-pattern entropy of the surprisal series, order {ORDINAL_ORDER}, "
                                f"every {s} token(s)" for s in ORDINAL_SCALES},
}


def _standardised_moments(x: np.ndarray) -> tuple[float, float]:
    """(skewness, excess kurtosis) of x; NaN for a constant series."""
    centred = x - x.mean()
    sd = centred.std()
    if sd < _EPS:
        return float("nan"), float("nan")
    z = centred / sd
    return float(np.mean(z**3)), float(np.mean(z**4) - 3.0)


def _lag1_autocorrelation(x: np.ndarray) -> float:
    a, b = x[:-1] - x.mean(), x[1:] - x.mean()
    denominator = float(np.sum((x - x.mean()) ** 2))
    return float(np.sum(a * b) / denominator) if denominator > _EPS else float("nan")


def ordinal_entropy(x: np.ndarray, order: int = ORDINAL_ORDER, scale: int = 1) -> float:
    """Normalised entropy (0-1) of the ordinal patterns of `order` values `scale` apart; NaN when the
    series has too few patterns to estimate it."""
    x = np.asarray(x, dtype=float)[::scale]
    n = len(x) - order + 1
    if n < 2 * math.factorial(order):
        return float("nan")
    windows = np.lib.stride_tricks.sliding_window_view(x, order)
    # A pattern is the permutation that sorts its window (ties broken by position, stable).
    patterns = np.argsort(windows, axis=1, kind="stable")
    codes = patterns @ (order ** np.arange(order))
    counts = np.unique(codes, return_counts=True)[1]
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)) / math.log(math.factorial(order)))


def _min_k(logp: np.ndarray, share: float) -> float:
    k = max(1, int(math.ceil(share * len(logp))))
    return float(np.mean(np.partition(logp, k - 1)[:k]))


def dynamics_features(stats: TokenStats, text: str) -> dict[str, float]:
    """The `DYNAMICS_FEATURES` of one text (NaN where its series is too short to say)."""
    out = dict.fromkeys(DYNAMICS_FEATURES, float("nan"))
    n = len(stats)
    if not n:
        return out
    logp = stats.logp.astype(float)
    scored_text = text[: int(stats.end[-1])]  # only the part the LM read (its first max_tokens tokens)
    surprisal = -logp
    z = (logp + stats.entropy) / np.sqrt(stats.var_logp.astype(float) + _EPS)
    out.update({
        "zsurprisal_mean": float(np.mean(z)),
        "zsurprisal_std": float(np.std(z)),
        "mink10_logp": _min_k(logp, 0.10),
        "mink25_logp": _min_k(logp, 0.25),
        "zlib_ratio": float(np.sum(surprisal) / max(1, len(zlib.compress(scored_text.encode("utf-8", "replace"), 9)))),
    })
    if n >= MIN_SERIES:
        out["surprisal_skew"], out["surprisal_kurtosis"] = _standardised_moments(surprisal)
        out["surprisal_diff_std"] = float(np.std(np.diff(surprisal)))
        out["surprisal_acf1"] = _lag1_autocorrelation(surprisal)
        out["entropy_std"] = float(np.std(stats.entropy))
        for s in ORDINAL_SCALES:
            out[f"ordinal_entropy_s{s}"] = ordinal_entropy(surprisal, scale=s)
    return out
