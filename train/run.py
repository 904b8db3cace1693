"""One training run end to end, tracked in mlflow: the function behind `detector train`.

    from train.run import train_run
    result = train_run(load_specs(["my.jsonl"]), classifier="logreg", holdout_by="generator")
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd

from detector.features import ScoringEngine
from detector.model import DetectorModel
from train import tracking
from train.data import check_two_classes
from train.evaluate import evaluation_plots, holdout_table
from train.fit import FeatureData, TrainingReport, train_detector
from train.recipes import get_recipe
from train.splits import cv_folds

# The logged model's input example: never a user's training text.
NEUTRAL_EXAMPLE = "Paste the text to score here; verdicts need about a hundred words or more."


@dataclass
class RunResult:
    model: DetectorModel
    test_table: pd.DataFrame
    holdout: dict[str, pd.DataFrame] = field(default_factory=dict)
    cv_auroc: list[float] = field(default_factory=list)
    run_id: str | None = None
    model_uri: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def cross_validate(data: FeatureData, split: pd.Series, classifier: str, k: int, seed: int) -> list[float]:
    """Grouped k-fold AUROC on the train split."""
    from train import metrics
    from train.fit import fitted_p_machine

    train = data.subset(split.reset_index(drop=True) == "train")
    folds = cv_folds(train.table, k, seed)
    scores = []
    for fold in range(k):
        held = train.subset(folds == fold)
        p = fitted_p_machine(train.subset(folds != fold), held.features, classifier, seed)
        scores.append(metrics.auroc(held.table["label"], p))
    return scores


def train_run(
    table: pd.DataFrame,
    classifier: str = "hgb",
    holdout_by: list[str] | tuple[str, ...] = (),
    cv: int = 0,
    fpr: float = 0.01,
    seed: int = 0,
    data_specs: list[str] | None = None,
    tracking_uri: str | None = None,
    experiment: str = "detector",
    register: str | None = None,
    output: str | Path | None = None,
    mlflow_enabled: bool = True,
    progress: bool = True,
    features: FeatureData | None = None,
    references: FeatureData | None = None,
    novelty: bool = True,
    **extractor_params,
) -> RunResult:
    """Features (cached) -> fit -> evaluate -> holdouts -> log everything to mlflow."""
    get_recipe(classifier)  # fail fast on an unknown name
    check_two_classes(table)
    if mlflow_enabled:
        tracking.connect(tracking_uri, experiment)  # fail fast, before the LM pass
    seconds = {}
    started = time.time()
    # Precomputed features (a committed feature table) skip the LM pass altogether.
    data = features if features is not None else FeatureData.compute(table, ScoringEngine(progress=progress,
                                                                                           **extractor_params))
    seconds["features"] = time.time() - started

    started = time.time()
    model, report = train_detector(data, classifier, fpr, seed, references=references, novelty=novelty,
                                   **extractor_params)
    seconds["fit"] = time.time() - started
    result = RunResult(model, report.test_table, seconds=seconds)
    if cv:
        result.cv_auroc = cross_validate(data, report.split, classifier, cv, seed)
    for by in holdout_by:
        started = time.time()
        result.holdout[by] = holdout_table(data, report.split, by, classifier, seed)
        seconds[f"holdout_{by}"] = time.time() - started
    model.card.data_specs = data_specs or []
    model.card.cv_auroc = result.cv_auroc
    for by, frame in result.holdout.items():
        model.card.holdout_auroc[by] = dict(zip(frame["held_out"], frame["auroc"], strict=True))
    if output:
        model.save(output)
    if mlflow_enabled:
        _log_run(result, data, report, data_specs, classifier, seed, fpr, register)
    return result


def _log_run(result: RunResult, data: FeatureData, report: TrainingReport, data_specs, classifier: str, seed: int,
             fpr: float, register: str | None) -> None:
    model = result.model
    with mlflow.start_run() as run:
        result.run_id = run.info.run_id
        clf = model.pipeline.named_steps["classify"].estimator
        mlflow.log_params({
            "classifier": classifier, "seed": seed, "target_fpr": fpr,
            "data_specs": json.dumps(data_specs or []),
            **{f"lm.{k}": v for k, v in model.extractor.get_params().items() if k != "progress"},
            "lm.revision": model.scoring_engine.language_model().revision,
            "feature_version": model.card.feature_version,
            **{f"clf.{k}": v for k, v in clf.get_params().items() if isinstance(v, (int, float, str, bool))},
        })
        split = report.split
        for part in ("train", "val", "test"):
            tracking.log_dataset(data.table[split.to_numpy() == part], f"{part}-data", part)
        tracking.log_metrics_table(result.test_table, "test")
        for by, frame in result.holdout.items():
            for _, row in frame.iterrows():
                for metric in ("auroc", "tpr_at_1fpr", "tpr_at_5fpr"):
                    mlflow.log_metric(tracking._clean(f"holdout_{by}.{row['held_out']}.{metric}"), row[metric])
            mlflow.log_table(frame, f"holdout_{by}.json")
        for i, score in enumerate(result.cv_auroc):
            mlflow.log_metric("cv_auroc", score, step=i)
        mlflow.log_metric("threshold", model.thresholds.machine)
        mlflow.log_metric("min_tokens", model.thresholds.min_tokens)
        mlflow.log_table(result.test_table, "test_metrics.json")
        for name, value in result.seconds.items():
            mlflow.log_metric(f"seconds.{name}", value)
        with tempfile.TemporaryDirectory() as tmp:
            evaluation_plots(model, report.test, report.test_p, tmp, title="test split")
            mlflow.log_artifacts(tmp, "plots")
        info = tracking.log_model(model, [NEUTRAL_EXAMPLE], register)
        result.model_uri = info.model_uri
