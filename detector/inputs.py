"""What the user gives -> items to score: the public names of the input modules in one place.

`decoding` (bytes and strings -> an Item, the blank-text check), `documents` (PDF, .docx), `sources`
(files, folders, stdin), `jsonl` (JSONL lines) and `tables` (data specs: JSONL/CSV/Parquet files,
folders, hub datasets). Every problem with one input becomes an item with an `error`, never an
exception, so one bad input in a batch is reported and the rest are still scored.
"""

from detector.decoding import MAX_BYTES, Item, clean_text, decode, nothing_to_score, sniff_bom, text_item
from detector.jsonl import MAX_LINE, iter_jsonl, record_item
from detector.sources import iter_paths, path_key, read_file, read_stdin, source_keys
from detector.tables import (
    TABLE_LOADERS,
    DataError,
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
           "table_files", "table_suffix", "text_item"]
