"""How far a text lies from the human texts the verdict thresholds were set on.

The 1%-false-positive threshold is a promise about human writing like the reference humans. A human
text from a domain nobody checked (student essays, how-to prose) can look machine-like to a small LM
and be accused. So each verdict of `machine` is also checked for novelty: the distance from the text's
style and predictability profile to its k-th nearest human reference text, in robustly scaled feature
space. Beyond the cut (chosen on validation humans: the 90th percentile of their scores by default, the
strictest of the cuts the held-out protocol tried, the only one that kept held-out student essays under
2% false accusations) the verdict is `uncertain`.

Stored as plain arrays (`novelty.npz`, loaded with allow_pickle=False): nothing in it can run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.stylometry import STYLOMETRIC_FEATURES

# The profile of a text's kind rather than its authorship: its style, and how predictable its context
# is to the LM (low for encyclopedic and how-to prose, where a small LM over-accuses).
NOVELTY_FEATURES = (*STYLOMETRIC_FEATURES, "entropy_mean")
FILE = "novelty.npz"
CHUNK = 1024  # rows per distance matrix: 1,024 x the references stays tens of MB


def distances(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row to each reference row, in float64 (|x|^2 - 2 x.y + |y|^2, as
    scikit-learn's `pairwise_distances` computes it; numpy alone, so scoring needs no scikit-learn)."""
    x, y = rows.astype(float), reference.astype(float)
    squared = (x * x).sum(axis=1)[:, None] - 2 * (x @ y.T) + (y * y).sum(axis=1)[None, :]
    return np.sqrt(np.maximum(squared, 0))


@dataclass
class Novelty:
    features: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    reference: np.ndarray  # scaled feature rows of the human reference texts
    k: int
    cut: float

    @classmethod
    def fit(cls, humans: pd.DataFrame, val_humans: pd.DataFrame, k: int = 10, quantile: float = 0.9,
            features: tuple[str, ...] = NOVELTY_FEATURES) -> Novelty:
        """Reference = `humans`; the cut is the `quantile` of the scores of `val_humans` (held out)."""
        rows = humans[list(features)].dropna().to_numpy(dtype=float)
        center = np.median(rows, axis=0)
        scale = np.subtract(*np.percentile(rows, [75, 25], axis=0))
        scale = np.where(scale > 0, scale, 1.0)
        novelty = cls(tuple(features), center, scale, ((rows - center) / scale).astype(np.float32), k, np.inf)
        scores = novelty.score(val_humans)
        novelty.cut = float(np.nanquantile(scores, quantile)) if np.isfinite(scores).any() else np.inf
        return novelty

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """Distance to the k-th nearest reference human (NaN where a feature is missing)."""
        rows = table[list(self.features)].to_numpy(dtype=float)
        out = np.full(len(rows), np.nan)
        ok = np.isfinite(rows).all(axis=1)
        if ok.any() and len(self.reference):
            scaled = ((rows[ok] - self.center) / self.scale).astype(np.float32)
            k = min(self.k, len(self.reference)) - 1
            out[ok] = np.concatenate([np.partition(distances(scaled[at : at + CHUNK], self.reference), k, axis=1)[:, k]
                                      for at in range(0, len(scaled), CHUNK)])
        return out

    def reasons(self, table: pd.DataFrame) -> list[str | None]:
        """Why each text is out of distribution, or None where it is not."""
        return [f"novelty {s:.1f} > {self.cut:.1f}: its style and predictability are unlike every human reference"
                if s > self.cut else None for s in self.score(table)]

    def save(self, folder: str | Path) -> None:
        np.savez(Path(folder) / FILE, features=np.array(self.features), center=self.center, scale=self.scale,
                 reference=self.reference, k=self.k, cut=self.cut)

    @classmethod
    def load(cls, folder: str | Path) -> Novelty | None:
        path = Path(folder) / FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            return cls(tuple(str(f) for f in z["features"]), z["center"], z["scale"], z["reference"],
                       int(z["k"]), float(z["cut"]))
