"""The load test's own logic, without a server or an LM: which runs, how runs measured in separate
invocations merge into one report, and whose CPU counts as "others'"."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from detector_bench.throughput import OtherLoad, process_seconds
from experiments import serve_load
from experiments.serve_report import report, rss_flat


def test_runs_are_client_counts_pathological_and_soak_each_once():
    assert serve_load.run_ids("16, 4,1,pathological,soak") == ["16", "4", "1", "pathological", "soak"]
    for bad in ("0", "-4", "16,16", "slow", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            serve_load.run_ids(bad)


def test_fewer_requests_send_the_same_first_texts():
    few, all_ = serve_load.texts_mix(10), serve_load.texts_mix(serve_load.POOL)
    assert few == all_[:10] and len(set(all_)) == len(all_)


def row(run: str, **figures) -> dict:
    return {"id": run, "run": f"{run} run", "clients": run, "requests": 3, "200": 3, "errors": 0, "lost": 0,
            "unsent": 0, "differing": 0, "p50_s": 0.5, "p95_s": 0.9, "p99_s": 1.0, "max_s": 1.0,
            "requests_per_s": 2.0, "others_cpu": 0.01, **figures}


def results(runs: list[str], began: str, rss: float = 100.0, **figures) -> dict:
    out = {"runs": runs, "load": [row(run, **figures) for run in runs if run != "pathological"],
           "rss": [{"run": run, "seconds": s, "rss_mib": rss} for run in runs for s in (0.0, 5.0)],
           "invocations": [{"command": f"python -m experiments.serve_load --runs {','.join(runs)}", "began": began,
                            "runs": runs, "note": "", "server_args": "", "rss_every": 5.0, "warm": 32,
                            "omp_threads": "unset", "reference_written": None}]}
    if "soak" in runs:
        out["soak"] = {"asked_s": 600, "seconds": 600, "rate": 0.5, "finish_by": None}
    if "pathological" in runs:
        out["pathological"] = {"rows": [{"text": "letters", "status": 200, "served_s": 1.2, "queued_behind": 3,
                                         "their_p95_s": 2.0, "characters": 100_000, "direct_s": 0.9}],
                               "summary": {"requests": 40, "errors": 0, "lost": 0, "differing": 0},
                               "others_cpu": 0.0}
    return out


def test_a_later_invocation_replaces_only_the_runs_it_ran_again():
    first = results(["16", "4", "1"], "09:00", rss=100.0)
    second = results(["1", "soak"], "09:20", rss=200.0, p50_s=0.7)
    merged = serve_load.merge(first, second)
    assert merged["runs"] == ["16", "4", "1", "soak"]
    assert [(r["id"], r["p50_s"]) for r in merged["load"]] == [("16", 0.5), ("4", 0.5), ("1", 0.7), ("soak", 0.7)]
    assert {(s["run"], s["rss_mib"]) for s in merged["rss"]} == {("16", 100), ("4", 100), ("1", 200), ("soak", 200)}
    assert [(inv["began"], inv["runs"]) for inv in merged["invocations"]] == [("09:00", ["16", "4"]),
                                                                              ("09:20", ["1", "soak"])]
    assert merged["soak"] == second["soak"]
    third = serve_load.merge(merged, results(["16", "4"], "09:40"))
    assert [inv["began"] for inv in third["invocations"]] == ["09:20", "09:40"]  # nothing of 09:00 is left
    assert serve_load.merge(None, second) is second


def test_the_report_shows_every_run_with_its_command():
    state = serve_load.merge(results(["16", "4", "1"], "09:00"), results(["pathological", "soak"], "09:20"))
    text = report(state, 300, 100_000)
    assert "--runs 16,4,1   # 09:00; reported: 16, 4, 1" in text
    assert "--runs pathological,soak   # 09:20; reported: pathological, soak" in text
    for name in ("16 run", "4 run", "1 run", "soak run", "letters"):
        assert name in text
    assert "within ±10% of its start: **yes**" in text and "Not run." not in text
    assert "Not run." in report(results(["16"], "09:00"), 300, 100_000)


def test_soak_memory_is_flat_only_within_ten_percent_of_its_start():
    import pandas as pd

    def samples(values: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"run": ["16"] + ["soak"] * len(values), "rss_mib": [5000.0, *values]})

    assert rss_flat(samples([1000, 1050, 1099]))[3]  # the load run's 5000 MiB is not the soak
    assert not rss_flat(samples([1000, 1050, 1101]))[3]
    assert not rss_flat(samples([1000, 899]))[3]


def test_the_failures_count_every_error_lost_unsent_and_differing_answer():
    assert serve_load.failures(results(["16", "pathological"], "09:00")) == 0
    bad = results(["16", "pathological"], "09:00", lost=1, differing=2)
    bad["pathological"]["summary"]["errors"] = 1
    assert serve_load.failures(bad) == 4


def test_the_reference_file_is_shown_as_file():
    line = serve_load.command_line(["--runs", "16", "--reference", "/tmp/x y.json", "--note", "a b"])
    assert line == "python -m experiments.serve_load --runs 16 --reference FILE --note 'a b'"


def test_a_server_child_cpu_is_not_counted_as_another_process(monkeypatch):
    import detector_bench.throughput as throughput

    clock = {"wall": 0.0, "busy": 0.0, "own": 0.0, "server": 0.0}
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(throughput, "busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(throughput, "own_seconds", lambda: clock["own"])
    monkeypatch.setattr(throughput, "process_seconds", lambda pid: clock["server"] if pid == 42 else 0.0)
    monkeypatch.setattr(throughput.os, "cpu_count", lambda: 2)
    with OtherLoad((42,)) as ours, OtherLoad() as plain:
        clock.update(wall=10.0, busy=16.0, own=2.0, server=12.0)  # 2 s of someone else's CPU in 10 s
    assert ours.share == pytest.approx(2 / 20) and plain.share == pytest.approx(14 / 20)


def test_process_seconds_is_a_live_process_cpu_time():
    burn = "import time\nwhile time.process_time() < 0.3: pass\nprint(flush=True)\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # it has burnt its 0.3 CPU s
        assert process_seconds(child.pid) >= 0.25
    finally:
        child.kill()
        child.wait()
    assert process_seconds(child.pid) == 0.0  # gone
    assert process_seconds(os.getpid()) > 0


def test_the_spark_report_gives_both_commands_tokens_per_core():
    from experiments.spark_bench import write_report

    args = argparse.Namespace(n=2, min_tokens=100, max_tokens=300, seed=0, master="local[2]",
                              data=__import__("pathlib").Path("texts.jsonl"))
    one, spark = {"wall": 110.0, "other": 0.01}, {"wall": 130.0, "other": 0.02}
    startup_one, startup_spark = {"wall": 10.0}, {"wall": 30.0}
    check = {"rows": (2, 2), "max_dp": 0.0, "verdicts_equal": 2, "tokens_equal": 2, "errors": 0}
    text = write_report(args, 2, 2, 50_000, one, spark, startup_one, startup_spark, [(0, 1, 25_000, 100.0)],
                        [7.0], check)
    # Each command: 50,000 tokens in 100 s after its start-up, on 2 cores; a worker: 25,000 in 100 s.
    assert "| 500 | 250 | 1% |" in text and "| 500 | 250 | 2% |" in text and "250 tokens/s** of scoring" in text
    assert "**250 tokens/s per core for `detector score`**" in text and "Output check: equal" in text


@pytest.mark.slow
def test_the_spark_bench_draws_texts_of_the_asked_token_counts():
    # the real default LM's tokenizer counts the tokens (it once called a transformers-only interface)
    from conftest import MINI

    from detector.core.settings import DEFAULT_LM
    from detector.features.engine import shared_lm
    from experiments.spark_bench import sample

    table = sample(MINI, 3, 20, 400, seed=0)
    lm = shared_lm(DEFAULT_LM, "cpu", "float32", 1024)
    assert len(table) == 3 and all(20 <= len(lm.tokenize(text)[0]) <= 400 for text in table["text"])
