"""Fault run: the detector CLI against broken inputs, hostile files and bad output paths.

    python experiments/fault_run.py [--files 2000] [--broken 0.05] [--jsonl-lines 400] [--parts ...]

Parts (all by default):
- folder: score a folder of N files of which ~5% are broken: binary, empty, undecodable (Latin-1),
  unreadable (mode 000), plus valid UTF-16 files with a BOM and ANSI escapes in file names.
- jsonl: score a JSONL file of N lines of which ~5% are broken (invalid byte, bad JSON, nested 100k
  deep, not an object, null/missing/empty text, overlong line) and some are odd but valid (fields
  named like output fields, NUL characters in the text, lone surrogates); then --resume after a
  cut-off last line, spelling the input another way.
- probes: what a test cannot check: peak memory while 300 MB arrive on stdin, and a read-only stats
  cache for a user without root's powers.

Every other probe of issue 11 (hostile model files, output paths that would overwrite something, bad
JSONL lines, --resume, caches corrupted or locked, bad options, training data errors) is a test now
(tests/unit/io/, tests/unit/model/, tests/unit/lm/, tests/integration/test_cli.py); this run adds scale
(thousands of files) and an ordinary user's file permissions.

Good texts are short notes made from the fixture set (tests/fixtures/mini.jsonl, texts of our own).
Root reads any file whatever its mode, so scoring runs under `setpriv` with the capabilities that
bypass file permissions dropped, as an ordinary user would. Each part prints a summary; the exit
code is 0 when every check held.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKEN_KINDS = ("binary", "empty", "latin1", "unreadable")
JSONL_BROKEN = ("invalid_byte", "bad_json", "deep_nesting", "not_object", "null_text", "no_text", "empty_text",
                "overlong")
JSONL_ODD = ("clashing_fields", "nul_in_text", "lone_surrogate", "utf8_bom_field")
DROP_CAPS = "-dac_override,-dac_read_search"


def _env() -> dict[str, str]:
    """The worktree's code first, one OpenMP thread, quiet libraries."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return env


def detector_command(*args: str, drop_caps: bool = True) -> list[str]:
    command = [sys.executable, "-m", "detector_cli", *args]
    if drop_caps and os.geteuid() == 0 and shutil.which("setpriv"):
        command = ["setpriv", f"--inh-caps={DROP_CAPS}", f"--bounding-set={DROP_CAPS}", *command]
    return command


