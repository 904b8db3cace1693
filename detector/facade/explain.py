"""Why a verdict: per-sentence scores and the features that moved p(machine) most.

Both come from the token statistics already computed for the verdict (no second LM pass):
- each sentence is scored by the same classifier on a window of it and its neighbours (short single
  sentences carry too little evidence on their own), so a machine paragraph in a human document
  stands out;
- a feature's push is how much p(machine) drops when that feature alone is set to the median of the
  human training texts (stored in the model card).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.features.engine import FEATURE_NAMES, FEATURES, Analysis, features_of
from detector.model.detector_model import DetectorModel
from detector.model.prediction import score_or_none
from detector.text.segments import sentence_spans

WINDOW_SENTENCES = 1  # neighbours on each side included when scoring a sentence
# Each scored sentence costs a feature row (a sentence split of its window): a text of 10,000 one-word
# sentences would take minutes. Later sentences are listed unscored (p_machine None); prose read whole
# (at most 20,000 characters) has a few hundred.
MAX_SCORED_SENTENCES = 500


def sentence_scores(model: DetectorModel, analysis: Analysis) -> list[dict]:
    """[{start, end, text, p_machine, n_tokens}] for each sentence of the normalised text (p_machine None
    after the first MAX_SCORED_SENTENCES)."""
    text, stats = analysis.text, analysis.stats
    spans = sentence_spans(text)
    if not spans or not len(stats):
        return []
    rows, windows = [], []
    for i, (lo, hi) in enumerate(spans):
        w_lo = spans[max(0, i - WINDOW_SENTENCES)][0]
        w_hi = spans[min(len(spans) - 1, i + WINDOW_SENTENCES)][1]
        inside = np.flatnonzero((stats.start >= w_lo) & (stats.start < w_hi))
        window_stats = stats.slice(inside[0], inside[-1] + 1) if len(inside) else stats.slice(0, 0)
        if i < MAX_SCORED_SENTENCES:
            windows.append(features_of(window_stats, text[w_lo:w_hi]))
        n_own = int(((stats.start >= lo) & (stats.start < hi)).sum())
        rows.append({"start": lo, "end": hi, "text": text[lo:hi], "n_tokens": n_own})
    p = model.p_machine_from_features(pd.DataFrame(windows, columns=FEATURE_NAMES, dtype=float))
    for k, row in enumerate(rows):
        row["p_machine"] = score_or_none(p[k]) if k < len(windows) else None
    return rows


def feature_pushes(model: DetectorModel, features: dict[str, float], top: int = 5) -> list[dict]:
    """The features whose value moved p(machine) most, against the human-median baseline."""
    reference = model.card.feature_reference
    human_median = {name: ref["human"][2] for name, ref in reference.items()}
    if not human_median:
        return []
    row = pd.DataFrame([features], columns=FEATURE_NAMES, dtype=float)
    if row.isna().any(axis=None):
        return []
    base = float(model.p_machine_from_features(row)[0])
    variants = pd.concat([row] * len(FEATURE_NAMES), ignore_index=True)
    for i, name in enumerate(FEATURE_NAMES):
        if name in human_median:
            variants.loc[i, name] = human_median[name]
    p_without = model.p_machine_from_features(variants)
    out = []
    for name, p in zip(FEATURE_NAMES, p_without, strict=True):
        ref = reference.get(name)
        out.append({
            "feature": name, "description": FEATURES[name], "value": features[name],
            "human_median": ref["human"][2] if ref else None,
            "machine_median": ref["machine"][2] if ref else None,
            "push": base - float(p),  # > 0: this feature made the text look more machine-like
        })
    out.sort(key=lambda r: abs(r["push"]), reverse=True)
    return out[:top]


def explain(model: DetectorModel, analysis: Analysis, top: int = 5, features: dict[str, float] | None = None) -> dict:
    """Per-sentence scores and the top features; `features` are the analysis's if the caller has them already
    (they cost a sentence split of the whole text)."""
    return {
        "sentences": sentence_scores(model, analysis),
        "top_features": feature_pushes(model, analysis.features() if features is None else features, top),
    }


def feature_reference(features: pd.DataFrame, labels: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """Per feature and class, the 10/25/50/75/90th percentiles: stored in the card for explanations."""
    out = {}
    for name in FEATURE_NAMES:
        out[name] = {}
        for label, cls in ((0, "human"), (1, "machine")):
            values = features.loc[labels == label, name].dropna()
            out[name][cls] = [float(v) for v in np.percentile(values, [10, 25, 50, 75, 90])] if len(values) else []
    return out
