"""Files, folders and stdin -> items to score, each read for at most 256 KiB (`decoding.MAX_BYTES`).

A problem with one path (missing, unreadable, binary, a FIFO) is that item's error, never an exception.
`.docx` and PDF files are read for their text (`documents`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from detector.io.decoding import MAX_BYTES, Item, decode
from detector.io.documents import document_kind, read_document


def path_key(path: Path | str) -> str:
    """How --resume recognises an input however it is spelled: the resolved path ("-" for stdin)."""
    return "-" if str(path) == "-" else str(Path(path).resolve())


def read_file(path: Path) -> Item:
    """One file as an item: UTF-8/16/32 text, or the text of a .docx or PDF; problems as its error."""
    source = str(path)
    if path.exists() and not path.is_file():  # a FIFO or device would block or never end
        return Item(source, error="not a regular file, skipped", key=path_key(path))
    try:
        total = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES)
        kind = document_kind(path, raw[:8])
        item = read_document(path, kind, total) if kind is not None else decode(raw, source, total)
    except PermissionError:
        item = Item(source, error="permission denied")
    except FileNotFoundError:
        item = Item(source, error="no such file or folder")
    except IsADirectoryError:
        item = Item(source, error="is a folder")
    except OSError as err:
        item = Item(source, error=f"cannot read: {err.strerror or err}")
    item.key = path_key(path)
    return item


def read_stdin() -> Item:
    """At most MAX_BYTES of stdin: the rest is never read into memory (a pipe may be endless)."""
    stream = sys.stdin.buffer
    raw = stream.read(MAX_BYTES)
    more = len(raw) == MAX_BYTES and bool(stream.read(1))
    item = decode(raw, "-", truncated=more)
    item.key = "-"
    return item


def source_keys(source: str) -> set[str]:
    """The keys an output record's `source` may stand for (a file, or FILE:LINE of a JSONL file)."""
    keys = {path_key(source)}
    head, sep, tail = source.rpartition(":")
    if sep and head and tail.isdigit():
        keys.add(f"{path_key(head)}:{tail}")
    return keys


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
                yield Item(raw, error="permission denied (folder)", key=path_key(path))
                continue
            found = False
            for file in _folder_files(path):
                found = True
                yield read_file(file)
            if not found:
                yield Item(raw, error="folder holds no files", key=path_key(path))
        elif path.exists():
            yield read_file(path)
        else:
            yield Item(raw, error="no such file or folder", key=path_key(path))
