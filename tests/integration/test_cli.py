"""The command line end to end: options, tables in and out, one-line errors, resume, generated inputs."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
import time

import pytest
from conftest import HUMAN_TEXT, HUMAN_TEXT_2, LONG, MINI, SEED, any_text, one_error_line, table_files, write_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.lm import stats_cache as cache_module
from detector_cli.main import build_parser, main


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
    table_files(tmp_path)
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
    table_files(tmp_path)
    assert main(["score", str(tmp_path / "texts.csv"), "--format", "json", "-q"]) == 0
    captured = capsys.readouterr()
    assert "is scored as one text; to score each row, use --data" in captured.err
    assert len(json.loads(captured.out)) == 1
    assert main(["score", "--jsonl", str(tmp_path / "texts.csv"), "--text-field", "body", "--format", "jsonl",
                 "-q"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["id"] for r in records) == [1, 2, 3]


def test_missing_text_column_fails_before_the_model(tmp_path, capsys):
    table_files(tmp_path)
    started = time.perf_counter()
    assert main(["score", "--data", str(tmp_path / "texts.csv"), "-q"]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    assert time.perf_counter() - started < 30


def test_explain_is_shown_in_the_table(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(LONG, encoding="utf-8")
    assert main(["score", str(tmp_path / "a.txt"), "--explain", "-q"]) == 0
    out = capsys.readouterr().out
    assert "features: " in out and "sentence p=" in out


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


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--batch-size", "-1"], ["--batch-size", "x"],
                                  ["--device", "nope"], ["--device", "cuda:7"]])
def test_bad_options_are_one_line_exit_2(args, capsys):
    try:
        code = main(["score", str(SEED), *args])
    except SystemExit as exit_:  # argparse's own errors leave through SystemExit
        code = exit_.code
    assert code == 2
    one_error_line(capsys)


def test_empty_jsonl_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_bytes(b"\n  \n")
    assert main(["score", "--jsonl", str(tmp_path / "in.jsonl")]) == 2
    assert "no rows to score" in one_error_line(capsys)


def test_train_data_errors_are_one_line(tmp_path, monkeypatch, capsys):
    import datasets

    from train.data import DataError, load_spec

    rows = [json.loads(line) for line in MINI.read_text().splitlines()][:6]
    (tmp_path / "null.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + [{"text": None, "label": 0}]))
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + [
        {"text": "a b", "label": 2}, {"text": "c d", "label": "maybe"}]))
    with pytest.raises(DataError, match="null"):
        load_spec(str(tmp_path / "null.jsonl"))
    with pytest.raises(DataError, match="'2', 'maybe'"):
        load_spec(str(tmp_path / "labels.jsonl"))

    real = datasets.load_dataset

    def local_only(path, *args, **kwargs):
        assert path in ("json", "csv", "parquet"), f"{path} was sent to the hub"
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", local_only)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for typo in ("my_textz.jsonl", "labelz.jsonl", "data/texts", "./texts", "nul.csv:train"):
        assert main(["train", "--data", typo, "--no-mlflow"]) == 2
        line = one_error_line(capsys)
        assert "no such file" in line
    assert main(["train", "--data", "labelz.jsonl", "--no-mlflow"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_scoring_with_a_locked_cache_still_scores_everything(tmp_path, fresh_cache_state, monkeypatch, capsys):
    path = tmp_path / "c.sqlite"
    cache_module.StatsCache(path).close()
    monkeypatch.setenv("DETECTOR_STATS_CACHE", str(path))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        src = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": t}).encode() for t in (HUMAN_TEXT, HUMAN_TEXT_2)])
        out = tmp_path / "out.jsonl"
        assert main(["score", "--jsonl", str(src), "--format", "jsonl", "-o", str(out), "-q"]) == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["verdict"] for r in records)


def test_resume_after_a_torn_line_with_the_input_spelled_differently(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    texts = [HUMAN_TEXT, HUMAN_TEXT_2, SEED.read_text(encoding="utf-8")[:600]]
    write_lines(tmp_path / "in.jsonl", [json.dumps({"text": t, "i": i}).encode() for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    assert main(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "-q"]) == 0
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(lines[0] + lines[1][:30])
    capsys.readouterr()
    assert main(["score", "--jsonl", "./in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "--resume", "-q"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["i"] for r in records) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "cut-off" in err and "1 of 3 inputs were already" in err
    assert main(["score", "--jsonl", str(tmp_path / "in.jsonl"), "--format", "jsonl", "-o", "out.jsonl",
                 "--resume", "-q"]) == 0
    assert len(out.read_text().splitlines()) == 3
    assert "3 of 3 inputs were already" in capsys.readouterr().err


def test_ansi_file_names_are_printed_escaped(tmp_path, capsys):
    bad = tmp_path / "x\x1b[2J\x1b[31m.bin"
    bad.write_bytes(b"\x00\x01")
    good = tmp_path / "g\x1b[1m.txt"
    good.write_text(HUMAN_TEXT, encoding="utf-8")
    assert main(["score", str(bad), str(good), "-q"]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.err and "\x1b" not in captured.out
    assert "\\x1b[2J" in captured.err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(any_text, min_size=1, max_size=3))
def test_cli_scores_arbitrary_unicode(tmp_path, capsys, texts):
    from detector_cli.main import main

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    code = main(["score", "--jsonl", str(src), "--format", "json", "-q"])
    out = capsys.readouterr()
    assert code in (0, 1)
    records = json.loads(out.out)
    assert len(records) == len(texts)
    for record in records:
        assert ("error" in record) or record["verdict"] in ("machine", "human", "uncertain")
    assert "Traceback" not in out.err
