"""Issue 11: no code runs from a model file, no user file is overwritten, no traceback on bad input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import sys
import zipfile
from pathlib import Path

import pytest

from detector.core.errors import ModelError, printable
from detector.io import jsonl, report
from detector.io.decoding import MAX_BYTES
from detector.io.jsonl import iter_jsonl
from detector.io.outputs import prepare_resume
from detector.io.record import record as make_record
from detector.io.sources import iter_paths, read_stdin, source_keys
from detector.lm import stats_cache as cache_module
from detector.model.detector_model import DEFAULT_MODEL_DIR, DetectorModel
from detector.model.skops_file import SAVED_NAMES, TRUSTED_TYPES, current_names, load_pipeline
from detector_cli.main import main
from tests.conftest import HUMAN_TEXT, HUMAN_TEXT_2, MINI, SEED


def craft_malicious_model(source: Path, target: Path, marker: Path, kind: str = "exec") -> Path:
    """A copy of a model folder whose skops schema builds builtins.exec(code) or os.system(cmd).

    The code only creates `marker`, so a test can see whether anything ran. skops' audit names the
    type (builtins.exec / os.system); an allow-list by prefix ("builtins.") would let it through.
    """
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "model_card.json", target / "model_card.json")
    code = {"exec": f"open({str(marker)!r}, 'w').write('ran')", "system": f"touch '{marker}'"}[kind]
    evil = {"__class__": kind, "__module__": "builtins" if kind == "exec" else "os",
            "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                        "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                     "content": json.dumps(code), "is_json": True, "__id__": 1}]}}
    with zipfile.ZipFile(source / "model.skops") as zin:
        schema = json.loads(zin.read("schema.json"))
        extractor = schema["content"]["content"]["steps"]["content"][0]["content"][1]
        extractor["content"]["content"]["device"] = evil
        with zipfile.ZipFile(target / "model.skops", "w") as zout:
            for name in zin.namelist():
                zout.writestr(name, json.dumps(schema) if name == "schema.json" else zin.read(name))
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ----------------------------------------------------------------------------------------- model files


def test_allow_list_is_exact_and_covers_the_shipped_model():
    import skops.io as sio

    assert not any(t.startswith("builtins.") or t.endswith(".") for t in TRUSTED_TYPES)
    shipped = current_names((DEFAULT_MODEL_DIR / "model.skops").read_bytes())
    assert set(sio.get_untrusted_types(data=shipped)) <= TRUSTED_TYPES


def test_saved_module_paths_are_mapped_whole_and_only_those_in_the_alias_table(tmp_path):
    import skops.io as sio

    # The shipped file was saved before the subpackages: it names the extractor by its old path.
    original = (DEFAULT_MODEL_DIR / "model.skops").read_bytes()
    assert "detector.extractor.FeatureExtractor" in sio.get_untrusted_types(data=original)
    assert "detector.model.extractor.FeatureExtractor" in sio.get_untrusted_types(data=current_names(original))
    assert set(SAVED_NAMES.values()) == {"detector.model.extractor"}
    # Every old path of the table maps; a path that only starts like one, or another module, does not.
    for old, module in [*((old, SAVED_NAMES[old]) for old in SAVED_NAMES), ("detector.extractor_x", None),
                        ("detector.lm", None)]:
        with zipfile.ZipFile(io.BytesIO(original)) as archive:
            text = archive.read("schema.json").decode().replace('"detector.extractor"', json.dumps(old))
            files = {info.filename: archive.read(info) for info in archive.infolist()}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as out:
            for name, body in files.items():
                out.writestr(name, text if name == "schema.json" else body)
        named = sio.get_untrusted_types(data=current_names(buffer.getvalue()))
        expected = f"{module or old}.FeatureExtractor"
        assert expected in named, (old, named)
        model = tmp_path / old
        shutil.copytree(DEFAULT_MODEL_DIR, model)
        (model / "model.skops").write_bytes(buffer.getvalue())
        if module is None:  # not in the table: refused by the allow-list, in one line
            with pytest.raises(ModelError, match=f"outside the allow-list: {old}.FeatureExtractor"):
                load_pipeline(model / "model.skops")
        else:
            assert load_pipeline(model / "model.skops").named_steps["features"].lm == "smollm2-135m-instruct"


def test_models_trained_here_load_under_the_allow_list(tiny_model_dir):
    import skops.io as sio

    assert set(sio.get_untrusted_types(file=tiny_model_dir / "model.skops")) <= TRUSTED_TYPES
    assert DetectorModel.load(tiny_model_dir).thresholds.machine > 0


@pytest.mark.parametrize("kind", ["exec", "system"])
@pytest.mark.parametrize("as_uri", [False, True])
def test_a_model_file_that_would_run_code_is_refused(tmp_path, capsys, kind, as_uri):
    marker = tmp_path / "ran"
    model = craft_malicious_model(DEFAULT_MODEL_DIR, tmp_path / "evil", marker, kind)
    # the crafted file does reach the code path: without the allow-list skops would run it
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=model / "model.skops")
    assert {"builtins.exec", "os.system"} & set(untrusted)
    target = model.as_uri() if as_uri else str(model)
    assert main(["score", str(SEED), "--model", target]) == 2
    line = one_error_line(capsys)
    assert "allow-list" in line and ("builtins.exec" in line or "os.system" in line)
    assert not marker.exists()


def test_the_crafted_file_really_runs_code_when_trusted(tmp_path):
    """Proof that the refusal above matters: trusting the named types executes the payload."""
    import skops.io as sio

    marker = tmp_path / "ran"
    model = craft_malicious_model(DEFAULT_MODEL_DIR, tmp_path / "evil", marker, "exec")
    data = current_names((model / "model.skops").read_bytes())  # the extractor under today's path
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("damage", ["card_json", "card_not_object", "card_no_thresholds", "random_skops",
                                    "empty_skops"])
def test_a_broken_model_folder_is_a_usage_error(tmp_path, capsys, damage):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    card = json.loads((folder / "model_card.json").read_text())
    if damage == "card_json":
        (folder / "model_card.json").write_text('{"feature_version": 1, "thr')
    elif damage == "card_not_object":
        (folder / "model_card.json").write_text("[1, 2]")
    elif damage == "card_no_thresholds":
        del card["thresholds"]
        (folder / "model_card.json").write_text(json.dumps(card))
    elif damage == "random_skops":
        (folder / "model.skops").write_bytes(os.urandom(2048))
    else:
        (folder / "model.skops").write_bytes(b"")
    assert main(["score", str(SEED), "--model", str(folder)]) == 2
    one_error_line(capsys)
    with pytest.raises(ModelError):
        DetectorModel.load(folder)


def test_an_unknown_registry_model_leaves_no_mlflow_db(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["score", str(SEED), "--model", "models:/nope/1"]) == 2
    assert "tracking store" in one_error_line(capsys)
    assert not (tmp_path / "mlflow.db").exists()


# ----------------------------------------------------------------------------------------- output paths


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text(HUMAN_TEXT, encoding="utf-8")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": HUMAN_TEXT}) + "\n", encoding="utf-8")
    (tmp_path / "ev.jsonl").write_bytes(MINI.read_bytes())
    (tmp_path / "old.txt").write_text("precious", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.txt").write_text(HUMAN_TEXT_2, encoding="utf-8")
    (tmp_path / "model_dir").mkdir()
    (tmp_path / "model_dir" / "keep.txt").write_text("mine", encoding="utf-8")
    os.link(tmp_path / "a.txt", tmp_path / "hard.txt")
    os.link(tmp_path / "in.jsonl", tmp_path / "hard.jsonl")
    (tmp_path / "sym.txt").symlink_to(tmp_path / "a.txt")
    return tmp_path


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


# ----------------------------------------------------------------------------------------- reading inputs


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


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


def test_records_with_output_field_names_keep_them_under_input(tmp_path):
    record = {"text": "t", "source": "s", "verdict": "v", "k": 1}
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(record).encode()])
    [item] = iter_jsonl(str(path))
    rec = make_record(item, None)
    assert rec["source"].endswith("in.jsonl:1") and rec["input"] == {"source": "s", "verdict": "v"} and rec["k"] == 1


def test_terminal_output_escapes_control_characters():
    assert printable("a\x1b[31mb\x9b\u202ec") == "a\\x1b[31mb\\x9b\\u202ec"
    out = io.StringIO()
    report.write_table([{"source": "x\x1b[2J.txt", "error": "bad \x1b]0;title\x07"}], out)
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\x9b" not in report._dumps({"s": "\x9b"}) and json.loads(report._dumps({"s": "\x9b"}))["s"] == "\x9b"


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


# ----------------------------------------------------------------------------------------- usage errors


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


# ----------------------------------------------------------------------------------------- stats cache


@pytest.fixture
def fresh_cache_state(monkeypatch):
    monkeypatch.setattr(cache_module, "_unusable", {})
    monkeypatch.setattr(cache_module, "TIMEOUT_S", 0.2)


def _stats():
    from detector.lm.token_stats import TokenStats

    return TokenStats.empty()


def test_corrupted_cache_warns_once_and_is_skipped(tmp_path, fresh_cache_state, caplog):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"not a database at all" * 200)
    for _ in range(3):
        c = cache_module.StatsCache(path)
        assert c.get_many("lm", ["x"]) == {}
        c.put_many("lm", {"x": _stats()})
        c.close()
    assert sum("stats cache" in r.message for r in caplog.records) == 1
    assert path.read_bytes() == b"not a database at all" * 200


def test_locked_cache_loses_no_work(tmp_path, fresh_cache_state, caplog):
    path = tmp_path / "c.sqlite"
    c = cache_module.StatsCache(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        c.put_many("lm", {"x": _stats()})  # must return, not raise, after a short wait
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not c.usable
    assert sum("stats cache" in r.message for r in caplog.records) == 1


def test_unopenable_cache_is_skipped(tmp_path, fresh_cache_state):
    (tmp_path / "dir.sqlite").mkdir()
    c = cache_module.StatsCache(tmp_path / "dir.sqlite")
    assert not c.usable and c.count() == 0 and c.get_many("lm", ["x"]) == {}


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


# ----------------------------------------------------------------------------------------- end to end


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
