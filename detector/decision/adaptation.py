"""Adapting the ranking to a user's own human texts: the second half of a calibration profile.

Moving the threshold alone (profile version 1) cannot separate a user's humans from machine text any
better than the shipped ranking does. Here a light last stage is refitted: a logistic regression on the
shipped p(machine) (as a logit) and a few LM criteria, with the user's humans as negatives and machine
texts as positives (feature rows of training machine texts shipped with the model, `machine_rows.npz`,
those nearest the humans in style first, plus the user's own `--machines`). Every coefficient is bounded
at zero or above, each input oriented so that larger means more machine-like: the refit can reweigh the
evidence the model already reads, never learn "looks like these humans, so human" from a feature that
points the other way.

It is cross-fitted: the humans (and machines) fall into K folds and each is scored by the fit that never
saw its fold; the profile's thresholds are set on those out-of-fold scores of the humans. A new text is
scored by the mean logit of the K fits. This is cross-conformal in spirit: its false-positive promise is
weaker than split conformal's (for CV+ the coverage bound is 1 - 2*alpha minus a term in K/n: Barber,
Candes, Ramdas & Tibshirani, "Predictive inference with the jackknife+", Ann. Statist. 2021), and the
realised rate is checked in experiments/CALIBRATION.md rather than assumed.

Stored as plain numbers (JSON in the profile, an npz loaded with allow_pickle=False in the model folder)
and checked on load. Pure numpy/scipy: no torch, no scikit-learn at scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detector.core.errors import BadAdaptation, BadMachineRows
from detector.features.engine import FEATURE_NAMES, LM_FEATURES, MACHINE_DIRECTION

FILE = "machine_rows.npz"
MAX_MACHINE_ROWS = 3000  # shipped with a model: ~0.4 MB as float32
FOLDS = 5
L2 = 0.01  # on standardised inputs: a light refit, not a new classifier
LOGIT = "logit_p_machine"  # the shipped model's own score, as a logit
# The LM criteria the refit may reweigh (each has a known machine direction, see MACHINE_DIRECTION).
CRITERIA = ("logp_mean", "logrank_mean", "lrr", "entropy_mean", "fast_detectgpt", "binoculars", "gltr_top10")
INPUTS = (LOGIT, *CRITERIA)
_CLIP = 1e-6


# ----------------------------------------------------------------------------------------- machine rows


@dataclass
class MachineRows:
    """Raw feature rows of machine texts the model was trained on: the positives of a profile's refit
    when the user brings no machine texts of their own."""

    features: tuple[str, ...]
    rows: np.ndarray  # (n, len(features)) float32; NaN where a feature was missing (imputed by the model)
    n_tokens: np.ndarray  # (n,) int

    @classmethod
    def sample(cls, features: pd.DataFrame, n_tokens: np.ndarray, max_rows: int = MAX_MACHINE_ROWS,
               seed: int = 0) -> MachineRows:
        """At most `max_rows` of the given machine rows (seeded), those with every LM feature present."""
        scored = features[list(LM_FEATURES)].notna().all(axis=1).to_numpy()
        index = np.flatnonzero(scored)
        if len(index) > max_rows:
            index = np.sort(np.random.default_rng(seed).choice(index, max_rows, replace=False))
        return cls(tuple(FEATURE_NAMES), features.iloc[index][FEATURE_NAMES].to_numpy(dtype=np.float32),
                   np.asarray(n_tokens)[index].astype(np.int64))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows.astype(float), columns=list(self.features))

    def save(self, folder: str | Path) -> None:
        np.savez(Path(folder) / FILE, features=np.array(self.features), rows=self.rows, n_tokens=self.n_tokens)

    @classmethod
    def load(cls, folder: str | Path) -> MachineRows | None:
        """The rows saved in `folder`, None if it has none; BadMachineRows if the file is not one `save`
        could have written."""
        path = Path(folder) / FILE
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                rows = cls(tuple(str(f) for f in z["features"]), np.asarray(z["rows"], dtype=np.float32),
                           np.asarray(z["n_tokens"]))
        except (OSError, ValueError, KeyError, TypeError) as err:  # not an npz, pickled objects, missing keys
            raise BadMachineRows(f"{path}: not machine feature rows ({type(err).__name__}: {err})") from err
        problems = [
            (list(rows.features) != list(FEATURE_NAMES), "features are not the detector's"),
            (rows.rows.ndim != 2 or rows.rows.shape[1] != len(rows.features), "rows of another width"),
            (rows.n_tokens.shape != (len(rows.rows),) or rows.n_tokens.dtype.kind not in "iu"
             or (rows.n_tokens < 0).any(), "token counts not one count per row"),
            (np.isinf(rows.rows).any(), "infinite values"),
            (rows.rows.ndim == 2 and rows.rows.shape[1] == len(rows.features)
             and np.isnan(rows.table()[list(LM_FEATURES)].to_numpy()).any(), "rows without LM features"),
        ]
        bad = [what for failed, what in problems if failed]
        if bad:
            raise BadMachineRows(f"{path}: not usable machine feature rows ({'; '.join(bad)})")
        return rows


def nearest(humans: np.ndarray, candidates: np.ndarray, m: int) -> np.ndarray:
    """Indices of the `m` candidate rows nearest any human row (Euclidean, in the space given)."""
    from detector.decision.novelty import distances

    if m >= len(candidates):
        return np.arange(len(candidates))
    closest = np.full(len(candidates), np.inf)
    for start in range(0, len(humans), 512):
        closest = np.minimum(closest, distances(candidates, humans[start:start + 512]).min(axis=1))
    return np.sort(np.argsort(closest, kind="stable")[:m])


# ----------------------------------------------------------------------------------------- the refit


def inputs(table: pd.DataFrame, p_machine: np.ndarray) -> np.ndarray:
    """The refit's inputs, each oriented so that larger means more machine-like."""
    p = np.clip(np.asarray(p_machine, dtype=float), _CLIP, 1 - _CLIP)
    columns = [np.log(p / (1 - p))]
    columns += [MACHINE_DIRECTION[name] * table[name].to_numpy(dtype=float) for name in CRITERIA]
    return np.column_stack(columns)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, weight: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float]:
    """Logistic regression with every coefficient >= 0 (the intercept free); rows weighted by `weight`
    (default: each class half of the total)."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    sign = np.where(y == 1, 1.0, -1.0)
    if weight is None:
        weight = balanced_weights(y, np.zeros(len(y), bool))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, intercept = theta[:-1], theta[-1]
        margin = sign * (x @ coef + intercept)
        value = -(weight * log_expit(margin)).sum() + 0.5 * l2 * coef @ coef
        slope = -weight * sign * expit(-margin)
        return value, np.append(x.T @ slope + l2 * coef, slope.sum())

    width = x.shape[1]
    found = minimize(loss, np.zeros(width + 1), jac=True, method="L-BFGS-B",
                     bounds=[(0.0, None)] * width + [(None, None)])
    return found.x[:-1], float(found.x[-1])


def balanced_weights(y: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Row weights summing to 1/2 per class; among the machine texts, the user's own (`own`) weigh as much
    as all the shipped rows together, so 100 texts of the user's setting are not outvoted by 1,500 others."""
    weight = np.zeros(len(y))
    groups = [y == 0] + ([(y == 1) & own, (y == 1) & ~own] if (own & (y == 1)).any() else [y == 1])
    for members, total in zip(groups, [0.5] + [0.5 / (len(groups) - 1)] * (len(groups) - 1), strict=True):
        if members.any():
            weight[members] = total / members.sum()
    return weight


