"""Start-up: the settings the command line takes its choices from, the tokenizer read without
transformers, no torch on the OpenVINO path, and the remembered runtime choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import HUMAN_TEXT, ROOT, SEED

from detector.core import settings
from detector.lm import runtime
from detector.lm.token_stats import TokenStats

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


def test_the_cli_takes_its_lm_choices_from_the_settings():
    from detector_cli.main import build_parser

    score = build_parser()._subparsers._group_actions[0].choices["score"]
    options = {action.dest: action for action in score._actions}
    assert tuple(options["engine"].choices) == settings.ENGINES
    assert tuple(options["dtype"].choices) == settings.DTYPES
    assert settings.DEFAULT_ENGINE in settings.ENGINES and settings.DEFAULT_DTYPE in settings.DTYPES


def test_the_stats_key_defaults_to_the_settings_window_and_engine():
    from detector.lm import engines

    key = engines.stats_key("rev", "bfloat16", 512)
    assert key == engines.stats_key("rev", "bfloat16", 512, settings.WINDOW, settings.DEFAULT_ENGINE)
    assert f"|w{settings.WINDOW}|" in key


def test_the_tracking_store_is_a_parameter_not_the_environment(tmp_path, monkeypatch):
    from detector import Detector
    from detector.core.errors import ModelError

    monkeypatch.delenv(settings.TRACKING_URI_ENV, raising=False)
    store = f"sqlite:///{tmp_path / 'nowhere.db'}"
    with pytest.raises(ModelError, match="nowhere.db"):
        Detector.load("models:/tiny/1", tracking_uri=store)
    assert settings.TRACKING_URI_ENV not in os.environ


def stats(logp: list[float], entropy: list[float] | None = None) -> TokenStats:
    n = len(logp)
    return TokenStats(np.array(logp, np.float32), np.ones(n, np.float32), np.array(entropy or [1.0] * n, np.float32),
                      np.zeros(n, np.float32), np.arange(n, dtype=np.int32), np.arange(n, dtype=np.int32) + 1)


def test_the_fastest_runtime_is_kept_only_when_its_statistics_agree():
    reference = stats([-1.0, -2.0, -3.0])
    close, far = stats([-1.01, -2.02, -2.99]), stats([-1.5, -2.5, -3.5])
    assert runtime.within_tolerance(runtime.difference(close, reference))
    assert not runtime.within_tolerance(runtime.difference(far, reference))
    assert not runtime.within_tolerance(runtime.difference(stats([-1.0]), reference))  # other tokenisation
    rates = {"openvino": 900.0, "torch": 1200.0}
    agree = {"openvino": {"logp": 0.0, "entropy": 0.0}, "torch": runtime.difference(close, reference)}
    assert runtime.pick(rates, agree, "openvino") == ("torch", False)
    disagree = {**agree, "torch": runtime.difference(far, reference)}
    assert runtime.pick(rates, disagree, "openvino") == ("openvino", True)


def test_the_runtime_choice_is_remembered_per_machine_and_versions(tmp_path, monkeypatch):
    measured = []

    def fake_measure(lm, dtype, reference):  # the timing itself runs the LM: tested slow, below
        measured.append((lm, dtype, reference))
        return runtime.Choice("torch", reference, {"openvino": 1.0, "torch": 2.0},
                              {"openvino": {"logp": 0.0, "entropy": 0.0}, "torch": {"logp": 0.01, "entropy": 0.0}},
                              False)

    monkeypatch.setattr(runtime, "measure", fake_measure)
    first = runtime.choose("smollm2-135m-instruct", "bfloat16", "openvino", cache_dir=tmp_path)
    again = runtime.choose("smollm2-135m-instruct", "bfloat16", "openvino", cache_dir=tmp_path)
    assert first == again and first.engine == "torch" and len(measured) == 1
    runtime.choose("smollm2-135m-instruct", "float32", "openvino", cache_dir=tmp_path)  # another precision
    assert len(measured) == 2
    saved = json.loads((tmp_path / runtime.CHOICE_FILE).read_text())
    assert len(saved) == 2 and all(runtime.cpu_name() in key and "openvino=" in key for key in saved)
    (tmp_path / runtime.CHOICE_FILE).write_text("{not json")  # a damaged file is measured again, no error
    assert runtime.choose("smollm2-135m-instruct", "bfloat16", "openvino", cache_dir=tmp_path) == first
    assert len(measured) == 3


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


def test_the_lm_settings_ahead_are_those_the_detector_will_use(monkeypatch, tmp_path):
    from detector.core.settings import DEFAULT_MODEL_DIR
    from detector.facade import ahead

    card = json.loads((DEFAULT_MODEL_DIR / settings.CARD_FILE).read_text())
    chosen = runtime.Choice("torch", "openvino", {}, {}, False)
    monkeypatch.setattr(runtime, "remembered_choice", lambda lm, dtype, reference: chosen)
    assert ahead.lm_settings(None) == {**card["lm"], "engine": "torch"}  # the runtime this machine chose
    assert ahead.lm_settings(str(DEFAULT_MODEL_DIR / "model.skops")) == ahead.lm_settings(None)  # a file: its folder
    assert ahead.lm_settings(None, engine="openvino")["engine"] == "openvino"  # --engine: no choice asked
    assert ahead.lm_settings(None, dtype="float32") == {**card["lm"], "dtype": "float32"}
    monkeypatch.setattr(runtime, "remembered_choice", lambda lm, dtype, reference: None)
    assert ahead.lm_settings(None) is None  # not chosen yet: the first use measures, in the main thread
    for unknown in ("models:/tiny/1", str(tmp_path), str(tmp_path / "nothing")):
        assert ahead.lm_settings(unknown, engine="openvino") is None


def test_a_shared_lm_loading_in_another_thread_is_waited_for_and_a_failed_load_is_redone_here():
    import threading

    from detector.lm import shared as lm

    loading, release, loads = threading.Event(), threading.Event(), []

    def slow_load():
        loads.append("ahead")
        loading.set()
        release.wait(10)
        return "the LM"

    other = threading.Thread(target=lm.shared_load, args=(("k", 1), slow_load))
    other.start()
    loading.wait(10)
    threading.Timer(0.2, release.set).start()
    assert lm.shared_load(("k", 1), lambda: loads.append("again")) == "the LM"  # waited, not loaded twice
    other.join()
    assert loads == ["ahead"]

    def failing_load(where):
        loads.append(where)
        raise OSError(f"failed {where}")

    def failing_slow_load():
        loading.set()
        release.wait(10)
        failing_load("ahead")

    loading.clear()
    release.clear()
    failed = threading.Thread(target=pytest.raises, args=(OSError, lm.shared_load, ("k", 2), failing_slow_load))
    failed.start()
    loading.wait(10)
    threading.Timer(0.2, release.set).start()
    with pytest.raises(OSError, match="failed here"):  # waited for the other thread, then its own try
        lm.shared_load(("k", 2), lambda: failing_load("here"))
    failed.join()
    assert loads[1:] == ["ahead", "here"]


def test_statistics_scored_ahead_are_handed_out_once_in_order():
    import threading

    from detector.lm.language_model import LanguageModel

    lm = LanguageModel.__new__(LanguageModel)  # the bookkeeping only: a fake LM pass
    lm._ahead, lm._ahead_lock, passes = {}, threading.Lock(), []

    def fake_pass(texts, progress=False):
        passes.append(list(texts))
        return [stats([-float(len(t))]) for t in texts]

    lm._token_stats = fake_pass
    lm.score_ahead(["bb", "a", "bb"])
    assert passes == [["bb"], ["a"]]  # one text per pass, each once
    got = lm.token_stats(["a", "ccc", "a", "bb"])
    assert passes[2:] == [["ccc"]] and [s.logp[0] for s in got] == [-1.0, -3.0, -1.0, -2.0]
    lm.token_stats(["a"])
    assert passes[3:] == [["a"]]  # handed out once: computed again when asked again
    stop = threading.Event()
    stop.set()
    lm.score_ahead(["dddd"], stop)
    assert passes[4:] == []
