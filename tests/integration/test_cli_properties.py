"""Property-based, through the CLI's main() in-process (the LM loads once and is reused): generated
files and JSONL lines, good and broken, with good and bad output paths. Whatever the mix: no
exception or traceback, an exit code in {0, 1, 2}, every valid item scored exactly once, every
broken one reported once, and no input file changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector_cli.main import main

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=80)
good_text = st.builds(lambda w: "Some words here " + w, words)

FILE_KINDS = {
    "utf8": lambda t: t.encode("utf-8"),
    "utf16": lambda t: t.encode("utf-16"),  # with a BOM
    "utf8_bom": lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
    "binary": lambda t: b"\x00\x01\x02" + t.encode("utf-8"),
    "empty": lambda t: b"",
    "latin1_bytes": lambda t: b"caf\xe9 " + t.encode("utf-8"),
}
GOOD_FILES = {"utf8", "utf16", "utf8_bom"}

LINE_KINDS = {
    "good": lambda t: json.dumps({"text": t, "n": 1}).encode(),
    "clashing": lambda t: json.dumps({"text": t, "source": "theirs", "verdict": "x", "input": 1}).encode(),
    "nul": lambda t: json.dumps({"text": t + "\u0000"}).encode(),
    "bad_byte": lambda t: json.dumps({"text": t}).encode()[:-2] + b'\xff"}',
    "bad_json": lambda t: b'{"text": ' + t.encode("utf-8")[:5],
    "deep": lambda t: b"[" * 50_000 + b"]" * 50_000,
    "not_object": lambda t: json.dumps([t]).encode(),
    "null_text": lambda t: b'{"text": null}',
}
GOOD_LINES = {"good", "clashing", "nul"}

entry = st.tuples(st.sampled_from(sorted(FILE_KINDS)), good_text)
line = st.tuples(st.sampled_from(sorted(LINE_KINDS)), good_text)
OUTPUTS = ("stdout", "new", "an_input", "existing", "missing_folder")


def checksums(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(files=st.lists(entry, max_size=3), lines=st.lists(line, max_size=5), output=st.sampled_from(OUTPUTS))
def test_cli_on_generated_inputs(capsys, files, lines, output):
    root = Path(tempfile.mkdtemp(prefix="prop-"))
    try:
        data = root / "data"
        data.mkdir()
        for i, (kind, text) in enumerate(files):
            (data / f"f{i}.txt").write_bytes(FILE_KINDS[kind](text))
        jsonl = data / "in.jsonl"
        jsonl.write_bytes(b"".join(LINE_KINDS[kind](text) + b"\n" for kind, text in lines))
        (root / "existing.jsonl").write_text("keep me\n")
        before = {**checksums(data), **checksums(root)}

        args = ["score", *(str(data / f"f{i}.txt") for i in range(len(files))), "--jsonl", str(jsonl),
                "--format", "jsonl", "-q"]
        out = {"stdout": None, "new": root / "out.jsonl", "an_input": jsonl, "existing": root / "existing.jsonl",
               "missing_folder": root / "nope" / "out.jsonl"}[output]
        if out is not None:
            args += ["-o", str(out)]
        code = main(args)
        captured = capsys.readouterr()
        assert code in (0, 1, 2)
        assert "Traceback" not in captured.err
        after = {**checksums(data), **checksums(root)}
        after.pop(str(root / "out.jsonl"), None)
        assert after == before  # no input (nor the unrelated existing file) changed

        if output in ("an_input", "existing", "missing_folder") or not lines:
            assert code == 2 and len(captured.err.strip().splitlines()) == 1
            return
        text = out.read_text(encoding="utf-8") if out is not None else captured.out
        records = [json.loads(r) for r in text.splitlines()]
        sources = [r["source"] for r in records]
        assert len(sources) == len(set(sources))  # each item once
        expected_good = {str(data / f"f{i}.txt") for i, (k, _) in enumerate(files) if k in GOOD_FILES}
        expected_good |= {f"{jsonl}:{n}" for n, (k, _) in enumerate(lines, 1) if k in GOOD_LINES}
        expected_all = {str(data / f"f{i}.txt") for i in range(len(files))} | {
            f"{jsonl}:{n}" for n in range(1, len(lines) + 1)}
        assert set(sources) == expected_all
        scored = {r["source"] for r in records if "verdict" in r}
        assert scored == expected_good
        assert all(r["verdict"] in ("machine", "human", "uncertain") for r in records if "verdict" in r)
        assert code == (0 if scored == expected_all else 1)
    finally:
        shutil.rmtree(root)
