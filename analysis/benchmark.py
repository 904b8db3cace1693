"""The benchmark's committed results, and a small side-by-side computed on any labelled data: the
zero-shot scores and the detector's recipe (the benchmark's own contenders), the trained one scored
out of fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from train import eval_metrics

SUMMARY_FILE = "summary.csv"  # set, contender, view, n, auroc, ...: one row per set, contender and view
METRICS_FILE = "metrics.csv"  # view, set, group, value, contender, ...: per generator and domain
HEADLINE_VIEW = "generator held out"


def contender_table(table: pd.DataFrame, scores: pd.DataFrame, set_name: str) -> pd.DataFrame:
    """The benchmark's long format: set, group, value, contender, auroc, tpr_at_1fpr, tpr_at_5fpr, ...
    overall and per domain / generator, one block per score column."""
    frames = []
    for contender in scores.columns:
        part = eval_metrics.metric_table(table.reset_index(drop=True), scores[contender].to_numpy(),
                                    by=("domain", "generator"))
        frames.append(part.assign(set=set_name, contender=contender))
    out = pd.concat(frames, ignore_index=True)
    first = ["set", "group", "value", "contender"]
    return out[first + [c for c in out.columns if c not in first]]


def side_by_side(table: pd.DataFrame, engine, set_name: str = "data", classifier: str = "logreg",
                 k: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(the rows scored, per-text scores of every contender, their metric table): the zero-shot scores
    next to the detector's recipe trained on k-1 grouped folds and scored on the k-th, from one LM pass
    through `engine` (a `ScoringEngine`; texts without a scored token are left out)."""
    from train.fit import FeatureData, fitted_p_machine
    from train.protocol import zero_shot_scores
    from train.splits import cv_folds

    data = FeatureData.compute(table, engine)
    data = data.subset(data.n_tokens > 0)
    scores = zero_shot_scores(data.features)
    folds = cv_folds(data.table, k, seed)
    trained = np.full(len(data.table), np.nan)
    for fold in range(k):
        held = folds == fold
        if held.any() and data.table.loc[~held, "label"].nunique() == 2:
            trained[held] = fitted_p_machine(data.subset(~held), data.features[held], classifier, seed)
    scores[f"trained {classifier} ({k}-fold)"] = trained
    return data.table, scores, contender_table(data.table, scores, set_name)


def _check(frame: pd.DataFrame, path: Path, needs: set[str]) -> pd.DataFrame:
    missing = needs - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not a benchmark table (no column {', '.join(sorted(missing))})")
    return frame


def read_benchmark(where: str | Path | None) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """(overall rows, per-group rows or None) of the committed benchmark: `where` is its results folder
    (`summary.csv`, `metrics.csv`) or a summary CSV; None when there is none. Overall rows are those of
    the headline view (generator held out) when the table has views."""
    if not where:
        return None
    path = Path(where)
    summary_path = path / SUMMARY_FILE if path.is_dir() else path
    if not summary_path.is_file():
        return None
    summary = _check(pd.read_csv(summary_path), summary_path, {"set", "contender", "auroc"})
    overall = overall_rows(summary)
    metrics_path = summary_path.with_name(METRICS_FILE)
    per_group = None
    if metrics_path.is_file():
        table = _check(pd.read_csv(metrics_path), metrics_path, {"set", "group", "value", "contender", "auroc"})
        per_group = table[(table["group"] != "all") & (table.get("view", HEADLINE_VIEW) == HEADLINE_VIEW)]
    return overall, per_group


def overall_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The overall rows of a long metric table: group 'all' (if it has groups), headline view (if views)."""
    if "group" in summary.columns:
        summary = summary[summary["group"] == "all"]
    if "view" in summary.columns and (summary["view"] == HEADLINE_VIEW).any():
        summary = summary[summary["view"] == HEADLINE_VIEW]
    return summary.reset_index(drop=True)


def per_generator(per_group: pd.DataFrame | None) -> pd.DataFrame:
    """The per-generator rows of a long metric table, the value column named `generator`."""
    if per_group is None or "group" not in per_group.columns:
        return pd.DataFrame(columns=["set", "generator", "contender", "auroc"])
    return per_group[per_group["group"] == "generator"].rename(columns={"value": "generator"})
