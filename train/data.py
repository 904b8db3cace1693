"""Data specs -> one table of (id, text, label, dataset, domain, generator, attack, pair_id).

A spec is a local JSONL / CSV / Parquet file, a folder of them, or a Hugging Face dataset id (loaded
with `datasets`, optionally `id:split`). The schema of `../shared/data` is the reference; other column
names are mapped with `text_column` / `label_column` and label values with `label_map`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# The table reader is shared with `detector score --data` (detector/ never imports train/).
from detector.core.errors import DataError
from detector.io.tables import read_table

COLUMNS = ["id", "text", "label", "dataset", "domain", "generator", "attack", "pair_id"]
_TRUE_LABELS = {"1", "machine", "ai", "generated", "fake", "true", "yes"}
_FALSE_LABELS = {"0", "human", "real", "false", "no"}


def _is_missing(value) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and other non-scalars are "present" (and then unmappable)
        return False


def _texts(column: pd.Series, spec: str, text_column: str) -> pd.Series:
    """The text column as str; a null or non-string text is a DataError naming the first bad row."""
    bad = [i for i, v in enumerate(column) if not isinstance(v, str)]
    if bad:
        value = column.iloc[bad[0]]
        what = "null" if _is_missing(value) else f"a {type(value).__name__}, not text"
        raise DataError(f"{spec}: {len(bad)} row(s) have no usable {text_column!r} (row {bad[0] + 1} is {what}); "
                        "fix or remove them")
    return column


def map_labels(values: pd.Series, label_map: Mapping[str, int] | None = None) -> pd.Series:
    """Labels to 0 (human) / 1 (machine); unknown values raise DataError naming them."""
    def one(value) -> int | None:
        key = str(value).strip().lower()
        if label_map and str(value) in label_map:
            return int(label_map[str(value)])
        if key in _TRUE_LABELS or key in {"1.0"}:
            return 1
        if key in _FALSE_LABELS or key in {"0.0"}:
            return 0
        return None

    missing = values.map(_is_missing)
    if missing.any():
        raise DataError(f"{int(missing.sum())} text(s) have no label (null): "
                        "label every text 0/human or 1/machine")
    mapped = values.map(one)
    bad = sorted({str(v) for v, m in zip(values, mapped, strict=True) if pd.isna(m)})
    if bad:
        raise DataError(f"cannot map label value(s) {', '.join(map(repr, bad[:5]))} to human/machine: "
                        "pass --label-map VALUE=0|1")
    return mapped.astype(int)


def load_spec(
    spec: str,
    text_column: str = "text",
    label_column: str = "label",
    label_map: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One data spec as a table with `COLUMNS`; empty texts are dropped."""
    frame = read_table(spec)
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise DataError(f"{spec}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    out = pd.DataFrame({
        "text": _texts(frame[text_column], spec, text_column),
        "label": map_labels(frame[label_column], label_map),
    })
    for column in ("dataset", "domain", "generator", "attack", "pair_id"):
        out[column] = frame[column] if column in frame.columns else None
    out["domain"] = out["domain"].fillna("unknown")
    out["generator"] = out["generator"].fillna(out["label"].map({0: "human", 1: "unknown"}))
    if "id" in frame.columns:
        out["id"] = frame["id"].astype(str)
    else:
        out["id"] = [f"{out['dataset'][i]}:{hashlib.sha1(t.encode()).hexdigest()[:12]}"
                     for i, t in enumerate(out["text"])]
    out = out[out["text"].str.strip().astype(bool)]
    return out[COLUMNS].reset_index(drop=True)


def load_specs(specs: Sequence[str], **columns) -> pd.DataFrame:
    """Several specs as one table; raises DataError if it is empty or holds one class only."""
    table = pd.concat([load_spec(s, **columns) for s in specs], ignore_index=True)
    check_two_classes(table)
    return table


def check_two_classes(table: pd.DataFrame) -> None:
    if table.empty:
        raise DataError("no texts to train on (all empty?)")
    present = set(table["label"])
    if present != {0, 1}:
        only = "human" if present == {0} else "machine"
        raise DataError(f"the data holds {only} texts only: a detector needs both human and machine texts")


