"""Reading what the user gives: every problem is one item with a one-line reason, never an exception."""

from __future__ import annotations

import io
import json
import sys

import pytest
from conftest import HUMAN_TEXT, LONG, SHORT, table_files, write_lines
from hypothesis import given
from hypothesis import strategies as st

from detector.core.errors import DataError
from detector.io import jsonl
from detector.io.decoding import MAX_BYTES, decode
from detector.io.jsonl import iter_jsonl
from detector.io.sources import iter_paths, read_stdin
from detector.io.tables import iter_table


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


def test_jsonl_bad_byte_is_that_lines_error_with_its_true_number(tmp_path):
    lines = [json.dumps({"text": f"text number {i}"}).encode() for i in range(6)]
    lines[4] = lines[4][:-2] + b"\xff\"}"
    items = list(iter_jsonl(str(write_lines(tmp_path / "in.jsonl", lines))))
    assert [i.source.rsplit(":", 1)[1] for i in items] == ["1", "2", "3", "4", "5", "6"]
    assert [i.error is None for i in items] == [True, True, True, True, False, True]
    assert "not UTF-8" in items[4].error


def test_jsonl_faults_are_per_line(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_LINE", 300_000)
    lines = [b"[" * 100_000 + b"]" * 100_000, b"[1, 2]", b'{"text": null}', b'{"body": "x"}', b'{"text": 5}',
             b"", b'{"text": "a\\u0000b c"}', b'{"text": "lone \\ud800 surrogate"}',
             json.dumps({"text": "x" * 400_000}).encode(), b'{"text": "after the long line"}', b"\r"]
    items = list(iter_jsonl(str(write_lines(tmp_path / "in.jsonl", lines))))
    by_line = {int(i.source.rsplit(":", 1)[1]): i for i in items}
    assert "nested too deeply" in by_line[1].error
    assert "not a JSON object (array)" in by_line[2].error
    assert "(null, not a string)" in by_line[3].error
    assert "(missing)" in by_line[4].error
    assert "(number, not a string)" in by_line[5].error
    assert 6 not in by_line and 11 not in by_line  # blank lines are no records
    assert by_line[7].text == "ab c" and "NUL" in by_line[7].note
    assert by_line[8].error is None and "\ufffd" in by_line[8].text
    assert "longer than" in by_line[9].error
    assert by_line[10].text == "after the long line"


def test_utf16_with_bom_is_text_not_binary(tmp_path):
    (tmp_path / "le.txt").write_bytes(HUMAN_TEXT.encode("utf-16"))
    (tmp_path / "be.txt").write_bytes(b"\xfe\xff" + HUMAN_TEXT.encode("utf-16-be"))
    (tmp_path / "sig.txt").write_bytes(b"\xef\xbb\xbf" + HUMAN_TEXT.encode())
    (tmp_path / "u.jsonl").write_bytes((json.dumps({"text": "héllo"}, ensure_ascii=False) + "\n").encode("utf-16"))
    items = list(iter_paths([str(tmp_path / n) for n in ("le.txt", "be.txt", "sig.txt")]))
    assert [i.text for i in items] == [HUMAN_TEXT] * 3
    assert [i.text for i in iter_jsonl(str(tmp_path / "u.jsonl"))] == ["héllo"]


def test_huge_utf16_file_is_cut_on_a_character(tmp_path):
    (tmp_path / "big.txt").write_bytes(("é word 😀 " * 100_000).encode("utf-16"))
    [item] = iter_paths([str(tmp_path / "big.txt")])
    assert item.error is None and "scored on the first" in item.note


def test_stdin_is_read_on_a_bounded_prefix(monkeypatch):
    stream = io.BytesIO(b"word " * 400_000)  # 2 MB

    class Stdin:
        buffer = stream

    monkeypatch.setattr(sys, "stdin", Stdin)
    item = read_stdin()
    assert item.error is None and "the rest was not read" in item.note
    assert stream.tell() == MAX_BYTES + 1


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_table_rows_are_items_with_their_columns(tmp_path, suffix):
    table_files(tmp_path)
    items = list(iter_table(str(tmp_path / f"texts.{suffix}"), "body"))
    assert [i.source.rsplit(":", 1)[1] for i in items] == ["1", "2", "3"]
    assert items[0].text == LONG and items[0].fields == {"id": 1, "author": "a"}
    assert "'body' is empty" in items[1].error and items[1].fields["author"] == "b"
    with pytest.raises(DataError, match="no column 'text'.*--text-column"):
        list(iter_table(str(tmp_path / f"texts.{suffix}")))


def test_docx_text_is_extracted(tmp_path):
    import docx

    document = docx.Document()
    document.add_paragraph(LONG)
    document.add_paragraph(SHORT)
    document.save(tmp_path / "letter.docx")
    [item] = iter_paths([str(tmp_path / "letter.docx")])
    assert item.error is None and item.text == f"{LONG}\n\n{SHORT}"
    assert "docx" in item.note


def _pdf_with_text(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, written by hand (pypdf reads, it does not typeset)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_is_extracted_and_a_scanned_pdf_says_why(tmp_path):
    from pypdf import PdfWriter

    (tmp_path / "report.pdf").write_bytes(_pdf_with_text("The budget was approved on Tuesday."))
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.write(tmp_path / "scanned.pdf")
    items = {i.source.rsplit("/", 1)[1]: i for i in iter_paths([str(tmp_path)])}
    assert "The budget was approved on Tuesday." in items["report.pdf"].text
    assert "no extractable text" in items["scanned.pdf"].error and "OCR" in items["scanned.pdf"].error


@given(st.binary(max_size=600))
def test_decode_answers_every_byte_string(raw):
    item = decode(raw, "x")
    assert (item.text is None) != (item.error is None)
    if item.error:
        assert "\n" not in item.error
