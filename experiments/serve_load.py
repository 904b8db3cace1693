"""Load and soak test of `detector serve` on loopback: latency at 1, 4 and 16 concurrent clients,
pathological texts among ordinary requests, and a soak at a steady rate with the server's memory sampled.

It starts `python -m detector_cli serve` on a free loopback port (one process for the invocation's runs, as
a user runs it), sends each request once (bounded in count and in time; the soak stops by itself), stops the
server, then compares every answer with `Detector.score` on the same text (verdict, reason and tokens
exactly, p(machine) within 1e-12), computed in this process or read from `--reference FILE`. The texts are
our own: the fixture set tests/fixtures/mini.jsonl (alone, in pairs, or 8-12 joined into long texts), the
seed, and four pathological texts of 100,000 characters made here. It writes experiments/SERVE_LOAD.md and
experiments/results/serve_load*.{json,csv}. The runs can be split over invocations (`--runs`, `--merge`),
so that each fits a slot on a shared machine:

    python -m experiments.serve_load --reference-only --reference /tmp/ref.json   # the direct answers, once
    python -m experiments.serve_load --runs 16,4 --reference /tmp/ref.json
    python -m experiments.serve_load --runs 1,pathological --reference /tmp/ref.json --merge
    python -m experiments.serve_load --runs soak --soak-rate 0.5 --reference /tmp/ref.json --merge
    OMP_NUM_THREADS=1 python -m experiments.serve_load --quick    # a few requests, a 20 s soak: to try it
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import string
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from detector_bench.markdown import table
from detector_bench.throughput import OtherLoad
from experiments import serve_client as client
from experiments.serve_report import report

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "fixtures" / "mini.jsonl"
SEED = ROOT / "seeds" / "000_8fefe67b85776a8f.txt"
REPORT = ROOT / "experiments" / "SERVE_LOAD.md"
RESULTS = ROOT / "experiments" / "results"
STATE = RESULTS / "serve_load.json"  # every run's figures, merged across invocations (--merge)
POOL = 300  # texts_mix draws this many at least, so that fewer requests send the same first texts
PATHOLOGICAL_CHARS = 100_000  # the server's default --max-chars: the longest text a request may carry


def texts_mix(n: int, long_share: float = 0.3, seed: int = 0) -> list[str]:
    """n distinct texts: short (one or two fixture texts) or long (8-12 joined, or the seed once); up to
    `POOL`, the first n of the same list whatever n."""
    pool = [json.loads(line)["text"] for line in MINI.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    out, seen = [SEED.read_text(encoding="utf-8")], {SEED.read_text(encoding="utf-8")}
    while len(out) < max(n, POOL):
        k = rng.randint(8, 12) if rng.random() < long_share else rng.choice((1, 2))
        text = "\n\n".join(rng.sample(pool, k))
        if text.strip() and text not in seen:
            seen.add(text)
            out.append(text)
    rng.shuffle(out)
    return out[:n]


def pathological_texts(n: int = PATHOLOGICAL_CHARS, seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    letters = "".join(rng.choice(string.ascii_lowercase) for _ in range(n))
    words = " ".join(letters[i : i + rng.randint(2, 9)] for i in range(0, n, 6))[:n]
    combining = "".join(rng.choice(string.ascii_lowercase) + "".join(chr(0x300 + rng.randrange(0x70)) for _ in range(9))
                        for _ in range(n // 10))
    return {"letters, no space or sentence end": letters, "50,000 one-letter sentences (a!a!...)": "a!" * (n // 2),
            "one line of words, no sentence end": words, "deep combining marks (9 per letter)": combining}


def summary(answers: list[client.Answer], direct: dict[str, dict], sent: int) -> dict:
    """Errors, lost and differing answers, and latency percentiles, of one phase."""
    ok = [a for a in answers if a.status == 200]
    latency = np.array([a.seconds for a in ok]) if ok else np.array([np.nan])
    differing = sum(client.differs(a.body, direct[a.text]) for a in ok) if direct else 0
    wall = max((a.done for a in answers), default=0) - min((a.sent for a in answers), default=0)
    unanswered = sum(a.status == 0 for a in answers)  # no HTTP answer at all (reset, client timeout)
    return {"requests": sent, "200": len(ok), "errors": len(answers) - len(ok) - unanswered, "lost": unanswered,
            "unsent": sent - len(answers),
            "differing": differing, **{f"p{q}_s": float(np.percentile(latency, q)) for q in (50, 95, 99)},
            "max_s": float(latency.max()), "requests_per_s": len(ok) / wall if wall else float("nan")}


def pathological_phase(url: str, ordinary: list[str], odd: dict[str, str], timeout: float,
                       gap_s: float) -> tuple[list[client.Answer], list[dict]]:
    """4 clients send ordinary requests while each pathological text is sent once, `gap_s` apart; the
    ordinary requests sent while one was in the server are those queued behind it."""
    stop = threading.Event()
    background: list[client.Answer] = []
    threads = [threading.Thread(target=client.closed_loop_until, args=(url, ordinary[k::4], stop, background,
                                                                       timeout)) for k in range(4)]
    for t in threads:
        t.start()
    rows, odd_answers = [], []
    for name, text in odd.items():
        time.sleep(gap_s)
        answer = client.post(url, text, timeout)
        odd_answers.append(answer)
        rows.append({"text": name, "status": answer.status, "served_s": answer.seconds,
                     "window": (answer.sent, answer.done)})
    time.sleep(gap_s)
    stop.set()
    for t in threads:
        t.join()
    for row in rows:
        lo, hi = row.pop("window")
        behind = [a.seconds for a in background if lo <= a.sent <= hi and a.status == 200]
        row["queued_behind"] = len(behind)
        row["their_p95_s"] = float(np.percentile(behind, 95)) if behind else float("nan")
    return background + odd_answers, rows


def direct_scores(texts: list[str], timed: list[str]) -> tuple[dict[str, dict], dict[str, float]]:
    """`Detector.score` of each distinct text in this process (stats cache off, as in the server, batches of
    16 as the CLI), as JSON-ready records, and the time of each of `timed` scored alone."""
    from detector import Detector

    detector = Detector()
    detector.model.set_lm(cache=None)
    detector.score(["Warm-up: load the language model before timing."])
    unique = list(dict.fromkeys(texts))
    records = {}
    for start in range(0, len(unique), 16):
        batch = unique[start : start + 16]
        records.update(zip(batch, (r.to_dict() for r in detector.score(batch)), strict=True))
    seconds = {}
    for text in timed:
        began = time.perf_counter()
        detector.score([text])
        seconds[text] = time.perf_counter() - began
    return records, seconds


def reference(path: Path | None, texts: list[str], timed: list[str]) -> tuple[dict[str, dict], dict[str, float]]:
    """`direct_scores`, read from `path` (keyed by the texts' SHA-256) when it holds every text, else computed
    (and written there): the direct answers can be computed once, before the served runs, and reused."""
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    if path is not None and path.exists():
        stored = json.loads(path.read_text())
        if all(key(t) in stored["records"] for t in texts):
            return ({t: stored["records"][key(t)] for t in texts},
                    {t: stored["seconds"][key(t)] for t in timed if key(t) in stored["seconds"]})
    records, seconds = direct_scores(texts, timed)
    if path is not None:
        path.write_text(json.dumps({"written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "records": {key(t): r for t, r in records.items()},
                                    "seconds": {key(t): v for t, v in seconds.items()}}))
    return records, seconds


def unbounded_seconds(texts: list[str]) -> list[float]:
    """Each text's time in `Detector.score` with the read bound lifted: what the bound saves."""
    import detector.text.normalize as normalize
    from detector import Detector

    detector = Detector()
    detector.model.set_lm(cache=None)
    bound, normalize.MAX_READ_CHARS = normalize.MAX_READ_CHARS, 10**9
    try:
        out = []
        for text in texts:
            began = time.perf_counter()
            detector.score([text])
            out.append(time.perf_counter() - began)
        return out
    finally:
        normalize.MAX_READ_CHARS = bound


def run_ids(value: str) -> list[str]:
    """`--runs`: client counts (a closed-loop run each), `pathological` and `soak`, in the order to run them."""
    ids = [v.strip() for v in value.split(",") if v.strip()]
    for run in ids:
        if not (run.isdigit() and int(run) > 0) and run not in ("pathological", "soak"):
            raise argparse.ArgumentTypeError(f"{run!r}: a number of clients, pathological or soak")
    if len(set(ids)) != len(ids) or not ids:
        raise argparse.ArgumentTypeError("each run at most once, at least one")
    return ids


def merge(saved: dict | None, new: dict) -> dict:
    """The saved results with `new`'s runs replacing those of the same id: the runs can be measured in
    separate invocations (each with its own server) and reported together."""
    if saved is None:
        return new
    ran = set(new["runs"])
    kept = [run for run in saved["runs"] if run not in ran]
    out = {"runs": kept + new["runs"],
           "load": [row for row in saved["load"] if row["id"] not in ran] + new["load"],
           "rss": [sample for sample in saved["rss"] if sample["run"] not in ran] + new["rss"],
           "invocations": [{**inv, "runs": [run for run in inv["runs"] if run not in ran]}
                           for inv in saved["invocations"] if set(inv["runs"]) - ran] + new["invocations"]}
    for key in ("pathological", "soak"):
        source = new if key in ran else saved
        if key in source:
            out[key] = source[key]
    return out


def command_line(argv: list[str]) -> str:
    """The invocation as a shell command, the reference file's path shown as FILE (it may lie anywhere)."""
    shown, hide = [], False
    for arg in argv:
        shown.append("FILE" if hide else shlex.quote(arg))
        hide = arg == "--reference"
    return " ".join(["python -m experiments.serve_load", *shown])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=run_ids, default="16,4,1,pathological,soak",
                        help="what to run, in order: client counts (each sends --requests texts, each once), "
                             "pathological, soak (default: %(default)s)")
    parser.add_argument("--merge", action="store_true", help="keep the runs saved by earlier invocations "
                        f"({STATE.relative_to(ROOT)}) that this one does not run again, and report them all")
    parser.add_argument("--requests", type=int, default=300, help="requests of each closed-loop run (at most "
                        f"{POOL} keeps the texts the same whatever the number)")
    parser.add_argument("--warm", type=int, default=32, help="texts sent by 4 clients before the first run, not "
                        "counted: the server's memory grows to its working size with its first long texts")
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--soak-rate", type=float, help="requests/s in the soak (default: 40%% of the rate of "
                        "this invocation's first closed-loop run; required without one)")
    parser.add_argument("--rss-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop issuing requests in a run after this")
    parser.add_argument("--timeout", type=float, default=300, help="client-side timeout of one request")
    parser.add_argument("--server-args", default="", help="extra `detector serve` options, e.g. '--timeout 120'")
    parser.add_argument("--finish-by", type=float, metavar="EPOCH_SECONDS",
                        help="shorten the soak so the whole run ends by then (its scoring after the soak included)")
    parser.add_argument("--note", default="", help="a line about the conditions, written into the report")
    parser.add_argument("--pathological", type=int, default=4, help="how many of the four pathological texts to send")
    parser.add_argument("--no-unbounded", action="store_true", help="skip timing the pathological texts unbounded")
    parser.add_argument("--reference", type=Path, metavar="FILE", help="the direct answers: read from FILE if it "
                        "holds them all, else computed after the served runs and written there")
    parser.add_argument("--reference-only", action="store_true", help="only compute --reference FILE, then stop")
    parser.add_argument("--quick", action="store_true", help="a few requests and a 20 s soak; writes no report")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.warm, args.soak_seconds, args.rss_every = 8, 4, 20, 2
    if "soak" in args.runs and not args.soak_rate and not any(run.isdigit() for run in args.runs):
        parser.error("--soak-rate is needed when no closed-loop run comes before the soak")

    texts = texts_mix(args.requests)
    odd = dict(list(pathological_texts().items())[: args.pathological])
    if args.reference_only:
        reference(args.reference, texts + list(odd.values()), list(odd.values()))
        return 0
    have_reference = args.reference is not None and args.reference.exists()
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    log = Path(tempfile.mkdtemp(prefix="serve-load-")) / "serve.log"
    server = client.Server(log, args.server_args.split())
    rss = client.RssSampler(server.pid, args.rss_every)
    runs: list[tuple[str, str, str, list[client.Answer], int, float]] = []  # id, name, clients, answers, sent, share
    odd_all, odd_rows, odd_share, soak_info = [], [], float("nan"), {}
    try:
        rss.start()
        client.closed_loop(server.url, texts[: args.warm], 4, args.max_seconds, args.timeout)
        for run in args.runs:
            rss.mark(run)
            if run.isdigit():
                n = int(run)
                with OtherLoad((server.pid,)) as load:
                    answers = client.closed_loop(server.url, texts, n, args.max_seconds, args.timeout)
                runs.append((run, f"{n} client{'s' * (n > 1)}", run, answers, len(texts), load.share))
                print(f"{n} clients: {len(answers)} answers", file=sys.stderr)
            elif run == "pathological":
                with OtherLoad((server.pid,)) as load:
                    odd_all, odd_rows = pathological_phase(server.url, texts, odd, args.timeout,
                                                           2 if args.quick else 5)
                odd_share = load.share
            else:
                row, soak_info = soak_run(args, server, texts, odd, runs, have_reference)
                runs.append(row)
            rss.mark(None)
    finally:
        rss.stop()
        server.stop()

    direct, direct_s = reference(args.reference, texts + list(odd.values()), list(odd.values()))
    load_rows = [{"id": run, "run": name, "clients": n_clients, **summary(answers, direct, sent),
                  "others_cpu": share} for run, name, n_clients, answers, sent, share in runs]
    new = {"runs": args.runs, "load": load_rows, "rss": rss.records(),
           "invocations": [{"command": command_line(sys.argv[1:] if argv is None else argv), "began": began,
                            "runs": args.runs, "note": args.note, "server_args": args.server_args,
                            "rss_every": args.rss_every, "warm": args.warm,
                            "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
                            "reference_written": json.loads(args.reference.read_text())["written"]
                            if have_reference else None}]}
    if soak_info:
        new["soak"] = soak_info
    if "pathological" in args.runs:
        for row, text in zip(odd_rows, odd.values(), strict=True):
            row["characters"] = len(text)
            row["direct_s"] = direct_s[text]
        if not args.no_unbounded:
            for row, seconds in zip(odd_rows, unbounded_seconds(list(odd.values())), strict=True):
                row["direct_unbounded_s"] = seconds
        new["pathological"] = {"rows": odd_rows, "summary": summary(odd_all, direct, len(odd_all)),
                               "others_cpu": odd_share}
    print(table(pd.DataFrame(load_rows), 2), table(pd.DataFrame(odd_rows), 2), sep="\n\n")
    if args.quick:
        return 0
    state = merge(json.loads(STATE.read_text()) if args.merge and STATE.exists() else None, new)
    RESULTS.mkdir(exist_ok=True)
    STATE.write_text(json.dumps(state, indent=1))
    pd.DataFrame(state["load"]).to_csv(RESULTS / "serve_load.csv", index=False)
    pd.DataFrame(state.get("pathological", {}).get("rows", [])).to_csv(RESULTS / "serve_load_pathological.csv",
                                                                       index=False)
    pd.DataFrame(state["rss"]).to_csv(RESULTS / "serve_load_rss.csv", index=False)
    REPORT.write_text(report(state, len(texts), PATHOLOGICAL_CHARS))
    return 0 if failures(new) == 0 else 1


