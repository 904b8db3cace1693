"""Start-up with the real LM: the tokenizer file, scoring on OpenVINO without torch, the measured choice,
the speed report's tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import HUMAN_TEXT, ROOT, SEED

from detector.core import settings
from detector.lm import runtime

# Texts a tokenizer gets wrong first: whitespace runs, every script, emoji with joiners, combining marks,
# control and bidi characters, lone surrogates' neighbours, digits, the LM's own special-token text.
VARIED = [
    "", " ", "  two leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\r\n\n\nthree",
    "Plain English, with punctuation: commas; semicolons — dashes… and 'quotes'.",
    "Ünïcödé àccents, ß, Ærø, İstanbul, ﬁ ligature, Ⅻ roman, ½ fractions",
    "日本語のテキストと漢字、한국어 문장, 中文句子。", "Русский текст и ελληνικά γράμματα",
    "עברית ועברית עם ערבית: مرحبا بالعالم",
    "emoji 👩‍👩‍👧‍👦 family, flags 🇬🇧🇫🇷, skin tones 👍🏽, keycaps 1️⃣", "e\u0301 combining, \u200bzero width\u200d joiner",
    "\u202eright-to-left override\u202c and \x07 bell \x1b[31m escape", "1234567890 3.14159 1e-10 0x1F #hashtag @user",
    "<|im_start|>user\nhello<|im_end|> <|endoftext|>", "a" * 3000, "word " * 700,
    "https://example.com/path?q=1&r=two#frag and code `x = f(y) ** 2`",
]


@pytest.mark.slow
def test_the_tokenizer_file_gives_transformers_ids_and_offsets():
    from transformers import AutoTokenizer

    from detector.core.settings import DEFAULT_LM
    from detector.lm.packaged import packaged_folder
    from detector.lm.tokenizer import FileTokenizer

    folder = packaged_folder(DEFAULT_LM)
    ours, theirs = FileTokenizer(folder), AutoTokenizer.from_pretrained(folder)
    assert (ours.bos_token_id, ours.eos_token_id) == (theirs.bos_token_id, theirs.eos_token_id)
    for text in [*VARIED, SEED.read_text(encoding="utf-8"), HUMAN_TEXT]:
        want = theirs(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        ids, offsets = ours.encode(text)
        assert ids == want["input_ids"], text[:40]
        assert [tuple(o) for o in offsets] == [tuple(o) for o in want["offset_mapping"]], text[:40]


@pytest.mark.slow
def test_scoring_on_openvino_imports_no_torch_nor_transformers(tmp_path):
    text = tmp_path / "essay.txt"
    text.write_text(HUMAN_TEXT, encoding="utf-8")
    probe = (
        "import sys\n"
        "from detector_cli.main import main\n"
        f"code = main(['score', {str(text)!r}, '--engine', 'openvino', '--format', 'json'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'mlflow', 'datasets') if m in sys.modules)\n"
        "print('LOADED', heavy, code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DETECTOR_STATS_CACHE": str(tmp_path / "stats.sqlite")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    assert "LOADED [] 0" in done.stdout, done.stdout + done.stderr
    assert json.loads(done.stdout[: done.stdout.rindex("LOADED")])[0]["n_tokens"] > 50


@pytest.mark.slow
def test_the_measured_choice_agrees_with_the_reference(tmp_path):
    choice = runtime.choose(settings.DEFAULT_LM, "bfloat16", "openvino", cache_dir=tmp_path)
    assert set(choice.tokens_per_s) <= set(runtime.CANDIDATES) and "openvino" in choice.tokens_per_s
    assert choice.engine in choice.tokens_per_s and choice.reference == "openvino"
    assert runtime.within_tolerance(choice.differences[choice.engine])
    if not choice.fell_back:
        assert choice.tokens_per_s[choice.engine] == max(choice.tokens_per_s.values())


def test_the_speed_report_has_the_runtime_choice_and_start_up_tables(tmp_path):
    import pandas as pd

    from detector_bench.speed import chosen_projection, runtime_choice_table, write_speed

    choice = runtime.Choice("openvino", "openvino", {"openvino": 1200.0, "torch": 1100.0},
                            {"openvino": {"logp": 0.0, "entropy": 0.0}, "torch": {"logp": 0.04, "entropy": 0.03}},
                            False)
    table = runtime_choice_table(choice)
    assert table["chosen"].tolist() == [True, False] and table["within_tolerance"].all()
    speed = pd.DataFrame([{"engine": "openvino-bfloat16 (default)", "what": "Detector.score", "tokens": 100,
                           "seconds": 0.1, "tokens_per_s": 1000.0, "x_bare_float32": 2.0, "share_of_own_bare": 0.9}])
    latency = pd.DataFrame([{"case": "detector --help", "runs": 5, "wall_s": 0.2, "cpu_s": 0.1}])
    projection = chosen_projection(choice, 3_600_000, 1000.0)
    assert "1.0 h" in projection
    path = write_speed(tmp_path, speed, speed.head(0), "quiet", "detector bench --speed", {"x": "machine"},
                       projection, table, latency, "quiet")
    text = path.read_text()
    assert "## The runtime a first use chooses" in text and "## Start-up latency" in text
    assert "detector --help" in text and (tmp_path / "results" / "startup.csv").exists()
