"""What the user gives -> items to score: files, folders, stdin, JSONL records, table rows.

Every problem with one input becomes an item with an `error` (one line), never an exception, so one
bad file or row in a batch is reported and the rest are still scored. Inputs are only ever read, and
never more than a bounded prefix at a time: 256 KiB of a file or of stdin, one line (at most 16 MiB)
of a JSONL file. `.docx` and PDF files are read for their text (python-docx, pypdf).

Data specs (`--data`: a JSONL / CSV / Parquet file, a folder of them, or a Hugging Face dataset id)
are read by `read_table`, the same reader training uses (train/data.py imports it from here).
"""

from __future__ import annotations

import codecs
import difflib
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from detector.errors import UserError, first_line

if TYPE_CHECKING:
    import pandas as pd

MAX_BYTES = 256 * 1024  # texts are scored on a bounded prefix; the LM reads at most max_tokens anyway
MAX_LINE = 16 * 1024 * 1024  # a JSONL line longer than this is skipped (JSON escapes inflate text ~6x)
_SNIFF = 8192
# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass
class Item:
    source: str  # path, "-", or "FILE:LINE" for JSONL records
    text: str | None = None
    error: str | None = None
    note: str | None = None  # e.g. "scored on the first 256 KiB of 50 MiB"
    fields: dict = field(default_factory=dict)  # JSONL fields other than the text, passed through
    key: str = ""  # the source with its path resolved: how --resume recognises an input however spelled


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def sniff_bom(raw: bytes) -> str | None:
    """The encoding a byte-order mark announces (utf-8-sig, utf-16, utf-32), or None."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding
    return None


def _decode_bom(raw: bytes, encoding: str, truncated: bool) -> str:
    """Decode BOM-marked UTF-16/32 text; a cut inside a character or surrogate pair is dropped."""
    unit = 4 if encoding == "utf-32" else 2
    if truncated:
        raw = raw[: len(raw) - len(raw) % unit]
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        if truncated and err.start >= len(raw) - 2 * unit:
            return raw[: err.start].decode(encoding)
        raise


def decode(raw: bytes, source: str, total: int | None = None, truncated: bool | None = None) -> Item:
    """Bytes -> an Item: honours a BOM, refuses binary and undecodable data, notes truncation.

    `total` is the full size when known; `truncated` says so when it is not (stdin).
    """
    if truncated is None:
        truncated = total is not None and total > len(raw)
    encoding = sniff_bom(raw)
    if encoding in ("utf-16", "utf-32"):
        try:
            text = _decode_bom(raw, encoding, truncated)
        except UnicodeDecodeError as err:
            return Item(source, error=f"not valid {encoding.upper()} text (bad data at offset {err.start}); "
                                      "convert it to UTF-8")
        if "\x00" in text:
            return Item(source, error="binary file, skipped")
    else:
        if b"\x00" in raw[:_SNIFF]:
            return Item(source, error="binary file, skipped")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if truncated and err.start >= len(raw) - 3:  # the cut fell inside a multi-byte character
                text = raw[: err.start].decode("utf-8", errors="replace")
            else:
                return Item(source, error=f"not UTF-8 text (invalid byte 0x{raw[err.start]:02x} at offset "
                                          f"{err.start}); convert it to UTF-8")
        text = text.removeprefix("\ufeff")
    if not text:
        return Item(source, error="empty file")
    if not text.strip():
        return Item(source, error="whitespace only, nothing to score")
    note = None
    if truncated:
        of = f"of {_size(total)}" if total is not None else "(the rest was not read)"
        note = f"scored on the first {_size(len(raw))} {of}"
    return Item(source, text=text, note=note)


MAX_DOCUMENT = 64 * 1024 * 1024  # a .docx or PDF is parsed whole: larger ones are refused, not read
_PDF_MAGIC, _ZIP_MAGIC = b"%PDF-", b"PK\x03\x04"


def _document_kind(path: Path, head: bytes) -> str | None:
    """'pdf' or 'docx' when the file is one (by its first bytes; a .docx is a zip named .docx)."""
    if head.startswith(_PDF_MAGIC):
        return "pdf"
    if head.startswith(_ZIP_MAGIC) and path.suffix.lower() in (".docx", ".docm", ".dotx"):
        return "docx"
    return None


def _document_text(path: Path, kind: str) -> tuple[str, str]:
    """The text of a PDF (pypdf) or .docx (python-docx) and a note on where it came from.

    Raises ValueError with the one-line reason the file cannot be read.
    """
    if kind == "pdf":
        try:
            from pypdf import PdfReader
        except ImportError as err:
            raise ValueError("a PDF: install pypdf to read it") from err
        try:
            reader = PdfReader(str(path))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ValueError("an encrypted PDF: decrypt it first")
            pages = [page.extract_text() or "" for page in reader.pages]
        except ValueError:
            raise
        except Exception as err:  # pypdf raises many types on a damaged file
            why = first_line(err, 100)
            raise ValueError(f"a PDF that cannot be read ({why})") from err
        text = "\n\n".join(p.strip() for p in pages if p.strip())
        if not text:
            raise ValueError(f"a PDF with no extractable text ({len(pages)} page(s); a scanned PDF "
                             "needs OCR first)")
        return text, f"text extracted from a PDF of {len(pages)} page(s)"
    try:
        import docx
    except ImportError as err:
        raise ValueError("a .docx file: install python-docx to read it") from err
    try:
        document = docx.Document(str(path))
    except Exception as err:  # python-docx raises zipfile/lxml/KeyError types for a broken file
        raise ValueError(f"a .docx file that cannot be read ({type(err).__name__})") from err
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:  # text in tables is text too
        paragraphs += [cell.text for row in table.rows for cell in row.cells]
    text = "\n\n".join(p.strip() for p in paragraphs if p.strip())
    if not text:
        raise ValueError("a .docx file with no text (only images or empty)")
    return text, "text extracted from a .docx file"


def _read_document(path: Path, kind: str, total: int) -> Item:
    source = str(path)
    if total > MAX_DOCUMENT:
        return Item(source, error=f"a {kind} of {_size(total)}; documents over {_size(MAX_DOCUMENT)} are not read")
    try:
        text, note = _document_text(path, kind)
    except ValueError as err:
        return Item(source, error=str(err))
    encoded = text.encode("utf-8")
    item = decode(encoded[:MAX_BYTES], source, len(encoded))
    item.note = "; ".join(n for n in (note, item.note) if n)
    return item


def read_file(path: Path) -> Item:
    """One file as an item: UTF-8/16/32 text, or the text of a .docx or PDF; problems as its error."""
    source = str(path)
    if path.exists() and not path.is_file():  # a FIFO or device would block or never end
        return Item(source, error="not a regular file, skipped", key=_key(path))
    try:
        total = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES)
        kind = _document_kind(path, raw[:8])
        if kind is not None:
            item = _read_document(path, kind, total)
            item.key = _key(path)
            return item
    except PermissionError:
        item = Item(source, error="permission denied")
    except FileNotFoundError:
        item = Item(source, error="no such file or folder")
    except IsADirectoryError:
        item = Item(source, error="is a folder")
    except OSError as err:
        item = Item(source, error=f"cannot read: {err.strerror or err}")
    else:
        item = decode(raw, source, total)
    item.key = _key(path)
    return item


def read_stdin() -> Item:
    """At most MAX_BYTES of stdin: the rest is never read into memory (a pipe may be endless)."""
    stream = sys.stdin.buffer
    raw = stream.read(MAX_BYTES)
    more = len(raw) == MAX_BYTES and bool(stream.read(1))
    item = decode(raw, "-", truncated=more)
    item.key = "-"
    return item


def _key(path: Path | str) -> str:
    return "-" if str(path) == "-" else str(Path(path).resolve())


def source_keys(source: str) -> set[str]:
    """The keys an output record's `source` may stand for (a file, or FILE:LINE of a JSONL file)."""
    keys = {_key(source)}
    head, sep, tail = source.rpartition(":")
    if sep and head and tail.isdigit():
        keys.add(f"{_key(head)}:{tail}")
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
                yield Item(raw, error="permission denied (folder)", key=_key(path))
                continue
            found = False
            for file in _folder_files(path):
                found = True
                yield read_file(file)
            if not found:
                yield Item(raw, error="folder holds no files", key=_key(path))
        elif path.exists():
            yield read_file(path)
        else:
            yield Item(raw, error="no such file or folder", key=_key(path))


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


