"""Fit a detector: feature table -> calibrated classifier -> thresholds on held-out humans -> card.

The LM pass happens once per text through the cache; everything here works on the feature table, so
a second run with another classifier or split costs seconds.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from detector.explain import feature_reference
from detector.features import FEATURE_NAMES, Analysis, FeatureExtractor
from detector.model import DetectorModel, Thresholds, single_openmp_thread
from train import metrics
from train.data import DataError
from train.splits import train_val_test

CLASSIFIERS = {
    "hgb": lambda seed: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                                       l2_regularization=1.0, random_state=seed),
    "logreg": lambda seed: LogisticRegression(C=1.0, max_iter=2000),
    "rf": lambda seed: RandomForestClassifier(n_estimators=300, min_samples_leaf=3, n_jobs=-1,
                                              random_state=seed),
}

# Length buckets (tokens) for deciding from which length verdicts are given.
LENGTH_EDGES = (8, 16, 24, 32, 48, 64, 96, 128)


def build_pipeline(classifier: str = "hgb", seed: int = 0, **extractor_params) -> Pipeline:
    """features -> impute -> scale -> classifier with sigmoid calibration (keeps p continuous)."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {classifier!r} (choose from {', '.join(CLASSIFIERS)})")
    return Pipeline([
        ("features", FeatureExtractor(**extractor_params)),
        ("impute", SimpleImputer(strategy="median")),
        ("scale", StandardScaler()),
        ("classify", CalibratedClassifierCV(CLASSIFIERS[classifier](seed), method="sigmoid", cv=5)),
    ])


@dataclass
class FeatureData:
    """The training table with its features and token counts, computed once."""

    table: pd.DataFrame
    features: pd.DataFrame
    n_tokens: np.ndarray

    @classmethod
    def compute(cls, table: pd.DataFrame, extractor: FeatureExtractor) -> FeatureData:
        analyses: list[Analysis] = extractor.analyse(table["text"].tolist())
        return cls(table.reset_index(drop=True), extractor.features_table(analyses),
                   np.array([len(a.stats) for a in analyses]))

    def subset(self, mask) -> FeatureData:
        mask = np.asarray(mask)
        return FeatureData(self.table[mask].reset_index(drop=True),
                           self.features[mask].reset_index(drop=True), self.n_tokens[mask])


def fit_classifier(pipeline: Pipeline, data: FeatureData) -> Pipeline:
    """Fit the steps after feature extraction on cached features; mark the extractor fitted."""
    labels = data.table["label"].to_numpy()
    smallest_class = int(np.bincount(labels, minlength=2).min())
    if smallest_class < 2:
        raise DataError("too few texts of one class to fit a calibrated classifier (need 2+ of each)")
    # Calibration folds cannot outnumber the texts of the smaller class (tiny or held-out data).
    pipeline.set_params(classify__cv=min(5, smallest_class))
    pipeline[0].fit(None)
    with single_openmp_thread():
        pipeline[1:].fit(data.features[FEATURE_NAMES], labels)
    return pipeline


def reliable_length(n_tokens: np.ndarray, y: np.ndarray, p: np.ndarray, min_auroc: float = 0.8,
                    floor: int = 16) -> int:
    """Shortest length from which every length bucket (with enough texts to judge) reaches `min_auroc`.

    Buckets are read from the longest down; the first one below `min_auroc` sets the limit at its upper
    edge. Never below `floor` tokens: shorter texts carry too little evidence whatever the data says.
    """
    edges = [0, *LENGTH_EDGES, np.inf]
    for lo, hi in reversed(list(zip(edges[:-1], edges[1:], strict=True))):
        mask = (n_tokens >= lo) & (n_tokens < hi)
        if mask.sum() < 30 or len(set(y[mask])) < 2:
            continue  # too few texts to judge this bucket
        if metrics.auroc(y[mask], p[mask]) < min_auroc:
            return int(max(hi, floor)) if np.isfinite(hi) else int(max(lo, floor))
    return floor


def data_digest(table: pd.DataFrame) -> dict:
    """Name, counts and a content digest of each dataset used, for the model card and mlflow."""
    out = {}
    for name, part in table.groupby("dataset"):
        digest = hashlib.sha256("\n".join(sorted(part["text"])).encode()).hexdigest()[:16]
        out[str(name)] = {"n": int(len(part)), "n_machine": int(part["label"].sum()), "digest": digest,
                          "generators": sorted(map(str, part["generator"].unique()))}
    return out


def train_detector(data: FeatureData, classifier: str = "hgb", fpr: float = 0.01, seed: int = 0,
                   split: pd.Series | None = None, **extractor_params) -> tuple[DetectorModel, dict]:
    """Fit on the train split; thresholds and reliable length on val; metrics on test.

    Returns the model and a report: metric tables for test, the split used, timings.
    """
    started = time.time()
    split = train_val_test(data.table, seed=seed) if split is None else split
    split = split.reset_index(drop=True)
    parts = {name: data.subset(split == name) for name in ("train", "val", "test")}
    for name, part in parts.items():
        metrics_two = part.table["label"].nunique() == 2
        if not metrics_two:
            raise DataError(f"the {name} split holds one class only: add more data (grouped splits need "
                            "a few dozen texts of each class)")
    pipeline = fit_classifier(build_pipeline(classifier, seed, **extractor_params), parts["train"])
    model = DetectorModel(pipeline, Thresholds(1.0, fpr, 1.0, 0.05))
    val_p = model.p_machine_from_features(parts["val"].features)
    val_y = parts["val"].table["label"].to_numpy()
    min_tokens = reliable_length(parts["val"].n_tokens, val_y, val_p)
    judged = parts["val"].n_tokens >= min_tokens
    if not (judged & (val_y == 0)).any():
        raise DataError(f"the validation split holds no human text of {min_tokens}+ tokens to set the threshold "
                        "on: add more (or longer) human texts")
    model.thresholds = Thresholds.from_human_scores(val_p[judged & (val_y == 0)], fpr, 0.05, min_tokens)
    test_p = model.p_machine_from_features(parts["test"].features)
    test_judged = parts["test"].n_tokens >= min_tokens
    test_table = metrics.metric_table(parts["test"].table[test_judged], test_p[test_judged],
                                      model.thresholds.machine)
    overall = test_table.iloc[0].to_dict()
    model.card = {
        "name": "mgt-detector",
        "classifier": classifier,
        "trained": time.strftime("%Y-%m-%d"),
        "training_data": data_digest(parts["train"].table),
        "split": {name: int(len(part.table)) for name, part in parts.items()},
        "split_rule": f"grouped by pair_id (rows without one: by id), seed {seed}; thresholds and reliable "
                      "length chosen on val, metrics on test",
        "test_metrics": {k: v for k, v in overall.items() if k not in ("group", "value")},
        "test_metrics_all_lengths": metrics.metric_row(parts["test"].table["label"], test_p,
                                                       model.thresholds.machine),
        "feature_reference": feature_reference(parts["train"].features, parts["train"].table["label"].to_numpy()),
    }
    report = {"test_table": test_table, "split": split, "test_p": test_p, "test": parts["test"],
              "val_p": val_p, "seconds": time.time() - started}
    return model, report
