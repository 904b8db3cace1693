"""In the worker thread: a batch of jobs -> the detector -> each job's answer, settled as soon as it is known.

Each job's texts go through the LM on their own (the LM scores one window per pass anyway), so a job that
would miss its deadline is skipped without holding the others up; the features and the classifier then run
once for the jobs analysed so far (once per `explain` setting): at the batch's end, or earlier when the
next job would keep those waiting longer than `FLUSH_S` (a long text does not hold up its batchmates)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from detector.core.errors import first_line
from detector.facade.detector import Detector
from detector.features.engine import Analysis
from detector.integrations.serve.config import ServeConfig
from detector.integrations.serve.jobs import Job, Pace, too_late
from detector.integrations.serve.schemas import ApiError
from detector.integrations.serve.worker import settle_from_thread
from detector.io import report
from detector.io.decoding import Item

log = logging.getLogger("detector.integrations.serve")

Batch = tuple[Detector, ServeConfig, Pace, list[Job], asyncio.AbstractEventLoop]
# The longest from a job's LM pass starting to its answer (unless its own pass is longer): its batchmates'
# passes after it delay it by no more. A classifier call costs 10-20 ms, so a split per 2 s costs ~1%.
FLUSH_S = 2.0


def finite(value: Any) -> Any:
    """JSON has no NaN: missing numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def failed(err: Exception) -> ApiError:
    return ApiError(500, f"scoring failed: {first_line(err)}")


def score_batch(batch: Batch) -> None:
    """Analyse each job that can still make its deadline, then answer them all (see the module's doc)."""
    detector, config, pace, jobs, loop = batch
    started = time.monotonic()
    analysed: list[tuple[Job, list[Analysis]]] = []  # not yet answered
    waiting_since, texts = started, []
    for job in jobs:
        if pace.hopeless(job):  # its deadline has passed, or will before it could be scored
            settle_from_thread(loop, job.future, too_late(job, config.timeout_s))
            continue
        if analysed and time.monotonic() - waiting_since + pace.seconds(job.parsed.texts) > FLUSH_S:
            _answer(detector, config, analysed, loop)
            analysed = []
        if not analysed:
            waiting_since = time.monotonic()
        try:
            analysed.append((job, detector.analyse(job.parsed.texts)))
            texts += job.parsed.texts
        except Exception as err:  # this job alone: one bad request cannot sink the others
            log.exception("analysing a request failed")
            settle_from_thread(loop, job.future, failed(err))
    _answer(detector, config, analysed, loop)
    if texts:
        pace.learn(texts, time.monotonic() - started)
    log.info("scored %d texts from %d requests in %.2f s", len(texts), len(jobs), time.monotonic() - started)


def _answer(detector: Detector, config: ServeConfig, analysed: list[tuple[Job, list[Analysis]]],
            loop: asyncio.AbstractEventLoop) -> None:
    """Answer the analysed jobs: one classifier call per `explain` setting."""
    for explain in (False, True):
        group = [(job, analyses) for job, analyses in analysed if job.parsed.explain == explain]
        if group:
            _answer_group(detector, config, group, explain, loop)


def _answer_group(detector: Detector, config: ServeConfig, group: list[tuple[Job, list[Analysis]]], explain: bool,
                  loop: asyncio.AbstractEventLoop) -> None:
    """One `results` call for the group's texts; if it fails, each job's own, so one cannot sink another."""
    try:
        results = detector.results([a for _, analyses in group for a in analyses], explain=explain)
    except Exception:
        log.exception("a batch of %d requests failed; answering them one by one", len(group))
        results = None
    at = 0
    for job, analyses in group:
        n = len(analyses)
        try:
            own = results[at : at + n] if results is not None else detector.results(analyses, explain=explain)
            outcome = answer(detector, config, job, analyses, own)
        except Exception as err:
            log.exception("answering a request failed")
            outcome = failed(err)
        settle_from_thread(loop, job.future, outcome)
        at += n


def answer(detector: Detector, config: ServeConfig, job: Job, analyses: list[Analysis], results: list) -> Any:
    """A job's JSON answer: its record (or list of records), or the rendered view for /v1/render."""
    from detector.io.html_report import document_context, render_fragment

    parsed = job.parsed
    records = [finite(report.record(Item(source, text, note=note), result))
               for source, text, note, result in zip(parsed.sources, parsed.texts, parsed.notes, results,
                                                     strict=True)]
    if config.log_texts:  # asked for: the text and its verdict, for an audit trail
        for text, record in zip(parsed.texts, records, strict=True):
            log.info("text %s -> %s %s", json.dumps(text, ensure_ascii=False), record["verdict"], record["p_machine"])
    if job.render:
        doc = document_context(parsed.sources[0], analyses[0], results[0], detector.model, tokens=True,
                               note=parsed.notes[0])
        return {"result": records[0], "html": render_fragment([doc])}
    return records[0] if parsed.single else records