_WORD_START = re.compile(r"\S+")


def _common_word_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def strip_shared_prefix(table: pd.DataFrame, max_words: int = 60) -> pd.DataFrame:
    """Drop the prompt a machine text shares with its human pair (prefix-paired sets).

    For each text, the words it shares at the start with a text of the other label and the same
    pair_id are removed (at most `max_words`), so neither side is judged on the human-written prompt.
    """
    table = table.copy()
    words = table["text"].str.split()
    keep = {}
    for _, group in table[table["pair_id"].notna()].groupby("pair_id"):
        if group["label"].nunique() < 2:
            continue
        for i in group.index:
            others = group.index[group["label"] != group.at[i, "label"]]
            shared = max(_common_word_prefix(words[i], words[j]) for j in others)
            if 0 < shared <= max_words:
                keep[i] = shared
    for i, n_words in keep.items():
        starts = [m.start() for m in _WORD_START.finditer(table.at[i, "text"])]
        table.at[i, "text"] = table.at[i, "text"][starts[n_words]:] if n_words < len(starts) else ""
    return table[table["text"].str.strip().astype(bool)].reset_index(drop=True)


@dataclass
class SourceSpec:
    """One file of a manifest: how many texts to sample per (domain, generator) cell."""

    path: str
    per_cell: int
    human_per_domain: int
    strip_prefix: bool = False


def load_manifest(path: str | Path, root: str | Path | None = None) -> tuple[pd.DataFrame, dict]:
    """A manifest (JSON in data/) -> the sampled table. Paths in it are relative to `root`."""
    manifest = json.loads(Path(path).read_text())
    root = Path(root) if root else Path(path).resolve().parent.parent
    rng = np.random.default_rng(manifest.get("seed", 0))
    frames = []
    for source in manifest["sources"]:
        spec = SourceSpec(**source)
        table = load_spec(str(root / spec.path))
        table["_opening"] = table["text"].map(opening)  # before the prompt is stripped: the document's start
        if spec.strip_prefix:
            table = strip_shared_prefix(table)
        frames.append(sample_cells(table, spec.per_cell, spec.human_per_domain, rng))
    table = link_documents(pd.concat(frames, ignore_index=True), "_opening")
    return table.drop(columns="_opening"), manifest


def opening(text: str, n_words: int = 12) -> str:
    """A document's first `n_words` words, lower-cased letters and digits only: the same source document
    cut at other lengths, or re-typed by another set, opens the same way."""
    cleaned = (re.sub(r"\W", "", word.lower()) for word in text.split())
    return " ".join(itertools.islice((w for w in cleaned if w), n_words))


def link_documents(table: pd.DataFrame, openings: str) -> pd.DataFrame:
    """pair_id made one group per source document across files: pair groups whose human texts open alike
    are merged (several sets hold the same fast-detect-gpt documents under their own pair_ids), so a
    grouped split never puts one document on both sides. Rows without a pair_id keep none."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    humans = table[(table["label"] == 0) & table[openings].str.len().gt(40)]
    keys = humans["pair_id"].where(humans["pair_id"].notna(), humans["id"]).astype(str)
    for _, group in keys.groupby(humans[openings]):
        first = root(group.iloc[0])
        for key in group.iloc[1:]:
            parent[root(key)] = first
    table = table.copy()
    linked = table["pair_id"].notna() | table.index.isin(humans.index)
    own = table["pair_id"].where(table["pair_id"].notna(), table["id"]).astype(str)
    table.loc[linked, "pair_id"] = own[linked].map(root)
    return table


def sample_cells(table: pd.DataFrame, per_cell: int, human_per_domain: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Up to per_cell machine texts per (domain, generator, attack) and human_per_domain humans per domain."""
    picked = []
    cells = table.assign(_attack=table["attack"].fillna("none")).groupby(["domain", "generator", "_attack"], sort=True)
    for (_, generator, _), cell in cells:
        n = human_per_domain if generator == "human" else per_cell
        picked.append(cell.iloc[rng.permutation(len(cell))[: min(n, len(cell))]].drop(columns="_attack"))
    return pd.concat(picked).sort_index().reset_index(drop=True)
