"""JSONL files (or stdin) -> one item per line, read in bytes, one bounded line at a time.

Each line is decoded and parsed on its own, so a bad byte, bad JSON or a record nested too deep is that
line's error, with its true line number, and the other lines are still scored.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import BinaryIO

from detector.core.errors import first_line
from detector.io.decoding import Item, size, sniff_bom, text_item
from detector.io.sources import path_key

MAX_LINE = 16 * 1024 * 1024  # a JSONL line longer than this is skipped (JSON escapes inflate text ~6x)


def _lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Lines of a binary stream, each read with a bound; None for a line over MAX_LINE (skipped)."""
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while True:  # skip the rest of the overlong line without holding it
                rest = handle.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield line


def _text_lines(handle: BinaryIO, first: bytes) -> Iterator[bytes | str | None]:
    """Lines as bytes (UTF-8 files, decoded one by one) or as str (a UTF-16/32 file with a BOM)."""
    encoding = sniff_bom(first)
    if encoding in ("utf-16", "utf-32"):
        # Decoded in chunks, so a bad code unit cannot be pinned to its line: it becomes U+FFFD.
        wrapper = io.TextIOWrapper(io.BufferedReader(_Prefixed(first, handle)), encoding=encoding,
                                   errors="replace", newline="\n")
        while line := wrapper.readline(MAX_LINE + 1):
            yield line
        return
    yield from _lines(io.BufferedReader(_Prefixed(first, handle)))


class _Prefixed(io.RawIOBase):
    """A binary stream with some already-read bytes put back in front (the BOM sniff)."""

    def __init__(self, prefix: bytes, stream: BinaryIO):
        self._prefix, self._stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n], self._prefix = self._prefix[:n], self._prefix[n:]
            return n
        read = getattr(self._stream, "read1", self._stream.read)  # a pipe: what is there, no waiting
        data = read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def json_type(value) -> str:
    """The JSON name of a parsed value's type (null, boolean, number, ...), for error messages."""
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def record_item(line: bytes | str | None, source: str, key: str, text_field: str) -> Item | None:
    """One JSONL line -> an Item (None for a blank line); every problem is that line's error."""
    if line is None:
        return Item(source, error=f"line longer than {size(MAX_LINE)}, skipped", key=key)
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return Item(source, error=f"not UTF-8 text (invalid byte 0x{line[err.start]:02x} at column "
                                      f"{err.start + 1}); convert the file to UTF-8", key=key)
    line = line.removeprefix("\ufeff").rstrip("\r\n")
    if not line.strip():
        return None
    try:
        record = json.loads(line, strict=False)  # raw tabs or newlines inside strings are common: allowed
    except json.JSONDecodeError as err:
        return Item(source, error=f"not valid JSON ({err.msg.removesuffix(' at')} at character {err.pos + 1})",
                    key=key)
    except RecursionError:
        return Item(source, error="not usable JSON (nested too deeply)", key=key)
    except ValueError as err:  # e.g. an integer too long to convert
        return Item(source, error=f"not usable JSON ({first_line(err, 80)})", key=key)
    if not isinstance(record, dict):
        return Item(source, error=f"not a JSON object ({json_type(record)})", key=key)
    fields = {k: v for k, v in record.items() if k != text_field}
    text = record.get(text_field)
    if not isinstance(text, str):
        what = "missing" if text_field not in record else f"{json_type(text)}, not a string"
        return Item(source, error=f"no string field {text_field!r} ({what})", fields=fields, key=key)
    return text_item(text, source, key=key, fields=fields)


def iter_jsonl(path: str, text_field: str = "text") -> Iterator[Item]:
    """One Item per non-blank line of a JSONL file (or '-'); sources are FILE:LINE."""
    base = path_key(path)
    try:
        handle = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        yield Item(path, error="no such file", key=base)
        return
    except OSError as err:
        yield Item(path, error=f"cannot open: {err.strerror or err}", key=base)
        return
    try:
        first = handle.read(4)
        line_no = 0
        for line in _text_lines(handle, first):
            line_no += 1
            item = record_item(line, f"{path}:{line_no}", f"{base}:{line_no}", text_field)
            if item is not None:
                yield item
    except OSError as err:  # e.g. EISDIR on read, or an I/O error mid-file
        yield Item(f"{path}:{line_no + 1}", error=f"cannot read: {err.strerror or err}", key=f"{base}:{line_no + 1}")
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
