"""p(machine) from fitted classifier steps: reproducible to the bit, NaN where a text has no score."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


def single_openmp_thread():
    """Run scikit-learn's OpenMP code (gradient boosting) on one thread.

    Beside torch's own thread pool on a small machine, OpenMP workers spin against each other: fitting
    the gradient-boosting classifier took ~100 s instead of ~1 s on 2 cores. One thread avoids that.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def p_machine_of(classifier: Pipeline, table: pd.DataFrame) -> np.ndarray:
    """p(machine) of each row of a feature table from fitted classifier steps (the pipeline after its
    feature extractor); rows without LM features (a text without tokens) get NaN, not a guess. Other
    missing features (a series too short for its ordinal patterns, say) are imputed by the steps."""
    from joblib import parallel_config

    def predict(rows: pd.DataFrame) -> np.ndarray:
        # The forest's trees one after another: its thread pool cost more than it saved here (0.12 s
        # against 0.02 s for one text, 0.034 against 0.021 s for 2,000) and summed the trees in a varying
        # order (p(machine) differing by 4e-16 between runs); in sequence it is reproducible to the bit.
        with single_openmp_thread(), parallel_config(backend="sequential"):
            return classifier.predict_proba(rows)[:, 1]

    return where_scored(table, predict)


def where_scored(table: pd.DataFrame, predict: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
    """`predict` of the rows with LM features; NaN for the others."""
    p = np.full(len(table), np.nan)
    # logp_mean is missing exactly when a text has no scored token (detector.features.engine.lm_features)
    ok = (table["logp_mean"].notna() if "logp_mean" in table else table.notna().all(axis=1)).to_numpy()
    if ok.any():
        p[ok] = predict(table[ok])
    return p


def score_or_none(p: float) -> float | None:
    """A p(machine) for records and JSON: None where there is no score (NaN in arrays)."""
    return None if p is None or np.isnan(p) else float(p)


def score_or_nan(p: float | None) -> float:
    """A p(machine) for arrays: NaN where there is no score (None in records)."""
    return float("nan") if p is None else float(p)
