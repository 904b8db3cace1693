"""Scoring a corpus on Spark (local[2]) gives what `Detector.score` gives, row for row.

Needs pyspark (the `spark` extra) and a Java runtime; CI installs both (.ci/run). Without them the
Spark tests are skipped with the reason; the pure batching test always runs.
"""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
from conftest import MINI

from detector.record import TABLE_COLUMNS

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
    from detector.spark import local_session

    session = local_session("local[2]", progress=False)
    yield session
    session.stop()


@needs_spark
def test_spark_output_equals_detector_score(spark, corpus, default_detector):
    from detector.spark import read_spec, score_dataframe

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

    # Batches of 4 texts in 2 partitions: a load per batch would show as several loads in a worker.
    def probe(frames):  # runs in the same kind of (reused) Arrow Python worker as the scoring
        import detector.spark

        for frame in frames:
            yield pd.DataFrame({"pid": [os.getpid()] * len(frame), "loads": detector.spark.LOADS["count"]})

    loads = spark.range(8, numPartitions=2).mapInPandas(probe, "pid long, loads long").toPandas()
    assert loads["loads"].max() == 1, loads.drop_duplicates().to_dict("records")


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
