"""The benchmark's PNGs: ROC curves per set and per held-out generator, and a summary bar chart."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analysis import plots
from detector_bench import views


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def roc_figures(curves: list[views.CellScores], folder: Path) -> list[Path]:
    written = []
    for c in curves:
        data = {name: (c.y, s) for name, s in c.scores.items()}
        if c.view == views.TEST_SPLIT:
            title = f"{c.cell.set}: test split (detector = shipped model)"
            name = f"roc_{slug(c.cell.set)}_test_split.png"
        else:
            title = f"{c.cell.set}: {c.cell.value} held out (n={len(c.y)})"
            name = f"roc_{slug(c.cell.set)}_heldout_{slug(c.cell.value)}.png"
        written.append(plots.save(plots.roc_curves(data, title=title), folder / name))
    return written


def summary_figure(summary: pd.DataFrame, folder: Path) -> Path:
    ours = summary[summary["view"] == views.GENERATOR_HELD_OUT]
    fig = plots.metric_bars(ours, "auroc", by="set", hue="contender",
                            title="AUROC with the generator held out (mean over generators)")
    return plots.save(fig, folder / "summary_auroc.png")
