"""Data specs -> one table of (id, text, label, dataset, domain, generator, attack, pair_id).

A spec is a local JSONL / CSV / Parquet file, a folder of them, or a Hugging Face dataset id (loaded
with `datasets`, optionally `id:split`). The schema of `../shared/data` is the reference; other column
names are mapped with `text_column` / `label_column` and label values with `label_map`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.errors import UserError

COLUMNS = ["id", "text", "label", "dataset", "domain", "generator", "attack", "pair_id"]
_LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_TRUE_LABELS = {"1", "machine", "ai", "generated", "fake", "true", "yes"}
_FALSE_LABELS = {"0", "human", "real", "false", "no"}


# Suffixes that mark a spec as a file name (a typo in one must not go to the hub).
_FILE_SUFFIXES = {*_LOADERS, ".txt", ".tsv", ".gz", ".bz2", ".xz", ".zst", ".zip", ".arrow", ".ndjson", ".xlsx"}


class DataError(UserError):
    """A dataset cannot be used as given; the message says why, in one line."""


def looks_like_path(spec: str) -> bool:
    """True when a spec that does not exist was meant as a local path, not a hub dataset id.

    A file suffix (.jsonl, .csv, ...), an explicit ./ ../ / ~ start or a backslash, or a first
    folder that exists here (data/typo) all say "path": such a spec is never sent to the hub.
    """
    if spec.startswith(("/", "./", "../", "~", ".\\")) or "\\" in spec or spec in (".", ".."):
        return True
    name = spec.partition(":")[0] if re.fullmatch(r"[^:]+:\w+", spec) else spec
    if Path(name).suffix.lower() in _FILE_SUFFIXES or Path(spec).suffix.lower() in _FILE_SUFFIXES:
        return True
    return "/" in spec and Path(spec.split("/")[0]).exists()


def _missing(spec: str) -> DataError:
    """No such local path, with the nearest existing names as a hint."""
    path = Path(spec).expanduser()
    folder = path.parent if path.parent.is_dir() else None
    hint = ""
    if folder is not None:
        close = difflib.get_close_matches(path.name, [p.name for p in folder.iterdir()], n=2, cutoff=0.75)
        if close:
            hint = f" (did you mean {' or '.join(str(folder / c) for c in close)}?)"
    return DataError(f"{spec}: no such file or folder{hint}")


def _files_of(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _LOADERS)
        if not files:
            raise DataError(f"{spec}: folder holds no .jsonl/.csv/.parquet files")
        return files
    if path.suffix not in _LOADERS:
        raise DataError(f"{spec}: unsupported file type {path.suffix!r} (use .jsonl, .csv or .parquet)")
    return [path]


def _read(spec: str) -> pd.DataFrame:
    """Load a spec with `datasets` (local files or a hub id) into pandas."""
    import datasets

    datasets.disable_progress_bars()
    if Path(spec).exists():
        frames = []
        for file in _files_of(spec):
            try:
                ds = datasets.load_dataset(_LOADERS[file.suffix], data_files=str(file), split="train")
            except Exception as err:  # datasets raises many types for malformed files
                raise DataError(f"{file}: cannot read: {str(err).splitlines()[0]}") from err
            frame = ds.to_pandas()
            frame["dataset"] = frame["dataset"] if "dataset" in frame else file.stem
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
    if looks_like_path(spec) or re.fullmatch(r"[\w.-]+(/[\w.-]+)?(:\w+)?", spec) is None:
        raise _missing(spec)
    name, _, split = spec.partition(":")
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as err:
        raise DataError(f"{spec}: not a local path, and the hub dataset could not be loaded "
                        f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
    frame = ds.to_pandas()
    frame["dataset"] = name.split("/")[-1]
    return frame


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

    mapped = values.map(lambda v: None if _is_missing(v) else one(v))
    if mapped.isna().any() and values.map(_is_missing).any():
        raise DataError(f"{int(values.map(_is_missing).sum())} text(s) have no label (null): "
                        "label every text 0/human or 1/machine")
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
    frame = _read(spec)
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
        if spec.strip_prefix:
            table = strip_shared_prefix(table)
        frames.append(sample_cells(table, spec.per_cell, spec.human_per_domain, rng))
    return pd.concat(frames, ignore_index=True), manifest


def sample_cells(table: pd.DataFrame, per_cell: int, human_per_domain: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Up to per_cell machine texts per (domain, generator, attack) and human_per_domain humans per domain."""
    picked = []
    cells = table.assign(_attack=table["attack"].fillna("none")).groupby(["domain", "generator", "_attack"], sort=True)
    for (_, generator, _), cell in cells:
        n = human_per_domain if generator == "human" else per_cell
        picked.append(cell.iloc[rng.permutation(len(cell))[: min(n, len(cell))]].drop(columns="_attack"))
    return pd.concat(picked).sort_index().reset_index(drop=True)
