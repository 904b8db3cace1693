"""Fit a detector: feature table -> calibrated classifier -> thresholds on held-out humans -> card.

The LM pass happens once per text through the cache; everything here works on the feature table, so
a second run with another classifier or split costs seconds.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from detector.decision.adaptation import MachineRows
from detector.decision.lengths import MIN_TOKENS, reliability_by_length, reliable_length
from detector.decision.novelty import Novelty
from detector.decision.thresholds import Thresholds, threshold_for_fpr
from detector.facade.explain import feature_reference
from detector.features.engine import FEATURE_NAMES, Analysis, ScoringEngine
from detector.model.card import ModelCard
from detector.model.detector_model import DetectorModel
from detector.model.extractor import FeatureExtractor
from detector.model.prediction import p_machine_of, single_openmp_thread
from train import eval_metrics
from train.balance import balanced_rows
from train.data import DataError
from train.recipes import get_recipe
from train.splits import train_val_test


def detector_pipeline(classifier: Pipeline, **extractor_params) -> Pipeline:
    """The whole detector, texts in, p(machine) out, as saved and logged: the feature transformer (it
    learns nothing from texts, so it needs no fitting) ahead of fitted classifier steps."""
    return Pipeline([("features", FeatureExtractor(**extractor_params)), *classifier.steps])


META_COLUMNS = ["id", "label", "dataset", "domain", "generator", "attack", "pair_id"]


@dataclass
class FeatureData:
    """The training table with its features, token counts and text problems, computed once.

    Everything the protocol and the fit need is here without the texts, so the table can be saved
    (`save`: meta columns, features, n_tokens, problem; no text) and a rebuild needs no LM pass.
    """

    table: pd.DataFrame
    features: pd.DataFrame
    n_tokens: np.ndarray
    problem: np.ndarray | None = None  # text_problem() of each text ("" where none)

    def __post_init__(self) -> None:
        if self.problem is None:
            self.problem = np.full(len(self.table), "", dtype=object)

    @classmethod
    def compute(cls, table: pd.DataFrame, engine: ScoringEngine, workers: int = 1) -> FeatureData:
        """Features of `table`'s texts (one LM pass for those not in the stats cache)."""
        return cls.from_analyses(table, engine.analyse(table["text"].tolist()), workers)

    @classmethod
    def from_analyses(cls, table: pd.DataFrame, analyses: list[Analysis], workers: int = 1) -> FeatureData:
        """Features of the analysed texts of `table`'s rows, in `workers` processes (sentence splitting is
        the slow part)."""
        if workers > 1:
            from multiprocessing import Pool

            with Pool(workers) as pool:
                rows = pool.map(_features_and_problem, analyses, chunksize=64)
        else:
            rows = [_features_and_problem(a) for a in analyses]
        return cls(table.reset_index(drop=True), pd.DataFrame([f for f, _ in rows], columns=FEATURE_NAMES,
                                                              dtype=float),
                   np.array([len(a.stats) for a in analyses]), np.array([p for _, p in rows], dtype=object))

    def subset(self, mask) -> FeatureData:
        mask = np.asarray(mask)
        return FeatureData(self.table[mask].reset_index(drop=True),
                           self.features[mask].reset_index(drop=True), self.n_tokens[mask], self.problem[mask])

    @classmethod
    def concat(cls, parts: list[FeatureData]) -> FeatureData:
        return cls(pd.concat([p.table for p in parts], ignore_index=True),
                   pd.concat([p.features for p in parts], ignore_index=True),
                   np.concatenate([p.n_tokens for p in parts]), np.concatenate([p.problem for p in parts]))

    def save(self, path: str | Path, **metadata: str) -> None:
        """Parquet without texts: meta columns, n_tokens, problem, features; `metadata` in the footer."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.concat([self.table[META_COLUMNS].reset_index(drop=True),
                           pd.DataFrame({"n_tokens": self.n_tokens, "problem": self.problem.astype(str)}),
                           self.features.reset_index(drop=True)], axis=1)
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                               **{k.encode(): v.encode() for k, v in metadata.items()}})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow, path, compression="zstd")

    @classmethod
    def load(cls, path: str | Path, missing_features: bool = False) -> tuple[FeatureData, dict[str, str]]:
        """A table written by `save` (its texts are not in it) and its metadata. With `missing_features`,
        features it lacks (a table of an older feature version) are NaN instead of a KeyError."""
        import pyarrow.parquet as pq

        arrow = pq.read_table(path)
        metadata = {k.decode(): v.decode() for k, v in (arrow.schema.metadata or {}).items() if k != b"pandas"}
        frame = arrow.to_pandas()
        table = frame[META_COLUMNS].assign(text=None)
        features = frame.reindex(columns=FEATURE_NAMES) if missing_features else frame[FEATURE_NAMES]
        return cls(table, features.astype(float), frame["n_tokens"].to_numpy(),
                   frame["problem"].to_numpy(dtype=object)), metadata


def _features_and_problem(analysis: Analysis) -> tuple[dict[str, float], str]:
    from detector.decision.verdict import text_problem

    return analysis.features(), text_problem(analysis.text) or ""


def fit_classifier(data: FeatureData, recipe: str = "hgb", seed: int = 0) -> Pipeline:
    """Features of cached texts -> the recipe's classifier steps (select, impute, scale, calibrated
    classifier) fitted on them, with no LM pass. Training, cross-validation, hold-outs, the protocol and
    the benchmark all fit through here; `detector_pipeline` puts the feature transformer ahead."""
    labels = data.table["label"].to_numpy()
    smallest_class = int(np.bincount(labels, minlength=2).min())
    if smallest_class < 2:
        raise DataError("too few texts of one class to fit a calibrated classifier (need 2+ of each)")
    # Calibration folds cannot outnumber the texts of the smaller class (tiny or held-out data).
    classifier = Pipeline(get_recipe(recipe).steps(seed, calibration_folds=min(5, smallest_class)))
    with single_openmp_thread():
        return classifier.fit(data.features[FEATURE_NAMES], labels)


def fitted_p_machine(train: FeatureData, features: pd.DataFrame, recipe: str = "hgb", seed: int = 0) -> np.ndarray:
    """p(machine) of each row of `features` from the recipe fitted on `train` (NaN where a feature is
    missing): cross-validation, hold-outs and out-of-fold scores."""
    return p_machine_of(fit_classifier(train, recipe, seed), features[FEATURE_NAMES])


def data_digest(table: pd.DataFrame) -> dict:
    """Name, counts and a digest of the ids of each dataset used, for the model card and mlflow."""
    out = {}
    for name, part in table.groupby("dataset"):
        digest = hashlib.sha256("\n".join(sorted(part["id"].astype(str))).encode()).hexdigest()[:16]
        out[str(name)] = {"n": int(len(part)), "n_machine": int(part["label"].sum()), "digest": digest,
                          "generators": sorted(map(str, part["generator"].unique()))}
    return out


def with_learned(train: FeatureData, learned: FeatureData) -> FeatureData:
    """The training texts plus human-only texts to learn from (the references: prose of kinds no
    development set has, so the classifier sees that such easy-to-predict writing is human)."""
    if (learned.table["label"] != 0).any():
        raise DataError("only human texts can be added to what the classifier learns from")
    return FeatureData.concat([train, learned])


# What the verdict does with a novel text (see detector.decision.novelty): "veto" (never `machine`), "two-sided"
# (vetoed unless it lies among the training machine texts) or "threshold" (a stricter threshold).
# Two-sided is the default: the held-out protocol found it catches more at the same promise.
NOVELTY_RULES = ("two-sided", "veto", "threshold")


def human_groups(table: pd.DataFrame) -> np.ndarray:
    """The groups the verdict threshold must hold its false-positive rate in: dataset and domain."""
    return (table["dataset"].astype(str) + ":" + table["domain"].astype(str)).to_numpy()


def fit_detector(train: FeatureData, val: FeatureData, recipe: str, seed: int = 0, fpr: float = 0.01,
                 references: FeatureData | None = None, novelty: bool = True, rule: str = "by-length",
                 novelty_quantile: float = 0.9, classifier: Pipeline | None = None,
                 novelty_rule: str = NOVELTY_RULES[0], **extractor_params) -> DetectorModel:
    """Fit `recipe` on `train` (or take `classifier`, already fitted on it); choose the reliable length
    and the thresholds on `val` (+ references).

    Thresholds follow the worst-group rule over the validation humans of each dataset:domain and the
    human reference texts (out-of-domain prose that no machine text accompanies), in each length band
    (rule "by-length", the default) or over all lengths at once ("worst-group"); "pooled" is the v1
    rule (one quantile over all validation humans), kept to show what the new ones change.
    """
    if novelty_rule not in NOVELTY_RULES:
        raise ValueError(f"unknown novelty rule {novelty_rule!r}: one of {', '.join(NOVELTY_RULES)}")
    pipeline = detector_pipeline(classifier or fit_classifier(train, recipe, seed), **extractor_params)
    model = DetectorModel(pipeline, Thresholds(1.0, fpr, 1.0, 0.05))
    val_p = model.p_machine_from_features(val.features)
    val_y = val.table["label"].to_numpy()
    curve = reliability_by_length(val.n_tokens, val_y, val_p)
    min_tokens = reliable_length(curve)
    if min_tokens is None:  # no band to judge: the floor; even the longest judged texts miss: only those
        judged = curve.loc[curve["judged"], "from_tokens"]
        min_tokens = MIN_TOKENS if judged.empty else int(judged.max())
    if not ((val.n_tokens >= min_tokens) & (val_y == 0)).any():
        raise DataError(f"the validation split holds no human text of {min_tokens}+ tokens to set the threshold "
                        "on: add more (or longer) human texts")
    judged_humans = (val_y == 0) & (val.n_tokens >= min_tokens) & (val.problem == "")
    humans, human_p = val.subset(judged_humans), val_p[judged_humans]
    if references is not None and len(references.table):
        humans = FeatureData.concat([humans, references])
        human_p = np.concatenate([human_p, model.p_machine_from_features(references.features)])
    if rule == "pooled":
        model.thresholds = Thresholds.from_human_scores(human_p, fpr, 0.05, min_tokens)
    elif rule == "worst-group":
        model.thresholds = Thresholds.worst_group(human_p, human_groups(humans.table), fpr, 0.05, min_tokens)
    else:  # "by-length": the worst-group rule in each length band
        model.thresholds = Thresholds.worst_group_by_length(human_p, human_groups(humans.table), humans.n_tokens,
                                                            fpr, 0.05, min_tokens)
    train_machines = train.table["label"].to_numpy() == 1
    # Shipped with the model: a calibration profile refits the ranking against them (detector.decision.adaptation).
    model.machine_rows = MachineRows.sample(train.features[train_machines], train.n_tokens[train_machines], seed=seed)
    if novelty:
        train_humans = train.features[train.table["label"].to_numpy() == 0]
        if references is not None:
            train_humans = pd.concat([train_humans, references.features])
        # Two-sided: a novel text as near the training machine texts as most validation ones is not vetoed.
        machines, val_machines = ((train.features[train.table["label"].to_numpy() == 1], val.features[val_y == 1])
                                  if novelty_rule == "two-sided" else (None, None))
        model.novelty = Novelty.fit(train_humans, val.features[val_y == 0], quantile=novelty_quantile,
                                    machines=machines, val_machines=val_machines)
        if novelty_rule == "threshold":  # novel texts get a stricter threshold instead of the veto
            flagged = model.novelty.score(humans.features) > model.novelty.cut
            if flagged.sum() >= MIN_FLAGGED_HUMANS:
                model.thresholds.novel = max(threshold_for_fpr(human_p[flagged], fpr),
                                             max(t for _, t, _ in model.thresholds.by_length or [[0, 0, 0]]),
                                             model.thresholds.machine)
    return model


def novelty_card(novelty: Novelty) -> dict:
    """What the model card says of the novelty check."""
    card = {"features": list(novelty.features), "k": novelty.k, "cut": novelty.cut,
            "n_reference": len(novelty.reference)}
    if novelty.machine_reference is not None:
        card.update(two_sided=True, machine_cut=novelty.machine_cut, n_machine_reference=len(novelty.machine_reference))
    return card


# A threshold for novel texts is set only on this many flagged validation humans (else: the veto).
MIN_FLAGGED_HUMANS = 100


@dataclass
class TrainingReport:
    """What `train_detector` measured besides the model: the test metrics and what they came from."""

    test_table: pd.DataFrame  # metric rows (overall and per group) on the judged test texts
    split: pd.Series  # "train" / "val" / "test" per row of the training data
    test: FeatureData
    test_p: np.ndarray  # p(machine) of every test text
    val_p: np.ndarray
    seconds: float


def train_detector(data: FeatureData, classifier: str = "hgb", fpr: float = 0.01, seed: int = 0,
                   split: pd.Series | None = None, references: FeatureData | None = None, novelty: bool = True,
                   balance: int | None = None, rule: str = "by-length", novelty_quantile: float = 0.9,
                   novelty_rule: str = NOVELTY_RULES[0], learned: FeatureData | None = None,
                   **extractor_params) -> tuple[DetectorModel, TrainingReport]:
    """Fit on the train split (its balanced subset with `balance`, see train.balance) plus the human-only
    texts `learned` (e.g. the references); thresholds and reliable length on all of val; metrics on all
    of test."""
    started = time.time()
    split = train_val_test(data.table, seed=seed) if split is None else split
    split = split.reset_index(drop=True)
    parts = {name: data.subset(split == name) for name in ("train", "val", "test")}
    for name, part in parts.items():
        metrics_two = part.table["label"].nunique() == 2
        if not metrics_two:
            raise DataError(f"the {name} split holds one class only: add more data (grouped splits need "
                            "a few dozen texts of each class)")
    if balance:
        parts["train"] = parts["train"].subset(balanced_rows(parts["train"].table, parts["train"].n_tokens,
                                                             balance, seed))
    if learned is not None and len(learned.table):
        parts["train"] = with_learned(parts["train"], learned)
    model = fit_detector(parts["train"], parts["val"], classifier, seed, fpr, references, novelty, rule=rule,
                         novelty_quantile=novelty_quantile, novelty_rule=novelty_rule, **extractor_params)
    min_tokens = model.thresholds.min_tokens
    test_p = model.p_machine_from_features(parts["test"].features)
    test_judged = parts["test"].n_tokens >= min_tokens
    test_table = eval_metrics.metric_table(parts["test"].table[test_judged], test_p[test_judged],
                                      model.thresholds.machine)
    overall = test_table.iloc[0].to_dict()
    model.card = ModelCard(
        classifier=classifier,
        trained=time.strftime("%Y-%m-%d"),
        training_data=data_digest(parts["train"].table),
        split={name: int(len(part.table)) for name, part in parts.items()},
        split_rule=f"grouped by pair_id (rows without one: by id), seed {seed}; thresholds (worst "
                   "dataset:domain group of val humans and the human references) and reliable length chosen "
                   "on val, metrics on test",
        recipe=get_recipe(classifier).name,
        novelty=None if model.novelty is None else novelty_card(model.novelty),
        test_metrics={k: v for k, v in overall.items() if k not in ("group", "value")},
        test_metrics_all_lengths=eval_metrics.metric_row(parts["test"].table["label"], test_p,
                                                         model.thresholds.machine),
        feature_reference=feature_reference(parts["train"].features, parts["train"].table["label"].to_numpy()),
        # A card field of its own would touch the model module's record; the card keeps unknown keys.
        extra={} if not balance else {"training_balance": {
            "rule": "train.balance: at most cap machine texts per (dataset, domain, generator, attack, length "
                    "band), humans of each (dataset, domain, band) as many as the machine texts beside them",
            "cap_per_cell": balance, "n_train": int(len(parts["train"].table))}},
    )
    report = TrainingReport(test_table, split, parts["test"], test_p,
                            model.p_machine_from_features(parts["val"].features), time.time() - started)
    return model, report