def failures(results: dict) -> int:
    """Errors, lost, unsent and differing answers over `results`' runs."""
    bad = sum(row[key] for row in results["load"] for key in ("errors", "lost", "unsent", "differing"))
    odd = results.get("pathological", {}).get("summary", {})
    return int(bad + sum(odd.get(key, 0) for key in ("errors", "lost", "differing")))


def soak_run(args: argparse.Namespace, server: client.Server, texts: list[str], odd: dict[str, str],
             runs: list, have_reference: bool) -> tuple[tuple, dict]:
    """The soak: a steady rate for --soak-seconds (shortened to end by --finish-by); its row and settings."""
    served_rate = next((summary(r[3], {}, r[4])["requests_per_s"] for r in runs if r[0].isdigit()), None)
    seconds = args.soak_seconds
    if args.finish_by:  # what is left after the soak: the reference at the served pace, the unbounded timings
        after = 60 + (0 if have_reference else 1.3 * (len(texts) + len(odd)) / (served_rate or 1))
        after += 0 if args.no_unbounded or "pathological" not in args.runs else 120
        seconds = min(seconds, max(args.finish_by - time.time() - after, 60))
    rate = args.soak_rate or round(0.4 * served_rate, 2)
    with OtherLoad((server.pid,)) as load:
        answers = client.steady(server.url, texts, rate, seconds, args.timeout)
    row = ("soak", f"soak, {seconds / 60:.1f} min", f"steady {rate:g}/s", answers, len(answers), load.share)
    return row, {"asked_s": args.soak_seconds, "seconds": seconds, "rate": rate, "finish_by": args.finish_by}


if __name__ == "__main__":
    sys.exit(main())
