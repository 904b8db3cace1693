"""Evaluation metrics for scores oriented higher = machine; labels 1 = machine, 0 = human.

TPR at a fixed FPR follows RAID: the threshold is chosen on that set's own human texts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

from detector.decision.thresholds import threshold_for_fpr


def _valid(y, scores):
    y, scores = np.asarray(y), np.asarray(scores, dtype=float)
    ok = ~np.isnan(scores)
    return y[ok], scores[ok]


def auroc(y, scores) -> float:
    y, scores = _valid(y, scores)
    return float(roc_auc_score(y, scores)) if len(set(y)) == 2 else float("nan")


def tpr_at_fpr(y, scores, fpr: float) -> float:
    """Share of machine texts above the threshold that lets `fpr` of this set's humans through."""
    y, scores = _valid(y, scores)
    if len(set(y)) < 2:
        return float("nan")
    t = threshold_for_fpr(scores[y == 0], fpr)
    return float(np.mean(scores[y == 1] > t))


def fpr_at(y, scores, threshold: float) -> float:
    y, scores = _valid(y, scores)
    return float(np.mean(scores[y == 0] > threshold)) if (y == 0).any() else float("nan")


def expected_calibration_error(y, p, bins: int = 10) -> float:
    y, p = _valid(y, p)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(error)


def metric_row(y, p, threshold: float | None = None) -> dict[str, float]:
    """All metrics of one set. `p` must be a probability for Brier/ECE/F1 to mean anything."""
    y_ok, p_ok = _valid(y, p)
    row = {
        "n": int(len(y_ok)),
        "n_machine": int((y_ok == 1).sum()),
        "auroc": auroc(y_ok, p_ok),
        "average_precision": (float(average_precision_score(y_ok, p_ok)) if len(set(y_ok)) == 2
                              else float("nan")),
        "tpr_at_1fpr": tpr_at_fpr(y_ok, p_ok, 0.01),
        "tpr_at_5fpr": tpr_at_fpr(y_ok, p_ok, 0.05),
    }
    if threshold is not None:
        predicted = p_ok > threshold
        row["f1"] = float(f1_score(y_ok, predicted, zero_division=0))
        row["fpr_at_threshold"] = fpr_at(y_ok, p_ok, threshold)
        row["tpr_at_threshold"] = float(predicted[y_ok == 1].mean()) if (y_ok == 1).any() else float("nan")
        row["brier"] = float(brier_score_loss(y_ok, np.clip(p_ok, 0, 1)))
        row["ece"] = expected_calibration_error(y_ok, p_ok)
    return row


def metric_table(table: pd.DataFrame, p, threshold: float | None = None,
                 by: tuple[str, ...] = ("dataset", "domain", "generator")) -> pd.DataFrame:
    """Metrics overall and per group. A machine group (a generator) is scored against the humans of
    the same dataset and domain, since a generator's texts have no human texts of their own."""
    table = table.assign(p=np.asarray(p, dtype=float))
    rows = [{"group": "all", "value": "all", **metric_row(table["label"], table["p"], threshold)}]
    for column in by:
        for value, part in table.groupby(column, sort=True):
            if column == "generator" and value != "human":
                humans = table[(table["label"] == 0)
                               & table["dataset"].isin(part["dataset"]) & table["domain"].isin(part["domain"])]
                part = pd.concat([part, humans])
            if column == "generator" and value == "human":
                continue
            rows.append({"group": column, "value": value, **metric_row(part["label"], part["p"], threshold)})
    return pd.DataFrame(rows)