@dataclass
class Adaptation:
    """K cross-fitted refits; a text's adapted p(machine) is the logistic of their mean logit."""

    inputs: tuple[str, ...]
    center: np.ndarray  # (K, len(inputs))
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray  # (K,)

    def fold_logits(self, x: np.ndarray) -> np.ndarray:
        """(n, K): each fit's logit for rows of `inputs(...)`."""
        return np.einsum("nkf,kf->nk", (x[:, None, :] - self.center) / self.scale, self.coef) + self.intercept

    def p_machine(self, table: pd.DataFrame, p_machine: np.ndarray) -> np.ndarray:
        """Adapted p(machine) of each row (NaN where the model gave none)."""
        from scipy.special import expit

        x = inputs(table, p_machine)
        out = expit(self.fold_logits(np.nan_to_num(x)).mean(axis=1))
        out[~np.isfinite(x).all(axis=1) | ~np.isfinite(np.asarray(p_machine, dtype=float))] = np.nan
        return out

    def to_json(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs), "center": self.center.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}

    @classmethod
    def from_json(cls, data: Any) -> Adaptation:
        """Checked: the known inputs, K x inputs finite arrays, non-negative coefficients, scales > 0."""
        if not isinstance(data, dict) or data.get("inputs") != list(INPUTS):
            raise BadAdaptation("adaptation.inputs are not this detector's")
        try:
            arrays = {key: np.asarray(data[key], dtype=float) for key in ("center", "scale", "coef", "intercept")}
        except (KeyError, TypeError, ValueError) as err:
            raise BadAdaptation(f"adaptation arrays missing or not numbers ({type(err).__name__})") from err
        folds = arrays["intercept"].shape
        shape = (*folds, len(INPUTS))
        if len(folds) != 1 or not folds[0] or any(arrays[k].shape != shape for k in ("center", "scale", "coef")):
            raise BadAdaptation(f"adaptation arrays are not K x {len(INPUTS)}")
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise BadAdaptation("adaptation arrays hold non-finite numbers")
        if (arrays["scale"] <= 0).any() or (arrays["coef"] < 0).any():
            raise BadAdaptation("adaptation scales must be positive and coefficients non-negative")
        return cls(INPUTS, arrays["center"], arrays["scale"], arrays["coef"], arrays["intercept"])


