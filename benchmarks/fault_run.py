"""Fault run: the detector CLI against broken inputs, hostile files and bad output paths.

    python benchmarks/fault_run.py [--files 2000] [--broken 0.05] [--jsonl-lines 400] [--parts ...]

Parts (all by default):
- folder: score a folder of N files of which ~5% are broken: binary, empty, undecodable (Latin-1),
  unreadable (mode 000), plus valid UTF-16 files with a BOM and ANSI escapes in file names.
- jsonl: score a JSONL file of N lines of which ~5% are broken (invalid byte, bad JSON, nested 100k
  deep, not an object, null/missing/empty text, overlong line) and some are odd but valid (fields
  named like output fields, NUL characters in the text, lone surrogates); then --resume after a
  cut-off last line, spelling the input another way.
- outputs: every way an output path could overwrite something (an input, a hard link to it, an
  existing file, --html/--output/evaluate --output/train --output) or go nowhere (missing folder).
- probes: the probes of issue 11, each with its result now.

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
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------------------- outputs


@dataclass
class Case:
    name: str
    args: list[str]
    setup: Callable[[Path], None] | None = None


def _seed_files(tmp: Path) -> None:
    texts = fixture_texts()
    (tmp / "a.txt").write_text(texts[0], encoding="utf-8")
    (tmp / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:3]), encoding="utf-8")
    shutil.copy(ROOT / "tests/fixtures/mini.jsonl", tmp / "ev.jsonl")
    (tmp / "docs").mkdir()
    (tmp / "docs" / "b.txt").write_text(texts[1], encoding="utf-8")
    (tmp / "old.jsonl").write_text("precious\n", encoding="utf-8")
    (tmp / "model_out").mkdir()
    (tmp / "model_out" / "notes.txt").write_text("mine\n", encoding="utf-8")


OUTPUT_CASES = [
    Case("-o is the input", ["score", "a.txt", "-o", "a.txt"]),
    Case("-o is the input, other spelling", ["score", "./a.txt", "-o", "docs/../a.txt"]),
    Case("--html is the input", ["score", "a.txt", "--html", "a.txt"]),
    Case("-o is a symlink to the input", ["score", "a.txt", "-o", "link.txt"],
         lambda t: (t / "link.txt").symlink_to(t / "a.txt")),
    Case("-o is a hard link to the input", ["score", "a.txt", "-o", "hard.txt"],
         lambda t: os.link(t / "a.txt", t / "hard.txt")),
    Case("-o hard link to the JSONL input, --resume",
         ["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "hard.jsonl", "--resume"],
         lambda t: os.link(t / "in.jsonl", t / "hard.jsonl")),
    Case("-o inside an input folder", ["score", "docs", "-o", "docs/out.jsonl"]),
    Case("-o an existing file", ["score", "a.txt", "-o", "old.jsonl"]),
    Case("--resume onto a file the detector did not write",
         ["score", "a.txt", "--format", "jsonl", "-o", "old.jsonl", "--resume"]),
    Case("-o and --html the same file", ["score", "a.txt", "-o", "r.html", "--html", "r.html"]),
    Case("-o into a missing folder", ["score", "a.txt", "-o", "nope/out.jsonl"]),
    Case("evaluate --output is the data", ["evaluate", "--data", "ev.jsonl", "--output", "ev.jsonl"]),
    Case("evaluate --output an existing file", ["evaluate", "--data", "ev.jsonl", "--output", "old.jsonl"]),
    Case("train --output a folder with files",
         ["train", "--data", "ev.jsonl", "--no-mlflow", "--classifier", "logreg", "--output", "model_out"]),
    Case("train --output is the data", ["train", "--data", "ev.jsonl", "--no-mlflow", "--output", "ev.jsonl"]),
]


def outputs_part() -> bool:
    ok_all = True
    print(f"{'case':<48} exit  sec  inputs unchanged  stderr")
    for case in OUTPUT_CASES:
        tmp = Path(tempfile.mkdtemp(prefix="fault-out-"))
        try:
            _seed_files(tmp)
            if case.setup:
                case.setup(tmp)
            before = digests(tmp)
            started = time.time()
            done = run(case.args, cwd=tmp)
            seconds = time.time() - started
            stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()
            unchanged = digests(tmp) == before
            ok = done.returncode == 2 and unchanged and len(stderr) == 1
            ok_all &= ok
            print(f"{case.name:<48} {done.returncode:>4} {seconds:>4.0f}  {unchanged!s:<16}  "
                  f"{stderr[-1].removeprefix('detector: error: ')[:110] if stderr else ''}")
        finally:
            shutil.rmtree(tmp)
    return ok_all


# ----------------------------------------------------------------------------------------- probes


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


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _stderr(done: subprocess.CompletedProcess) -> str:
    return done.stderr.decode("utf-8", "replace")


def _summary(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in _stderr(done).splitlines() if ln.strip()]
    last = lines[-1].removeprefix("detector: ") if lines else ""
    tb = " TRACEBACK" if "Traceback" in _stderr(done) else ""
    return f"exit {done.returncode}{tb}, {len(lines)} stderr line(s): {last[:150]}"


def probe_table() -> bool:
    """The issue's probes, each run now; prints a markdown table."""
    default_model = ROOT / "detector" / "default_model"
    texts = fixture_texts()
    rows: list[tuple[str, str, bool]] = []

    def probe(name: str):
        def wrap(fn):
            tmp = Path(tempfile.mkdtemp(prefix="probe-"))
            try:
                (tmp / "a.txt").write_text(texts[0], encoding="utf-8")
                result, ok = fn(tmp)
            except Exception as err:  # a probe harness failure is a row too, not the end of the table
                result, ok = f"probe failed: {type(err).__name__}: {err}", False
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            rows.append((name, result, ok))
            print(f"| {name} | {result} | {'ok' if ok else 'FAIL'} |", flush=True)
            return fn
        return wrap

    print("| probe | result now | |\n| --- | --- | --- |")

    for via in ("DIR", "file:// URI"):
        @probe(f"model.skops calling builtins.exec, --model {via}")
        def _(tmp, via=via):
            marker = tmp / "pwned"
            model = craft_malicious_model(default_model, tmp / "evil", marker)
            done = run(["score", "a.txt", "--model", str(model) if via == "DIR" else model.as_uri()], cwd=tmp)
            return f"{_summary(done)}; code ran: {marker.exists()}", done.returncode == 2 and not marker.exists()

    @probe("model.skops calling os.system")
    def _(tmp):
        marker = tmp / "pwned"
        model = craft_malicious_model(default_model, tmp / "evil", marker, kind="system")
        done = run(["score", "a.txt", "--model", str(model)], cwd=tmp)
        return f"{_summary(done)}; code ran: {marker.exists()}", done.returncode == 2 and not marker.exists()

    def refused_unchanged(tmp: Path, args: list[str], kept: str, label: str) -> tuple[str, bool]:
        """Run `detector ARGS` in tmp: must exit 2 and leave `kept` byte for byte as it was."""
        before = digest(tmp / kept)
        done = run(args, cwd=tmp)
        same = digest(tmp / kept) == before
        return f"{_summary(done)}; {label} unchanged: {same}", done.returncode == 2 and same

    @probe("`score a.txt --html a.txt`")
    def _(tmp):
        return refused_unchanged(tmp, ["score", "a.txt", "--html", "a.txt"], "a.txt", "a.txt")

    @probe("`evaluate --data ev.jsonl --output ev.jsonl`")
    def _(tmp):
        shutil.copy(ROOT / "tests/fixtures/mini.jsonl", tmp / "ev.jsonl")
        return refused_unchanged(tmp, ["evaluate", "--data", "ev.jsonl", "--output", "ev.jsonl"], "ev.jsonl", "data")

    @probe("-o a hard link to an input")
    def _(tmp):
        os.link(tmp / "a.txt", tmp / "hard.txt")
        return refused_unchanged(tmp, ["score", "a.txt", "-o", "hard.txt"], "a.txt", "input")

    def jsonl_of(tmp: Path, lines: list[bytes]) -> Path:
        path = tmp / "in.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        return path

    def good(i: int) -> bytes:
        return json.dumps({"text": texts[i % len(texts)], "id": i}).encode()

    @probe("JSONL, one invalid byte on line 5 of 6")
    def _(tmp):
        lines = [good(i) for i in range(6)]
        lines[4] = lines[4][:-2] + b"\xff\"}"
        jsonl_of(tmp, lines)
        done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl"], cwd=tmp)
        recs = _records(tmp / "out.jsonl")
        scored = [r["source"] for r in recs if "verdict" in r]
        errs = [f"{r['source']}: {r['error']}" for r in recs if "error" in r]
        return (f"exit {done.returncode}; scored {len(scored)} of 6; error: {'; '.join(errs)[:100]}",
                done.returncode == 1 and len(scored) == 5 and errs and errs[0].startswith("in.jsonl:5:"))

    @probe("JSONL line nested 100k deep")
    def _(tmp):
        lines = [good(0), b"[" * 100_000 + b"]" * 100_000, good(1)]
        jsonl_of(tmp, lines)
        done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl"], cwd=tmp)
        recs = _records(tmp / "out.jsonl")
        errs = [f"{r['source']}: {r['error']}" for r in recs if "error" in r]
        n = sum("verdict" in r for r in recs)
        return (f"exit {done.returncode}; scored {n} of 2; {'; '.join(errs)}",
                done.returncode == 1 and n == 2 and "Traceback" not in _stderr(done))

    @probe("JSONL records with their own source/verdict/reason")
    def _(tmp):
        jsonl_of(tmp, [json.dumps({"text": texts[0], "source": "mine", "verdict": "human", "reason": "r"}).encode()])
        done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl"], cwd=tmp)
        [rec] = _records(tmp / "out.jsonl")
        kept = rec.get("input") == {"source": "mine", "verdict": "human", "reason": "r"}
        warned = "kept under" in _stderr(done)
        return (f"exit {done.returncode}; kept under `input`: {rec.get('input')}; warned once: {warned}",
                done.returncode == 0 and kept and warned)

    @probe("--resume with a cut-off last line")
    def _(tmp):
        jsonl_of(tmp, [good(i) for i in range(4)])
        out = tmp / "out.jsonl"
        run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl"], cwd=tmp)
        lines = out.read_bytes().splitlines(keepends=True)
        out.write_bytes(lines[0] + lines[1][:40])
        done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "--resume"], cwd=tmp)
        recs = _records(out)  # raises if a record got glued onto the fragment
        sources = sorted(r["source"] for r in recs)
        ok = sources == [f"in.jsonl:{i}" for i in range(1, 5)]
        msg = [ln for ln in _stderr(done).splitlines() if "resumed" in ln]
        return f"exit {done.returncode}; records {len(recs)}, sources each once: {ok}; {msg[0][10:] if msg else ''}", ok

    @probe("--resume with the input spelled ./in.jsonl")
    def _(tmp):
        jsonl_of(tmp, [good(i) for i in range(11)])
        out = tmp / "out.jsonl"
        run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl"], cwd=tmp)
        done = run(["score", "--jsonl", "./in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "--resume"], cwd=tmp)
        recs = _records(out)
        msg = [ln for ln in _stderr(done).splitlines() if "resumed" in ln]
        return (f"exit {done.returncode}; records {len(recs)} (11 inputs); {msg[0][10:] if msg else ''}",
                len(recs) == 11 and done.returncode == 0)

    def cache_probe(tmp: Path, prepare: Callable[[Path], Callable[[], None] | None], drop_caps: bool = True):
        cache = tmp / "cache" / "stats.sqlite"
        cache.parent.mkdir()
        cleanup = prepare(cache)
        env = dict(_env(), DETECTOR_STATS_CACHE=str(cache))
        jsonl_of(tmp, [good(i) for i in range(3)])
        try:
            done = run(["score", "--jsonl", "in.jsonl", "--format", "jsonl", "-o", "out.jsonl", "-q"], cwd=tmp,
                       env=env, drop_caps=drop_caps)
        finally:
            if cleanup:
                cleanup()
        recs = _records(tmp / "out.jsonl")
        n = sum("verdict" in r for r in recs)
        warn = [ln.removeprefix("detector: warning: ") for ln in _stderr(done).splitlines() if "stats cache" in ln]
        return (f"exit {done.returncode}; scored {n} of 3; {len(warn)} warning: {warn[0][:130] if warn else ''}",
                done.returncode == 0 and n == 3 and len(warn) == 1)

    def empty_cache(cache: Path) -> None:
        """A valid, empty stats table in the default (rollback-journal) mode, which the lock and
        permission faults below act on; StatsCache itself would switch the file to WAL."""
        sqlite3.connect(cache).execute("CREATE TABLE stats (lm TEXT, text_hash TEXT, blob BLOB, "
                                       "PRIMARY KEY (lm, text_hash))").connection.commit()

    @probe("stats cache corrupted")
    def _(tmp):
        def corrupt(cache: Path) -> None:
            cache.write_bytes(b"this is not a database" * 100)
        return cache_probe(tmp, corrupt)

    @probe("stats cache locked by another process")
    def _(tmp):
        def lock(cache: Path):
            empty_cache(cache)
            holder = subprocess.Popen([sys.executable, "-c", (
                "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(600)"), str(cache)],
                stdout=subprocess.PIPE)
            holder.stdout.readline()
            return holder.kill
        return cache_probe(tmp, lock)

    @probe("stats cache read-only (file and folder mode 555/444, no root powers)")
    def _(tmp):
        def read_only(cache: Path):
            empty_cache(cache)
            cache.chmod(0o444)
            cache.parent.chmod(0o555)
            return lambda: cache.parent.chmod(0o755)
        return cache_probe(tmp, read_only)

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

    @probe("300 MB on stdin")
    def _(tmp):
        small, small_rss, _ = stdin_rss(tmp, 1)
        done, rss, seconds = stdin_rss(tmp, 300)
        [rec] = json.loads(done.stdout)
        return (f"exit {done.returncode} in {seconds:.0f} s; note: {rec.get('note')}; peak RSS {rss:.0f} MiB "
                f"(1 MB on stdin: {small_rss:.0f} MiB)",
                done.returncode == 0 and "first 256" in (rec.get("note") or "") and rss < small_rss + 100)

    def broken_model(tmp: Path, how: str) -> Path:
        folder = tmp / "m"
        shutil.copytree(default_model, folder)
        if how == "card":
            (folder / "model_card.json").write_text('{"feature_version": 1, "thresh')
        else:
            (folder / "model.skops").write_bytes(os.urandom(4096))
        return folder

    for how, label in (("card", "broken card"), ("skops", "random bytes as model.skops")):
        @probe(f"model folder with {label}")
        def _(tmp, how=how):
            done = run(["score", "a.txt", "--model", str(broken_model(tmp, how))], cwd=tmp)
            return _summary(done), done.returncode == 2 and "Traceback" not in _stderr(done)

    @probe("--model models:/nope/1")
    def _(tmp):
        env = {k: v for k, v in _env().items() if k != "MLFLOW_TRACKING_URI"}
        done = run(["score", "a.txt", "--model", "models:/nope/1"], cwd=tmp, env=env)
        stray = (tmp / "mlflow.db").exists()
        return f"{_summary(done)}; mlflow.db left in cwd: {stray}", done.returncode == 2 and not stray

    def train_probe(tmp: Path, records: list[dict], spec: str = "d.jsonl"):
        rows = [json.loads(ln) for ln in (ROOT / "tests/fixtures/mini.jsonl").read_text().splitlines()][:20]
        (tmp / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + records))
        started = time.time()
        done = run(["train", "--data", spec, "--no-mlflow"], cwd=tmp)
        one_line = len(_stderr(done).strip().splitlines()) == 1
        return (f"{_summary(done)} ({time.time() - started:.0f} s)",
                done.returncode == 2 and "Traceback" not in _stderr(done) and one_line)

    @probe('train data with "text": null')
    def _(tmp):
        return train_probe(tmp, [{"text": None, "label": 0}])

    @probe('train data with label 2 and "maybe"')
    def _(tmp):
        return train_probe(tmp, [{"text": "a b c", "label": 2}, {"text": "d e f", "label": "maybe"}])

    @probe("train --data my_textz.jsonl (typo)")
    def _(tmp):
        return train_probe(tmp, [], spec="d_typo.jsonl")

    usage = ((["--batch-size", "0"], "--batch-size 0"), (["--batch-size", "-1"], "--batch-size -1"),
             (["-o", "nope/out.jsonl"], "-o into a missing folder"), (["--device", "nope"], "--device nope"))
    for args, label in usage:
        @probe(label)
        def _(tmp, args=args):
            done = run(["score", "a.txt", *args], cwd=tmp)
            one = len(_stderr(done).strip().splitlines()) == 1
            return _summary(done), done.returncode == 2 and one

    @probe("empty JSONL")
    def _(tmp):
        (tmp / "in.jsonl").write_bytes(b"")
        done = run(["score", "--jsonl", "in.jsonl"], cwd=tmp)
        return _summary(done), done.returncode == 2

    @probe("UTF-16 file with BOM")
    def _(tmp):
        (tmp / "u16.txt").write_bytes(texts[0].encode("utf-16"))
        done = run(["score", "u16.txt", "--format", "json"], cwd=tmp)
        [rec] = json.loads(done.stdout)
        said = (rec.get("reason") or rec.get("error"))[:90]
        return (f"exit {done.returncode}; {rec.get('verdict', 'error')}: {said}",
                done.returncode == 0 and "verdict" in rec)

    @probe("JSONL text with \\u0000")
    def _(tmp):
        jsonl_of(tmp, [json.dumps({"text": texts[0].replace(" ", "\u0000 ", 3)}).encode()])
        done = run(["score", "--jsonl", "in.jsonl", "--format", "json"], cwd=tmp)
        [rec] = json.loads(done.stdout)
        return (f"exit {done.returncode}; {rec.get('verdict', 'error')}, note: {rec.get('note')}",
                done.returncode == 0 and "verdict" in rec)

    @probe("file name with ANSI escape codes")
    def _(tmp):
        name = "x\x1b[2J\x1b[31mred.txt"
        (tmp / name).write_bytes(b"\x00\x01 binary")  # an error line names the file on stderr
        done = run(["score", name, "a.txt"], cwd=tmp)
        raw = "\x1b" in _stderr(done) or "\x1b" in done.stdout.decode()
        return f"exit {done.returncode}; raw ESC printed: {raw}; shown as: {_stderr(done).strip()[10:60]}", not raw

    failed = [name for name, _, ok in rows if not ok]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} probes hold" + (f"; failing: {failed}" if failed else ""))
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--broken", type=float, default=0.05)
    parser.add_argument("--jsonl-lines", type=int, default=400)
    parser.add_argument("--parts", nargs="+", choices=("folder", "jsonl", "outputs", "probes"),
                        default=["folder", "jsonl", "outputs", "probes"])
    args = parser.parse_args(argv)
    results = {}
    for part in args.parts:
        print(f"\n## {part}\n", flush=True)
        started = time.time()
        if part == "folder":
            results[part] = folder_part(args.files, args.broken)
        elif part == "jsonl":
            results[part] = jsonl_part(args.jsonl_lines, args.broken)
        elif part == "outputs":
            results[part] = outputs_part()
        else:
            results[part] = probe_table()
        verdict = "all checks held" if results[part] else "SOME CHECKS FAILED"
        print(f"\n{part}: {verdict} ({time.time() - started:.0f} s)", flush=True)
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
