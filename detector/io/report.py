"""Records (`detector.io.record`) -> a table a person reads, JSON, JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import TextIO

from detector.core.errors import printable  # noqa: F401  (re-exported for the CLI)
from detector.core.interrupts import interrupt_point
from detector.io.record import CSV_COLUMNS, detector_fields, record  # noqa: F401  (record: the server imports it here)

_C1 = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _dumps(rec: dict, **kwargs) -> str:
    """JSON with C1 controls escaped too (json escapes C0 only); a record whose passed-through fields
    cannot be written (too deeply nested) is written without them, and says so."""
    try:
        text = json.dumps(rec, ensure_ascii=False, **kwargs)
    except (RecursionError, ValueError, TypeError):
        keep = {k: v for k, v in detector_fields(rec).items() if k != "input"}
        keep["note"] = "; ".join(filter(None, (keep.get("note"), "input fields too deeply nested to write")))
        text = json.dumps(keep, ensure_ascii=False, **kwargs)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_jsonl(records: Iterable[dict], stream: TextIO) -> None:
    """One whole line per record, in one write: a Ctrl-C lands between records, never inside one."""
    for rec in records:
        line = _dumps(rec) + "\n"
        interrupt_point("write")
        stream.write(line)
    stream.flush()


def write_json(records: Sequence[dict], stream: TextIO) -> None:
    stream.write("[" + ",\n".join(_dumps(r, indent=2) for r in records) + "]\n")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def write_table(records: Sequence[dict], stream: TextIO) -> None:
    """A fixed-width table a person reads: source, p(machine), verdict, tokens, reason."""
    width = shutil.get_terminal_size((120, 20)).columns
    sources = [printable(r["source"]) for r in records]
    source_width = min(max([len(s) for s in sources] + [6]), 40)
    header = f"{'source':<{source_width}}  {'p(mach)':>7}  {'verdict':<9}  {'tokens':>6}  reason"
    stream.write(header + "\n" + "-" * min(len(header) + 40, width) + "\n")
    for r, shown in zip(records, sources, strict=True):
        source = _cut(shown, source_width)
        if "error" in r:
            stream.write(f"{source:<{source_width}}  {'-':>7}  {'error':<9}  {'-':>6}  {printable(r['error'])}\n")
            continue
        p = "-" if r["p_machine"] is None else f"{r['p_machine']:.3f}"
        reason = printable(r["reason"] + (f" ({r['note']})" if r.get("note") else ""))
        stream.write(f"{source:<{source_width}}  {p:>7}  {r['verdict']:<9}  {r['n_tokens']:>6}  {reason}\n")
        if r.get("explanation"):
            stream.writelines(f"    {line}\n" for line in explanation_lines(r["explanation"], width - 4))


def explanation_lines(explanation: dict, width: int = 116, sentences: int = 3) -> list[str]:
    """The explanation as a few lines under a table row: the features that pushed p(machine) most,
    then the most machine-like sentences with their p(machine)."""
    lines = []
    pushes = explanation.get("top_features") or []
    if pushes:
        lines.append("features: " + ", ".join(f"{f['feature']} {f['push']:+.2f}" for f in pushes))
    scored = [s for s in explanation.get("sentences") or [] if s.get("p_machine") is not None]
    for s in sorted(scored, key=lambda s: s["p_machine"], reverse=True)[:sentences]:
        text = printable(" ".join(s["text"].split()))
        room = max(width - 20, 20)
        shown = text if len(text) <= room else text[: room - 1] + "…"
        lines.append(f"sentence p={s['p_machine']:.2f}: {shown}")
    return lines


def write_csv(records: Sequence[dict], stream: TextIO) -> None:
    """One row per record: the detector's columns, then every passed-through field; nested values
    (alterations, explanations, lists) as JSON text in their cell."""
    columns = list(CSV_COLUMNS)
    for rec in records:
        columns += [k for k in rec if k not in columns]
    writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        row = {}
        for key, value in rec.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, ensure_ascii=False, default=str) if value or key != "altered" else ""
            row[key] = value
        writer.writerow(row)


WRITERS = {"jsonl": write_jsonl, "json": write_json, "csv": write_csv, "table": write_table}


def write(records: Iterable[dict], stream: TextIO, fmt: str) -> None:
    """Write records as `fmt`: JSON lines as each record comes (an interrupted run keeps what it has),
    the other formats once all are in."""
    if fmt == "jsonl":
        for rec in records:
            write_jsonl([rec], stream)
    else:
        WRITERS[fmt](list(records), stream)
