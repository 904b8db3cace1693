"""Published scores of large detectors on the very same texts (../shared/data/published/).

fast-detect-gpt and glimpse released per-sample scores: `human_scores[i]` belongs to `original[i]` and
`machine_scores[i]` to `sampled[i]` of the row's `data_file`, and `id_map.csv` turns (data_file,
index, role) into our ids. A row is mapped per sample only where it holds one score per item. For
glimpse rows this also needs glimpse's item order to be fast-detect-gpt's: it is checked per data file
(a detector both released, e.g. RoBERTa, must have identical score lists); API-model rows with 141-149
of 150 scores cannot be mapped and count only by their published AUROC on the full set.

Caveat kept in the report: the published detectors scored the full texts, including the ~30-token
human prompt that gpt2era / gpt3to4 machine texts share with their human pair; our sample drops it.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from detector_bench.sample import ROOT

DEFAULT_FOLDER = ROOT.parent / "shared" / "data" / "published"

# Published detectors matched per sample, by their method name in the source -> the name we show.
PER_SAMPLE = {
    # gpt3to4 (fast-detect-gpt exp_gpt3to4; GPTZero from glimpse)
    "roberta-base-openai-detector": "OpenAI RoBERTa-base",
    "roberta-large-openai-detector": "OpenAI RoBERTa-large",
    "gptzero": "GPTZero",
    "gpt-j-6B_gpt-neo-2.7B.sampling_discrepancy_analytic": "Fast-DetectGPT (GPT-J-6B/Neo-2.7B)",
    "t5-11b_gpt-neo-2.7B.npr": "DetectGPT (T5-11B/Neo-2.7B)",
    "gpt-neo-2.7B.likelihood": "likelihood (Neo-2.7B)",
    # gpt2era (fast-detect-gpt exp_main): black-box, and white-box = scored by the generating model itself
    "gpt-j-6B_gpt-neo-2.7B.sampling_discrepancy": "Fast-DetectGPT (GPT-J-6B/Neo-2.7B)",
    "sampling_discrepancy": "Fast-DetectGPT white-box (source model)",
    "npr": "DetectGPT white-box (source model)",
    "likelihood": "likelihood white-box (source model)",
}
# Published detectors shown by their full-set AUROC only (glimpse; rows of 141-150 scores).
FULL_SET_ONLY = {
    "babbage-002.pde_fastdetect_geometric": "Glimpse (babbage-002)",
    "davinci-002.pde_fastdetect_geometric": "Glimpse (davinci-002)",
    "gpt-35-turbo-1106.pde_fastdetect_geometric": "Glimpse (GPT-3.5-turbo)",
    "gpt-4-1106.pde_fastdetect_geometric": "Glimpse (GPT-4)",
}
DISPLAY = {**PER_SAMPLE, **FULL_SET_ONLY}


def set_of(data_file: str) -> str | None:
    """Which of our files a published data file belongs to."""
    if "/exp_main/" in data_file:
        return "gpt2era"
    if "/exp_gpt3to4/" in data_file:
        return "gpt3to4"
    return None


@dataclass
class Published:
    """Per-sample published scores by display name, generator and id, and every row's full-set AUROC.

    Scores are kept per generator: a human text is scored in the files of each generator it was paired
    with, and white-box detectors score each file with that file's generator, so the same human text
    has different scores in different files.
    """

    by_id: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)
    full_set: pd.DataFrame = field(default_factory=pd.DataFrame)
    unverified_files: list[str] = field(default_factory=list)

    def arrays(self, ids: pd.Series, generator: str) -> dict[str, np.ndarray]:
        """Each per-sample detector's scores, from the files of `generator`, aligned with `ids` (NaN if none)."""
        out = {}
        for name, scores in self.by_id.items():
            values = ids.map(lambda i, s=scores: s.get((generator, i), np.nan)).to_numpy(dtype=float)
            if not np.isnan(values).all():
                out[name] = values
        return out


def _rows(folder: Path) -> list[dict]:
    with open(folder / "published_detector_scores.jsonl") as handle:
        return [json.loads(line) for line in handle]


def _id_map(folder: Path) -> dict[tuple[str, int, str], str]:
    with open(folder / "id_map.csv") as handle:
        return {(r["data_file"], int(r["index"]), r["role"]): r["id"] for r in csv.DictReader(handle)}


