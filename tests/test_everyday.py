"""Everyday use (issue 13): tables in and out, documents, one flag vocabulary, guardrails, text handling."""

from __future__ import annotations

import argparse
import csv
import io
import json
import time

import pandas as pd
import pytest
from conftest import MINI

from detector.core.errors import DataError
from detector.decision.verdict import text_problem
from detector.io.sources import iter_paths
from detector.io.tables import iter_table
from detector.text.normalize import normalize
from detector.text.segments import language_of, sentence_spans
from detector_cli.main import build_parser, main

LONG = ("The committee met on Tuesday to discuss the budget for the coming year. Several members raised "
        "concerns about the cost of the new library wing, which had grown by a third since the plans were "
        "first drawn. After a long debate they agreed to ask the architect for a cheaper design.")
SHORT = "I never liked the smell of the old bus station, but I loved the man who sold newspapers there."

# ----------------------------------------------------------------------------------------- text handling


def test_french_is_not_english_and_a_list_of_fruits_is():
    french = ("La Révolution française est une période de bouleversements politiques et sociaux en France, "
              "dans ses colonies et en Europe à la fin du XVIIIe siècle.")
    assert "not English" in text_problem(french)
    fruits = "apples, bananas, oranges, pears, grapes, plums, cherries, strawberries, kiwis, mangoes, lemons, limes"
    assert text_problem(fruits) is None
    assert text_problem(LONG) is None
    assert language_of(LONG) == "en"


def test_abbreviations_do_not_end_sentences():
    text = "Dr. Smith flew to Washington, D.C. on Monday. He met the senator at 3 p.m. in her office."
    pieces = [text[lo:hi] for lo, hi in sentence_spans(text)]
    assert 1 <= len(pieces) <= 2, pieces
    assert pieces[0].startswith("Dr. Smith")


def test_sentence_spans_cover_lines_and_repeats():
    text = "Yes. Yes. Yes.\nA title\n\nLast one!"
    spans = sentence_spans(text)
    assert [text[lo:hi] for lo, hi in spans] == ["Yes.", "Yes.", "Yes.", "A title", "Last one!"]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # in order, not overlapping


def test_sentence_splitting_stays_fast_on_pathological_text():
    started = time.perf_counter()
    assert len(sentence_spans("a!" * 10_000)) == 10_000  # pysbd alone: ~13 s (quadratic); in pieces: < 1 s
    assert time.perf_counter() - started < 5


def test_homoglyphs_come_from_unicode_confusables():
    attacked = "Тhе Іnternet is 𝐛𝐨𝐥𝐝 and ɑ pаypal scam"  # Cyrillic Т е І, mathematical bold, Latin alpha, Cyrillic а
    result = normalize(attacked)
    assert result.text == "The Internet is bold and a paypal scam"
    assert result.alterations["homoglyphs"] == 9


def test_ordinary_text_is_untouched_by_normalisation():
    text = "It’s a café — naïve “quotes”, Zoë’s façade, 3–4 pages… and ½ cup.\n\nNew paragraph."
    assert normalize(text).text == text.replace("\n\n", " ")  # every character kept; the layout read as spaces
    assert normalize(text, keep_layout=True).text == text
    assert not normalize(text).altered
    for line in MINI.read_text().splitlines():
        assert not normalize(json.loads(line)["text"]).altered


# ----------------------------------------------------------------------------------------- reading inputs