@dataclass
class CrossFit:
    """An adaptation and the out-of-fold scores (adapted p(machine)) it was judged by."""

    adaptation: Adaptation
    human_p: np.ndarray
    machine_p: np.ndarray


def cross_fit(human_x: np.ndarray, machine_x: np.ndarray, folds: int = FOLDS, seed: int = 0,
              l2: float = L2, own: np.ndarray | None = None) -> CrossFit:
    """Fit K refits, each without one fold of the humans and of the machines; score each held-out fold.
    `own` marks the machine rows the user gave (weighted as much as the rest together)."""
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    human_fold = rng.permutation(np.arange(len(human_x)) % folds)
    machine_fold = rng.permutation(np.arange(len(machine_x)) % folds)
    x = np.vstack([human_x, machine_x])
    y = np.r_[np.zeros(len(human_x), int), np.ones(len(machine_x), int)]
    fold = np.r_[human_fold, machine_fold]
    own = np.r_[np.zeros(len(human_x), bool), np.zeros(len(machine_x), bool) if own is None else own]
    centers, scales, coefs, intercepts = [], [], [], []
    out_of_fold = np.full(len(x), np.nan)
    for k in range(folds):
        train = fold != k
        center, scale = x[train].mean(axis=0), x[train].std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        coef, intercept = fit_logistic((x[train] - center) / scale, y[train], l2,
                                       balanced_weights(y[train], own[train]))
        out_of_fold[~train] = expit(((x[~train] - center) / scale) @ coef + intercept)
        centers.append(center), scales.append(scale), coefs.append(coef), intercepts.append(intercept)
    adaptation = Adaptation(INPUTS, np.array(centers), np.array(scales), np.array(coefs), np.array(intercepts))
    return CrossFit(adaptation, out_of_fold[: len(human_x)], out_of_fold[len(human_x):])
