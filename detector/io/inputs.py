"""What the user gives -> items to score: the public names of the input modules in one place.

`decoding` (bytes and strings -> an Item, the blank-text check), `documents` (PDF, .docx), `sources`
(files, folders, stdin), `jsonl` (JSONL lines) and `tables` (data specs: JSONL/CSV/Parquet files,
folders, hub datasets). Every problem with one input becomes an item with an `error`, never an
exception, so one bad input in a batch is reported and the rest are still scored. `read_texts` reads a
spec whichever kind it is (`detector calibrate`).
"""

import os
from pathlib import Path

from detector.core.errors import DataError
from detector.io.decoding import MAX_BYTES, Item, clean_text, decode, nothing_to_score, sniff_bom, text_item
from detector.io.jsonl import MAX_LINE, iter_jsonl, record_item
from detector.io.sources import iter_paths, path_key, read_file, read_stdin, source_keys
from detector.io.tables import (
    TABLE_LOADERS,
    check_spec,
    iter_table,
    looks_like_path,
    read_table,
    read_table_file,
    table_files,
    table_suffix,
)

__all__ = ["MAX_BYTES", "MAX_LINE", "TABLE_LOADERS", "DataError", "Item", "check_spec", "clean_text", "decode",
           "iter_jsonl", "iter_paths", "iter_table", "looks_like_path", "nothing_to_score", "path_key",
           "read_file", "read_stdin", "read_table", "read_table_file", "record_item", "sniff_bom", "source_keys",
           "read_texts", "table_files", "table_suffix", "text_item"]


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
