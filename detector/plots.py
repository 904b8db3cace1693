"""Figures shared by the CLI, training runs, the benchmark and the notebooks.

Every function returns a matplotlib Figure (so notebooks show it) and takes plain arrays or tables.
`save(fig, path)` writes PNGs for mlflow and reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _valid(y, s):
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    ok = ~np.isnan(s)
    return y[ok], s[ok]


def roc_curves(curves: Mapping[str, tuple], title: str = "ROC curves", log_fpr: bool = False) -> Figure:
    """One ROC curve per entry: name -> (labels, scores), AUROC in the legend."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (y, scores) in curves.items():
        y, scores = _valid(y, scores)
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    if log_fpr:
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
    ax.set(xlabel="false-positive rate (human texts flagged)", ylabel="true-positive rate (machine texts caught)",
           title=title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def pr_curve(y, scores, title: str = "Precision-recall") -> Figure:
    y, scores = _valid(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(recall, precision, label="detector")
    ax.axhline(np.mean(y), ls=":", color="grey", label="share of machine texts")
    ax.set(xlabel="recall (machine texts caught)", ylabel="precision", title=title, ylim=(0, 1.02))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def score_histograms(scores, groups, threshold: float | None = None,
                     title: str = "p(machine) by generator") -> Figure:
    """Overlaid score histograms, one per group (e.g. generator; 'human' among them)."""
    frame = pd.DataFrame({"score": np.asarray(scores, dtype=float), "group": np.asarray(groups)}).dropna()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(frame["score"].min(), frame["score"].max() + 1e-9, 30)
    for name, part in frame.groupby("group"):
        ax.hist(part["score"], bins=bins, alpha=0.45, density=True, label=f"{name} (n={len(part)})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="score (higher = machine)", ylabel="density", title=title)
    ax.legend(fontsize=8)
    return fig


def calibration_plot(y, p, title: str = "Calibration") -> Figure:
    y, p = _valid(y, p)
    frac, mean_p = calibration_curve(y, np.clip(p, 0, 1), n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(mean_p, frac, marker="o", label="detector")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfectly calibrated")
    ax.set(xlabel="predicted p(machine)", ylabel="observed share of machine texts", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def confusion(y, p, threshold: float, title: str = "Confusion matrix at the threshold") -> Figure:
    y, p = _valid(y, p)
    matrix = confusion_matrix(y, p > threshold, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=12)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["human", "machine"], yticklabels=["human", "machine"],
           xlabel="predicted", ylabel="actual", title=title)
    return fig


def feature_importances(importances: pd.Series, title: str = "Feature importance") -> Figure:
    """Horizontal bars, largest on top (e.g. permutation importance in AUROC)."""
    importances = importances.sort_values()
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(importances) + 1))
    ax.barh(importances.index, importances.to_numpy())
    ax.set(xlabel="drop in AUROC when the feature is shuffled", title=title)
    return fig


def metric_bars(table: pd.DataFrame, metric: str, by: str = "value", hue: str | None = None,
                title: str | None = None) -> Figure:
    """Bars of one metric per group (and per contender with `hue`)."""
    pivot = table.pivot_table(index=by, columns=hue, values=metric) if hue else table.set_index(by)[[metric]]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(pivot) * max(1, pivot.shape[1] / 2)), 4.5))
    pivot.plot.bar(ax=ax, width=0.8)
    ax.set(ylabel=metric, xlabel="", title=title or metric)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return fig


def metric_by_length(n_tokens, y, scores, edges=(0, 16, 32, 64, 128, 256, 1_000_000),
                     title: str = "AUROC by text length") -> Figure:
    from sklearn.metrics import roc_auc_score

    n_tokens, y, scores = np.asarray(n_tokens), np.asarray(y), np.asarray(scores, dtype=float)
    labels, values = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (n_tokens >= lo) & (n_tokens < hi) & ~np.isnan(scores)
        if mask.sum() >= 10 and len(set(y[mask])) == 2:
            labels.append(f"{lo}-{hi - 1}" if hi < 1_000_000 else f"{lo}+")
            values.append(roc_auc_score(y[mask], scores[mask]))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(labels, values)
    ax.set(xlabel="tokens", ylabel="AUROC", ylim=(0.5, 1), title=title)
    return fig


def token_heatmap(tokens: list[str], ranks: np.ndarray, title: str = "Tokens by LM rank (GLTR)",
                  width: int = 95) -> Figure:
    """GLTR-style: each token coloured by its rank bucket (green top-10 ... purple beyond 1000)."""
    colours = ["#8fd694", "#f5e663", "#f2a65a", "#c39bd3"]
    bucket = np.digitize(ranks, [11, 101, 1001])
    lines, line, length = [], [], 0
    for tok, b in zip(tokens, bucket, strict=True):
        tok = tok.replace("\n", " ")
        if length + len(tok) > width:
            lines.append(line)
            line, length = [], 0
        line.append((tok, b))
        length += len(tok)
    lines.append(line)
    lines = lines[:40]
    fig, ax = plt.subplots(figsize=(11, 0.3 * len(lines) + 1.2))
    ax.set_xlim(0, width)
    ax.set_ylim(len(lines), -1)
    ax.axis("off")
    for row, line in enumerate(lines):
        x = 0
        for tok, b in line:
            ax.text(x, row, tok, family="monospace", fontsize=8, va="center",
                    bbox={"facecolor": colours[b], "edgecolor": "none", "pad": 0.5})
            x += len(tok)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    ax.legend(handles, ["rank 1-10", "11-100", "101-1000", ">1000"], loc="upper center",
              bbox_to_anchor=(0.5, 0), ncol=4, fontsize=8)
    ax.set_title(title)
    return fig
