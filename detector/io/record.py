"""The scored record, defined once: its fields, and the JSON, CSV, table (pandas/Arrow/Parquet, the
mlflow pyfunc), Spark and OpenAPI forms derived from them.

A record is what every entry point answers for one input: `detector score` (JSON, JSON lines, CSV,
table), the HTTP server, Spark's `score_dataframe` and the mlflow pyfunc. Its detector fields are
`Result.to_dict()`'s plus the input's `source`, `error` and `note`; the input's own fields pass through
after them, and one that shares a detector field's name is kept under `input`, never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from detector.facade.detector import Result
    from detector.io.decoding import Item


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "string", "double", "int" or "json" (nested: an object, written as JSON text in flat forms)
    description: str
    csv: bool = True  # a column of every CSV the detector writes
    column: bool = False  # a column added to a scored table (pandas/Parquet, Spark, the mlflow pyfunc)


FIELDS = (
    Field("source", "string", "where the text came from: a path, '-', FILE:LINE, FILE:ROW or texts[i]"),
    Field("p_machine", "double", "probability the text is machine-generated (null when unscored)", column=True),
    Field("verdict", "string", "machine, human or uncertain", column=True),
    Field("reason", "string", "why the verdict, in one line", column=True),
    Field("n_tokens", "int", "LM tokens scored", column=True),
    Field("altered", "json", "invisible changes normalisation undid (kind -> count)"),
    Field("explanation", "json", "per-sentence scores and top features (asked for with explain)", csv=False),
    Field("error", "string", "why the input could not be scored (then no result fields)", column=True),
    Field("note", "string", "how the input was read (e.g. scored on its first 256 KiB)"),
    Field("input", "json", "the input's own fields named like a detector field", csv=False),
)
NAMES = frozenset(f.name for f in FIELDS)  # a user field with one of these names goes under "input"
CSV_COLUMNS = tuple(f.name for f in FIELDS if f.csv)
TABLE_COLUMNS = tuple(f.name for f in FIELDS if f.column)
_BY_NAME = {f.name: f for f in FIELDS}


def clashing_fields(item: Item) -> list[str]:
    """The item's own fields that share a name with a detector field (kept under "input")."""
    return sorted(NAMES.intersection(item.fields))


def record(item: Item, result: Result | None) -> dict:
    """One output record: source, the result (or the item's error), its note, its passed-through fields."""
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
    out.update((key, value) for key, value in item.fields.items() if key not in NAMES)
    return out


def detector_fields(rec: dict) -> dict:
    """The record without its passed-through input fields."""
    return {k: v for k, v in rec.items() if k in NAMES}


# ----------------------------------------------------------------------------------------- table forms


def table_row(result: Result | None, error: str | None = None) -> dict:
    """The table columns of one scored text: the result's, or nulls and the error."""
    values = result.to_dict() if result is not None else {"error": error}
    values.setdefault("error", None)
    return {name: values.get(name) for name in TABLE_COLUMNS}


_PANDAS = {"double": "float64", "string": "object", "int": "Int32"}  # Int32: Spark's IntegerType, nullable


def table_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Table rows (`table_row`) as pandas, typed: p_machine float64 (NaN when unscored), n_tokens Int32,
    missing strings None."""
    import pandas as pd

    rows = list(rows)
    return pd.DataFrame({name: pd.Series([row[name] for row in rows], dtype=_PANDAS[_BY_NAME[name].kind])
                         for name in TABLE_COLUMNS})


def arrow_schema(columns: Iterable[str] = TABLE_COLUMNS):
    """The Arrow (Parquet) types of record fields; nested ones as JSON text."""
    import pyarrow as pa

    kinds = {"double": pa.float64(), "string": pa.string(), "int": pa.int32(), "json": pa.string()}
    return pa.schema([pa.field(name, kinds[_BY_NAME[name].kind], nullable=True) for name in columns])


def spark_fields(columns: Iterable[str] = TABLE_COLUMNS) -> list:
    """The Spark StructFields of record fields (pyspark imported here only)."""
    from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField

    kinds = {"double": DoubleType(), "string": StringType(), "int": IntegerType(), "json": StringType()}
    return [StructField(name, kinds[_BY_NAME[name].kind], True) for name in columns]


def openapi_model(name: str = "ScoreRecord") -> Any:
    """A pydantic model of the JSON record (the server's OpenAPI schema), built from FIELDS."""
    from typing import Literal

    from pydantic import ConfigDict, create_model
    from pydantic import Field as PydanticField

    types: dict[str, Any] = {"double": float | None, "string": str | None, "int": int | None, "json": dict | None}
    fields: dict[str, Any] = {f.name: (types[f.kind], PydanticField(None, description=f.description))
                              for f in FIELDS}
    fields["source"] = (str, PydanticField(description=_BY_NAME["source"].description))
    verdicts = Literal["machine", "human", "uncertain"] | None
    fields["verdict"] = (verdicts, PydanticField(None, description=_BY_NAME["verdict"].description))
    return create_model(name, __config__=ConfigDict(extra="allow"), __doc__="One scored text, as "
                        "`detector score --format json` writes it.", **fields)
