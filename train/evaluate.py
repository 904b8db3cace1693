"""Evaluate a model on data: metric tables overall / per group, hold-out runs, and the plots.

The plots come from `analysis.plots` (the one place train/ reaches into analysis/, for drawing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance as sklearn_permutation_importance

from analysis import plots
from detector.decision.lengths import reliability_by_length
from detector.features.engine import FEATURE_NAMES
from detector.model.detector_model import DetectorModel
from detector.model.prediction import single_openmp_thread
from train import eval_metrics
from train.fit import FeatureData, fitted_p_machine
from train.splits import holdouts


def permutation_importance(model: DetectorModel, data: FeatureData, seed: int = 0) -> pd.Series:
    """Mean drop in AUROC when each feature is shuffled (on the given, held-out data), largest first:
    scikit-learn's permutation importance of the classifier steps (they impute missing features)."""
    y = data.table["label"].to_numpy()
    if len(set(y)) < 2:
        return pd.Series(dtype=float)
    with single_openmp_thread():
        found = sklearn_permutation_importance(model.classifier, data.features[FEATURE_NAMES], y,
                                               scoring="roc_auc", n_repeats=3, random_state=seed)
    return pd.Series(found.importances_mean, index=FEATURE_NAMES).sort_values(ascending=False)


PLOT_FILES = ("roc_curve.png", "pr_curve.png", "score_histograms.png", "calibration.png", "confusion_matrix.png",
              "feature_importance.png", "auroc_by_length.png")


def check_plots_folder(folder: str | Path, inputs: list[str]) -> None:
    """Refuse a --plots folder whose figures would replace files already there (before any work)."""
    from detector.core.errors import OutputError
    from detector.io.outputs import check_output

    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--plots {folder} is a file; give a folder")
    if not path.exists():
        check_output(str(path), "--plots", inputs, folder=True)
        return
    taken = [name for name in PLOT_FILES if (path / name).exists()]
    if taken:
        raise OutputError(f"--plots {folder} already holds {', '.join(taken[:3])}; give a new or empty folder")


def evaluation_plots(model: DetectorModel, data: FeatureData, p: np.ndarray, folder: str | Path,
                     title: str = "") -> dict[str, Path]:
    """ROC, PR, histograms per generator, calibration, confusion, importances, AUROC by length."""
    folder = Path(folder)
    y = data.table["label"].to_numpy()
    threshold = model.thresholds.machine
    suffix = f" ({title})" if title else ""
    figures = {
        "roc_curve.png": plots.roc_curves({"detector": (y, p)}, title=f"ROC{suffix}"),
        "pr_curve.png": plots.pr_curve(y, p, title=f"Precision-recall{suffix}"),
        "score_histograms.png": plots.score_histograms(p, data.table["generator"], threshold,
                                                       title=f"p(machine) by generator{suffix}"),
        "calibration.png": plots.calibration_plot(y, p, title=f"Calibration{suffix}"),
        "confusion_matrix.png": plots.confusion(y, p, threshold),
        "feature_importance.png": plots.feature_importances(permutation_importance(model, data)),
        "auroc_by_length.png": plots.reliability_by_length(reliability_by_length(data.n_tokens, y, p), None,
                                                           title=f"AUROC by text length{suffix}"),
    }
    assert tuple(figures) == PLOT_FILES
    return {name: plots.save(fig, folder / name) for name, fig in figures.items()}


def evaluate_model(model: DetectorModel, data: FeatureData) -> tuple[pd.DataFrame, np.ndarray]:
    """Metric table (overall, per dataset / domain / generator) at the model's own threshold."""
    p = model.p_machine_from_features(data.features)
    return eval_metrics.metric_table(data.table, p, model.thresholds.machine), p


def holdout_table(data: FeatureData, split: pd.Series, by: str, classifier: str = "hgb",
                  seed: int = 0) -> pd.DataFrame:
    """Leave-one-generator-out or leave-one-domain-out: train without it, test on it."""
    rows = []
    split = split.reset_index(drop=True)
    for value, train_mask, test_mask in holdouts(data.table, by, split):
        train = data.subset(train_mask)
        if np.bincount(train.table["label"], minlength=2).min() < 2:
            continue  # nothing left to train on without this group
        test = data.subset(test_mask)
        p = fitted_p_machine(train, test.features, classifier, seed)
        rows.append({"held_out": value, **eval_metrics.metric_row(test.table["label"], p)})
    return pd.DataFrame(rows)


def log_evaluation(model: DetectorModel, data: FeatureData, metric_table: pd.DataFrame, p: np.ndarray,
                   model_location: str | None, data_specs: list[str], plots_folder: str | Path | None = None,
                   run_name: str | None = None) -> str:
    """An mlflow run for `detector evaluate`: the model, data, metrics at the model's threshold and the
    plots (those written to `plots_folder`, or drawn anew). Returns the run id."""
    import tempfile

    import mlflow

    from train import tracking

    lm_params = {k: v for k, v in model.lm_params().items() if k != "progress"}
    shown = model_location or "shipped-model"
    name = run_name or tracking.run_name("evaluate", Path(shown.rstrip("/")).name or shown, data_specs)
    tags = {**tracking.run_tags(data_specs, lm_params, command="evaluate"), "model": shown}
    with mlflow.start_run(run_name=name, tags=tags,
                          description=f"{shown} evaluated on {', '.join(data_specs)}") as run:
        mlflow.log_params({"model": shown, "data_specs": ", ".join(data_specs)[:500],
                           "threshold": model.thresholds.machine, "min_tokens": model.thresholds.min_tokens,
                           "feature_version": model.card.feature_version,
                           **{f"lm.{k}": v for k, v in lm_params.items()}})
        tracking.log_dataset(data.table, "evaluation-data", "evaluation")
        tracking.log_metrics_table(metric_table, "eval")
        mlflow.log_table(metric_table, "eval_metrics.json")
        if plots_folder is not None:
            mlflow.log_artifacts(str(plots_folder), "plots")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                evaluation_plots(model, data, p, tmp)
                mlflow.log_artifacts(tmp, "plots")
        return run.info.run_id
