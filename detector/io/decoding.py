"""Bytes and strings -> an `Item` to score: BOM-aware decoding, the prefix a text is scored on, and the
one check that a text has something to score.

Every problem with one input becomes an item with an `error` (one line), never an exception, so one
bad input in a batch is reported and the rest are still scored. A text is scored on a bounded prefix
(256 KiB of UTF-8), however it arrived: a file, stdin, a document's text, a JSON field, a table cell.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

MAX_BYTES = 256 * 1024  # texts are scored on a bounded prefix; the LM reads at most max_tokens anyway
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


def size(n: float) -> str:
    """A byte count as a person reads it: 812 B, 3.2 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def nothing_to_score(text: str) -> str | None:
    """Why a text holds nothing to score ("empty", "whitespace only, nothing to score"), or None.

    The one such check: files, rows, the server and Spark all refuse a blank text with these words.
    """
    if not text:
        return "empty"
    if not text.strip():
        return "whitespace only, nothing to score"
    return None


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
    blank = nothing_to_score(text)
    if blank:
        return Item(source, error="empty file" if blank == "empty" else blank)
    note = None
    if truncated:
        of = f"of {size(total)}" if total is not None else "(the rest was not read)"
        note = f"scored on the first {size(len(raw))} {of}"
    return Item(source, text=text, note=note)


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


def text_item(text: str, source: str, *, key: str = "", fields: dict | None = None,
              note: str | None = None) -> Item:
    """A text already in memory (a document's, a JSON field, a table cell) as an Item, read the way a
    file is: cleaned (`clean_text`), refused when blank, scored on its first MAX_BYTES; `note` says
    where it came from and comes first among the notes."""
    fields = fields if fields is not None else {}
    text, cleaned = clean_text(text)
    blank = nothing_to_score(text)
    if blank:
        return Item(source, error=f"text is {blank}", fields=fields, key=key)
    encoded = text.encode("utf-8")
    item = decode(encoded[:MAX_BYTES], source, len(encoded))  # NULs are gone, so never "binary"
    item.fields, item.key = fields, key
    item.note = "; ".join(n for n in (note, item.note, cleaned) if n) or None
    return item