def clean_text(text: str) -> tuple[str, str | None]:
    """A JSON string as scorable text: NULs dropped, lone surrogates (\\ud800) replaced; with a note."""
    notes = []
    if "\x00" in text:
        text = text.replace("\x00", "")
        notes.append("NUL characters removed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", errors="replace")
        notes.append("unpaired surrogates replaced")
    return text, "; ".join(notes) or None


def _json_type(value) -> str:
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def record_item(line: bytes | str | None, source: str, key: str, text_field: str) -> Item | None:
    """One JSONL line -> an Item (None for a blank line); every problem is that line's error."""
    if line is None:
        return Item(source, error=f"line longer than {_size(MAX_LINE)}, skipped", key=key)
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
        return Item(source, error=f"not a JSON object ({_json_type(record)})", key=key)
    fields = {k: v for k, v in record.items() if k != text_field}
    text = record.get(text_field)
    if not isinstance(text, str):
        what = "missing" if text_field not in record else f"{_json_type(text)}, not a string"
        return Item(source, error=f"no string field {text_field!r} ({what})", fields=fields, key=key)
    text, cleaned = clean_text(text)
    if not text.strip():
        return Item(source, error="empty text", fields=fields, key=key)
    encoded = text.encode("utf-8")
    item = decode(encoded[:MAX_BYTES], source, len(encoded))  # NULs are gone, so never "binary"
    item.fields, item.key = fields, key
    item.note = "; ".join(n for n in (item.note, cleaned) if n) or None
    return item


def iter_jsonl(path: str, text_field: str = "text") -> Iterator[Item]:
    """One Item per non-blank line of a JSONL file (or '-'), read in bytes and one line at a time.

    Each line is decoded and parsed on its own, so a bad byte, bad JSON or a record nested too deep is
    that line's error, with its true line number, and the other lines are still scored.
    """
    base = _key(path)
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


# ----------------------------------------------------------------------------------------- data specs

TABLE_LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Suffixes that mark a spec as a file name (a typo in one must not go to the hub).
_FILE_SUFFIXES = {*TABLE_LOADERS, ".txt", ".tsv", ".gz", ".bz2", ".xz", ".zst", ".zip", ".arrow", ".ndjson", ".xlsx"}


class DataError(UserError):
    """A dataset cannot be used as given; the message says why, in one line."""


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
        text, cleaned = clean_text(text)
        if not text.strip():
            yield Item(source, error="empty text", fields=fields, key=row_key)
            continue
        encoded = text.encode("utf-8")
        item = decode(encoded[:MAX_BYTES], source, len(encoded))
        item.fields, item.key = fields, row_key
        item.note = "; ".join(n for n in (item.note, cleaned) if n) or None
        yield item


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
            yield Item(name, error=str(err).removeprefix(f"{file}: "), key=_key(file))
            continue
        yield from _table_items(frame, name, _key(file), text_column)


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
