"""What the user gives -> items to score: files, folders, stdin, JSONL records.

Every problem becomes an item with an `error` (one line), never an exception, so one bad file in a
batch is reported and the rest are still scored. Inputs are only ever read.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 256 * 1024  # texts are scored on a bounded prefix; the LM reads at most max_tokens anyway
_SNIFF = 8192


@dataclass
class Item:
    source: str  # path, "-", or "FILE:LINE" for JSONL records
    text: str | None = None
    error: str | None = None
    note: str | None = None  # e.g. "scored on the first 256 KiB of 50 MiB"
    fields: dict = field(default_factory=dict)  # JSONL fields other than the text, passed through


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def decode(raw: bytes, source: str, total: int | None = None) -> Item:
    """Bytes -> an Item: refuses binary and non-UTF-8 data, notes truncation, rejects empty text."""
    if b"\x00" in raw[:_SNIFF]:
        return Item(source, error="binary file, skipped")
    truncated = total is not None and total > len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if truncated and err.start >= len(raw) - 3:  # the cut fell inside a multi-byte character
            text = raw[: err.start].decode("utf-8")
        else:
            return Item(source, error=f"not UTF-8 text (invalid byte 0x{raw[err.start]:02x} at offset "
                                      f"{err.start}); convert it to UTF-8")
    text = text.removeprefix("\ufeff")
    if not text:
        return Item(source, error="empty file")
    if not text.strip():
        return Item(source, error="whitespace only, nothing to score")
    note = f"scored on the first {_size(len(raw))} of {_size(total)}" if truncated else None
    return Item(source, text=text, note=note)


def read_file(path: Path) -> Item:
    source = str(path)
    if path.exists() and not path.is_file():  # a FIFO or device would block or never end
        return Item(source, error="not a regular file, skipped")
    try:
        total = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES)
    except PermissionError:
        return Item(source, error="permission denied")
    except FileNotFoundError:
        return Item(source, error="no such file or folder")
    except IsADirectoryError:
        return Item(source, error="is a folder")
    except OSError as err:
        return Item(source, error=f"cannot read: {err.strerror or err}")
    return decode(raw, source, total)


def read_stdin() -> Item:
    raw = sys.stdin.buffer.read(MAX_BYTES)
    extra = len(sys.stdin.buffer.read()) if len(raw) == MAX_BYTES else 0
    return decode(raw, "-", len(raw) + extra)


def _folder_files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def iter_paths(paths: list[str]) -> Iterator[Item]:
    """Items from files, folders (recursively, hidden files skipped) and '-' for stdin."""
    for raw in paths:
        if raw == "-":
            yield read_stdin()
            continue
        path = Path(raw)
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                yield Item(raw, error="permission denied (folder)")
                continue
            found = False
            for file in _folder_files(path):
                found = True
                yield read_file(file)
            if not found:
                yield Item(raw, error="folder holds no files")
        elif path.exists():
            yield read_file(path)
        else:
            yield Item(raw, error="no such file or folder")


def iter_jsonl(path: str, text_field: str = "text") -> Iterator[Item]:
    """One Item per line of a JSONL file; other fields are kept and passed through."""
    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="strict")  # noqa: SIM115
    except FileNotFoundError:
        yield Item(path, error="no such file")
        return
    except (PermissionError, IsADirectoryError) as err:
        yield Item(path, error=f"cannot open: {err.strerror}")
        return
    with handle:
        line_no = 0
        while True:
            source = f"{path}:{line_no + 1}"
            try:
                line = handle.readline()
            except UnicodeDecodeError:
                yield Item(source, error="not UTF-8 text; convert the file to UTF-8")
                return
            if not line:
                return
            line_no += 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield Item(source, error=f"not valid JSON ({err.msg})")
                continue
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                yield Item(source, error=f"no string field {text_field!r}",
                           fields=record if isinstance(record, dict) else {})
                continue
            fields = {k: v for k, v in record.items() if k != text_field}
            text = record[text_field]
            if not text.strip():
                yield Item(source, error="empty text", fields=fields)
            else:
                encoded = text.encode("utf-8", "surrogatepass")
                item = decode(encoded[:MAX_BYTES], source, len(encoded))
                item.fields = fields
                yield item
