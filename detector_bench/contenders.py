"""The contenders computed in this run, all from one LM pass per text through the stats cache.

Zero-shot baselines (`detector.features.zero_shot.ZERO_SHOT`: functions of a text's `TokenStats`, higher =
machine) need no training. The trained ones are fitted on a mask of the table: the project's
detector (the shipped recipe: features -> impute -> scale -> calibrated classifier) and GLTR
(Gehrmann et al. 2019): its four rank-bucket shares with a logistic regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from detector.features.engine import FEATURE_NAMES, ScoringEngine, features_table
from detector.features.zero_shot import GLTR_BUCKETS, ZERO_SHOT, gltr_fractions
from detector.model.prediction import p_machine_of
from train.fit import FeatureData, fit_classifier
from train.splits import train_val_test

DETECTOR = "detector"
GLTR = "gltr_logreg"
ZERO_SHOT_NAMES = list(ZERO_SHOT)
TRAINED_NAMES = [DETECTOR, GLTR]
OURS = TRAINED_NAMES + ZERO_SHOT_NAMES  # every contender computed in this run, in table order
GLTR_COLUMNS = [f"gltr_{i}" for i in range(len(GLTR_BUCKETS))]

DESCRIPTIONS = {
    DETECTOR: "this project's detector: LM + stylometric features, the shipped recipe "
              "(rf-all-but-dynamics, calibrated forest)",
    GLTR: "GLTR rank buckets (top-10/100/1000/rest) + logistic regression, fitted like the detector",
    "likelihood": "mean token log-probability",
    "log_rank": "minus mean log-rank",
    "lrr": "log-likelihood / log-rank ratio (DetectLLM)",
    "entropy": "minus mean predictive entropy",
    "fast_detectgpt": "Fast-DetectGPT analytic sampling discrepancy, one model as sampler and scorer",
    "binoculars": "Binoculars-style ratio: log-perplexity / mean entropy, one model in both roles",
}


@dataclass
class Scored:
    """The benchmark table with everything computed once: features, zero-shot scores, GLTR shares,
    and the grouped train/val/test split the shipped model was trained with."""

    data: FeatureData
    zero_shot: pd.DataFrame  # one column per ZERO_SHOT name
    gltr: pd.DataFrame  # GLTR_COLUMNS
    split: pd.Series

    @property
    def table(self) -> pd.DataFrame:
        return self.data.table

    @property
    def y(self) -> np.ndarray:
        return self.table["label"].to_numpy()

    @classmethod
    def compute(cls, table: pd.DataFrame, engine: ScoringEngine, seed: int = 0) -> Scored:
        """One LM pass per text (cached); texts without a scored token are dropped."""
        analyses = engine.analyse(table["text"].tolist())
        keep = np.array([len(a.stats) > 0 for a in analyses])
        analyses = [a for a, k in zip(analyses, keep, strict=True) if k]
        data = FeatureData(table[keep].reset_index(drop=True), features_table(analyses),
                           np.array([len(a.stats) for a in analyses]))
        zero_shot = pd.DataFrame({name: [z.score(a.stats) for a in analyses] for name, z in ZERO_SHOT.items()})
        gltr = pd.DataFrame([gltr_fractions(a.stats) for a in analyses], columns=GLTR_COLUMNS)
        # The split depends on group keys only, so it is the shipped model's split of the same sample.
        return cls(data, zero_shot, gltr, train_val_test(data.table, seed=seed).reset_index(drop=True))




def fit_gltr(scored: Scored, mask: np.ndarray) -> Pipeline:
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(scored.gltr[mask], scored.y[mask])


def trained_scores(scored: Scored, train_mask: np.ndarray, score_mask: np.ndarray, classifier: str = "hgb",
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Both trained contenders fitted on `train_mask`, scores on `score_mask` (NaN elsewhere)."""
    out = {}
    detector = fit_classifier(scored.data.subset(train_mask), classifier, seed)
    gltr = fit_gltr(scored, train_mask)
    for name, model, X in ((DETECTOR, detector, scored.data.features[FEATURE_NAMES]), (GLTR, gltr, scored.gltr)):
        p = np.full(len(scored.table), np.nan)
        p[score_mask] = p_machine_of(model, X[score_mask])
        out[name] = p
    return out


def zero_shot_scores(scored: Scored) -> dict[str, np.ndarray]:
    return {name: scored.zero_shot[name].to_numpy() for name in ZERO_SHOT_NAMES}