def run(args: list[str], cwd: Path, stdin=None, env: dict | None = None, timeout: int = 900,
        drop_caps: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(detector_command(*args, drop_caps=drop_caps), cwd=cwd, stdin=stdin,
                          capture_output=True, env=env or _env(), timeout=timeout)


def fixture_texts() -> list[str]:
    texts = [json.loads(line)["text"] for line in (ROOT / "tests/fixtures/mini.jsonl").read_text().splitlines()]
    return [t for t in texts if len(t.split()) >= 8]


def note(rng: random.Random, texts: list[str], i: int) -> str:
    words = rng.choice(texts).split()
    start = rng.randrange(max(1, len(words) - 30))
    return f"Note {i}: " + " ".join(words[start : start + 30])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(folder: Path) -> dict[str, str]:
    return {str(p): digest(p) for p in sorted(folder.rglob("*")) if p.is_file() and os.access(p, os.R_OK)}


# ----------------------------------------------------------------------------------------- folder


def make_folder(folder: Path, n_files: int, broken_share: float, seed: int = 0) -> collections.Counter:
    rng = random.Random(seed)
    texts = fixture_texts()
    n_broken = round(n_files * broken_share)
    made = collections.Counter()
    for i in range(n_files):
        path = folder / f"doc_{i:05d}.txt"
        if i % max(1, n_files // max(n_broken, 1)) == 0 and made["broken"] < n_broken:
            kind = BROKEN_KINDS[made["broken"] % len(BROKEN_KINDS)]
            made["broken"] += 1
            made[kind] += 1
            if kind == "binary":
                path.write_bytes(bytes(rng.randrange(256) for _ in range(300)) + b"\x00")
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "latin1":
                path.write_bytes("Un café très crème, s'il vous plaît, à emporter.".encode("latin-1"))
            else:
                path.write_text(rng.choice(texts), encoding="utf-8")
                path.chmod(0)
            continue
        text = note(rng, texts, i)
        if i % 50 == 1:  # valid but unusual: UTF-16 with a BOM, or a file name carrying ANSI escapes
            path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
            made["utf16"] += 1
        elif i % 50 == 2:
            (folder / f"doc_{i:05d}_\x1b[31mred\x1b[0m.txt").write_text(text, encoding="utf-8")
            made["ansi_name"] += 1
        else:
            path.write_text(text, encoding="utf-8")
        made["good"] += 1
    return made


def folder_part(n_files: int, broken_share: float) -> bool:
    folder = Path(tempfile.mkdtemp(prefix="fault-run-"))
    out = folder.with_suffix(".jsonl")
    try:
        made = make_folder(folder, n_files, broken_share)
        before = digests(folder)
        started = time.time()
        done = run(["score", str(folder), "--format", "jsonl", "-o", str(out), "-q"], cwd=ROOT)
        seconds = time.time() - started
        records = [json.loads(line) for line in out.read_text().splitlines()]
        errors = collections.Counter(r["error"] for r in records if "error" in r)
        verdicts = collections.Counter(r["verdict"] for r in records if "verdict" in r)
        stderr = done.stderr.decode("utf-8", "replace")
        print(f"files: {n_files} ({made['good']} good, of which {made['utf16']} UTF-16 with BOM and "
              f"{made['ansi_name']} with ANSI escapes in the name; {made['broken']} broken: "
              + ", ".join(f"{k} {made[k]}" for k in BROKEN_KINDS) + ")")
        print(f"scored: {sum(verdicts.values())} ({dict(verdicts)}); failed: {sum(errors.values())}")
        for reason, n in errors.most_common():
            print(f"  {n:5d}  {reason}")
        raw_escape = "\x1b[" in stderr
        print(f"stderr lines: {len(stderr.splitlines())}; raw ANSI escapes on stderr: {raw_escape}; "
              f"traceback: {'Traceback' in stderr}; exit code: {done.returncode}; inputs unchanged: "
              f"{digests(folder) == before}; wall time: {seconds:.0f} s ({made['good'] / seconds:.1f} good files/s)")
        return (done.returncode == 1 and sum(verdicts.values()) == made["good"] and not raw_escape
                and digests(folder) == before and "Traceback" not in stderr)
    finally:
        for path in folder.iterdir():
            path.chmod(0o644)
        shutil.rmtree(folder)
        out.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- jsonl


def broken_line(kind: str, text: str) -> bytes:
    if kind == "invalid_byte":
        return json.dumps({"text": text}).encode()[:-2] + b"\xff\"}"
    if kind == "bad_json":
        return b'{"text": "unterminated'
    if kind == "deep_nesting":
        return b"[" * 100_000 + b"]" * 100_000
    if kind == "not_object":
        return json.dumps([text]).encode()
    if kind == "null_text":
        return json.dumps({"text": None, "id": "x"}).encode()
    if kind == "no_text":
        return json.dumps({"body": text}).encode()
    if kind == "empty_text":
        return json.dumps({"text": "  "}).encode()
    if kind == "overlong":
        return json.dumps({"text": "word " * 3_500_000}).encode()  # 17.5 MB: over the 16 MiB line bound
    raise ValueError(kind)


def odd_line(kind: str, text: str, i: int) -> bytes:
    if kind == "clashing_fields":
        return json.dumps({"text": text, "source": f"their-source-{i}", "verdict": "theirs", "reason": "r"}).encode()
    if kind == "nul_in_text":
        return json.dumps({"text": text.replace(" ", "\u0000 ", 2)}).encode()
    if kind == "lone_surrogate":
        return json.dumps({"text": text}).encode()[:-2] + b' \\ud800"}'
    if kind == "utf8_bom_field":
        return json.dumps({"text": "\ufeff" + text}, ensure_ascii=False).encode()
    raise ValueError(kind)


def make_jsonl(path: Path, n_lines: int, broken_share: float, seed: int = 0) -> tuple[dict, collections.Counter]:
    """Lines -> expected kind by line number ('good', an odd kind, or a broken kind)."""
    rng = random.Random(seed)
    texts = fixture_texts()
    n_broken = max(len(JSONL_BROKEN), round(n_lines * broken_share))
    step = max(1, n_lines // n_broken)
    kinds, made = {}, collections.Counter()
    with path.open("wb") as out:
        for i in range(1, n_lines + 1):
            text = note(rng, texts, i)
            if i % step == 0 and made["broken"] < n_broken:
                kind = JSONL_BROKEN[made["broken"] % len(JSONL_BROKEN)]
                made["broken"] += 1
                line = broken_line(kind, text)
            elif i % 25 == 3:
                kind = JSONL_ODD[made["odd"] % len(JSONL_ODD)]
                made["odd"] += 1
                line = odd_line(kind, text, i)
            else:
                kind = "good"
                line = json.dumps({"text": text, "id": i}).encode()
            made[kind] += 1
            kinds[i] = kind
            out.write(line + b"\n")
    return kinds, made


def jsonl_part(n_lines: int, broken_share: float) -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="fault-jsonl-"))
    try:
        data, out = tmp / "in.jsonl", tmp / "out.jsonl"
        kinds, made = make_jsonl(data, n_lines, broken_share)
        before = digest(data)
        started = time.time()
        done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "-q"], cwd=tmp)
        seconds = time.time() - started
        records = [json.loads(line) for line in out.read_text().splitlines()]
        by_line = collections.Counter(int(r["source"].rsplit(":", 1)[1]) for r in records)
        scored = {int(r["source"].rsplit(":", 1)[1]) for r in records if "verdict" in r}
        failed = {int(r["source"].rsplit(":", 1)[1]): r["error"] for r in records if "error" in r}
        should_score = {i for i, k in kinds.items() if k == "good" or k in JSONL_ODD}
        should_fail = {i for i, k in kinds.items() if k in JSONL_BROKEN}
        kept_under_input = sum(1 for r in records if isinstance(r.get("input"), dict) and "verdict" in r["input"])
        stderr = done.stderr.decode("utf-8", "replace")
        ok = (scored == should_score and set(failed) == should_fail and max(by_line.values()) == 1
              and done.returncode == 1 and digest(data) == before and "Traceback" not in stderr
              and kept_under_input == made["clashing_fields"])
        print(f"lines: {n_lines} ({made['good']} good; odd but valid: "
              + ", ".join(f"{k} {made[k]}" for k in JSONL_ODD) + f"; broken {made['broken']}: "
              + ", ".join(f"{k} {made[k]}" for k in JSONL_BROKEN) + ")")
        print(f"scored: {len(scored)} of {len(should_score)} expected; failed: {len(failed)} of {len(should_fail)} "
              f"expected, each on its own line number: {set(failed) == should_fail}; records per line max: "
              f"{max(by_line.values())}; clashing fields kept under input: {kept_under_input}")
        for i in sorted(failed)[: len(JSONL_BROKEN)]:
            print(f"  line {i:4d} ({kinds[i]}): {failed[i][:90]}")
        print(f"exit code: {done.returncode}; traceback: {'Traceback' in stderr}; input unchanged: "
              f"{digest(data) == before}; wall time: {seconds:.0f} s")

        # Resume after a cut-off last line, naming the input ./in.jsonl this time.
        whole = out.read_bytes()
        lines = whole.splitlines(keepends=True)
        keep = len(lines) // 2
        out.write_bytes(b"".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
        done = run(["score", "--jsonl", "./in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "--resume", "-q"],
                   cwd=tmp)
        records = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses: nothing glued
        sources = collections.Counter(int(r["source"].rsplit(":", 1)[1]) for r in records)
        message = [line for line in done.stderr.decode().splitlines() if "resumed" in line]
        resumed_ok = (set(sources) == should_score | should_fail and max(sources.values()) == 1
                      and done.returncode in (0, 1))
        print(f"resume (last line cut, input spelled ./in.jsonl): {len(records)} records for {len(kinds)} lines, "
              f"each once: {max(sources.values()) == 1}; exit {done.returncode}; "
              f"{message[0].removeprefix('detector: ') if message else 'no resume message'}")
        return ok and resumed_ok
    finally:
        shutil.rmtree(tmp)


# ----------------------------------------------------------------------------------------- probes
# Only what a test cannot check: memory on a huge stdin (measured, so a benchmark), and a read-only cache
# for a user without root's powers.


def _stderr(done: subprocess.CompletedProcess) -> str:
    return done.stderr.decode("utf-8", "replace")


def stdin_rss(tmp: Path, megabytes: int) -> tuple[subprocess.CompletedProcess, float, float]:
    """Score `megabytes` of text piped on stdin; the detector's own peak RSS (MiB) and seconds."""
    feeder = subprocess.Popen([sys.executable, "-c", (
        "import sys\ndata = ((open(sys.argv[1]).read() + ' ') * 200).encode()\nout = sys.stdout.buffer\n"
        "n = 0\ntry:\n    while n < int(sys.argv[2]):\n        out.write(data[: int(sys.argv[2]) - n])\n"
        "        n += len(data)\nexcept BrokenPipeError:\n    pass"), str(tmp / "a.txt"), str(megabytes * 10**6)],
        stdout=subprocess.PIPE)
    wrapper = ("import resource, runpy, sys\nsys.argv = ['detector', 'score', '-', '--format', 'json']\n"
               "try:\n    runpy.run_module('detector', run_name='__main__')\nfinally:\n"
               "    print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    started = time.time()
    env = dict(_env(), DETECTOR_STATS_CACHE=str(tmp / f"cache-{megabytes}.sqlite"))  # both pass the LM
    done = subprocess.run([sys.executable, "-c", wrapper], cwd=tmp, stdin=feeder.stdout, capture_output=True,
                          env=env, timeout=900)
    feeder.stdout.close()
    feeder.wait()
    rss = [int(ln.split()[1]) for ln in _stderr(done).splitlines() if ln.startswith("maxrss")]
    return done, (rss[0] / 1024 if rss else float("nan")), time.time() - started

def stdin_probe(tmp: Path) -> tuple[str, bool]:
    small, small_rss, _ = stdin_rss(tmp, 1)
    done, rss, seconds = stdin_rss(tmp, 300)
    [rec] = json.loads(done.stdout)
    return (f"exit {done.returncode} in {seconds:.0f} s; note: {rec.get('note')}; peak RSS {rss:.0f} MiB "
            f"(1 MB on stdin: {small_rss:.0f} MiB)",
            done.returncode == 0 and "first 256" in (rec.get("note") or "") and rss < small_rss + 100)

def read_only_cache_probe(tmp: Path) -> tuple[str, bool]:
    """A stats cache whose file and folder are read-only (444/555), scored without root's powers."""
    cache = tmp / "cache" / "stats.sqlite"
    cache.parent.mkdir()
    sqlite3.connect(cache).execute("CREATE TABLE stats (lm TEXT, text_hash TEXT, blob BLOB, "
                                   "PRIMARY KEY (lm, text_hash))").connection.commit()
    cache.chmod(0o444)
    cache.parent.chmod(0o555)
    texts = fixture_texts()
    (tmp / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:3]), encoding="utf-8")
    try:
        done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "-q"], cwd=tmp,
                   env=dict(_env(), DETECTOR_STATS_CACHE=str(cache)))
    finally:
        cache.parent.chmod(0o755)
    out = tmp / "out.jsonl"
    n = sum("verdict" in json.loads(line) for line in out.read_text().splitlines()) if out.exists() else 0
    warn = [ln.removeprefix("detector: warning: ") for ln in _stderr(done).splitlines() if "stats cache" in ln]
    return (f"exit {done.returncode}; scored {n} of 3; {len(warn)} warning: {warn[0][:130] if warn else ''}",
            done.returncode == 0 and n == 3 and len(warn) == 1)


