"""Making a calibration profile from a user's human texts: which texts judge, the refit of the ranking
against machine texts (`detector.decision.adaptation`), and the thresholds on the humans' out-of-fold scores."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.errors import CalibrationError
from detector.decision.adaptation import MachineRows, cross_fit, inputs, nearest
from detector.decision.conformal import (
    BORDERLINE_FPR,
    CONFIDENCE,
    check_rate,
    conformal_threshold,
    guarantee,
    humans_for_confidence,
    length_thresholds,
    machine_like_share,
    machine_like_warning,
    minimum_humans,
    too_few_message,
)
from detector.decision.profile import CalibrationProfile, engine_of, model_identity, texts_digest
from detector.decision.thresholds import Thresholds

MAX_NOVELTY_ROWS = 5000  # the novelty reference grows by at most this many rows (distance cost)
# The refit's positives when the user brings no machine texts: this many of the model's shipped machine
# rows per calibration human (at least MIN_SHIPPED_MACHINES), the nearest to the humans in style first.
SHIPPED_MACHINES_PER_HUMAN = 3
MIN_SHIPPED_MACHINES = 500
EXPECTED_RATES = (0.01, 0.02, 0.05)  # the rates the profile states an expected TPR for


def build_profile(name: str, model: Any, human_p: np.ndarray, n_tokens: np.ndarray, problems: Sequence[str],
                  novelty_rows: np.ndarray | None, texts: Sequence[str], fpr: float = 0.01,
                  borderline_fpr: float = BORDERLINE_FPR, humans: str = "", seed: int = 0,
                  features: Any = None, machines: Any = None, machine_tokens: np.ndarray | None = None,
                  adapt: bool = True) -> CalibrationProfile:
    """A profile from the human texts' scores (p(machine), tokens, text problems) under `model`.

    Only texts the verdict rule would judge set the thresholds (a score, no text problem, at least
    the model's `min_tokens`): the guarantee is about those. `novelty_rows` are their raw novelty
    feature rows (all texts given, in order; None when the model has no novelty check). `texts` are
    digested for the provenance (a benchmark without texts passes their ids).

    With `features` (the humans' feature table, in order) and `adapt`, the ranking is refitted to the
    humans against machine texts (`machines`, a feature table of the user's own with `machine_tokens`,
    and the model's shipped machine rows nearest the humans; `detector.decision.adaptation`) and the thresholds
    are set on the humans' out-of-fold scores. Without machine texts of either kind: thresholds only.
    """
    check_rate(fpr, "--fpr")
    check_rate(borderline_fpr, "borderline fpr")
    if borderline_fpr <= fpr:
        borderline_fpr = min(0.5, 2 * fpr)  # the borderline rule must be looser than the machine rule
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    shipped = model.thresholds
    judged = np.isfinite(human_p) & (n_tokens >= shipped.min_tokens) & (np.asarray(problems, dtype=object) == "")
    if judged.sum() < max(minimum_humans(fpr), minimum_humans(borderline_fpr)):
        raise CalibrationError(too_few_message(int(judged.sum()), fpr))
    scores, refit = human_p[judged], None
    if adapt and features is not None:
        refit = _refit(model, features.iloc[np.flatnonzero(judged)], scores, machines, machine_tokens, seed)
        if refit is not None:
            scores = refit.fit.human_p
    # A band gets thresholds of its own only with enough humans to promise `fpr` at CONFIDENCE (~300 at 1%):
    # the conformal threshold of 100 humans is their maximum, a noisy cut that gives away what the ranking catches.
    thresholds, bands = length_thresholds(scores, n_tokens[judged], fpr, borderline_fpr, shipped.min_tokens,
                                          min_humans=humans_for_confidence(fpr) if refit is not None else None)
    share = machine_like_share(human_p[judged], n_tokens[judged], shipped)
    warning = machine_like_warning(share, shipped)
    promise = guarantee(scores, n_tokens[judged], thresholds)
    features_: list[str] = []
    rows: list[list[float]] = []
    if novelty_rows is not None and model.novelty is not None:
        features_ = list(model.novelty.features)
        kept = np.asarray(novelty_rows, dtype=float)[judged]
        kept = kept[np.isfinite(kept).all(axis=1)]
        if len(kept) > MAX_NOVELTY_ROWS:
            kept = kept[np.sort(np.random.default_rng(seed).choice(len(kept), MAX_NOVELTY_ROWS, replace=False))]
        rows = kept.tolist()
    provenance = {"humans": humans, "n_texts": int(len(texts)), "n_used": int(judged.sum()),
                  "n_skipped": int(len(texts) - judged.sum()), "texts_digest": texts_digest(texts),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fpr": fpr,
                  "alpha": fpr, "borderline_fpr": borderline_fpr, "confidence": CONFIDENCE}
    warnings_ = [w for w in (warning,) if w]
    if promise.n_humans < promise.humans_needed_at_confidence:
        warnings_.append(f"{promise.n_humans} human texts promise {fpr:.1%} false positives on average only, not "
                         f"at {CONFIDENCE:.0%} confidence (about {promise.humans_needed_at_confidence} needed)")
    profile = CalibrationProfile(name, model_identity(model), engine_of(model), thresholds, bands, promise,
                                 features_, rows, provenance, share, warnings_)
    if refit is not None:
        profile.adaptation, profile.expected_tpr = refit.fit.adaptation, refit.expected(thresholds, scores)
    return profile


@dataclass
class _Refit:
    """A cross-fitted adaptation and the machine texts it was judged on."""

    fit: Any  # detector.decision.adaptation.CrossFit
    machine_tokens: np.ndarray  # of the machine rows, in the fit's order
    estimated_on: np.ndarray  # which machine rows the expected TPR is estimated on (the user's, if any)
    on: str

    def expected(self, thresholds: Thresholds, human_scores: np.ndarray) -> dict[str, Any]:
        """Out-of-fold TPR at the profile's rule (by length) and at pooled thresholds for other rates."""
        machine_p = self.fit.machine_p[self.estimated_on]
        tokens = self.machine_tokens[self.estimated_on]
        rule = np.array([thresholds.for_length(int(t))[0] for t in tokens])
        rates: dict[str, float | None] = {}
        for rate in EXPECTED_RATES:
            enough = len(human_scores) >= minimum_humans(rate)
            rates[f"{rate:g}"] = (float(np.mean(machine_p > conformal_threshold(human_scores, rate)))
                                  if enough else None)
        return {"on": self.on, "n": int(len(machine_p)), "at_rule": float(np.mean(machine_p > rule)), "rates": rates}


def _refit(model: Any, humans: Any, human_p: np.ndarray, machines: Any, machine_tokens: np.ndarray | None,
           seed: int) -> _Refit | None:
    """Cross-fit the adaptation on the judged humans against the user's machines and the shipped rows
    nearest the humans; None when there are no machine texts of either kind."""
    import pandas as pd

    parts, tokens, own = [], [], []
    shipped: MachineRows | None = getattr(model, "machine_rows", None)
    if shipped is not None:
        table = shipped.table()
        take = nearest(_style(model, humans), _style(model, table),
                       max(MIN_SHIPPED_MACHINES, SHIPPED_MACHINES_PER_HUMAN * len(humans)))
        parts.append(table.iloc[take]), tokens.append(shipped.n_tokens[take]), own.append(np.zeros(len(take), bool))
    if machines is not None and len(machines):
        parts.append(machines.reset_index(drop=True)), tokens.append(np.asarray(machine_tokens))
        own.append(np.ones(len(machines), bool))
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    machine_x = inputs(table, model.shipped_p_machine(table))
    usable = np.isfinite(machine_x).all(axis=1)
    own_rows = np.concatenate(own)[usable]
    fit = cross_fit(inputs(humans, human_p), machine_x[usable], seed=seed, own=own_rows)
    on = (f"your {int(own_rows.sum())} machine texts" if own_rows.any()
          else f"the model's {int(usable.sum())} shipped machine texts nearest your humans in style")
    return _Refit(fit, np.concatenate(tokens)[usable], own_rows if own_rows.any() else ~own_rows, on)


def _style(model: Any, table: Any) -> np.ndarray:
    """Rows in the model's novelty space (its style features, robustly scaled), or the refit's criteria."""
    from detector.decision.adaptation import CRITERIA
    from detector.decision.novelty import novelty_rows

    if model.novelty is not None:
        rows = table[list(model.novelty.features)].to_numpy(dtype=float)
        return np.nan_to_num(novelty_rows(rows, model.novelty.center, model.novelty.scale))
    rows = table[list(CRITERIA)].to_numpy(dtype=float)
    return np.nan_to_num((rows - np.nanmean(rows, axis=0)) / (np.nanstd(rows, axis=0) + 1e-9))
