"""The server's pure parts, without an LM: the framework as an optional extra, deadlines and the pace
estimate, and the bound on how much of a text the detector reads (which bounds a pathological text's time)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from conftest import MINI, SEED

from detector.integrations.serve.body import Parsed
from detector.integrations.serve.jobs import MARGIN, Job, Pace
from detector.text.normalize import MAX_READ_CHARS, normalize
from detector_cli.main import main


def test_serve_without_its_extra_says_what_to_install(monkeypatch, capsys):
    serve = "detector.integrations.serve"
    for name in [m for m in sys.modules if m == serve or m.startswith(serve + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ModuleNotFoundError
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'mgt-detector[serve]'" in err and "fastapi" in err


def job(texts: list[str], seconds_left: float) -> Job:
    parsed = Parsed(texts, [f"texts[{i}]" for i in range(len(texts))], [None] * len(texts), False, False)
    return Job(parsed, False, asyncio.Future(loop=asyncio.new_event_loop()), time.monotonic() + seconds_left)


def test_a_job_is_hopeless_only_when_its_deadline_cannot_be_met():
    pace = Pace()
    short, long = ["x" * 100], ["x" * 50_000]
    assert not pace.hopeless(job(long, 0.5))  # nothing known yet: only a passed deadline is hopeless
    assert pace.hopeless(job(short, -0.1))
    pace.learn(["y" * Pace.LM_CHARS], 1.0)  # one text the LM reads to its end took a second
    assert pace.seconds(long) == pytest.approx(1.0)  # the LM reads the same part of any long text
    assert pace.seconds(short) < pace.seconds(long)
    assert not pace.hopeless(job(long, MARGIN * 1.0 + 0.2))
    assert pace.hopeless(job(long, MARGIN * 1.0 - 0.2))
    pace.learn(["y" * Pace.LM_CHARS], 3.0)  # slower now: the estimate moves towards it, not all the way
    assert 1.0 < pace.seconds(long) < 3.0


def test_the_detector_reads_a_bounded_prefix_of_a_text():
    sentence = "The committee met again on Tuesday and agreed on nothing at all. "
    text = sentence * (3 * MAX_READ_CHARS // len(sentence))
    read = normalize(text)
    assert read.text == text[:MAX_READ_CHARS] and read.unread == len(text) - MAX_READ_CHARS
    assert not read.altered  # not an evasion: said apart in the reason
    assert normalize(read.text).text == read.text and normalize(read.text).unread == 0
    # Pathological texts: each step after normalisation sees at most MAX_READ_CHARS characters.
    for pathological in ("a" * 100_000, "a!" * 50_000, "a" + "\u0301" * 99_999, "word " * 20_000):
        assert len(normalize(pathological).text) <= MAX_READ_CHARS


def test_ordinary_texts_are_read_whole():
    """The seed and the fixture texts are far below the bound: what they score cannot change."""
    texts = [SEED.read_text(encoding="utf-8")] + [line for line in MINI.read_text(encoding="utf-8").splitlines()]
    assert max(map(len, texts)) < MAX_READ_CHARS / 4
    for text in texts:
        assert normalize(text).unread == 0



class Timed:
    """A detector without an LM on a fake clock: each text's LM pass takes `seconds[text]`; it records the
    order of LM passes and classifier calls."""

    def __init__(self, seconds: dict[str, float], clock: list[float]):
        self.seconds, self.clock, self.events = seconds, clock, []

    def analyse(self, texts):
        self.events.append(("analyse", *texts))
        self.clock[0] += sum(self.seconds[t] for t in texts)
        return list(texts)

    def results(self, analyses, explain=False):
        self.events.append(("results", *analyses))
        return list(analyses)


def run_batch(monkeypatch, seconds: dict[str, float], texts: list[str], known_pace: bool) -> list[tuple]:
    from detector.integrations.serve import answers
    from detector.integrations.serve.answers import FLUSH_S
    from detector.integrations.serve.config import ServeConfig

    clock = [0.0]
    monkeypatch.setattr(answers.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(answers, "answer", lambda detector, config, job, analyses, results: results)
    detector, pace, loop = Timed(seconds, clock), Pace(), asyncio.new_event_loop()
    if known_pace:
        pace.seconds_per_unit = 1.5 * FLUSH_S / Pace.units(["x" * Pace.LM_CHARS])  # a text read whole: 3 s
    jobs = [job([text], 1e9) for text in texts]
    for one in jobs:
        one.future = loop.create_future()
    answers.score_batch((detector, ServeConfig(), pace, jobs, loop))
    loop.run_until_complete(asyncio.sleep(0))  # the settled answers arrive
    assert [one.future.result() for one in jobs] == [[text] for text in texts]  # each its own answer
    loop.close()
    return detector.events


def test_a_long_text_does_not_hold_up_the_answers_of_its_batchmates(monkeypatch):
    from detector.integrations.serve.answers import FLUSH_S

    short, long = "s" * 100, "l" * Pace.LM_CHARS
    seconds = {short: 0.1, long: 1.5 * FLUSH_S, "s2" * 50: 0.1}
    # Before the long one, the short one analysed before it is answered: it does not wait for it.
    assert run_batch(monkeypatch, seconds, [short, long], known_pace=True) == [
        ("analyse", short), ("results", short), ("analyse", long), ("results", long)]
    # Short ones together: one classifier call for the batch, as before.
    assert run_batch(monkeypatch, seconds, [short, "s2" * 50], known_pace=True) == [
        ("analyse", short), ("analyse", "s2" * 50), ("results", short, "s2" * 50)]
    # Before any pace is known, the time spent so far decides: after the long pass, the next is answered apart.
    assert run_batch(monkeypatch, seconds, [long, short, "s2" * 50], known_pace=False) == [
        ("analyse", long), ("results", long), ("analyse", short), ("analyse", "s2" * 50), ("results", short, "s2" * 50)]
