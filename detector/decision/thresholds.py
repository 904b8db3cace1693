"""Verdict thresholds on p(machine): chosen on human texts for a stated false-positive rate, overall,
in every group, or in every length band. Pure numpy: the verdict rule needs no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.decision.lengths import MIN_TOKENS, THRESHOLD_EDGES


@dataclass
class Thresholds:
    """Verdict thresholds on p(machine), each chosen on held-out human texts for a stated FPR."""

    machine: float  # p above this -> `machine`
    machine_fpr: float  # the false-positive rate it was chosen for
    borderline: float  # p above this (but not `machine`) -> `uncertain`, borderline
    borderline_fpr: float
    min_tokens: int = MIN_TOKENS  # shorter texts -> `uncertain`, too short to judge
    # [[from_tokens, machine, borderline], ...] ascending: longer texts carry more evidence, so their
    # human scores spread less and a lower threshold keeps the same false-positive rate.
    by_length: list[list[float]] | None = None
    # For texts the novelty check flags: the threshold set on the validation humans it flags too (the
    # humans least like the references, the nearest thing to an unseen domain). None: such texts are
    # never called `machine`, only `uncertain` (the veto).
    novel: float | None = None

    def for_length(self, n_tokens: int) -> tuple[float, float]:
        """(machine, borderline) thresholds for a text of `n_tokens` tokens."""
        machine, borderline = self.machine, self.borderline
        for start, band_machine, band_borderline in self.by_length or []:
            if n_tokens >= start:
                machine, borderline = band_machine, band_borderline
        return machine, borderline

    @classmethod
    def from_human_scores(cls, human_p: np.ndarray, fpr: float = 0.01, borderline_fpr: float = 0.05,
                          min_tokens: int = MIN_TOKENS) -> Thresholds:
        return cls(threshold_for_fpr(human_p, fpr), fpr, threshold_for_fpr(human_p, borderline_fpr),
                   borderline_fpr, min_tokens)

    @classmethod
    def worst_group(cls, human_p: np.ndarray, groups: np.ndarray, fpr: float = 0.01, borderline_fpr: float = 0.05,
                    min_tokens: int = MIN_TOKENS) -> Thresholds:
        """Thresholds that keep the false-positive rate at or under `fpr` in *every* group of human
        texts (domain, source), not just on their pool: the pooled rule lets one easy-to-predict domain
        take all the false positives."""
        human_p, groups = np.asarray(human_p, dtype=float), np.asarray(groups)
        by_group = [cls.from_human_scores(human_p[members], fpr, borderline_fpr, min_tokens)
                    for members in _estimable_groups(groups, fpr)]
        return cls(max(t.machine for t in by_group), fpr, max(t.borderline for t in by_group), borderline_fpr,
                   min_tokens)

    @classmethod
    def worst_group_by_length(cls, human_p: np.ndarray, groups: np.ndarray, n_tokens: np.ndarray,
                              fpr: float = 0.01, borderline_fpr: float = 0.05, min_tokens: int = MIN_TOKENS,
                              edges: tuple[int, ...] = THRESHOLD_EDGES, min_humans: int = 300) -> Thresholds:
        """The worst-group rule over all lengths for texts shorter than `edges[0]`, and within each band
        that `edges` start for longer ones. A band with fewer than `min_humans` human texts keeps the
        thresholds of the band below it (set with more, shorter texts). 300: about what a 1% quantile
        needs to hold at 95% confidence; with 100, the band of 256+ tokens got a threshold its own
        humans' maximum set, and out-of-domain prose (man pages, package docs) 1.4-1.9% false positives."""
        human_p, groups, n_tokens = np.asarray(human_p, dtype=float), np.asarray(groups), np.asarray(n_tokens)
        base = cls.worst_group(human_p, groups, fpr, borderline_fpr, min_tokens)
        bands, current = [], base
        for lo, hi in zip(edges, [*edges[1:], np.inf], strict=True):
            inside = (n_tokens >= lo) & (n_tokens < hi)
            if inside.sum() >= min_humans:
                current = cls.worst_group(human_p[inside], groups[inside], fpr, borderline_fpr, min_tokens)
            bands.append([int(lo), current.machine, current.borderline])
        base.by_length = bands
        return base


def _estimable_groups(groups: np.ndarray, fpr: float) -> list[np.ndarray]:
    """Masks of the groups whose `fpr` quantile can be estimated (at least 1/fpr humans), and one more for
    all the smaller groups pooled. A group of 40 humans has no 1% quantile, only its maximum: with dozens of
    small groups their worst maximum would set the threshold for everyone, far above what any 1% needs."""
    enough = int(np.ceil(1 / fpr))
    names, counts = np.unique(groups, return_counts=True)
    masks = [groups == g for g, n in zip(names, counts, strict=True) if n >= enough]
    small = np.isin(groups, names[counts < enough])
    return [*masks, small] if small.any() else masks


def threshold_for_fpr(human_scores: np.ndarray, fpr: float) -> float:
    """Smallest t with share(human_scores > t) <= fpr: the verdict rule is `score > t`."""
    scores = np.sort(np.asarray(human_scores, dtype=float))
    if not len(scores):
        raise ValueError("no human scores to set a threshold on")
    k = int(np.floor(fpr * len(scores)))  # how many humans may lie above t
    return float(scores[len(scores) - k - 1])
