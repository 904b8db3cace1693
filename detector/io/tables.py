"""Data specs -> tables and items: a JSONL / CSV / Parquet file, a folder of them, or a Hugging Face
dataset id (`--data`), read by `read_table`, the same reader training uses (train/data.py imports it).

`iter_table` gives one item per row, the other columns passed through; JSONL is read line by line
(`jsonl`), so a bad line is that line's error.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from detector.core.errors import DataError, first_line
from detector.io.decoding import Item, text_item
from detector.io.jsonl import iter_jsonl
from detector.io.sources import iter_paths, path_key

if TYPE_CHECKING:
    import pandas as pd

TABLE_LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Suffixes that mark a spec as a file name (a typo in one must not go to the hub).
_FILE_SUFFIXES = {*TABLE_LOADERS, ".txt", ".tsv", ".gz", ".bz2", ".xz", ".zst", ".zip", ".arrow", ".ndjson", ".xlsx"}


def table_suffix(path: str) -> str | None:
    """The suffix when a plain PATH is a data table (.csv/.jsonl/.parquet...), read whole as one text."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in TABLE_LOADERS or suffix in (".tsv", ".ndjson") else None


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


def table_files(spec: str) -> list[Path]:
    """The data files a local spec names: the file itself, or the tables in a folder."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in TABLE_LOADERS)
        if not files:
            raise DataError(f"{spec}: folder holds no .jsonl/.csv/.parquet files")
        return files
    if path.suffix not in TABLE_LOADERS:
        raise DataError(f"{spec}: unsupported file type {path.suffix!r} (use .jsonl, .csv or .parquet)")
    return [path]


def read_table_file(file: Path) -> pd.DataFrame:
    """One local JSONL/CSV/Parquet file as pandas, read with `datasets` (as training reads it)."""
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(TABLE_LOADERS[file.suffix], data_files=str(file), split="train")
    except Exception as err:  # datasets raises many types for malformed files
        raise DataError(f"{file}: cannot read: {first_line(err, 1000)}") from err
    return ds.to_pandas()


def _read_hub(spec: str) -> pd.DataFrame:
    import datasets

    if looks_like_path(spec) or re.fullmatch(r"[\w.-]+(/[\w.-]+)?(:\w+)?", spec) is None:
        raise _missing(spec)
    datasets.disable_progress_bars()
    name, _, split = spec.partition(":")
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as err:
        raise DataError(f"{spec}: not a local path, and the hub dataset could not be loaded "
                        f"({type(err).__name__}: {first_line(err)})") from err
    return ds.to_pandas()


def read_table(spec: str) -> pd.DataFrame:
    """A data spec (local files, a folder of them, or a hub id) as one table with a `dataset` column."""
    import pandas as pd

    if Path(spec).exists():
        frames = []
        for file in table_files(spec):
            frame = read_table_file(file)
            frame["dataset"] = frame["dataset"] if "dataset" in frame else file.stem
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
    frame = _read_hub(spec)
    frame["dataset"] = spec.partition(":")[0].split("/")[-1]
    return frame


def _json_safe_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain JSON values (numpy scalars, NaN, timestamps and arrays made writable)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str, force_ascii=False))


def _table_items(frame: pd.DataFrame, name: str, key: str, text_column: str) -> Iterator[Item]:
    if text_column not in frame.columns:
        raise DataError(f"{name}: no column {text_column!r} (columns: {', '.join(map(str, frame.columns))}); "
                        "name it with --text-column")
    others = _json_safe_rows(frame.drop(columns=[text_column]))
    for row, (text, fields) in enumerate(zip(frame[text_column], others, strict=True), start=1):
        source, row_key = f"{name}:{row}", f"{key}:{row}"
        if not isinstance(text, str):
            what = "empty (null)" if text is None or text != text else f"a {type(text).__name__}, not text"
            yield Item(source, error=f"{text_column!r} is {what}", fields=fields, key=row_key)
            continue
        yield text_item(text, source, key=row_key, fields=fields)


def check_spec(spec: str) -> None:
    """Refuse, before any work, a --data spec that names no table (missing path, wrong file type)."""
    if spec == "-":
        return
    if Path(spec).exists():
        table_files(spec)
    elif looks_like_path(spec):
        raise _missing(spec)


def iter_table(spec: str, text_column: str = "text") -> Iterator[Item]:
    """One Item per row of a data spec, other columns passed through; sources are FILE:ROW.

    JSONL files (and '-', stdin) are read line by line, so a bad line is that line's error; CSV and
    Parquet are read with the training reader, and a file that cannot be parsed is that file's error.
    A missing text column is a DataError (a usage error: nothing could be scored).
    """
    if spec == "-":
        yield from iter_jsonl(spec, text_column)
        return
    if not Path(spec).exists():
        yield from _table_items(_read_hub(spec), spec, spec, text_column)
        return
    for file in table_files(spec):
        name = str(file) if Path(spec).is_dir() else spec
        if file.suffix == ".jsonl":
            yield from iter_jsonl(name, text_column)
            continue
        try:
            frame = read_table_file(file)
        except DataError as err:
            yield Item(name, error=str(err).removeprefix(f"{file}: "), key=path_key(file))
            continue
        yield from _table_items(frame, name, path_key(file), text_column)


def read_texts(spec: str, text_column: str = "text") -> tuple[list[str], list[Item]]:
    """(texts, unreadable items) of a spec: the rows of a table (a JSONL/CSV/Parquet file, a folder of
    them, a hub dataset id), else a file or a folder of files, one text each (`detector calibrate`)."""
    path = Path(spec)
    if path.is_file():
        is_table = table_suffix(spec) is not None
    else:
        is_table = path.is_dir() and os.access(path, os.R_OK) and any(p.suffix in TABLE_LOADERS
                                                                      for p in path.iterdir())
    if is_table or not path.exists():
        check_spec(spec)
        items = list(iter_table(spec, text_column))
    else:
        items = list(iter_paths([spec]))
    return [item.text for item in items if item.error is None], [item for item in items if item.error is not None]
