"""Scoring a corpus on Spark (local[2]) gives what `Detector.score` gives, row for row.

Needs pyspark (the `spark` extra) and a Java runtime; `bash tests/run.sh` installs both. Without them the
Spark tests are skipped with the reason; the pure batching test always runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import MINI, ROOT

from detector.io.record import TABLE_COLUMNS

try:
    import pyspark  # noqa: F401

    _MISSING = None
except ImportError:
    _MISSING = "pyspark is not installed (pip install 'mgt-detector[spark]')"
if _MISSING is None and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    _MISSING = "no Java runtime for Spark (apt-get install openjdk-17-jre-headless)"
needs_spark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

N_TEXTS = 16  # enough for several batches on two workers; the LM pass dominates the test's time
ADDED = list(TABLE_COLUMNS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[str, list[dict]]:
    """Fixture texts plus rows that cannot be scored: a null text and a whitespace-only one."""
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()[:N_TEXTS]]
    rows.insert(3, {**rows[0], "id": "bad:null", "text": None})
    rows.append({**rows[1], "id": "bad:blank", "text": "  \n "})
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path), rows


@pytest.fixture(scope="module")
def spark():
    from detector.integrations.spark_session import local_session

    session = local_session("local[2]", progress=False)
    yield session
    session.stop()


@needs_spark
def test_spark_output_equals_detector_score(spark, corpus, default_detector):
    from detector.integrations.spark import score_dataframe
    from detector.integrations.spark_session import read_spec

    path, rows = corpus
    data = read_spec(spark, path).repartition(2)  # two partitions: both workers score
    scored = score_dataframe(data, "text", batch_size=4)
    assert scored.columns == data.columns + ADDED
    out = scored.toPandas().set_index("id")

    assert len(out) == len(rows) and set(out.index) == {r["id"] for r in rows}
    for row in rows:  # every other column passes through unchanged
        got = out.loc[row["id"]]
        for key in ("text", "label", "domain", "generator", "dataset"):
            assert (got[key] if pd.notna(got[key]) else None) == row[key], (row["id"], key)

    assert out.loc["bad:null", "error"] == "text is null"
    assert out.loc["bad:blank", "error"].startswith("text is whitespace only")
    assert out.loc[["bad:null", "bad:blank"], ["p_machine", "verdict", "n_tokens"]].isna().all().all()

    good = [r for r in rows if r["id"].startswith("mini:")]
    expected = default_detector.score([r["text"] for r in good])
    for row, result in zip(good, expected, strict=True):
        got = out.loc[row["id"]]
        assert pd.isna(got["error"])
        assert got["p_machine"] == pytest.approx(result.p_machine, abs=1e-6), row["id"]
        assert got["verdict"] == result.verdict and got["reason"] == result.reason
        assert got["n_tokens"] == result.n_tokens



@needs_spark
def test_a_worker_loads_the_model_once_for_all_its_batches_and_tasks(corpus):
    """What a Python worker runs (`_score_partitions`), twice over five batches, in this process."""
    import detector.integrations.spark

    _, rows = corpus
    frame = pd.DataFrame({"text": [r["text"] for r in rows[:5]]})
    before = detector.integrations.spark.LOADS["count"]
    for _ in range(2):  # two tasks
        out = pd.concat(detector.integrations.spark._score_partitions(iter([frame, frame.iloc[:2]]), text_column="text",
                                                         location=None, stats_cache=None, threads=1, batch_size=2))
        assert len(out) == 7 and out["error"].notna().sum() == 1  # rows[3] is the null text
    assert detector.integrations.spark.LOADS["count"] == before + 1


@needs_spark
def test_local_workers_are_started_by_spark_not_forked_from_its_python_daemon(spark):
    """No native state (OpenVINO's, torch's) can reach a worker through a fork: its parent is the JVM."""
    def parent(frames):
        for frame in frames:
            with open(f"/proc/{os.getppid()}/comm") as comm:
                yield pd.DataFrame({"parent": [comm.read().strip()] * len(frame)})

    parents = spark.range(4, numPartitions=2).mapInPandas(parent, "parent string").toPandas()
    assert set(parents["parent"]) == {"java"}, parents


def _without_the_interpreter_on_path(**extra) -> dict[str, str]:
    """The environment of a cron job or service calling a venv's executables by path: the venv is not
    activated (its folder is not on PATH) and Spark is told nothing about which Python to use."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    return {**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


@needs_spark
def test_score_corpus_by_the_interpreters_path_with_a_path_that_lacks_it(corpus, tmp_path, default_detector):
    _, rows = corpus
    rows = [r for r in rows if r["id"].startswith("mini:")][:3]
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "scored.parquet"
    result = subprocess.run([sys.executable, "-m", "detector_cli", "score-corpus", "--data", str(path),
                             "--output", str(out), "--quiet"], capture_output=True, text=True, timeout=900,
                            env=_without_the_interpreter_on_path(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    written = pd.read_parquet(out).set_index("id")
    expected = default_detector.score([r["text"] for r in rows])
    for row, want in zip(rows, expected, strict=True):
        assert written.loc[row["id"], "p_machine"] == pytest.approx(want.p_machine, abs=1e-6)
        assert written.loc[row["id"], "verdict"] == want.verdict


@needs_spark
def test_a_worker_that_cannot_import_a_module_is_one_line_naming_it_and_the_fix(corpus, tmp_path):
    """A worker interpreter without pyarrow (shadowed here by a package that fails to import)."""
    shadow = tmp_path / "shadow" / "pyarrow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pyarrow'\")\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{shadow.parent}:$PYTHONPATH" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    path, _ = corpus
    result = subprocess.run([sys.executable, "-m", "detector_cli", "score-corpus", "--data", path,
                             "--output", str(tmp_path / "scored.parquet"), "--quiet"],
                            capture_output=True, text=True, timeout=600,
                            env=_without_the_interpreter_on_path(PYSPARK_PYTHON=str(python)), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("detector: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr and "at org.apache" not in result.stderr, \
        result.stderr[-3000:]
    assert f"workers ({python}) cannot import pyarrow" in errors[0] and "pip install" in errors[0], errors
    assert not (tmp_path / "scored.parquet").exists()


@needs_spark
def test_score_corpus_cli(spark, corpus, tmp_path, capsys):
    from detector_cli.main import main

    _, rows = corpus
    rows = rows[:5] + rows[-1:]  # the null and the blank row among a few texts: the CLI path, not the LM again
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = str(path)
    out = tmp_path / "scored.parquet"
    # 1: the two bad rows are reported in `error`; the job itself succeeds.
    assert main(["score-corpus", "--data", path, "--output", str(out), "--quiet"]) == 1
    assert "2 with an error" in capsys.readouterr().err
    written = pd.read_parquet(out)
    assert len(written) == len(rows) and list(written.columns)[-len(ADDED):] == ADDED
    assert written["error"].notna().sum() == 2 and written["verdict"].notna().sum() == len(rows) - 2

    # Never overwritten: exit 2 with one line, the earlier output intact.
    assert main(["score-corpus", "--data", path, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and err.count("\n") == 1
    assert len(pd.read_parquet(out)) == len(rows)

    assert main(["score-corpus", "--data", path, "--text-column", "body", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no column 'body'" in err and err.count("\n") == 1

    assert main(["score-corpus", "--data", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "y")]) == 2
    capsys.readouterr()
    # Spark's own failure (here: a file system it does not know) is one line too, not a Java stack trace.
    assert main(["score-corpus", "--data", "nosuch://bucket/corpus.jsonl", "--output", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("detector: error: score-corpus failed:") and err.count("\n") == 1, err