def _table(tmp_path):
    rows = [{"id": 1, "body": LONG, "author": "a"}, {"id": 2, "body": None, "author": "b"},
            {"id": 3, "body": SHORT, "author": "c"}]
    pd.DataFrame(rows).to_csv(tmp_path / "texts.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "texts.parquet")
    return rows


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_table_rows_are_items_with_their_columns(tmp_path, suffix):
    _table(tmp_path)
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


# ----------------------------------------------------------------------------------------- the CLI


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_has_help_and_every_command_examples():
    for name, parser in _subcommands().items():
        assert "examples:" in (parser.epilog or ""), name
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = parser.format_help()
        assert "--text-field" not in text  # the old name still works, but is not offered
    for name in ("train", "evaluate", "score", "serve", "score-corpus"):
        assert "--tracking-uri" in _subcommands()[name].format_help(), name
    assert "(default: 16)" in _subcommands()["score"].format_help()


def test_text_field_is_an_alias_of_text_column():
    args = build_parser().parse_args(["score", "--data", "x.jsonl", "--text-field", "body"])
    assert args.text_column == "body"
    args = build_parser().parse_args(["train", "--data", "x.jsonl", "--text-field", "body"])
    assert args.text_column == "body"


def test_score_a_csv_table_to_csv(tmp_path, capsys):
    _table(tmp_path)
    out = tmp_path / "scored.csv"
    code = main(["score", "--data", str(tmp_path / "texts.csv"), "--text-column", "body", "--format", "csv",
                 "-o", str(out), "-q"])
    assert code == 1  # one row had no text: reported, the others scored
    assert "texts.csv:2: 'body' is empty" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["id"] for r in rows] == ["1", "2", "3"]  # input order, other columns passed through
    assert [r["author"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["verdict"] in ("human", "machine", "uncertain") and 0 <= float(rows[0]["p_machine"]) <= 1
    assert rows[1]["error"] and not rows[1]["verdict"]


def test_a_table_given_as_a_path_is_warned_about_and_jsonl_alias_reads_csv(tmp_path, capsys):
    _table(tmp_path)
    assert main(["score", str(tmp_path / "texts.csv"), "--format", "json", "-q"]) == 0
    captured = capsys.readouterr()
    assert "is scored as one text; to score each row, use --data" in captured.err
    assert len(json.loads(captured.out)) == 1
    assert main(["score", "--jsonl", str(tmp_path / "texts.csv"), "--text-field", "body", "--format", "jsonl",
                 "-q"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["id"] for r in records) == [1, 2, 3]


def test_missing_text_column_fails_before_the_model(tmp_path, capsys):
    _table(tmp_path)
    started = time.perf_counter()
    assert main(["score", "--data", str(tmp_path / "texts.csv"), "-q"]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    assert time.perf_counter() - started < 30


def test_explain_is_shown_in_the_table(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(LONG, encoding="utf-8")
    assert main(["score", str(tmp_path / "a.txt"), "--explain", "-q"]) == 0
    out = capsys.readouterr().out
    assert "features: " in out and "sentence p=" in out


# ----------------------------------------------------------------------------------------- guardrails


def test_a_tiny_training_set_fails_before_the_lm_pass(tmp_path, capsys):
    rows = [json.loads(line) for line in MINI.read_text().splitlines()]
    humans = [r for r in rows if r["label"] in (0, "human")][:10]
    machines = [r for r in rows if r["label"] not in (0, "human")][:10]
    with (tmp_path / "small.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in humans + machines)
    started = time.perf_counter()
    assert main(["train", "--data", str(tmp_path / "small.jsonl"), "--no-mlflow"]) == 2
    assert "a detector needs at least 20 of each" in capsys.readouterr().err
    assert time.perf_counter() - started < 30  # the LM pass alone takes longer


def test_unbalanced_classes_are_warned_about_up_front():
    from train.run import check_trainable

    table = pd.DataFrame({"id": [str(i) for i in range(460)], "pair_id": None,
                          "label": [0] * 420 + [1] * 40})
    [warning] = check_trainable(table)
    assert "unbalanced (420 human, 40 machine" in warning
    assert check_trainable(table.assign(label=[0, 1] * 230)) == []


def test_a_constant_classifier_and_few_threshold_humans_are_warned_about():
    import numpy as np

    from train.fit import TrainingReport
    from train.run import training_warnings

    class Model:
        thresholds = type("T", (), {"min_tokens": 10, "machine_fpr": 0.01})()

    class Data:
        def subset(self, mask):
            table = pd.DataFrame({"label": [0] * int(mask.sum())})
            return type("D", (), {"table": table, "n_tokens": np.full(int(mask.sum()), 50)})()

    report = TrainingReport(test_table=pd.DataFrame(), split=pd.Series(["val"] * 6 + ["test"] * 6), test=None,
                            test_p=np.full(6, 0.5), val_p=np.full(6, 0.5), seconds=0.0)
    warnings = training_warnings(Model(), Data(), report, [0.5, 0.5, 0.5])
    assert any("predicts a constant" in w for w in warnings)
    assert any("rests on 6 validation human texts" in w for w in warnings)
