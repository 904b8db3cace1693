"""The conformal guarantee of a calibration profile: thresholds set on a user's human texts, and what they promise.

With n human scores, the threshold at rank ceil((n+1)(1-alpha)) of their sorted scores calls a new human
text `machine` (p > threshold) with probability at most alpha, over the draw of the calibration texts,
when the new text is exchangeable with them (split conformal: Vovk et al.; Angelopoulos & Bates, "A gentle
introduction to conformal prediction", 2021). The realised rate of one profile varies around that; its
upper 95% bound is the Clopper-Pearson bound on the calibration humans above the threshold (for a
threshold at an order statistic this is exactly the 95% quantile of its false-positive rate).
Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.core.errors import CalibrationError
from detector.decision.lengths import THRESHOLD_EDGES
from detector.decision.thresholds import Thresholds

CONFIDENCE = 0.95  # of the binomial (Clopper-Pearson) bound
BORDERLINE_FPR = 0.05
# A warning when more of the "humans" than this lie above the model's own borderline threshold (which
# 5% of its validation humans exceed): humans of a domain the model never saw put ~20% even above its
# machine threshold (forum answers, issue 20), so only a majority says "these look like machine text".
MACHINE_LIKE_SHARE = 0.5
_EPS = 1e-9  # (n+1)(1-alpha) computed in floating point: 0.99 * 100 must count as 99, not 99.0000001


def minimum_humans(alpha: float) -> int:
    """The fewest human texts for which the conformal rank ceil((n+1)(1-alpha)) is at most n."""
    check_rate(alpha, "alpha")
    return max(1, math.ceil(1 / alpha - 1 - _EPS))


def conformal_rank(n: int, alpha: float) -> int:
    """1-based rank, among n sorted human scores, of the split-conformal threshold for rate alpha."""
    return math.ceil((n + 1) * (1 - alpha) - _EPS)


def conformal_threshold(human_p: np.ndarray, alpha: float) -> float:
    """The score at the conformal rank: `p > threshold` calls at most alpha of exchangeable humans
    `machine`, in expectation. CalibrationError when there are too few scores for alpha."""
    scores = np.sort(np.asarray(human_p, dtype=float))
    needed = minimum_humans(alpha)
    if len(scores) < needed:
        raise CalibrationError(too_few_message(len(scores), alpha))
    return float(scores[conformal_rank(len(scores), alpha) - 1])


def fpr_upper_bound(n_above: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen as n_above of n."""
    from scipy.stats import beta

    if n <= 0:
        return 1.0
    if n_above >= n:
        return 1.0
    return float(beta.ppf(confidence, n_above + 1, n - n_above))