PROBES = {"300 MB on stdin": stdin_probe,
          "stats cache read-only (file and folder mode 444/555, no root powers)": read_only_cache_probe}


def probe_table() -> bool:
    """The probes, each run now; prints a markdown table."""
    print("| probe | result now | |\n| --- | --- | --- |")
    held = []
    for name, probe in PROBES.items():
        tmp = Path(tempfile.mkdtemp(prefix="probe-"))
        try:
            (tmp / "a.txt").write_text(fixture_texts()[0], encoding="utf-8")
            result, ok = probe(tmp)
        except Exception as err:  # a probe harness failure is a row too, not the end of the table
            result, ok = f"probe failed: {type(err).__name__}: {err}", False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        held.append(ok)
        print(f"| {name} | {result} | {'ok' if ok else 'FAIL'} |", flush=True)
    return all(held)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--broken", type=float, default=0.05)
    parser.add_argument("--jsonl-lines", type=int, default=400)
    parts = ("folder", "jsonl", "probes")
    parser.add_argument("--parts", nargs="+", choices=parts, default=list(parts))
    args = parser.parse_args(argv)
    results = {}
    for part in args.parts:
        print(f"\n## {part}\n", flush=True)
        started = time.time()
        if part == "folder":
            results[part] = folder_part(args.files, args.broken)
        elif part == "jsonl":
            results[part] = jsonl_part(args.jsonl_lines, args.broken)
        else:
            results[part] = probe_table()
        verdict = "all checks held" if results[part] else "SOME CHECKS FAILED"
        print(f"\n{part}: {verdict} ({time.time() - started:.0f} s)", flush=True)
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
