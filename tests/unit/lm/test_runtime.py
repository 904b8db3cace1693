"""Which runtime runs the LM: the stats key, the fastest runtime kept only when its statistics agree,
the choice remembered, one LM load shared by threads, statistics scored ahead handed out once."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.core import settings
from detector.lm import runtime
from detector.lm.token_stats import TokenStats


def test_the_stats_key_defaults_to_the_settings_window_and_engine():
    from detector.lm import engines

    key = engines.stats_key("rev", "bfloat16", 512)
    assert key == engines.stats_key("rev", "bfloat16", 512, settings.WINDOW, settings.DEFAULT_ENGINE)
    assert f"|w{settings.WINDOW}|" in key


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
