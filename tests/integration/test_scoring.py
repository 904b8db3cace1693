"""Scoring end to end with the shipped default model and the real LM, through the library and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import HUMAN_TEXT, HUMAN_TEXT_2, ROOT, SEED

from detector.core.interrupts import POINTS
from detector.core.settings import INTERRUPT_AT_ENV, STATS_CACHE_ENV
from detector_cli.main import main


def run_cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector_cli", *args], capture_output=True, text=True,
                          input=stdin, cwd=ROOT, timeout=600)


def test_seed_is_machine(default_detector):
    [result] = default_detector.score([SEED.read_text(encoding="utf-8")])
    assert result.verdict == "machine", result.reason
    assert result.p_machine > default_detector.model.thresholds.for_length(result.n_tokens)[0]
    assert result.n_tokens > 500


def test_human_paragraph_is_not_called_machine(default_detector):
    [result] = default_detector.score([HUMAN_TEXT])
    assert result.verdict != "machine", result.reason


def test_inference_contract(default_detector):
    scores = default_detector.inference([SEED.read_text(encoding="utf-8"), HUMAN_TEXT])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert scores[0] > scores[1]


def test_short_and_foreign_texts_are_uncertain(default_detector):
    short, french = default_detector.score([
        "Thanks, see you soon!",
        "Le petit chat dort sur le canapé pendant que la pluie tombe doucement sur les toits de la ville "
        "endormie, et personne ne semble pressé de sortir ce matin.",
    ])
    assert short.verdict == "uncertain" and "too short" in short.reason
    assert french.verdict == "uncertain" and "not English" in french.reason


def test_homoglyph_attack_is_undone_and_reported(default_detector):
    text = SEED.read_text(encoding="utf-8")
    attacked = text.replace("e", "\u0435").replace(" the ", " the\u200b ")
    plain, evasive = default_detector.score([text, attacked])
    assert evasive.p_machine == pytest.approx(plain.p_machine, abs=1e-6)
    assert evasive.altered["homoglyphs"] > 100
    assert "altered" in evasive.reason


def test_cli_scores_the_seeds_folder_as_machine(capsys):
    assert main(["score", "--format", "json", "--quiet", str(ROOT / "seeds")]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["verdict"] == "machine"
    assert record["source"].endswith("000_8fefe67b85776a8f.txt")


def test_cli_batch_with_bad_items(tmp_path, capsys):
    (tmp_path / "seed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "human.txt").write_text(HUMAN_TEXT, encoding="utf-8")
    (tmp_path / "broken.bin").write_bytes(b"\x00\xff\x00")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    out = tmp_path.parent / f"{tmp_path.name}-out.jsonl"
    code = main(["score", str(tmp_path), str(tmp_path / "missing.txt"), "--format", "jsonl", "-o", str(out), "-q"])
    assert code == 1
    records = {r["source"].split("/")[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["seed.txt"]["verdict"] == "machine"
    assert records["human.txt"]["verdict"] in ("human", "uncertain")
    assert records["broken.bin"]["error"] == "binary file, skipped"
    assert records["empty.txt"]["error"] == "empty file"
    assert records["missing.txt"]["error"] == "no such file or folder"
    err = capsys.readouterr().err
    assert "broken.bin: binary file, skipped" in err and "Traceback" not in err


def test_cli_jsonl_passes_fields_through_and_resumes(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"text": t, "doc": i}) for i, t in
                             enumerate([HUMAN_TEXT, SEED.read_text(encoding="utf-8")])) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["score", "--jsonl", str(src), "--format", "jsonl", "-o", str(out), "-q"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["doc"] for r in records] == [0, 1]
    assert records[1]["verdict"] == "machine"
    # a resumed run scores nothing again and keeps what was there
    before = out.read_text()
    assert main(["score", "--jsonl", str(src), "--format", "jsonl", "-o", str(out), "--resume", "-q"]) == 0
    assert out.read_text() == before


def test_cli_never_overwrites_an_input(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(HUMAN_TEXT, encoding="utf-8")
    assert main(["score", str(src), "-o", str(src)]) == 2
    assert src.read_text(encoding="utf-8") == HUMAN_TEXT


def test_python_m_detector_stdin_and_usage_errors():
    done = run_cli("score", "-", "--format", "jsonl", "-q", stdin=SEED.read_text(encoding="utf-8"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "machine"
    usage = run_cli("score")
    assert usage.returncode == 2 and "nothing to score" in usage.stderr and "Traceback" not in usage.stderr
    bad_model = run_cli("score", "--model", "/nonexistent/model", str(SEED))
    assert bad_model.returncode == 2 and bad_model.stderr.count("\n") == 1


def test_explain_gives_sentences_and_features(default_detector):
    [result] = default_detector.score([SEED.read_text(encoding="utf-8")], explain=True)
    sentences = result.explanation["sentences"]
    assert len(sentences) > 10 and sum(s["p_machine"] is not None for s in sentences) > 10
    assert [s["start"] for s in sentences] == sorted(s["start"] for s in sentences)
    features = result.explanation["top_features"]
    assert len(features) == 5 and all("push" in f and f["description"] for f in features)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_at_each_moment_exits_130_in_one_line_keeping_whole_records(point, tmp_path, mini_table):
    """SIGINT at start-up, while the LM loads, after the first record, while a record is written and while
    the process shuts down (detector.core.interrupts makes it land there): never a death by signal or a
    traceback, one `interrupted` line, only whole JSON lines written, and `--resume` finishes the rest."""
    texts = mini_table["text"].tolist()[:5]
    src = tmp_path / "texts.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "detector_cli", "score", "--data", str(src), "--format", "jsonl", "-o", str(out),
            "--batch-size", "1", "-q"]
    # An empty stats cache: the texts need the LM, so it is loaded in this run.
    env = {**os.environ, INTERRUPT_AT_ENV: point, STATS_CACHE_ENV: str(tmp_path / "stats.sqlite")}
    stopped = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert sum("interrupted" in line for line in stopped.stderr.splitlines()) == 1, stopped.stderr
    kept = out.read_text(encoding="utf-8").splitlines(keepends=True) if out.exists() else []
    assert all(line.endswith("\n") and json.loads(line)["source"] for line in kept)
    if point == "shutdown":  # the command had finished: every record is there
        assert len(kept) == len(texts)
        return
    assert len(kept) == {"first-record": 1}.get(point, 0)
    env.pop(INTERRUPT_AT_ENV)
    resumed = subprocess.run([*args, "--resume"] if out.exists() else args, capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    finished = out.read_text(encoding="utf-8")
    assert finished.startswith("".join(kept))
    sources = [json.loads(line)["source"] for line in finished.splitlines()]
    assert len(sources) == len(set(sources)) == len(texts)


def test_a_single_string_is_one_text(default_detector):
    [result] = default_detector.score(HUMAN_TEXT_2)
    assert result.n_tokens > 50


def test_bare_command_prints_help_and_version(capsys):
    assert main([]) == 0 and "score" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("detector ")
