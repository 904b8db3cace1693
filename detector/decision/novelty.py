"""How far a text lies from the human texts the verdict thresholds were set on.

The 1%-false-positive threshold is a promise about human writing like the reference humans. A human
text from a domain nobody checked (student essays, how-to prose) can look machine-like to a small LM
and be accused. So each verdict of `machine` is also checked for novelty: the distance from the text's
style and predictability profile to its k-th nearest human reference text, in robustly scaled feature
space. Beyond the cut (chosen on validation humans: the 90th percentile of their scores by default, the
strictest of the cuts the held-out protocol tried, the only one that kept held-out student essays under
2% false accusations) the verdict is `uncertain`.

The veto can be two-sided: a text unlike every human reference but as close to the machine texts the
classifier learned from as most of their validation texts are (the same quantile, on the machine side)
is not vetoed. Held-out GPT-2-era samples and mixed-domain documents are often of that kind: novel
to the humans because they are machine text of a known sort, not human text of an unknown one.

Stored as plain arrays (`novelty.npz`, loaded with allow_pickle=False): nothing in it can run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.core.errors import BadNovelty
from detector.features.engine import FEATURE_NAMES
from detector.features.stylometry import STYLOMETRIC_FEATURES

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
    # The two-sided veto: scaled rows of the machine texts the classifier learned from, and the cut on
    # the distance to them (None: every text beyond `cut` is vetoed).
    machine_reference: np.ndarray | None = None
    machine_cut: float = np.inf

    @classmethod
    def fit(cls, humans: pd.DataFrame, val_humans: pd.DataFrame, k: int = 10, quantile: float = 0.9,
            features: tuple[str, ...] = NOVELTY_FEATURES, machines: pd.DataFrame | None = None,
            val_machines: pd.DataFrame | None = None) -> Novelty:
        """Reference = `humans`; the cut is the `quantile` of the scores of `val_humans` (held out). With
        `machines` and `val_machines`, the veto is two-sided: the machine cut is the same quantile of the
        validation machine texts' distances to `machines`."""
        rows = humans[list(features)].dropna().to_numpy(dtype=float)
        center = np.median(rows, axis=0)
        scale = np.subtract(*np.percentile(rows, [75, 25], axis=0))
        scale = np.where(scale > 0, scale, 1.0)
        novelty = cls(tuple(features), center, scale, novelty_rows(rows, center, scale), k, np.inf)
        novelty.cut = _quantile(novelty.score(val_humans), quantile)
        if machines is not None and val_machines is not None:
            novelty.machine_reference = novelty_rows(machines[list(features)].dropna().to_numpy(dtype=float),
                                                     center, scale)
            novelty.machine_cut = _quantile(novelty.score(val_machines, novelty.machine_reference), quantile)
        return novelty

    def score(self, table: pd.DataFrame, reference: np.ndarray | None = None) -> np.ndarray:
        """Distance to the k-th nearest reference human (or row of `reference`), NaN where a feature is
        missing."""
        reference = self.reference if reference is None else reference
        rows = table[list(self.features)].to_numpy(dtype=float)
        out = np.full(len(rows), np.nan)
        ok = np.isfinite(rows).all(axis=1)
        if ok.any() and len(reference):
            scaled = novelty_rows(rows[ok], self.center, self.scale)
            k = min(self.k, len(reference)) - 1
            out[ok] = np.concatenate([np.partition(distances(scaled[at : at + CHUNK], reference), k, axis=1)[:, k]
                                      for at in range(0, len(scaled), CHUNK)])
        return out

    def reasons(self, table: pd.DataFrame) -> list[str | None]:
        """Why each text is out of distribution, or None where it is not (or, two-sided, where it lies
        among the machine texts the classifier learned from)."""
        scores = self.score(table)
        novel = scores > self.cut
        machine_like = np.zeros(len(scores), dtype=bool)
        if self.machine_reference is not None and novel.any():  # distances only for the texts it may spare
            machine_like[novel] = self.score(table[novel], self.machine_reference) <= self.machine_cut
        return [f"novelty {s:.1f} > {self.cut:.1f}: its style and predictability are unlike every human reference"
                if is_novel and not near else None
                for s, is_novel, near in zip(scores, novel, machine_like, strict=True)]

    def save(self, folder: str | Path) -> None:
        two_sided = {} if self.machine_reference is None else {"machine_reference": self.machine_reference,
                                                               "machine_cut": self.machine_cut}
        np.savez(Path(folder) / FILE, features=np.array(self.features), center=self.center, scale=self.scale,
                 reference=self.reference, k=self.k, cut=self.cut, **two_sided)

    @classmethod
    def load(cls, folder: str | Path) -> Novelty | None:
        """The check saved in `folder`, None if it has none; BadNovelty if the file is not one `save`
        could have written (a crafted file must not crash scoring later)."""
        path = Path(folder) / FILE
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                two_sided = ({"machine_reference": z["machine_reference"], "machine_cut": float(z["machine_cut"])}
                             if "machine_reference" in z.files else {})
                novelty = cls(tuple(str(f) for f in z["features"]), z["center"], z["scale"], z["reference"],
                              int(z["k"]), float(z["cut"]), **two_sided)
        except (OSError, ValueError, KeyError, TypeError) as err:  # not an npz, pickled objects, missing keys
            raise BadNovelty(f"{path}: not a novelty check ({type(err).__name__}: {err})") from err
        novelty.check(path)
        return novelty

    def check(self, where: str | Path) -> None:
        """BadNovelty unless every array has the shape and values scoring relies on."""
        width = len(self.features)
        problems = [
            (not set(self.features) <= set(FEATURE_NAMES), "features outside the detector's"),
            (np.shape(self.center) != (width,) or np.shape(self.scale) != (width,), "center/scale of another width"),
            (not (np.isfinite(self.center).all() and np.isfinite(self.scale).all() and (self.scale != 0).all()),
             "center/scale not finite and non-zero"),
            (self.k < 1, "k below 1"),
            (np.isnan(self.cut) or np.isnan(self.machine_cut), "a cut that is NaN"),
        ]
        for name, rows in (("reference", self.reference), ("machine_reference", self.machine_reference)):
            if rows is not None:
                problems.append((np.ndim(rows) != 2 or np.shape(rows)[1:] != (width,) or not len(rows),
                                 f"{name} not rows of {width} features"))
                problems.append((not np.isfinite(np.asarray(rows, dtype=float)).all(), f"{name} not finite"))
        bad = [what for failed, what in problems if failed]
        if bad:
            raise BadNovelty(f"{where}: not a usable novelty check ({'; '.join(bad)})")


def novelty_rows(rows: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Raw feature rows in the robustly scaled space the distances are measured in."""
    return ((rows - center) / scale).astype(np.float32)


def _quantile(scores: np.ndarray, quantile: float) -> float:
    return float(np.nanquantile(scores, quantile)) if np.isfinite(scores).any() else np.inf
