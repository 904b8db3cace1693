"""Scored items -> records -> table / JSON / JSON lines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from typing import TextIO

from detector.detector import Result
from detector.inputs import Item


def record(item: Item, result: Result | None) -> dict:
    """One output record: source, the result (or the error), notes, and passed-through fields."""
    out: dict = {"source": item.source}
    if result is not None:
        out.update(result.to_dict())
    else:
        out["error"] = item.error
    if item.note:
        out["note"] = item.note
    for key, value in item.fields.items():
        out.setdefault(key, value)
    return out


def write_jsonl(records: Iterable[dict], stream: TextIO) -> None:
    for rec in records:
        stream.write(json.dumps(rec, ensure_ascii=False) + "\n")
    stream.flush()


def write_json(records: Sequence[dict], stream: TextIO) -> None:
    json.dump(list(records), stream, ensure_ascii=False, indent=2)
    stream.write("\n")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def write_table(records: Sequence[dict], stream: TextIO) -> None:
    """A fixed-width table a person reads: source, p(machine), verdict, tokens, reason."""
    width = shutil.get_terminal_size((120, 20)).columns
    source_width = min(max([len(r["source"]) for r in records] + [6]), 40)
    header = f"{'source':<{source_width}}  {'p(mach)':>7}  {'verdict':<9}  {'tokens':>6}  reason"
    stream.write(header + "\n" + "-" * min(len(header) + 40, width) + "\n")
    for r in records:
        source = _cut(r["source"], source_width)
        if "error" in r:
            stream.write(f"{source:<{source_width}}  {'-':>7}  {'error':<9}  {'-':>6}  {r['error']}\n")
            continue
        p = "-" if r["p_machine"] is None else f"{r['p_machine']:.3f}"
        reason = r["reason"] + (f" ({r['note']})" if r.get("note") else "")
        stream.write(f"{source:<{source_width}}  {p:>7}  {r['verdict']:<9}  {r['n_tokens']:>6}  {reason}\n")
