"""One training run end to end, tracked in mlflow: the function behind `detector train`.

    from train.run import train_run
    result = train_run(load_specs(["my.jsonl"]), classifier="logreg", holdout_by="generator")
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from detector.features.engine import ScoringEngine
from detector.model.detector_model import DetectorModel
from train import tracking
from train.data import DataError, check_two_classes
from train.evaluate import evaluation_plots, holdout_table
from train.fit import NOVELTY_RULES, FeatureData, TrainingReport, train_detector
from train.recipes import get_recipe
from train.splits import cv_folds, train_val_test

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
    warnings: list[str] = field(default_factory=list)  # shown to the user and logged to the run


# Guardrails, checked on the labels alone before the LM pass (minutes on a large set).
MIN_PER_CLASS = 20  # texts of each class in the whole table
MIN_PER_CLASS_SPLIT = {"train": 10, "val": 3, "test": 3}
FEW_THRESHOLD_HUMANS = 100  # a 1%-FPR threshold on fewer validation humans is mostly noise


def check_trainable(table: pd.DataFrame, seed: int = 0, cv: int = 0) -> list[str]:
    """Refuse, in seconds, data too small or too one-sided to train and judge a detector on; returns
    warnings for data that can be used but is badly unbalanced.

    The grouped train/val/test split is computed from ids and pair_ids only, so its class counts
    are known before any feature is computed.
    """
    check_two_classes(table)
    counts = np.bincount(table["label"], minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(f"{counts[0]} human and {counts[1]} machine texts: a detector needs at least {MIN_PER_CLASS} "
                        "of each (a few hundred for thresholds you can trust)")
    split = train_val_test(table, seed=seed).reset_index(drop=True)
    labels = table["label"].reset_index(drop=True)
    for part, need in MIN_PER_CLASS_SPLIT.items():
        human, machine = (int(((split == part) & (labels == k)).sum()) for k in (0, 1))
        if min(human, machine) < need:
            raise DataError(f"the {part} split would hold {human} human and {machine} machine texts, fewer than "
                            f"{need} of each (grouped 70/15/15 split by pair_id): add data")
    if cv:
        train = table.reset_index(drop=True)[split == "train"]
        folds = cv_folds(train, cv, seed)
        for fold in range(cv):
            held = train["label"].to_numpy()[folds == fold]
            if len(set(held)) < 2:
                raise DataError(f"--cv {cv}: fold {fold + 1} of the train split would hold one class only; "
                                "use fewer folds or more data")
    if counts.max() > 10 * counts.min():
        return [f"the classes are unbalanced ({counts[0]} human, {counts[1]} machine texts): AUROC and "
                "thresholds hold, but accuracy and F1 mostly reflect the larger class"]
    return []


def training_warnings(model: DetectorModel, data: FeatureData, report: TrainingReport,
                      cv_auroc: list[float]) -> list[str]:
    """What should make a user distrust this run though it finished: a constant classifier, or a
    threshold set on too few human texts."""
    out = []
    val_p = np.asarray(report.val_p, dtype=float)
    test_p = np.asarray(report.test_p, dtype=float)
    scores = np.concatenate([val_p, test_p])
    scores = scores[~np.isnan(scores)]
    if len(scores) and np.ptp(scores) < 1e-9:
        out.append(f"the classifier predicts a constant (p(machine) {scores[0]:.3f} for every validation and test "
                   "text): it learned nothing; try --classifier logreg or more data")
    elif cv_auroc and all(abs(a - 0.5) < 1e-9 for a in cv_auroc):
        out.append("every CV fold has AUROC 0.500: the classifier predicts a constant on held-out folds; "
                   "try --classifier logreg or more data")
    split = report.split.reset_index(drop=True).to_numpy()
    val = data.subset(split == "val")
    humans = int(((val.table["label"].to_numpy() == 0) & (val.n_tokens >= model.thresholds.min_tokens)).sum())
    if humans < FEW_THRESHOLD_HUMANS:
        out.append(f"the {model.thresholds.machine_fpr:.0%}-FPR threshold rests on {humans} validation human texts "
                   f"(fewer than {FEW_THRESHOLD_HUMANS}): its false-positive rate on new texts may be far higher")
    return out


def cross_validate(data: FeatureData, split: pd.Series, classifier: str, k: int, seed: int) -> list[float]:
    """Grouped k-fold AUROC on the train split."""
    from train import eval_metrics
    from train.fit import fitted_p_machine

    train = data.subset(split.reset_index(drop=True) == "train")
    folds = cv_folds(train.table, k, seed)
    scores = []
    for fold in range(k):
        held = train.subset(folds == fold)
        p = fitted_p_machine(train.subset(folds != fold), held.features, classifier, seed)
        scores.append(eval_metrics.auroc(held.table["label"], p))
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
    run_name: str | None = None,
    balance: int | None = None,
    rule: str = "by-length",
    novelty_quantile: float = 0.9,
    novelty_rule: str = NOVELTY_RULES[0],
    learned: FeatureData | None = None,
    **extractor_params,
) -> RunResult:
    """Features (cached) -> fit -> evaluate -> holdouts -> log everything to mlflow."""
    get_recipe(classifier)  # fail fast on an unknown name
    check_two_classes(table)
    if mlflow_enabled:
        tracking.connect(tracking_uri, experiment)  # fail fast, before the LM pass
    early_warnings = []
    if features is None:  # before the LM pass: a too-small set fails in seconds, not minutes
        early_warnings = check_trainable(table, seed, cv)
        for warning in early_warnings:
            print(f"detector: warning: {warning}", file=sys.stderr)
    seconds = {}
    started = time.time()
    # Precomputed features (a committed feature table) skip the LM pass altogether.
    data = features if features is not None else FeatureData.compute(table, ScoringEngine(progress=progress,
                                                                                           **extractor_params))
    seconds["features"] = time.time() - started

    started = time.time()
    model, report = train_detector(data, classifier, fpr, seed, references=references, novelty=novelty,
                                   balance=balance, rule=rule, novelty_quantile=novelty_quantile,
                                   novelty_rule=novelty_rule, learned=learned, **extractor_params)
    seconds["fit"] = time.time() - started
    result = RunResult(model, report.test_table, seconds=seconds)
    if cv:
        result.cv_auroc = cross_validate(data, report.split, classifier, cv, seed)
    for by in holdout_by:
        started = time.time()
        result.holdout[by] = holdout_table(data, report.split, by, classifier, seed)
        seconds[f"holdout_{by}"] = time.time() - started
    result.warnings = early_warnings + training_warnings(model, data, report, result.cv_auroc)
    model.card.data_specs = data_specs or []
    model.card.cv_auroc = result.cv_auroc
    for by, frame in result.holdout.items():
        model.card.holdout_auroc[by] = dict(zip(frame["held_out"], frame["auroc"], strict=True))
    if output:
        model.save(output)
    if mlflow_enabled:
        _log_run(result, data, report, data_specs, classifier, seed, fpr, register, run_name)
    return result


def _log_run(result: RunResult, data: FeatureData, report: TrainingReport, data_specs, classifier: str, seed: int,
             fpr: float, register: str | None, run_name: str | None = None) -> None:
    model = result.model
    lm_params = {k: v for k, v in model.lm_params().items() if k != "progress"}
    name = run_name or tracking.run_name("train", classifier, data_specs)
    tags = tracking.run_tags(data_specs, lm_params, command="train")
    with mlflow.start_run(run_name=name, tags=tags, description=tracking.describe_training(model, data_specs)) as run:
        result.run_id = run.info.run_id
        clf = model.pipeline.named_steps["classify"].estimator
        mlflow.log_params({
            "classifier": classifier, "seed": seed, "target_fpr": fpr,
            "data_specs": json.dumps(data_specs or []),
            **{f"lm.{k}": v for k, v in lm_params.items()},
            "lm.revision": model.scoring_engine.language_model().revision,
            "feature_version": model.card.feature_version,
            "threshold": model.thresholds.machine,  # chosen on val: a setting of the model, not a measurement
            "min_tokens": model.thresholds.min_tokens,
            **{f"split.{k}": v for k, v in model.card.split.items()},
            **{f"clf.{k}": v for k, v in clf.get_params().items() if isinstance(v, (int, float, str, bool))},
        })
        split = report.split
        for part in ("train", "val", "test"):
            tracking.log_dataset(data.table[split.to_numpy() == part], f"{part}-data", part)
        tracking.log_metrics_table(result.test_table, "test")
        if result.cv_auroc:
            for i, score in enumerate(result.cv_auroc, start=1):
                with mlflow.start_run(run_name=f"{name}/cv-fold-{i}", nested=True, tags={"kind": "cv-fold"}):
                    mlflow.log_params({"fold": i, "folds": len(result.cv_auroc)})
                    mlflow.log_metric("auroc", score)
            mlflow.log_metrics({"cv_auroc_mean": float(np.mean(result.cv_auroc)),
                                "cv_auroc_std": float(np.std(result.cv_auroc))})
        for by, frame in result.holdout.items():
            for _, row in frame.iterrows():
                with mlflow.start_run(run_name=f"{name}/holdout-{by}-{row['held_out']}", nested=True,
                                      tags={"kind": f"holdout-{by}"}):
                    mlflow.log_params({"held_out_by": by, "held_out": row["held_out"]})
                    mlflow.log_metrics({m: float(row[m]) for m in ("auroc", "tpr_at_1fpr", "tpr_at_5fpr")
                                        if pd.notna(row[m])})
                for metric in ("auroc", "tpr_at_1fpr", "tpr_at_5fpr"):  # also on the parent, to compare runs
                    mlflow.log_metric(tracking._clean(f"holdout_{by}.{row['held_out']}.{metric}"), row[metric])
            if len(frame):
                mlflow.log_metrics({f"holdout_{by}.auroc_mean": float(frame["auroc"].mean()),
                                    f"holdout_{by}.auroc_std": float(frame["auroc"].std(ddof=0))})
            mlflow.log_table(frame, f"holdout_{by}.json")
        mlflow.log_table(result.test_table, "test_metrics.json")
        for key, value in result.seconds.items():
            mlflow.log_metric(f"seconds.{key}", value)
        tracking.log_warnings(result.warnings)
        with tempfile.TemporaryDirectory() as tmp:
            evaluation_plots(model, report.test, report.test_p, tmp, title="test split")
            mlflow.log_artifacts(tmp, "plots")
        info = tracking.log_model(model, [NEUTRAL_EXAMPLE], register,
                                  description=tracking.describe_training(model, data_specs))
        result.model_uri = info.model_uri