def promisable_rates(n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(expected, at `confidence`): the lowest false-positive rates n human texts can promise, the
    first by the conformal rule (1/(n+1)), the second with every one of them below the threshold."""
    return 1 / (n + 1), fpr_upper_bound(0, n, confidence)


def humans_for_confidence(alpha: float, confidence: float = CONFIDENCE) -> int:
    """Human texts needed to promise alpha at `confidence` (none above the threshold): about 3/alpha."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - alpha))


def too_few_message(n: int, alpha: float) -> str:
    expected, _ = promisable_rates(n) if n else (1.0, 1.0)
    return (f"{n} usable human text(s) cannot set a threshold for {alpha:.2%} false positives: the "
            f"conformal rule needs at least {minimum_humans(alpha)} (the lowest rate {n} can promise is "
            f"{expected:.2%}); add human texts or ask a higher --fpr")


def check_rate(rate: float, name: str) -> None:
    """CalibrationError unless `rate` lies strictly between 0 and 1."""
    if not (isinstance(rate, (int, float)) and 0 < rate < 1):
        raise CalibrationError(f"{name} must be a rate between 0 and 1 (exclusive), not {rate!r}")


@dataclass
class Band:
    """The thresholds of one length band and what they were set on."""

    from_tokens: int
    n_humans: int  # human texts of this band
    machine: float
    borderline: float
    set_on: str  # "own" (this band's humans), or the band it borrowed from ("all lengths", "64+ tokens")
    humans_above: int  # calibration humans of this band above its machine threshold
    fpr_upper: float  # Clopper-Pearson upper bound on those (NaN for a borrowed threshold: no own humans)


@dataclass
class Guarantee:
    """What the human texts promise at the machine threshold, pooled over the bands."""

    n_humans: int
    fpr: float  # expected rate at most this (split conformal)
    humans_above: int
    fpr_upper: float  # upper `confidence` bound on the realised rate
    confidence: float
    promisable_fpr: float  # the lowest expected rate n can promise
    promisable_fpr_at_confidence: float
    humans_needed_at_confidence: int  # to promise `fpr` at `confidence`
    note: str  # one line for people


def length_thresholds(human_p: np.ndarray, n_tokens: np.ndarray, fpr: float, borderline_fpr: float,
                      min_tokens: int, edges: Sequence[int] = THRESHOLD_EDGES,
                      min_humans: int | None = None) -> tuple[Thresholds, list[Band]]:
    """Conformal thresholds for texts shorter than `edges[0]` and within each band `edges` start.

    A band with fewer than `min_humans` humans (default: the conformal minimum for `fpr`) keeps the
    thresholds of the band below, as `Thresholds.worst_group_by_length` does; the first band then uses
    all lengths. The guarantee holds band by band where a band has its own thresholds; a borrowed
    threshold was set on shorter texts, whose scores spread more (a looser, not a proven, promise).
    """
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    least = max(minimum_humans(fpr), minimum_humans(borderline_fpr))
    if len(human_p) < least:
        raise CalibrationError(too_few_message(len(human_p), fpr))
    needed = max(least, min_humans or 0)
    starts = [int(min_tokens), *(int(e) for e in edges if e > min_tokens)]
    bands: list[Band] = []
    source: Band | None = None  # the last band whose thresholds were set on humans
    for lo, hi in zip(starts, [*starts[1:], np.inf], strict=True):
        inside = (n_tokens >= lo) & (n_tokens < hi)
        if inside.sum() >= needed or source is None:
            scores, set_on = (human_p[inside], "own") if inside.sum() >= needed else (human_p, "all lengths")
            machine, borderline = conformal_threshold(scores, fpr), conformal_threshold(scores, borderline_fpr)
            above = int((scores > machine).sum())
            band = Band(lo, int(inside.sum()), machine, borderline, set_on, above, fpr_upper_bound(above, len(scores)))
            source = band
        else:
            above = int((human_p[inside] > source.machine).sum())
            borrowed = f"{source.from_tokens}+ tokens" if source.set_on == "own" else source.set_on
            band = Band(lo, int(inside.sum()), source.machine, source.borderline, borrowed, above, float("nan"))
        bands.append(band)
    first = bands[0]
    thresholds = Thresholds(first.machine, fpr, first.borderline, borderline_fpr, int(min_tokens),
                            [[b.from_tokens, b.machine, b.borderline] for b in bands[1:]])
    return thresholds, bands


def guarantee(human_p: np.ndarray, n_tokens: np.ndarray, thresholds: Thresholds,
              confidence: float = CONFIDENCE) -> Guarantee:
    """The promise the calibration humans give at `thresholds`' machine rule, with its binomial bound."""
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    n = len(human_p)
    machine = np.array([thresholds.for_length(int(t))[0] for t in n_tokens])
    above = int((human_p > machine).sum())
    upper = fpr_upper_bound(above, n, confidence)
    expected, at_confidence = promisable_rates(n, confidence)
    needed = humans_for_confidence(thresholds.machine_fpr, confidence)
    alpha = thresholds.machine_fpr
    note = (f"expected false-positive rate at most {alpha:.1%} on human texts like these ({n} set the thresholds, "
            f"{above} lie above); {confidence:.0%} upper bound {upper:.1%}")
    if n < needed:
        note += (f"; {n} are too few to promise {alpha:.1%} at {confidence:.0%} confidence (about {needed} needed; "
                 f"{n} can promise {at_confidence:.1%})")
    return Guarantee(n, alpha, above, upper, confidence, expected, at_confidence, needed, note)


def machine_like_share(human_p: np.ndarray, n_tokens: np.ndarray, shipped: Thresholds) -> float:
    """Share of the human texts above the model's own borderline threshold for their length."""
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    if not len(human_p):
        return float("nan")
    borderline = np.array([shipped.for_length(int(t))[1] for t in n_tokens])
    return float(np.mean(human_p > borderline))


def machine_like_warning(share: float, shipped: Thresholds) -> str | None:
    """A warning when most of the "human" texts look like machine text to the model itself."""
    if not share > MACHINE_LIKE_SHARE:
        return None
    return (f"the human texts look machine-like: {share:.0%} score above the model's own borderline threshold "
            f"(which {shipped.borderline_fpr:.0%} of its validation humans exceed); if some are machine text, "
            "this profile lets machine text pass as human")
