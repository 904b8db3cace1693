"""What a model learns from, balanced by dataset, domain, generator, attack and length rather than by
what happens to be plentiful (23,000 tweets against 1,200 seqxgpt documents; GPT-2-era samples in
five generators against one human text each).

A cell is (dataset, domain, generator, attack, length band). Machine cells keep at most `cap` texts;
the humans of each (dataset, domain, length band) keep as many as the machine texts kept beside them
(at least `cap`), so neither class nor any one generator outweighs the rest in any corner of the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.decision.lengths import THRESHOLD_EDGES, length_band

# Per machine cell; ~60 cells x 4 bands: a training set of ~20k texts from the 51k of ../shared/data.
DEFAULT_CAP = 300


def _sample(index: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return index if len(index) <= n else rng.choice(index, size=n, replace=False)


def balanced_rows(table: pd.DataFrame, n_tokens: np.ndarray, cap: int = DEFAULT_CAP, seed: int = 0) -> np.ndarray:
    """A boolean mask over `table`'s rows: the balanced subset described above (seeded)."""
    rng = np.random.default_rng(seed)
    band = np.asarray(length_band(n_tokens, (0, *THRESHOLD_EDGES)).astype(str))
    frame = pd.DataFrame({"dataset": table["dataset"].astype(str).to_numpy(),
                          "domain": table["domain"].astype(str).to_numpy(),
                          "generator": table["generator"].astype(str).to_numpy(),
                          "attack": table["attack"].fillna("none").astype(str).to_numpy(),
                          "band": band, "label": table["label"].to_numpy()})
    keep = np.zeros(len(frame), dtype=bool)
    machines = frame[frame["label"] == 1]
    kept_machines: dict[tuple, int] = {}
    for key, cell in machines.groupby(["dataset", "domain", "generator", "attack", "band"], sort=True):
        chosen = _sample(cell.index.to_numpy(), cap, rng)
        keep[chosen] = True
        corner = (key[0], key[1], key[4])
        kept_machines[corner] = kept_machines.get(corner, 0) + len(chosen)
    for corner, cell in frame[frame["label"] == 0].groupby(["dataset", "domain", "band"], sort=True):
        keep[_sample(cell.index.to_numpy(), max(cap, kept_machines.get(corner, 0)), rng)] = True
    return keep
