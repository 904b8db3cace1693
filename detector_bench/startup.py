"""Start-up latency: what a person scoring one file waits for, each run a new `detector` process.

`detector score FILE` on a new ~300-token text (never scored before, so its LM pass is part of the wait)
with warm caches (the LM, its OpenVINO graph, the compiled blob and the runtime choice made; the stats
cache a temporary file, so nothing is written to the user's), the median of `runs`; the first-ever run
in an empty cache (a temporary DETECTOR_CACHE_DIR: dequantising, the graph, the runtime choice and
compiling included); `detector --help`; and `python -c pass`, the floor any command pays on this machine
as it is loaded (a busy machine slows all rows alike). Wall and CPU seconds (user + system) of each.

`detector bench --speed` writes this table into SPEED.md and results/startup.csv; alone (the table only,
e.g. to compare two commits on the same machine): `python -m detector_bench.startup [--runs 5] [--no-first-ever]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from detector.core.settings import CACHE_DIR_ENV, STATS_CACHE_ENV
from detector_bench import ROOT
from detector_bench.markdown import table as markdown_table

FIXTURE = ROOT / "tests" / "fixtures" / "mini.jsonl"  # our own texts, pieced together into new ones
TARGET_CHARS = 1250  # ~300 tokens of English prose for the default LM


def new_text(rng: random.Random) -> str:
    """A text no cache has seen: fixture paragraphs in a random order behind a random number."""
    paragraphs = [json.loads(line)["text"] for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line]
    parts, n = [], 0
    while n < TARGET_CHARS:
        parts.append(rng.choice(paragraphs))
        n += len(parts[-1])
    return f"Note {rng.randrange(10**9)}. " + " ".join(parts)[:TARGET_CHARS]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process; a failure is an error, not a fast row."""
    cpu, started = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, children_cpu_seconds() - cpu


def latency_table(runs: int = 5, first_ever: bool = True, seed: int = 0) -> pd.DataFrame:
    """One row per start-up case: runs, median wall and CPU seconds."""
    rng = random.Random(seed)
    detector = [sys.executable, "-m", "detector_cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        folder = Path(tmp)
        warm_env = {**env, STATS_CACHE_ENV: str(folder / "stats.sqlite")}

        def score(run_env: dict[str, str]) -> tuple[float, float]:
            path = folder / f"text-{rng.randrange(10**9)}.txt"
            path.write_text(new_text(rng), encoding="utf-8")
            return timed_run([*detector, "score", "-q", str(path)], run_env)

        score(warm_env)  # makes the caches if this machine has none yet (then it is the first-ever run)
        cases = {
            "python -c pass (floor)": lambda: timed_run([sys.executable, "-c", "pass"], env),
            "detector --help": lambda: timed_run([*detector, "--help"], env),
            "detector score FILE (new 300-token text, warm caches)": lambda: score(warm_env),
        }
        for name, case in cases.items():
            measured = [case() for _ in range(runs)]
            rows.append({"case": name, "runs": runs, "wall_s": statistics.median(w for w, _ in measured),
                         "cpu_s": statistics.median(c for _, c in measured)})
        if first_ever:
            empty = {**env, CACHE_DIR_ENV: str(folder / "empty-cache")}
            wall, cpu = score(empty)
            rows.append({"case": "detector score FILE, first-ever run (empty cache)", "runs": 1, "wall_s": wall,
                         "cpu_s": cpu})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (the median is shown)")
    parser.add_argument("--no-first-ever", dest="first_ever", action="store_false",
                        help="leave out the first-ever run in an empty cache (a minute)")
    args = parser.parse_args(argv)
    print(markdown_table(latency_table(args.runs, args.first_ever), digits=2))


if __name__ == "__main__":
    main()
