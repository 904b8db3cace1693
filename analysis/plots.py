"""Figures for training runs, the benchmark and the notebooks.

Every function returns a matplotlib Figure (so notebooks show it) and takes plain arrays or tables;
ROC, precision-recall, calibration and confusion plots are scikit-learn's display classes.
`save(fig, path)` writes PNGs for mlflow and reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from detector.decision.lengths import MIN_AUROC
from detector.features.zero_shot import GLTR_COLOURS, GLTR_LABELS, gltr_bucket


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG (folders made as needed) and close it."""
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
    drawn = [(name, *_valid(y, scores)) for name, (y, scores) in curves.items()]
    drawn = [(name, y, scores) for name, y, scores in drawn if len(set(y)) == 2]
    for i, (name, y, scores) in enumerate(drawn):
        RocCurveDisplay.from_predictions(y, scores, name=name, ax=ax, plot_chance_level=i == len(drawn) - 1,
                                         chance_level_kw={"ls": ":", "color": "grey"})
    if log_fpr:
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
    ax.set(xlabel="false-positive rate (human texts flagged)", ylabel="true-positive rate (machine texts caught)",
           title=title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def pr_curve(y, scores, title: str = "Precision-recall") -> Figure:
    """Precision-recall curve; the chance level is the share of machine texts."""
    y, scores = _valid(y, scores)
    fig, ax = plt.subplots(figsize=(6, 5))
    PrecisionRecallDisplay.from_predictions(y, scores, name="detector", ax=ax, plot_chance_level=True,
                                            chance_level_kw={"ls": ":", "color": "grey"})
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
    """Reliability diagram: observed share of machine texts per decile of predicted p(machine)."""
    y, p = _valid(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    CalibrationDisplay.from_predictions(y, np.clip(p, 0, 1), n_bins=10, strategy="quantile", name="detector",
                                        ax=ax)
    ax.set(xlabel="predicted p(machine)", ylabel="observed share of machine texts", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def confusion(y, p, threshold: float, title: str = "Confusion matrix at the threshold") -> Figure:
    """Texts per actual class and prediction (machine when p > threshold)."""
    y, p = _valid(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y, (p > threshold).astype(int), labels=[0, 1],
                                            display_labels=["human", "machine"], cmap="Blues", ax=ax,
                                            colorbar=False)
    ax.set(xlabel="predicted", ylabel="actual", title=title)
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


def token_heatmap(tokens: list[str], ranks: np.ndarray, title: str = "Tokens by LM rank (GLTR)",
                  width: int = 110) -> Figure:
    """GLTR-style: each token coloured by its rank bucket (green top-10 ... purple beyond 1000)."""
    bucket = gltr_bucket(ranks)
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
    # A monospace character is ~0.6 em wide: size the figure so `width` characters fill one line.
    fontsize = 9
    fig, ax = plt.subplots(figsize=(width * 0.6 * fontsize / 72 / 0.98, 0.3 * len(lines) + 1.2))
    fig.subplots_adjust(left=0.01, right=0.99)
    ax.set_xlim(0, width)
    ax.set_ylim(len(lines), -1)
    ax.axis("off")
    for row, line in enumerate(lines):
        x = 0
        for tok, b in line:
            ax.text(x, row, tok, family="monospace", fontsize=fontsize, va="center",
                    bbox={"facecolor": GLTR_COLOURS[b], "edgecolor": "none", "pad": 0.5})
            x += len(tok)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in GLTR_COLOURS]
    ax.legend(handles, GLTR_LABELS, loc="upper center",
              bbox_to_anchor=(0.5, 0), ncol=4, fontsize=8)
    ax.set_title(title)
    return fig


# ----- figures for the notebooks (one text's explanation, error analysis) -----


def sentence_scores(sentences, threshold: float | None = None, title: str = "p(machine) per sentence",
                    label_chars: int = 38) -> Figure:
    """Bars of each sentence's p(machine) (rows of {text, p_machine, n_tokens}), in reading order."""
    frame = pd.DataFrame(list(sentences) if not isinstance(sentences, pd.DataFrame) else sentences)
    fig, ax = plt.subplots(figsize=(7, 0.32 * max(len(frame), 3) + 1.4))
    if frame.empty:
        ax.text(0.5, 0.5, "no sentences to score", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=title)
        return fig
    p = frame["p_machine"].astype(float).to_numpy()
    labels = [f"{i + 1}. {' '.join(str(t).split())[:label_chars]}" for i, t in enumerate(frame["text"])]
    colours = plt.get_cmap("RdYlGn_r")(np.nan_to_num(p, nan=0.5))
    y = np.arange(len(frame))
    ax.barh(y, np.nan_to_num(p), color=colours, edgecolor="grey", linewidth=0.4)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", label=f"machine threshold {threshold:.2f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set(xlim=(0, 1), xlabel="p(machine) of the sentence with its neighbours", title=title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def feature_positions(top_features, reference: Mapping[str, Mapping[str, list]],
                      title: str = "Top features against the training texts") -> Figure:
    """One panel per feature: the human and machine training distributions (box 25-75th percentile,
    whiskers 10-90th, line at the median) and this text's value as a vertical line."""
    rows = list(top_features)
    fig, axes = plt.subplots(len(rows) or 1, 1, figsize=(7, 1.25 * max(len(rows), 1) + 0.6), squeeze=False)
    for ax, row in zip(axes[:, 0], rows, strict=False):
        ref = reference.get(row["feature"], {})
        stats = []
        for cls in ("human", "machine"):
            q = ref.get(cls) or []
            if len(q) == 5:
                stats.append({"label": cls, "whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4],
                              "fliers": []})
        if stats:
            import matplotlib

            horizontal = ({"orientation": "horizontal"} if tuple(map(int, matplotlib.__version__.split(".")[:2]))
                          >= (3, 10) else {"vert": False})
            boxes = ax.bxp(stats, widths=0.55, patch_artist=True, showfliers=False,
                           medianprops={"color": "black"}, **horizontal)
            for box, stat in zip(boxes["boxes"], stats, strict=False):
                box.set(facecolor="#4c72b0" if stat["label"] == "human" else "#dd8452", alpha=0.45)
        ax.axvline(row["value"], color="crimson", lw=2.5)
        push = row.get("push")
        ax.set_title(f"{row['feature']}: {row.get('description', '')}; this text {row['value']:.3g}"
                     + (f", push {push:+.2f}" if push is not None else ""), fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("feature value (red line: this text; boxes: training texts, 25-75th percentile, "
                           "whiskers 10-90th)", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_distributions(features: pd.DataFrame, labels, names: list[str] | None = None,
                          title: str = "Feature distributions: human vs machine", columns: int = 3) -> Figure:
    """Small multiples: each feature's histogram for human and for machine texts."""
    labels = np.asarray(labels)
    names = list(names) if names is not None else list(features.columns)
    nrows = int(np.ceil(len(names) / columns)) or 1
    fig, axes = plt.subplots(nrows, columns, figsize=(3.6 * columns, 2.6 * nrows + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        values = features[name].to_numpy(dtype=float)
        finite = values[~np.isnan(values)]
        bins = np.linspace(finite.min(), finite.max() + 1e-9, 20) if len(finite) else 10
        for label, cls, colour in ((0, "human", "#4c72b0"), (1, "machine", "#dd8452")):
            part = values[(labels == label) & ~np.isnan(values)]
            ax.hist(part, bins=bins, alpha=0.5, color=colour, label=f"{cls} (n={len(part)})")
        ax.set_title(name, fontsize=9)
        ax.set(xlabel="value", ylabel="texts")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def score_vs_length(n_tokens, p, labels, threshold: float | None = None, min_tokens: int | None = None,
                    title: str = "p(machine) against text length") -> Figure:
    """Each text as a dot (colour = true class) at its length and score, with the verdict thresholds."""
    n_tokens, p, labels = np.asarray(n_tokens), np.asarray(p, dtype=float), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, cls, colour, marker in ((0, "human", "#4c72b0", "o"), (1, "machine", "#dd8452", "^")):
        mask = labels == label
        ax.scatter(np.maximum(n_tokens[mask], 1), p[mask], s=18, alpha=0.7, color=colour, marker=marker,
                   label=f"{cls} texts (n={mask.sum()})")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"machine threshold {threshold:.2f}")
    if min_tokens is not None:
        ax.axvspan(0.8, max(min_tokens, 1), color="grey", alpha=0.15, label=f"too short to judge (<{min_tokens})")
    ax.set_xscale("log")
    ax.set(xlabel="tokens (log scale)", ylabel="p(machine)", ylim=(-0.02, 1.02), title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def reliability_by_length(curve: pd.DataFrame, min_auroc: float | None = MIN_AUROC,
                          reliable_from: int | None = None, title: str = "How reliable by text length") -> Figure:
    """AUROC per length band of `detector.decision.lengths.reliability_by_length` (bars; hatched where too few
    texts to judge), AUROC of all texts from that length up (line), the target and the reliable length."""
    fig, ax = plt.subplots(figsize=(max(7.5, 0.85 * len(curve)), 4.5))
    x = np.arange(len(curve))
    auroc = curve["auroc"].to_numpy(dtype=float)
    judged = curve["judged"].to_numpy(dtype=bool)
    ax.bar(x[judged], np.nan_to_num(auroc[judged]), color="#4c72b0", alpha=0.8, label="AUROC in the band")
    ax.bar(x[~judged], np.nan_to_num(auroc[~judged]), color="none", edgecolor="#4c72b0", hatch="//",
           label="band with too few texts")
    ax.plot(x, curve["auroc_from"], marker="o", color="#dd8452", label="AUROC of texts from this length up")
    if min_auroc is not None:
        ax.axhline(min_auroc, color="black", ls="--", lw=1, label=f"target AUROC {min_auroc:.2f}")
    if reliable_from is not None and (curve["from_tokens"] == reliable_from).any():
        where = int(np.flatnonzero(curve["from_tokens"].to_numpy() == reliable_from)[0])
        ax.axvline(where - 0.5, color="green", lw=2, label=f"reliable from {reliable_from} tokens")
    for i in np.flatnonzero(np.isnan(auroc) & (curve["n"].to_numpy() > 0)):
        ax.text(x[i], 0.02, "one class:\nno AUROC", ha="center", va="bottom", fontsize=6, color="grey")
    counts = [f"{band}\n{h} human\n{m} machine"
              for band, h, m in zip(curve["band"], curve["n_human"], curve["n_machine"], strict=True)]
    ax.set_xticks(x, counts, fontsize=6)
    ax.set(xlabel="text length band, tokens", ylabel="AUROC", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def contender_bars(table: pd.DataFrame, metric: str, by: str = "contender", hue: str | None = "set",
                   title: str | None = None) -> Figure:
    """Horizontal bars of one metric per contender, best on top, values written on the bars; one
    colour per `hue` value (e.g. set or generator) when there are several."""
    if hue and hue in table.columns and table[hue].nunique() > 1:
        pivot = table.pivot_table(index=by, columns=hue, values=metric)
    else:
        pivot = table.groupby(by)[[metric]].mean()
    pivot = pivot.loc[pivot.mean(axis=1).sort_values().index]
    height = 0.3 * len(pivot) * max(1.0, 0.6 * pivot.shape[1]) + 1.4
    fig, ax = plt.subplots(figsize=(7.5, height))
    pivot.plot.barh(ax=ax, width=0.8, legend=False)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7, padding=2)
    if pivot.shape[1] > 1:
        ax.legend(title=hue, fontsize=7, title_fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    upper = np.nanmax(pivot.to_numpy()) if np.isfinite(pivot.to_numpy()).any() else 1.0
    ax.set(xlabel=metric, ylabel="", title=title or f"{metric} per {by}", xlim=(0, max(1.0, upper) * 1.12))
    ax.grid(axis="x", alpha=0.3)
    return fig


def tpr_by_calibration_size(curve: pd.DataFrame, title: str = "TPR after calibrating on n human texts") -> Figure:
    """One panel per false-positive rate: TPR of the profile against the number of calibration humans,
    a line per held-out set (`experiments.calibration.tpr_by_size`)."""
    rates = sorted(curve["fpr"].unique())
    fig, axes = plt.subplots(1, len(rates), figsize=(5.5 * len(rates), 4.2), sharey=True, squeeze=False)
    for ax, fpr in zip(axes[0], rates, strict=True):
        at_rate = curve[curve["fpr"] == fpr]
        for (by, value), part in at_rate.groupby(["held_out_by", "held_out"]):
            ax.plot(part["n_calibration"], part["tpr"], marker="o", alpha=0.6, label=f"{by}: {value}")
        mean = at_rate.groupby("n_calibration")["tpr"].mean()
        ax.plot(mean.index, mean.to_numpy(), color="black", lw=2.5, marker="s", label="mean of the sets tried")
        sizes = sorted(curve["n_calibration"].unique())
        ax.set(xscale="log", xlabel="calibration humans", ylabel="TPR at the profile's rule",
               title=f"{title} ({fpr:.0%} FPR)")
        ax.minorticks_off()
        ax.set_xticks(sizes, labels=[str(n) for n in sizes])
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def scores_before_after(p_before: np.ndarray, p_after: np.ndarray, labels: Sequence[str], before: float,
                        after: float, title: str = "p(machine) and the machine threshold, before and after calibrating"
                        ) -> Figure:
    """Two panels of score histograms per group (e.g. calibration humans, held-back humans, machine texts):
    the model's p(machine) with its own machine threshold, and the profile's p(machine) (refitted to the
    humans, or the model's where the profile only moves thresholds) with the profile's threshold."""
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, p, threshold, name, colour in ((axes[0], p_before, before, "model", "tab:red"),
                                           (axes[1], p_after, after, "profile", "black")):
        frame = pd.DataFrame({"score": np.asarray(p, dtype=float), "group": labels}).dropna()
        bins = np.linspace(0, 1, 31)
        for group, part in frame.groupby("group"):
            ax.hist(part["score"], bins=bins, alpha=0.45, density=True, label=f"{group} (n={len(part)})")
        ax.axvline(threshold, color=colour, ls="--" if name == "model" else "-",
                   label=f"{name}'s threshold {threshold:.2f}")
        ax.set(xlabel=f"p(machine), {name}", title=f"{name}'s scores")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("density")
    fig.suptitle(title)
    return fig
