"""The load test's side of the wire: `detector serve` as a child process, its memory sampled, and clients
that send requests in a closed loop (each waits for its answer) or at a steady rate (open loop)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("verdict", "reason", "n_tokens", "altered")  # exactly as `Detector.score` says
# p(machine) to the last bits but these: the classifier's floating-point sums differ in the last bits with
# the number of rows it is given at once (1e-16 seen), in the server as in `Detector.score` itself.
P_TOLERANCE = 1e-12


@dataclass
class Answer:
    text: str
    status: int  # 0: no HTTP answer (connection refused or reset, client timeout)
    body: dict | str
    sent: float  # time.monotonic()
    done: float

    @property
    def seconds(self) -> float:
        return self.done - self.sent


def post(url: str, text: str, timeout: float) -> Answer:
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"})
    sent = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(text, response.status, json.loads(response.read()), sent, time.monotonic())
    except urllib.error.HTTPError as err:
        return Answer(text, err.code, err.read().decode(errors="replace")[:200], sent, time.monotonic())
    except OSError as err:
        return Answer(text, 0, str(err)[:200], sent, time.monotonic())


def differs(body: dict, direct: dict) -> bool:
    served, alone = body.get("p_machine"), direct.get("p_machine")
    p_differs = (served is None) != (alone is None) or (served is not None and abs(served - alone) > P_TOLERANCE)
    return p_differs or any(body.get(key) != direct.get(key) for key in COMPARED)


def closed_loop(url: str, texts: list[str], clients: int, max_seconds: float, timeout: float) -> list[Answer]:
    """Each text sent once by one of `clients` threads, each waiting for its answer before the next; no new
    request after `max_seconds`."""
    answers: list[Answer] = []
    pending, lock = iter(texts), threading.Lock()
    deadline = time.monotonic() + max_seconds

    def run() -> None:
        while time.monotonic() < deadline:
            with lock:
                text = next(pending, None)
            if text is None:
                return
            answers.append(post(url, text, timeout))

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def closed_loop_until(url: str, texts: list[str], stop: threading.Event, answers: list[Answer],
                      timeout: float) -> None:
    """One client cycling through `texts` until `stop` is set."""
    k = 0
    while not stop.is_set():
        answers.append(post(url, texts[k % len(texts)], timeout))
        k += 1


def steady(url: str, texts: list[str], rate: float, seconds: float, timeout: float) -> list[Answer]:
    """Requests at `rate` per second for `seconds` whatever the answers' pace (open loop, at most 64 in
    flight), cycling through `texts`; waits for the last answers, each bounded by `timeout`."""
    n = max(int(rate * seconds), 1)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        for k in range(n):
            time.sleep(max(start + k / rate - time.monotonic(), 0))
            futures.append(pool.submit(post, url, texts[k % len(texts)], timeout))
        return [f.result() for f in futures]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m detector_cli serve` on a free loopback port, its log in `log`; up when constructed."""

    def __init__(self, log: Path, extra: list[str], start_s: float = 300):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/v1/score"
        with open(log, "w") as stderr:
            self.proc = subprocess.Popen([sys.executable, "-m", "detector_cli", "serve", "--port", str(port), *extra],
                                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"detector serve exited: {log.read_text()[-500:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError("detector serve did not come up") from None
                time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """The resident memory of a process every `every` seconds, in a thread, while a run is marked (`mark`),
    each sample tagged with that run."""

    def __init__(self, pid: int, every: float):
        self.pid, self.every, self.run = pid, every, None
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.start_time = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def mark(self, run: str | None) -> None:
        """Samples from now on belong to `run` (None: between runs, not sampled); one is taken at once."""
        self.run = run
        self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.every + 5)

    def _sample(self) -> None:
        if self.run is None:
            return
        try:
            self.samples.append({"run": self.run, "seconds": round(time.monotonic() - self.start_time, 2),
                                 "rss_mib": rss_mib(self.pid)})
        except OSError:  # the process has ended
            self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def records(self) -> list[dict]:
        return list(self.samples)
