"""What is written: never over an input or an existing file, records keep clashing fields, resume is exact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import one_error_line, write_lines

from detector.io.jsonl import iter_jsonl
from detector.io.outputs import prepare_resume
from detector.io.record import record as make_record
from detector.io.sources import source_keys
from detector_cli.main import main


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


REFUSED = {
    "html is the input": ["score", "a.txt", "--html", "a.txt"],
    "output is the input": ["score", "a.txt", "-o", "./a.txt"],
    "output is a symlink to the input": ["score", "a.txt", "-o", "sym.txt"],
    "output is a hard link to the input": ["score", "a.txt", "-o", "hard.txt"],
    "resume onto a hard link of the input": ["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "hard.jsonl",
                                             "--resume"],
    "output inside an input folder": ["score", "docs", "-o", "docs/new.jsonl"],
    "output exists": ["score", "a.txt", "-o", "old.txt"],
    "html exists": ["score", "a.txt", "--html", "old.txt"],
    "resume onto a foreign file": ["score", "a.txt", "--format", "jsonl", "-o", "old.txt", "--resume"],
    "output and html the same": ["score", "a.txt", "-o", "r.html", "--html", "r.html"],
    "output folder missing": ["score", "a.txt", "-o", "missing/out.jsonl"],
    "html folder missing": ["score", "a.txt", "--html", "missing/r.html"],
    "evaluate output is the data": ["evaluate", "--data", "ev.jsonl", "--output", "ev.jsonl"],
    "evaluate output exists": ["evaluate", "--data", "ev.jsonl", "--output", "old.txt"],
    "train output holds files": ["train", "--data", "ev.jsonl", "--no-mlflow", "--output", "model_dir"],
    "train output is the data": ["train", "--data", "ev.jsonl", "--no-mlflow", "--output", "ev.jsonl"],
    "train output folder missing": ["train", "--data", "ev.jsonl", "--no-mlflow", "--output", "missing/m"],
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_outputs_never_overwrite_and_are_refused_before_any_work(files, capsys, monkeypatch, case):
    import detector.features.engine

    def no_lm(*args, **kwargs):
        raise AssertionError("LM work started before the output path was checked")

    monkeypatch.setattr(detector.features.engine, "shared_lm", no_lm)
    before = {p: digest(p) for p in files.rglob("*") if p.is_file()}
    assert main(REFUSED[case]) == 2
    one_error_line(capsys)
    assert {p: digest(p) for p in files.rglob("*") if p.is_file()} == before
    assert not (files / "r.html").exists() and not (files / "missing").exists()


def test_records_with_output_field_names_keep_them_under_input(tmp_path):
    record = {"text": "t", "source": "s", "verdict": "v", "k": 1}
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(record).encode()])
    [item] = iter_jsonl(str(path))
    rec = make_record(item, None)
    assert rec["source"].endswith("in.jsonl:1") and rec["input"] == {"source": "s", "verdict": "v"} and rec["k"] == 1


def test_resume_cuts_a_torn_line_and_refuses_foreign_files(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"source": "a.txt:1", "verdict": "human"}\n{"source": "a.txt:2", "ver')
    done, torn = prepare_resume(out)
    assert done == {"a.txt:1"} and torn and out.read_bytes().endswith(b"}\n")
    from detector.core.errors import OutputError

    for foreign in ("my notes\n", "no newline at all", '{"source": "x"}\nnotes'):
        (tmp_path / "notes.txt").write_text(foreign)
        with pytest.raises(OutputError):
            prepare_resume(tmp_path / "notes.txt")
        assert (tmp_path / "notes.txt").read_text() == foreign


def test_resume_keys_match_however_the_input_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_lines(tmp_path / "in.jsonl", [b'{"text": "x"}'])
    [item] = iter_jsonl("./in.jsonl")
    assert item.key in source_keys("in.jsonl:1")
    assert item.key in source_keys(str(tmp_path / "sub" / ".." / "in.jsonl") + ":1")
