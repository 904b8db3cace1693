"""Tracked training runs read back from mlflow: a table per run, metrics per group, test-split scores.

Runs whose data is a committed feature table (`data/features/*.parquet`) need no LM pass at all: the
demo runs are trained from it, and their test splits are re-scored from its features.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.notebook import is_feature_table, unseen_rows


def ensure_experiment(tracking_uri: str, experiment: str) -> None:
    """Create the experiment if needed; with a SQLite store its artifacts go next to the database file
    (not into ./mlruns of whatever folder the notebook runs in)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is not None:
        return
    location = None
    if tracking_uri.startswith("sqlite:///"):
        location = (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "artifacts").as_uri()
    mlflow.create_experiment(experiment, artifact_location=location)


def load_run_data(spec: str, sample: int | None = None, seed: int = 0):
    """(table, FeatureData or None) of a data spec; a committed feature table comes with its features
    (and no texts). `sample` keeps that many rows of a feature table, stratified by generator."""
    from train.data import load_spec
    from train.fit import FeatureData

    if not is_feature_table(spec):
        return load_spec(spec), None
    data, _ = FeatureData.load(spec)
    if sample is not None and sample < len(data.table):
        share = sample / len(data.table)
        keep = data.table.groupby("generator", group_keys=False).sample(frac=share, random_state=seed).index
        data = data.subset(data.table.index.isin(keep))
    return data.table, data


# Rows of a feature table the demo runs train on: the all-data table (51k texts, leave-one-generator-out
# over ~30 generators) takes over ten minutes a run on 2 cores; a stratified 10k sample, about a minute.
DEMO_ROWS = 10_000


def make_demo_runs(data: str, tracking_uri: str, experiment: str, classifiers: Sequence[str] = ("logreg", "logreg-lm"),
                   holdout_by: Sequence[str] = ("generator",), sample: int | None = DEMO_ROWS):
    """Small training runs on `data`, one per classifier (by default logistic regression on every
    feature and on the LM features only), on `sample` rows of a feature table (stratified by generator;
    None: all), logged to the tracking store."""
    from train.run import train_run

    ensure_experiment(tracking_uri, experiment)
    table, features = load_run_data(data, sample)
    return [train_run(table, classifier=c, holdout_by=list(holdout_by), data_specs=[str(data)], features=features,
                      tracking_uri=tracking_uri, experiment=experiment, progress=False, novelty=False)
            for c in classifiers]


def search_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """The finished top-level runs of an experiment (no nested fold runs), newest first, each with a
    short readable `label`."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    if "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()].reset_index(drop=True)
    if runs.empty:
        return runs
    short_id = runs["run_id"].str[:8]
    names = runs["tags.mlflow.runName"].fillna(short_id) if "tags.mlflow.runName" in runs else short_id
    kinds = runs["params.classifier"].fillna("run") if "params.classifier" in runs else "run"
    runs["label"] = kinds + " · " + names
    return runs


OVERVIEW_METRICS = ("test.auroc", "test.tpr_at_1fpr", "test.tpr_at_5fpr", "test.average_precision", "test.f1",
                    "test.brier", "test.ece", "threshold", "min_tokens", "seconds.features", "seconds.fit")


def runs_overview(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: classifier, data and the headline test metrics (logged as metrics or params)."""
    columns = {"label": "run", "params.classifier": "classifier", "params.data_specs": "data"}
    out = runs[[c for c in columns if c in runs]].rename(columns=columns)
    for metric in OVERVIEW_METRICS:
        value = runs.get(f"metrics.{metric}", runs.get(f"params.{metric}", np.nan))
        out[metric] = pd.to_numeric(value, errors="coerce") if isinstance(value, pd.Series) else value
    return out.set_index("run")


def runs_breakdown(runs: pd.DataFrame, prefix: str = "test",
                   groups: Sequence[str] = ("dataset", "domain", "generator")) -> pd.DataFrame:
    """Long table (run, group, value, metric columns) from metrics logged as prefix.group.value.metric;
    with prefix 'holdout_generator' (or 'holdout_domain') the group is the held-out one."""
    rows: dict[tuple, dict] = {}
    start = f"metrics.{prefix}."
    for column in runs.columns:
        if not column.startswith(start):
            continue
        rest = column[len(start):]
        if prefix.startswith("holdout_"):
            group = prefix.removeprefix("holdout_")
            value, _, metric = rest.rpartition(".")
        else:
            group, _, tail = rest.partition(".")
            value, _, metric = tail.rpartition(".")
            if group not in groups or not value:
                continue
        for _, run in runs.iterrows():
            key = (run["label"], group, value)
            rows.setdefault(key, {"run": key[0], "group": group, "value": value,
                                  "where": f"{group}: {value}"})[metric] = run[column]
    if not rows:
        return pd.DataFrame(columns=["run", "group", "value", "where"])
    return pd.DataFrame(list(rows.values())).sort_values(["group", "value", "run"], ignore_index=True)


def overview_long(overview: pd.DataFrame, columns: Sequence[str] = ("test.auroc", "test.tpr_at_1fpr",
                                                                     "test.tpr_at_5fpr", "test.f1")) -> pd.DataFrame:
    """`runs_overview` reshaped for `plots.metric_bars(table, 'score', by='metric', hue='run')`."""
    present = [c for c in columns if c in overview.columns]
    return overview[present].reset_index().melt(id_vars="run", var_name="metric", value_name="score")


def run_test_scores(run: pd.Series, fallback_data: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(labels, p(machine), rows) of a run's own test split, rebuilt from its logged data spec and seed
    (the split is a stable hash of each text's group) and scored with the run's logged model; from the
    committed features when the data is a feature table, else with an LM pass."""
    from detector import Detector

    specs = json.loads(run.get("params.data_specs") or "[]")
    specs = [s for s in specs if Path(s).exists()] or [fallback_data]
    seed = int(float(run.get("params.seed") or 0))
    detector = Detector.load(f"runs:/{run['run_id']}/model")
    if len(specs) == 1 and is_feature_table(specs[0]):
        _, data = load_run_data(specs[0])
        test = unseen_rows(data, seed)
        return test.table["label"].to_numpy(), detector.model.p_machine_from_features(test.features), test.table
    from train.data import load_specs
    from train.splits import train_val_test

    table = load_specs(specs)
    test = table[train_val_test(table, seed=seed) == "test"].reset_index(drop=True)
    return test["label"].to_numpy(), np.array(detector.inference(test["text"].tolist())), test
