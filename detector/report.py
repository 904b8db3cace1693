"""Scored items -> records -> table / JSON / JSON lines / CSV."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import TextIO

from detector.detector import Result
from detector.errors import printable  # noqa: F401  (re-exported for the CLI)
from detector.inputs import Item

# Every field the detector itself may write; a user field with one of these names goes under "input".
OUTPUT_FIELDS = frozenset({"source", "p_machine", "verdict", "reason", "n_tokens", "altered", "explanation",
                           "error", "note", "input"})
_C1 = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clashing_fields(item: Item) -> list[str]:
    """The item's own fields that share a name with an output field (kept under "input")."""
    return sorted(OUTPUT_FIELDS.intersection(item.fields))


def record(item: Item, result: Result | None) -> dict:
    """One output record: source, the result (or the error), notes, and passed-through fields.

    A user field named like an output field (a record's own `source`, `verdict`...) is kept, under
    `input`, rather than silently dropped or allowed to overwrite the detector's answer.
    """
    out: dict = {"source": item.source}
    if result is not None:
        out.update(result.to_dict())
    else:
        out["error"] = item.error
    if item.note:
        out["note"] = item.note
    clashes = clashing_fields(item)
    if clashes:
        out["input"] = {key: item.fields[key] for key in clashes}
    for key, value in item.fields.items():
        if key not in OUTPUT_FIELDS:
            out[key] = value
    return out


def _dumps(rec: dict, **kwargs) -> str:
    """JSON with C1 controls escaped too (json escapes C0 only); a record whose passed-through fields
    cannot be written (too deeply nested) is written without them, and says so."""
    try:
        text = json.dumps(rec, ensure_ascii=False, **kwargs)
    except (RecursionError, ValueError, TypeError):
        keep = {k: v for k, v in rec.items() if k in OUTPUT_FIELDS and k != "input"}
        keep["note"] = "; ".join(filter(None, (keep.get("note"), "input fields too deeply nested to write")))
        text = json.dumps(keep, ensure_ascii=False, **kwargs)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_jsonl(records: Iterable[dict], stream: TextIO) -> None:
    for rec in records:
        stream.write(_dumps(rec) + "\n")
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


CSV_FIELDS = ("source", "p_machine", "verdict", "reason", "n_tokens", "altered", "error", "note")


def write_csv(records: Sequence[dict], stream: TextIO) -> None:
    """One row per record: the detector's columns, then every passed-through field; nested values
    (alterations, explanations, lists) as JSON text in their cell."""
    columns = list(CSV_FIELDS)
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