def _item_counts(id_map: dict) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for data_file, _, role in id_map:
        if role == "sampled":
            counts[data_file] += 1
    return counts


def _glimpse_order_checked(rows: list[dict]) -> tuple[set[str], list[str]]:
    """Data files whose glimpse rows list items in fast-detect-gpt's order (identical shared detectors)."""
    reference = {(r["data_file"], r["method"]): r for r in rows if r["source_repo"] == "fast-detect-gpt"}
    agree: dict[str, bool] = {}
    for row in rows:
        if row["source_repo"] != "glimpse" or not row.get("data_file"):
            continue
        ref = reference.get((row["data_file"], row["method"]))
        if ref is None:
            continue
        same = all(len(row[k]) == len(ref[k]) and np.allclose(row[k], ref[k])
                   for k in ("human_scores", "machine_scores"))
        agree[row["data_file"]] = agree.get(row["data_file"], True) and same
    glimpse_files = {r["data_file"] for r in rows if r["source_repo"] == "glimpse" and r.get("data_file")}
    return {f for f, ok in agree.items() if ok}, sorted(f for f in glimpse_files if not agree.get(f))


def load_published(folder: str | Path = DEFAULT_FOLDER) -> Published | None:
    """None if the folder is not there (e.g. outside the development checkout)."""
    folder = Path(folder)
    if not (folder / "published_detector_scores.jsonl").exists():
        return None
    rows, id_map = _rows(folder), _id_map(folder)
    n_items = _item_counts(id_map)
    checked, unverified = _glimpse_order_checked(rows)
    collected: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    full = []
    for row in rows:
        data_file = row.get("data_file")
        our_set = set_of(data_file) if data_file else None
        if our_set is None:
            continue
        complete = len(row["human_scores"]) == len(row["machine_scores"]) == n_items.get(data_file, -1)
        mappable = complete and (row["source_repo"] == "fast-detect-gpt" or data_file in checked)
        name = PER_SAMPLE.get(row["method"])
        mapped = bool(mappable and name)
        if mapped:
            for role, key in (("original", "human_scores"), ("sampled", "machine_scores")):
                for i, score in enumerate(row[key]):
                    collected[name][(row["generator"], id_map[(data_file, i, role)])].append(float(score))
        full.append({"set": our_set, "domain": row["dataset"], "generator": row["generator"],
                     "source_repo": row["source_repo"], "method": row["method"],
                     "detector": DISPLAY.get(row["method"], row["method"]),
                     "n_human": len(row["human_scores"]), "n_machine": len(row["machine_scores"]),
                     "auroc": row["roc_auc"], "mapped_per_sample": mapped})
    # One generator's files may list a text twice (glimpse repeats fast-detect-gpt's rows): mean.
    by_id = {name: {k: float(np.mean(s)) for k, s in scores.items()} for name, scores in collected.items()}
    return Published(by_id, pd.DataFrame(full), unverified)


def matched_subset(rows: np.ndarray, y: np.ndarray, published: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The texts of a cell that every published detector covering the cell has scored, or None.

    A detector covers a cell if it scored machine and human texts of it; the subset is their
    intersection, so all of them (and ours) are compared on the same texts.
    """
    covering = {name: s for name, s in published.items()
                if len(set(y[rows & ~np.isnan(s)])) == 2}
    if not covering:
        return None
    subset = rows.copy()
    for s in covering.values():
        subset &= ~np.isnan(s)
    return (subset, covering) if len(set(y[subset])) == 2 else None


def full_set_by_generator(full: pd.DataFrame) -> pd.DataFrame:
    """Published AUROC on their full sets: mean over domains, per (set, generator, detector)."""
    if full.empty:
        return full
    shown = full[full["method"].isin(DISPLAY)]
    shown = shown.drop_duplicates(["set", "domain", "generator", "method"])  # glimpse repeats RoBERTa rows
    return (shown.groupby(["set", "generator", "detector"], as_index=False)
            .agg(auroc=("auroc", "mean"), n_domains=("domain", "nunique"),
                 n_human=("n_human", "sum"), n_machine=("n_machine", "sum")))
