"""Fault run: score a folder of N files of which ~5% are broken, as a user without root's powers.

    python benchmarks/fault_run.py [--files 2000] [--broken 0.05]

Good files are short texts made from the fixture set (tests/fixtures/mini.jsonl, texts of our own),
each made unique; broken ones are binary, empty, undecodable (Latin-1) or unreadable (mode 000).
Root reads any file whatever its mode, so the scoring runs under `setpriv` with the capabilities that
bypass file permissions dropped, as an ordinary user would. Prints a summary: files, scored, failed
by reason, exit code, wall time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKEN_KINDS = ("binary", "empty", "latin1", "unreadable")


def make_folder(folder: Path, n_files: int, broken_share: float, seed: int = 0) -> collections.Counter:
    rng = random.Random(seed)
    texts = [json.loads(line)["text"] for line in (ROOT / "tests/fixtures/mini.jsonl").read_text().splitlines()]
    texts = [t for t in texts if len(t.split()) >= 8]
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
        words = rng.choice(texts).split()
        start = rng.randrange(max(1, len(words) - 30))
        path.write_text(f"Note {i}: " + " ".join(words[start : start + 30]), encoding="utf-8")
        made["good"] += 1
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--broken", type=float, default=0.05)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="fault-run-"))
    out = folder.with_suffix(".jsonl")
    try:
        made = make_folder(folder, args.files, args.broken)
        command = [sys.executable, "-m", "detector", "score", str(folder), "--format", "jsonl", "-o", str(out), "-q"]
        if os.geteuid() == 0 and shutil.which("setpriv"):
            drop = "-dac_override,-dac_read_search"
            command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.time() - started
        records = [json.loads(line) for line in out.read_text().splitlines()]
        errors = collections.Counter(r["error"] for r in records if "error" in r)
        verdicts = collections.Counter(r["verdict"] for r in records if "verdict" in r)
        print(f"files: {args.files} ({made['good']} good, {made['broken']} broken: "
              + ", ".join(f"{k} {made[k]}" for k in BROKEN_KINDS) + ")")
        print(f"scored: {sum(verdicts.values())} ({dict(verdicts)}); failed: {sum(errors.values())}")
        for reason, n in errors.most_common():
            print(f"  {n:5d}  {reason}")
        print(f"stderr lines: {len(done.stderr.splitlines())}; exit code: {done.returncode}; "
              f"wall time: {seconds:.0f} s ({made['good'] / seconds:.1f} good files/s)")
        return 0 if done.returncode == 1 and sum(verdicts.values()) == made["good"] else 1
    finally:
        for path in folder.iterdir():
            path.chmod(0o644)
        shutil.rmtree(folder)
        out.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
