"""Text-length bands (in LM tokens) and the length from which the detector is reliable.

One set of band edges for everything that groups texts by length: the reliable length written into
the model card (train/fit.py), the per-length verdict thresholds (`Thresholds.worst_group_by_length`
uses the bands from `THRESHOLD_EDGES` up), the benchmark's false-positive table and the notebooks'
error analysis. One AUROC cut-off (`MIN_AUROC`) decides "reliable" for the model card and notebook 03
alike. Importing it loads numpy only (pandas when a table is made), so light modules can use the edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# Lower edges of the length bands; the last band is open-ended.
LENGTH_EDGES: tuple[int, ...] = (0, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512)
# The bands that get their own verdict thresholds (long texts: their human scores spread less).
THRESHOLD_EDGES: tuple[int, ...] = (64, 128, 256)
# A band is reliable when its AUROC reaches this; the reliable length is where all longer bands do.
MIN_AUROC = 0.8
# Never give verdicts below this many tokens, whatever the data says (too little evidence).
MIN_TOKENS = 16
# A band is judged only with this many texts (of both classes together).
MIN_TEXTS = 30

assert set(THRESHOLD_EDGES) <= set(LENGTH_EDGES)


def band_labels(edges: Sequence[int] = LENGTH_EDGES) -> list[str]:
    """'0-7', '8-15', ..., '512+': one label per band."""
    return [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + [f"{edges[-1]}+"]


def length_band(n_tokens, edges: Sequence[int] = LENGTH_EDGES) -> pd.Categorical:
    """The band of each token count, as an ordered categorical (so tables sort by length)."""
    import pandas as pd

    bins = [*edges, np.inf]
    return pd.cut(np.asarray(n_tokens, dtype=float), bins=bins, right=False, labels=band_labels(edges),
                  ordered=True)


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(p)
    y, p = y[ok], p[ok]
    return float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan")


def reliability_by_length(n_tokens, y, p, verdict=None, edges: Sequence[int] = LENGTH_EDGES,
                          min_texts: int = MIN_TEXTS) -> pd.DataFrame:
    """Per length band: texts, AUROC, whether it can be `judged` (at least `min_texts` texts, both
    classes), the AUROC of all texts from its lower edge up, and, with `verdict` ('machine', 'human',
    'uncertain' per text), the accuracy of the verdicts given and the share withheld."""
    import pandas as pd

    n_tokens, y, p = np.asarray(n_tokens), np.asarray(y), np.asarray(p, dtype=float)
    bands = length_band(n_tokens, edges)
    if verdict is not None:
        verdict = np.asarray(verdict)
        correct = verdict == np.where(y == 1, "machine", "human")
    rows = []
    for lo, label in zip(edges, band_labels(edges), strict=True):
        band, up = np.asarray(bands == label), n_tokens >= lo
        row = {"from_tokens": int(lo), "band": label, "n": int(band.sum()),
               "n_human": int((band & (y == 0)).sum()), "n_machine": int((band & (y == 1)).sum()),
               "auroc": _auroc(y[band], p[band]),
               "judged": bool(band.sum() >= min_texts and len(set(y[band])) == 2),
               "n_from": int(up.sum()), "auroc_from": _auroc(y[up], p[up])}
        if verdict is not None:
            given = band & (verdict != "uncertain")
            row["accuracy_of_verdicts"] = float(correct[given].mean()) if given.any() else np.nan
            row["share_uncertain"] = float((verdict[band] == "uncertain").mean()) if band.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def reliable_length(curve: pd.DataFrame, min_auroc: float = MIN_AUROC, floor: int = MIN_TOKENS) -> int | None:
    """Shortest length (tokens, at least `floor`) from which every judged band of `curve` (from
    `reliability_by_length`) reaches `min_auroc`; None when no band is judged or the longest judged
    band misses the target."""
    judged = curve[curve["judged"]].sort_values("from_tokens", ascending=False)
    reliable = None
    for _, row in judged.iterrows():
        if not row["auroc"] >= min_auroc:
            break
        reliable = int(row["from_tokens"])
    return None if reliable is None else max(reliable, floor)
