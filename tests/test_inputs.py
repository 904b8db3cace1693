"""Reading what the user gives: every problem is one item with a one-line reason, never an exception."""

from __future__ import annotations

import json

from detector.io.decoding import MAX_BYTES
from detector.io.jsonl import iter_jsonl
from detector.io.sources import iter_paths


def test_folder_of_mixed_files(tmp_path):
    (tmp_path / "good.txt").write_text("A perfectly ordinary text file.", encoding="utf-8")
    (tmp_path / "binary.bin").write_bytes(b"\x00\x01\x02garbage")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("  \n\t ", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.txt").write_text("Nested file text.", encoding="utf-8")
    items = {item.source.split("/")[-1]: item for item in iter_paths([str(tmp_path)])}
    assert items["good.txt"].text.startswith("A perfectly")
    assert items["nested.txt"].text == "Nested file text."
    assert items["binary.bin"].error == "binary file, skipped"
    assert items["empty.txt"].error == "empty file"
    assert "whitespace" in items["blank.txt"].error
    assert "not UTF-8" in items["latin1.txt"].error


def test_missing_path_is_an_item_error(tmp_path):
    [item] = iter_paths([str(tmp_path / "nope.txt")])
    assert item.error == "no such file or folder"


def test_huge_file_is_read_on_a_bounded_prefix(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("é word " * 2_000_000, encoding="utf-8")  # ~16 MB, multi-byte chars at the cut
    [item] = iter_paths([str(big)])
    assert item.error is None
    assert len(item.text.encode()) <= MAX_BYTES
    assert "scored on the first" in item.note


def test_unreadable_file(tmp_path, monkeypatch):
    # Tests may run as root, which reads anything: make open() fail the way it would for a user.
    path = tmp_path / "secret.txt"
    path.write_text("text", encoding="utf-8")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "open", refuse)
    [item] = iter_paths([str(path)])
    assert item.error == "permission denied"


def test_jsonl_records_keep_their_fields_and_report_bad_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": "First text here.", "id": 7}), "{not json", json.dumps({"body": "x"}),
             json.dumps({"text": "   "}), "", json.dumps({"text": "Last text.", "tag": "b"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(iter_jsonl(str(path)))
    assert [i.error is None for i in items] == [True, False, False, False, True]
    assert items[0].fields == {"id": 7}
    assert "not valid JSON" in items[1].error
    assert items[1].source.endswith(":2")
    assert "no string field 'text'" in items[2].error
    assert items[4].fields == {"tag": "b"}
