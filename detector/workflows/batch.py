"""One batch-scoring loop for every entry point: items in, one record each out, in input order.

`score_items` sends the items that can be scored to the LM `batch_size` at a time and yields a
`Scored` for every item, the unscorable ones (an `error` from reading) in their place. When a batch
fails, each of its texts is retried alone, so only a text that fails by itself carries the error and
the rest are scored; a `UserError` (the model or its LM cannot run at all) still stops the loop.
`resume_filter` drops the inputs an earlier, interrupted run already wrote. `score_values` is the
loop for a table's text column (Spark's partitions, the mlflow pyfunc): one table row per cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from detector.core.errors import UserError, first_line
from detector.io.decoding import Item, nothing_to_score
from detector.io.record import record, table_row
from detector.io.sources import source_keys

if TYPE_CHECKING:
    from detector.facade.detector import Detector, Result
    from detector.features.engine import Analysis

DEFAULT_BATCH_SIZE = 16


@dataclass
class Scored:
    """One item and what became of it: its record, and its result and analysis when it was scored."""

    item: Item
    record: dict
    result: Result | None = None
    analysis: Analysis | None = None


def score_items(detector: Detector, items: Iterable[Item], *, batch_size: int = DEFAULT_BATCH_SIZE,
                explain: bool = False) -> Iterator[Scored]:
    """A `Scored` per item, in input order, `batch_size` texts per LM call (items are read lazily)."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, not {batch_size}")
    pending: list[Item] = []
    texts = 0
    for item in items:
        pending.append(item)
        texts += item.error is None
        if texts == batch_size:
            yield from _flush(detector, pending, explain)
            pending, texts = [], 0
    yield from _flush(detector, pending, explain)


def _flush(detector: Detector, pending: list[Item], explain: bool) -> Iterator[Scored]:
    good = [item for item in pending if item.error is None]
    scored = {id(s.item): s for s in _score(detector, good, explain)}
    for item in pending:
        yield scored.get(id(item)) or Scored(item, record(item, None))


def _score(detector: Detector, items: list[Item], explain: bool) -> list[Scored]:
    if not items:
        return []
    try:
        analyses = detector.analyse([item.text for item in items])
        results = detector.results(analyses, explain=explain)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - one text's failure must not fail the batch
        if len(items) > 1:
            return [s for item in items for s in _score(detector, [item], explain)]
        failed = replace(items[0], text=None, error=failure(err))
        return [Scored(items[0], record(failed, None))]
    return [Scored(item, record(item, result), result, analysis)
            for item, analysis, result in zip(items, analyses, results, strict=True)]


def failure(err: BaseException) -> str:
    """A scoring failure in one line: the exception's type and its first line."""
    first = first_line(err, 300)
    return first if first == type(err).__name__ else f"{type(err).__name__}: {first}"


def resume_filter(items: list[Item], done_sources: Iterable[str]) -> tuple[list[Item], int]:
    """The items not yet in an earlier output (its records' sources, however the paths were spelled),
    and how many were dropped."""
    done = set().union(*(source_keys(source) for source in done_sources))
    kept = [item for item in items if not (item.key and item.key in done)]
    return kept, len(items) - len(kept)


def value_items(values: Iterable[object]) -> list[Item]:
    """Cells of a table's text column (Spark, the mlflow pyfunc) as items, sources "row N"; a cell that
    is null, not a string or blank is that item's error."""
    items = []
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):  # pandas gives NaN or None for null
            problem = "text is null"
        elif not isinstance(value, str):
            problem = f"text is not a string ({type(value).__name__})"
        else:
            blank = nothing_to_score(value)
            problem = f"text is {blank}" if blank else None
        items.append(Item(f"row {row}", None if problem else value, error=problem))
    return items


def score_values(detector: Detector, values: Sequence[object], *, batch_size: int = DEFAULT_BATCH_SIZE,
                 explain: bool = False) -> list[dict]:
    """One table row (`record.table_row`: the result's columns, or nulls and the error) per cell."""
    return [table_row(s.result, s.record.get("error"))
            for s in score_items(detector, value_items(values), batch_size=batch_size, explain=explain)]
