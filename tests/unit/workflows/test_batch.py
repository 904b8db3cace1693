"""The one record schema and its forms, and the one batch loop, with a stub detector (pure, fast).

The same loop with the real default LM, on the seed and the fixtures, is in tests/integration/test_scoring.py.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest

from detector import Result
from detector.core.errors import UserError
from detector.io import record as schema
from detector.io import report
from detector.io.decoding import Item, text_item
from detector.workflows.batch import resume_filter, score_items, score_values


@dataclass
class _Analysis:
    text: str


class _StubDetector:
    """Scores a text by its length; any batch holding the text 'boom' fails, as an LM error would."""

    def __init__(self, fail_with: type[Exception] = RuntimeError):
        self.batches: list[list[str]] = []
        self.fail_with = fail_with

    def analyse(self, texts):
        self.batches.append(list(texts))
        if "boom" in texts:
            raise self.fail_with("the LM choked\nsecond line")
        return [_Analysis(t) for t in texts]

    def results(self, analyses, explain=False):
        return [Result(len(a.text) / 100, "uncertain", "stub", len(a.text),
                       explanation={"sentences": []} if explain else None) for a in analyses]


def _items(*texts):
    return [Item(f"s{i}", error=t[1:]) if t.startswith("!") else Item(f"s{i}", t) for i, t in enumerate(texts)]


def test_records_come_out_in_input_order_batch_by_batch():
    stub = _StubDetector()
    items = _items("aa", "!bad", "bbb", "cccc", "!worse", "d")
    out = list(score_items(stub, items, batch_size=2))
    assert [s.item.source for s in out] == [i.source for i in items]
    assert stub.batches == [["aa", "bbb"], ["cccc", "d"]]  # errors take no room in a batch
    assert [s.record.get("error") for s in out] == [None, "bad", None, None, "worse", None]
    assert out[0].record["n_tokens"] == 2 and out[0].analysis.text == "aa" and out[1].result is None


def test_items_are_read_lazily_one_batch_ahead():
    seen = []

    def items():
        for i in range(5):
            seen.append(i)
            yield Item(f"s{i}", "x" * (i + 1))

    stream = score_items(_StubDetector(), items(), batch_size=2)
    next(stream)
    assert seen == [0, 1]


def test_a_failing_text_is_retried_alone_and_only_it_carries_the_error():
    stub = _StubDetector()
    out = list(score_items(stub, _items("fine", "boom", "also fine"), batch_size=8))
    assert [s.record.get("error") for s in out] == [None, "RuntimeError: the LM choked", None]
    assert out[1].item.error is None and out[1].record["source"] == "s1"  # the input item is not changed
    assert stub.batches[0] == ["fine", "boom", "also fine"] and ["fine"] in stub.batches


def test_a_user_error_stops_the_loop():
    with pytest.raises(UserError):
        list(score_items(_StubDetector(fail_with=UserError), _items("boom"), batch_size=1))
    with pytest.raises(UserError):
        list(score_items(_StubDetector(), _items("a"), batch_size=0))


def test_explain_is_passed_through():
    [scored] = score_items(_StubDetector(), _items("abc"), explain=True)
    assert scored.record["explanation"] == {"sentences": []}


def test_table_cells_become_rows_with_errors_in_place():
    values = ["fine text", None, float("nan"), 7, "", " \n", "boom", "another"]
    rows = score_values(_StubDetector(), values, batch_size=3)
    assert [r["error"] for r in rows] == [
        None, "text is null", "text is null", "text is not a string (int)", "text is empty",
        "text is whitespace only, nothing to score", "RuntimeError: the LM choked", None,
    ]
    assert all(list(r) == list(schema.TABLE_COLUMNS) for r in rows)
    assert rows[0]["n_tokens"] == len("fine text") and rows[7]["verdict"] == "uncertain"
    assert all(r["p_machine"] is None for r in rows[1:7])
    frame = schema.table_frame(rows)
    assert str(frame["n_tokens"].dtype) == "Int32" and str(frame["p_machine"].dtype) == "float64"
    assert frame["p_machine"].isna().tolist() == [False] + [True] * 6 + [False]


def test_resume_filter_matches_sources_however_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    items = [Item("a.txt", "x", key=str(tmp_path / "a.txt")), Item("b.txt", "y", key=str(tmp_path / "b.txt"))]
    kept, skipped = resume_filter(items, [str(tmp_path / "a.txt"), "./other.txt"])
    assert [i.source for i in kept] == ["b.txt"] and skipped == 1


def test_one_field_list_gives_every_form():
    names = [f.name for f in schema.FIELDS]
    assert schema.NAMES == set(names) and len(names) == len(set(names))
    assert set(Result(0.1, "human", "r", 3).to_dict()) | {"explanation"} <= schema.NAMES
    assert schema.CSV_COLUMNS[0] == "source" and set(schema.TABLE_COLUMNS) <= set(schema.CSV_COLUMNS)
    model = schema.openapi_model()
    assert set(model.model_json_schema()["properties"]) == schema.NAMES
    model.model_validate(schema.record(Item("s", "t"), Result(0.5, "machine", "r", 9)))
    pa = pytest.importorskip("pyarrow")
    arrow = schema.arrow_schema()
    assert arrow.names == list(schema.TABLE_COLUMNS) and arrow.field("n_tokens").type == pa.int32()


def test_record_keeps_clashing_input_fields_under_input_and_passes_the_rest():
    item = Item("f.jsonl:1", "t", fields={"verdict": "theirs", "id": 7})
    rec = schema.record(item, Result(0.9, "machine", "r", 4))
    assert rec["verdict"] == "machine" and rec["input"] == {"verdict": "theirs"} and rec["id"] == 7
    assert list(rec)[:2] == ["source", "p_machine"]
    assert schema.detector_fields(rec) == {k: v for k, v in rec.items() if k != "id"}


def test_csv_and_json_forms_of_a_record():
    recs = [schema.record(Item("a", "t", fields={"id": 1}), Result(0.5, "uncertain", "r", 3)),
            schema.record(Item("b", error="empty file"), None)]
    out = io.StringIO()
    report.write(iter(recs), out, "csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0])[: len(schema.CSV_COLUMNS)] == list(schema.CSV_COLUMNS) and rows[0]["id"] == "1"
    assert rows[1]["error"] == "empty file" and rows[1]["p_machine"] == ""
    out = io.StringIO()
    report.write(iter(recs), out, "jsonl")
    assert [json.loads(line) for line in out.getvalue().splitlines()] == recs


def test_text_item_is_the_one_way_a_text_in_memory_is_read():
    item = text_item("a\x00b" + "é" * 200_000, "t:1", key="k", fields={"x": 1}, note="from a PDF")
    assert item.text.startswith("ab") and len(item.text.encode()) <= 256 * 1024
    assert item.note.startswith("from a PDF; scored on the first 256.0 KiB") and "NUL characters removed" in item.note
    assert (item.key, item.fields) == ("k", {"x": 1})
    assert text_item(" \t", "t:2").error == "text is whitespace only, nothing to score"


def test_the_loop_gives_detector_scores_on_the_seed_and_the_fixtures(default_detector, tmp_path, capsys):
    """Slow (the real default LM): the CLI's records, through `score_items` in batches, are exactly
    `Detector.score`'s verdicts and p(machine), text for text, in input order; the seed is machine.
    (Before/after: the old loop and this one gave the same 81 verdicts and reasons on these inputs, with
    p(machine) within 2.2e-16, the old loop's own run-to-run spread.)"""
    from conftest import MINI, SEED

    from detector.io.sources import iter_paths
    from detector.io.tables import iter_table
    from detector_cli.main import main

    items = [*iter_paths([str(SEED)]), *iter_table(str(MINI))]
    direct = default_detector.score([item.text for item in items])
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(SEED), "--data", str(MINI), "--format", "jsonl", "--batch-size", "7", "-q",
                 "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in records] == [item.source for item in items]
    assert [r["verdict"] for r in records] == [r.verdict for r in direct]
    # The classifier's sums are not bit-stable from run to run (the old loop differed from itself by
    # up to 2e-16 on these texts); anything larger would be the loop's doing.
    assert [r["p_machine"] for r in records] == pytest.approx([r.p_machine for r in direct], abs=1e-12)
    assert [r["reason"] for r in records] == [r.reason for r in direct]
    assert records[0]["verdict"] == "machine"
    rows = score_values(default_detector, [i.text for i in items[:9]], batch_size=4)
    assert [row["p_machine"] for row in rows] == pytest.approx([r.p_machine for r in direct[:9]], abs=1e-12)
