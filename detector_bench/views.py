"""Evaluation views: which model scores which texts, cut into cells (set x generator or domain).

* generator held out: for each generator, the trained contenders are fitted on the train split without
  any of its texts (train.splits.holdouts); a cell is its texts in one set against that set's human
  texts of the same domains outside the train split (validation and test: no model here saw them).
* domain held out: likewise per domain; a cell is every text of that domain in one set.
* test split: the shipped model (in-distribution: trained on the train split of the same sample) and
  GLTR fitted on the train split; cells are the test split per set, domain and generator.

Every contender is scored on exactly the same texts in each cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from detector_bench.contenders import DETECTOR, GLTR, Scored, fit_gltr, trained_scores, zero_shot_scores
from train import eval_metrics
from train.splits import holdouts

GENERATOR_HELD_OUT = "generator held out"
DOMAIN_HELD_OUT = "domain held out"
TEST_SPLIT = "test split"
PUBLISHED_SUBSET = "published subset, generator held out"

METRIC_COLUMNS = ["auroc", "tpr_at_1fpr", "tpr_at_5fpr", "average_precision"]


@dataclass
class Cell:
    set: str  # dataset (file)
    group: str  # generator, domain or all
    value: str
    rows: np.ndarray  # boolean mask over the table


@dataclass
class CellScores:
    """The scores of one cell, kept for ROC plots."""

    view: str
    cell: Cell
    y: np.ndarray
    scores: dict[str, np.ndarray]


def generator_cells(table: pd.DataFrame, generator: str, allowed: np.ndarray) -> list[Cell]:
    """Per set: the generator's texts against the humans of the domains it wrote in, among `allowed` rows."""
    held = (table["generator"] == generator).to_numpy()
    cells = []
    for dataset in sorted(table.loc[held & allowed, "dataset"].unique()):
        in_set = (table["dataset"] == dataset).to_numpy()
        domains = table.loc[held & in_set, "domain"].unique()
        humans = (table["label"] == 0).to_numpy() & table["domain"].isin(domains).to_numpy()
        cells.append(Cell(dataset, "generator", generator, allowed & in_set & (held | humans)))
    return cells


def domain_cells(table: pd.DataFrame, domain: str, test_mask: np.ndarray) -> list[Cell]:
    return [Cell(dataset, "domain", domain, test_mask & (table["dataset"] == dataset).to_numpy())
            for dataset in sorted(table.loc[test_mask, "dataset"].unique())]


def split_cells(table: pd.DataFrame, test_mask: np.ndarray) -> list[Cell]:
    """The test split per set, per set and domain, and per set and generator (with its domains' humans)."""
    cells = []
    for dataset in sorted(table.loc[test_mask, "dataset"].unique()):
        in_set = test_mask & (table["dataset"] == dataset).to_numpy()
        cells.append(Cell(dataset, "all", "all", in_set))
        for domain in sorted(table.loc[in_set, "domain"].unique()):
            cells.append(Cell(dataset, "domain", domain, in_set & (table["domain"] == domain).to_numpy()))
        generators = sorted(g for g in table.loc[in_set, "generator"].unique() if g != "human")
        for generator in generators:
            cells += [Cell(dataset, "generator", generator, c.rows & in_set)
                      for c in generator_cells(table, generator, in_set)]
    return cells


def cell_rows(view: str, cell: Cell, y: np.ndarray, scores: Mapping[str, np.ndarray],
              rows: np.ndarray | None = None) -> list[dict]:
    """One metric row per contender on the cell's texts (or the given sub-mask of them)."""
    rows = cell.rows if rows is None else rows
    out = []
    for name, s in scores.items():
        m = eval_metrics.metric_row(y[rows], s[rows])
        out.append({"view": view, "set": cell.set, "group": cell.group, "value": cell.value, "contender": name,
                    "n": m["n"], "n_machine": m["n_machine"], "n_human": m["n"] - m["n_machine"],
                    **{k: m[k] for k in METRIC_COLUMNS}})
    return out


SubsetFn = Callable[[Cell], tuple[np.ndarray, dict[str, np.ndarray]] | None]


MIN_PER_CLASS = 5  # the detector's calibration is 5-fold: fewer training texts of a class cannot be fitted


def heldout_view(scored: Scored, by: str, classifier: str = "hgb", seed: int = 0,
                 published_subset: SubsetFn | None = None) -> tuple[pd.DataFrame, list[CellScores], list[str]]:
    """Leave-one-generator-out or leave-one-domain-out over the whole table.

    Returns the metric rows, the cells' scores, and the held-out values that could not be fitted.

    `published_subset(cell)` may return (mask of the cell's texts that carry published scores, those
    scores by name): every contender is then also scored on that subset (view PUBLISHED_SUBSET).
    """
    view = GENERATOR_HELD_OUT if by == "generator" else DOMAIN_HELD_OUT
    table, y = scored.table, scored.y
    rows: list[dict] = []
    kept: list[CellScores] = []
    skipped: list[str] = []
    folds = list(holdouts(table, by, scored.split))
    for value, train_mask, test_mask in tqdm(folds, desc=f"{by} held out", unit="fit"):
        train_mask, test_mask = train_mask.to_numpy(), test_mask.to_numpy()
        if np.bincount(y[train_mask], minlength=2).min() < MIN_PER_CLASS:
            skipped.append(value)
            continue
        if by == "generator":  # every human text outside the train split: no contender was fitted on it
            test_mask = test_mask | ((scored.split != "train").to_numpy() & (y == 0))
        scores = {**trained_scores(scored, train_mask, test_mask, classifier, seed), **zero_shot_scores(scored)}
        cells = generator_cells(table, value, test_mask) if by == "generator" else domain_cells(table, value, test_mask)
        for cell in cells:
            rows += cell_rows(view, cell, y, scores)
            kept.append(CellScores(view, cell, y[cell.rows], {k: v[cell.rows] for k, v in scores.items()}))
            matched = published_subset(cell) if published_subset else None
            if matched is not None:
                subset, published = matched
                rows += cell_rows(PUBLISHED_SUBSET, cell, y, {**scores, **published}, subset)
    return pd.DataFrame(rows), kept, skipped


def test_split_view(scored: Scored, shipped_p: np.ndarray) -> tuple[pd.DataFrame, list[CellScores]]:
    """The shipped detector (p on every row) and GLTR fitted on the train split, on the test split."""
    y, test = scored.y, (scored.split == "test").to_numpy()
    gltr = fit_gltr(scored, (scored.split == "train").to_numpy()).predict_proba(scored.gltr)[:, 1]
    scores = {DETECTOR: shipped_p, GLTR: gltr, **zero_shot_scores(scored)}
    rows, kept = [], []
    for cell in split_cells(scored.table, test):
        rows += cell_rows(TEST_SPLIT, cell, y, scores)
        if cell.group == "all":
            kept.append(CellScores(TEST_SPLIT, cell, y[cell.rows], {k: v[cell.rows] for k, v in scores.items()}))
    return pd.DataFrame(rows), kept


def macro_by_set(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (view, set, contender): the mean over cells (held-out generators or domains) of each metric."""
    def summarise(part: pd.DataFrame) -> pd.Series:
        valid = part.dropna(subset=["auroc"])
        return pd.Series({"n_cells": len(valid), "n": int(valid["n"].sum()),
                          **{k: valid[k].mean() for k in METRIC_COLUMNS}})

    if frame.empty:
        return frame
    grouped = frame.groupby(["view", "set", "contender"], sort=False)[["n", "auroc", *METRIC_COLUMNS[1:]]]
    return grouped.apply(summarise).reset_index()
