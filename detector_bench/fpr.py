"""False positives on human texts at the shipped model's own threshold, by set / domain and by length.

Two rates per group: `fpr_at_threshold` = share of human texts with p(machine) above the machine
threshold, and `fpr_verdict` = share a user would see called `machine` (the verdict rule also
withholds judgement on too-short, non-text or non-English inputs: those count as `uncertain`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.decision.lengths import length_band
from detector.decision.verdict import MACHINE, UNCERTAIN, decide
from detector.model.detector_model import DetectorModel
from detector.model.prediction import score_or_none
from detector.text.normalize import normalize


def human_verdicts(table: pd.DataFrame, n_tokens: np.ndarray, p: np.ndarray, model: DetectorModel) -> pd.DataFrame:
    """One row per human text: its group keys, length bucket, p, and the user-facing verdict."""
    verdicts = [decide(score_or_none(pi), int(n), normalize(text).text, model.thresholds)[0]
                for text, n, pi in zip(table["text"], n_tokens, p, strict=True)]
    return pd.DataFrame({"dataset": table["dataset"].to_numpy(), "domain": table["domain"].to_numpy(),
                         "length": length_band(n_tokens), "n_tokens": n_tokens, "p": p,
                         "flagged": p > model.thresholds.machine, "verdict": verdicts})


def _rates(part: pd.DataFrame) -> pd.Series:
    return pd.Series({"n_human": len(part), "fpr_at_threshold": part["flagged"].mean(),
                      "fpr_verdict": (part["verdict"] == MACHINE).mean(),
                      "uncertain": (part["verdict"] == UNCERTAIN).mean()})


def fpr_tables(humans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(by dataset and domain, by length bucket), each with an `all` row first."""
    overall = _rates(humans)
    by_domain = pd.DataFrame([{"dataset": "all", "domain": "all", **overall}]
                             + [{"dataset": d, "domain": m, **_rates(part)}
                                for (d, m), part in humans.groupby(["dataset", "domain"], sort=True)])
    by_length = pd.DataFrame([{"length": "all", **overall}]
                             + [{"length": b, **_rates(part)}
                                for b, part in humans.groupby("length", observed=True, sort=True)])
    for frame in (by_domain, by_length):
        frame["n_human"] = frame["n_human"].astype(int)
    return by_domain, by_length
