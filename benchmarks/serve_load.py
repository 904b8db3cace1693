"""Load test of `detector serve` on loopback: N requests from C concurrent clients, short and long texts.

It starts `python -m detector_cli serve` on a free loopback port itself, sends every request once (bounded
in count and in time), stops the server, and reports errors, lost or wrong answers, p50/p95 latency and
tokens/s, against `Detector.score` on the same texts in this process. The texts are our own: the
fixture set tests/fixtures/mini.jsonl (alone, in pairs, or 8-12 joined into long texts) and the seed;
every text is distinct, so no request is answered from another's duplicate.

    OMP_NUM_THREADS=1 python -m benchmarks.serve_load --requests 300 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks.throughput import busy_seconds, own_seconds

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "fixtures" / "mini.jsonl"
SEED = ROOT / "seeds" / "000_8fefe67b85776a8f.txt"


def texts_mix(n: int, long_share: float = 0.3, seed: int = 0) -> list[tuple[str, str]]:
    """n distinct (kind, text): short (one or two fixture texts) or long (8-12 joined, or the seed once)."""
    pool = [json.loads(line)["text"] for line in MINI.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    out, seen = [("long", SEED.read_text(encoding="utf-8"))], {SEED.read_text(encoding="utf-8")}
    while len(out) < n:
        kind = "long" if rng.random() < long_share else "short"
        k = rng.randint(8, 12) if kind == "long" else rng.choice((1, 2))
        text = "\n\n".join(rng.sample(pool, k))
        if text.strip() and text not in seen:
            seen.add(text)
            out.append((kind, text))
    rng.shuffle(out)
    return out[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, log: Path, extra: list[str]) -> subprocess.Popen:
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "detector_cli", "serve", "--port", str(port), *extra], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.time() + 300
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"detector serve exited: {log.read_text()[-500:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
            return proc
        except OSError:
            if time.time() > deadline:
                proc.terminate()
                raise TimeoutError("detector serve did not come up") from None
            time.sleep(0.5)


def post(url: str, text: str, timeout: float) -> tuple[int, dict | str, float]:
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
            return response.status, answer, time.perf_counter() - started
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")[:200], time.perf_counter() - started
    except OSError as err:
        return 0, str(err)[:200], time.perf_counter() - started


def load(url: str, texts: list[str], concurrency: int, max_seconds: float, timeout: float) -> dict:
    """Each text sent once by one of `concurrency` client threads; stops issuing at the time bound."""
    answers: dict[int, tuple] = {}
    next_index, lock = [0], threading.Lock()
    deadline = time.perf_counter() + max_seconds

    def client() -> None:
        while True:
            with lock:
                i = next_index[0]
                if i >= len(texts) or time.perf_counter() > deadline:
                    return
                next_index[0] += 1
            answers[i] = post(url, texts[i], timeout)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"answers": answers, "wall": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop issuing requests after this long")
    parser.add_argument("--timeout", type=float, default=300, help="client-side timeout of one request")
    parser.add_argument("--server-args", default="", help="extra `detector serve` options, e.g. '--batch-size 8'")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    mix = texts_mix(args.requests)
    texts = [t for _, t in mix]
    print(f"{len(texts)} distinct texts: {sum(k == 'short' for k, _ in mix)} short, "
          f"{sum(k == 'long' for k, _ in mix)} long; {args.concurrency} concurrent clients", file=sys.stderr)

    # The server first (its own process, as a user runs it), then the same texts in this process.
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="serve-load-")) / "serve.log"
    proc = start_server(port, log, args.server_args.split())
    try:
        busy0, server0, own0 = busy_seconds(), process_seconds(proc.pid), own_seconds()
        run = load(f"http://127.0.0.1:{port}/v1/score", texts, args.concurrency, args.max_seconds, args.timeout)
        busy, server_cpu, own = (busy_seconds() - busy0, process_seconds(proc.pid) - server0, own_seconds() - own0)
    finally:
        proc.terminate()
        proc.wait(60)
    cores = os.cpu_count() or 1
    wall = run["wall"]
    others = max(busy - server_cpu - own, 0.0) / (wall * cores)

    from detector.detector import Detector

    detector = Detector()
    detector.model.extractor.set_params(cache=None)  # as the server: every text through the LM
    detector.score(["Warm-up: load the language model before timing."])
    started = time.perf_counter()
    direct = []
    for start in range(0, len(texts), 16):  # the CLI's default batch
        direct += detector.score(texts[start : start + 16])
    direct_wall = time.perf_counter() - started

    answers = run["answers"]
    ok = {i: a for i, (code, a, _) in answers.items() if code == 200}
    errors = {i: (code, a) for i, (code, a, _) in answers.items() if code != 200}
    lost = len(texts) - len(answers)  # never sent (time bound) or no answer at all
    wrong = [i for i, a in ok.items()
             if a["verdict"] != direct[i].verdict or a["n_tokens"] != direct[i].n_tokens
             or abs((a["p_machine"] or 0) - (direct[i].p_machine or 0)) > 1e-3]
    latency = np.array([answers[i][2] for i in ok])
    tokens = sum(a["n_tokens"] for a in ok.values())
    direct_tokens = sum(r.n_tokens for r in direct)
    figures = {
        "requests": len(texts), "answered_200": len(ok), "errors": len(errors), "lost": lost,
        "answers_differing_from_direct": len(wrong), "concurrency": args.concurrency,
        "wall_s": round(wall, 1), "requests_per_s": round(len(ok) / wall, 2),
        "latency_p50_s": round(float(np.percentile(latency, 50)), 2) if len(latency) else None,
        "latency_p95_s": round(float(np.percentile(latency, 95)), 2) if len(latency) else None,
        "latency_max_s": round(float(latency.max()), 2) if len(latency) else None,
        "tokens": tokens, "served_tokens_per_s": round(tokens / wall, 1),
        "direct_wall_s": round(direct_wall, 1), "direct_tokens_per_s": round(direct_tokens / direct_wall, 1),
        "served_vs_direct": round((tokens / wall) / (direct_tokens / direct_wall), 2),
        "server_cpu_share": round(server_cpu / (wall * cores), 2), "other_processes_cpu_share": round(others, 2),
        "cores": cores, "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    for i, (code, answer) in list(errors.items())[:5]:
        print(f"error: request {i}: {code} {answer}", file=sys.stderr)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if not errors and not lost and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
