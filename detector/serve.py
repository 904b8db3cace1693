"""`detector serve`: a local web page and a JSON API around one loaded detector.

One process, one ASGI app. The model and its LM are loaded once at start; a single worker thread owns
them. Requests wait in a bounded queue; the worker takes whatever is waiting (up to `batch_texts`
texts) and scores it in one LM call, so concurrent requests share LM batches but nothing else: each
gets its own records back, no cache is kept between requests (the on-disk token-statistics cache is
switched off), and no text is logged unless `log_texts` is set.

Bad requests get a 4xx with a one-line JSON reason, {"error": "..."}: 400 malformed (not UTF-8, not
JSON), 401 missing/wrong token, 413 over a limit (body bytes, number of texts, characters per text),
415 unknown content type, 422 wrong types or empty text; 503 with Retry-After when the queue is full,
504 when a request waited longer than its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import ipaddress
import json
import logging
import math
import os
import queue
import socket
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from detector import inputs, report
from detector.detector import Detector
from detector.errors import UserError, first_line
from detector.settings import TOKEN_ENV

log = logging.getLogger("detector.serve")

SHUTDOWN_WAIT_S = 10.0  # at exit, how long a batch in progress may finish
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
# The page and the docs load nothing from elsewhere; the browser enforces it.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class ServeError(UserError):
    """The server cannot start as asked (exposed without a token, port taken): one line, exit 2."""


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # required (Authorization: Bearer) on every API call when set
    max_body_bytes: int = 1 << 20
    max_texts: int = 64  # per request
    max_chars: int = 100_000  # per text; the LM reads the first 1,024 tokens anyway
    queue_size: int = 64  # requests waiting for the worker; more -> 503
    timeout_s: float = 60.0  # a request's wait for its result; longer -> 504
    batch_texts: int = 16  # texts the worker puts into one LM call
    batch_wait_s: float = 0.05  # how long the worker waits for more requests to fill a batch
    retry_after_s: int = 5
    log_texts: bool = False


# ----------------------------------------------------------------------------------------- safety


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Binding anything but loopback needs a token: without one, anyone on the network could use it."""
    if not is_loopback(host) and not token:
        raise ServeError(f"--host {host} makes the server reachable from other machines: give --token TOKEN "
                         f"(or set {TOKEN_ENV}) so every API call must carry it")


def token_ok(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the token (always true when no token is set)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


# ----------------------------------------------------------------------------------------- requests


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class ScoreRequest(BaseModel):
    """One text or a list of texts; `explain` adds per-sentence scores and the top features."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str | None = None
    texts: list[str] | None = None
    explain: bool = False


class RenderRequest(BaseModel):
    """One text, rendered as the page shows it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str


class ScoreRecord(BaseModel):
    """One scored text: the record `detector score --format json` writes."""

    source: str
    p_machine: float | None
    verdict: Literal["machine", "human", "uncertain"]
    reason: str
    n_tokens: int
    altered: dict[str, int]
    explanation: dict | None = None
    note: str | None = None


class RenderAnswer(BaseModel):
    result: ScoreRecord
    html: str


class ErrorAnswer(BaseModel):
    error: str


def _one_line(err: ValidationError | RequestValidationError) -> str:
    errors = err.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {int(declared)} bytes is over the limit of {limit} bytes (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # stop reading: a body without Content-Length is bounded too
            raise ApiError(413, f"body is over the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_text(text: str, where: str, max_chars: int) -> None:
    if not text:
        raise ApiError(422, f"{where} is empty")
    if not text.strip():
        raise ApiError(422, f"{where} is whitespace only, nothing to score")
    if len(text) > max_chars:
        raise ApiError(413, f"{where} has {len(text)} characters, over the limit of {max_chars} (--max-chars)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # JSON can spell lone surrogates ("\ud800"), which are not text
        raise ApiError(400, f"{where} is not valid Unicode (lone surrogate at character {err.start})") from err


@dataclass
class Parsed:
    texts: list[str]
    sources: list[str]
    notes: list[str | None]
    explain: bool
    single: bool  # {"text": ...} or a plain-text body: answer one record, not a list


async def parse_request(request: Request, config: ServeConfig, model: type[BaseModel] = ScoreRequest) -> Parsed:
    """The request body -> texts, with every problem as an ApiError (never a traceback)."""
    raw = await _read_body(request, config.max_body_bytes)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    explain = request.query_params.get("explain", "false").lower() in ("1", "true", "yes")
    if kind in ("text/plain", "application/octet-stream"):
        # A file's bytes, decoded exactly as `detector score FILE` decodes them.
        item = inputs.decode(raw, request.query_params.get("source", "body"))
        if item.error:
            status = 422 if item.error.startswith(("empty", "whitespace")) else 400
            raise ApiError(status, f"body: {item.error}")
        _check_text(item.text, "body", config.max_chars)
        return Parsed([item.text], [item.source], [item.note], explain, True)
    if kind != "application/json":
        raise ApiError(415, f"content type {kind} not understood: send application/json or text/plain")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"body is not UTF-8 (invalid byte 0x{raw[err.start]:02x} at offset {err.start})") from err
    try:
        data = json.loads(decoded)
    except json.JSONDecodeError as err:
        raise ApiError(400, f"body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from err
    try:
        body = model.model_validate(data)
    except ValidationError as err:
        raise ApiError(422, _one_line(err)) from err
    if isinstance(body, RenderRequest):
        texts, single, explain = [body.text], True, True
    elif (body.text is None) == (body.texts is None):
        raise ApiError(422, 'give either "text" (one string) or "texts" (a list of strings)')
    else:
        single = body.text is not None
        texts = [body.text] if single else body.texts
        explain = explain or body.explain
    if not texts:
        raise ApiError(422, "texts is an empty list")
    if len(texts) > config.max_texts:
        raise ApiError(413, f"{len(texts)} texts in one request, over the limit of {config.max_texts} (--max-texts)")
    sources = ["text"] if single else [f"texts[{i}]" for i in range(len(texts))]
    for text, source in zip(texts, sources, strict=True):
        _check_text(text, source, config.max_chars)
    return Parsed(texts, sources, [None] * len(texts), explain, single)


# ----------------------------------------------------------------------------------------- batching


@dataclass
class Job:
    parsed: Parsed
    render: bool
    future: asyncio.Future


def _finite(value: Any) -> Any:
    """JSON has no NaN: missing numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _failed(err: Exception) -> ApiError:
    first = first_line(err)
    return ApiError(500, f"scoring failed: {first}")


class _Worker:
    """One daemon thread running the scoring calls. Unlike a ThreadPoolExecutor's thread, a batch still in
    progress at exit does not hold the process (a long batch on a busy machine takes minutes)."""

    def __init__(self):
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="detector-worker", daemon=True)
        self.thread.start()

    def run(self, fn, arg) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.calls.put((fn, arg, loop, future))
        return future

    async def stop(self, wait_s: float) -> bool:
        """Finish the call in progress (waiting at most wait_s); False if it is still running."""
        self.calls.put(None)
        await asyncio.to_thread(self.thread.join, wait_s)
        return not self.thread.is_alive()

    def _loop(self) -> None:
        while (call := self.calls.get()) is not None:
            fn, arg, loop, future = call
            try:
                outcome, failed = fn(arg), False
            except Exception as err:
                outcome, failed = err, True
            with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, outcome, failed)


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if not future.done():
        (future.set_exception if failed else future.set_result)(outcome)


class Scorer:
    """Owns the detector: one worker thread, fed by a bounded queue, batches what is waiting."""

    def __init__(self, detector: Detector, config: ServeConfig):
        self.detector = detector
        self.config = config
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=config.queue_size)
        self.worker = _Worker()
        self.task: asyncio.Task | None = None
        self.stopped = False  # the worker thread has ended

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        while not self.queue.empty():  # waiting requests get an answer, not a dropped connection
            job = self.queue.get_nowait()
            _settle(job.future, ApiError(503, "shutting down", {"Retry-After": str(self.config.retry_after_s)}),
                    True)
        self.stopped = await self.worker.stop(SHUTDOWN_WAIT_S)

    async def submit(self, parsed: Parsed, render: bool = False) -> Any:
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(parsed, render, future))
        except asyncio.QueueFull:
            raise ApiError(503, f"busy: {self.config.queue_size} requests are already waiting; retry later",
                           {"Retry-After": str(self.config.retry_after_s)}) from None
        try:
            # On timeout the future is cancelled, so the worker skips the job if it has not started it.
            return await asyncio.wait_for(future, self.config.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"not scored within {self.config.timeout_s:g} s (--timeout); "
                                "retry with fewer or shorter texts") from None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            n_texts = len(batch[0].parsed.texts)
            # Linger a moment for more: clients just answered send their next request within milliseconds,
            # and without the wait batches alternate between one text and the rest.
            deadline = loop.time() + self.config.batch_wait_s
            while n_texts < self.config.batch_texts:
                if self.queue.empty():
                    try:
                        job = await asyncio.wait_for(self.queue.get(), max(deadline - loop.time(), 0))
                    except asyncio.TimeoutError:
                        break
                else:
                    job = self.queue.get_nowait()
                batch.append(job)
                n_texts += len(job.parsed.texts)
            batch = [job for job in batch if not job.future.done()]  # timed out while waiting
            if not batch:
                continue
            try:
                outcomes = await self.worker.run(self._run, batch)
            except Exception as err:  # keep draining: a dead worker would leave every request to time out
                log.exception("the worker failed")
                outcomes = [_failed(err)] * len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    # ----- in the worker thread -----

    def _run(self, batch: list[Job]) -> list[Any]:
        """One LM pass over all texts of the batch; if it fails, each job alone, so one cannot sink another."""
        started = time.perf_counter()
        try:
            analyses = self.detector.analyse([t for job in batch for t in job.parsed.texts])
        except Exception:
            log.exception("batch of %d requests failed; scoring them one by one", len(batch))
            return [self._run_alone(job) for job in batch]
        outcomes, at = [], 0
        for job in batch:
            n = len(job.parsed.texts)
            try:
                outcomes.append(self._answer(job, analyses[at : at + n]))
            except Exception as err:
                log.exception("answering a request failed")
                outcomes.append(_failed(err))
            at += n
        log.info("scored %d texts from %d requests in %.2f s", at, len(batch), time.perf_counter() - started)
        return outcomes

    def _run_alone(self, job: Job) -> Any:
        try:
            return self._answer(job, self.detector.analyse(job.parsed.texts))
        except Exception as err:
            return _failed(err)

    def _answer(self, job: Job, analyses: list) -> Any:
        from detector.html_report import document_context, render_fragment

        parsed = job.parsed
        results = self.detector.results(analyses, explain=parsed.explain)
        records = [_finite(report.record(inputs.Item(source, text, note=note), result))
                   for source, text, note, result in zip(parsed.sources, parsed.texts, parsed.notes, results,
                                                         strict=True)]
        if self.config.log_texts:  # asked for: the text and its verdict, for an audit trail
            for text, record in zip(parsed.texts, records, strict=True):
                log.info("text %s -> %s %s", json.dumps(text, ensure_ascii=False), record["verdict"],
                         record["p_machine"])
        if job.render:
            doc = document_context(parsed.sources[0], analyses[0], results[0], self.detector.model, tokens=True,
                                   note=parsed.notes[0])
            return {"result": records[0], "html": render_fragment([doc])}
        return records[0] if parsed.single else records


# ----------------------------------------------------------------------------------------- the app


def describe(detector: Detector, location: str | None) -> dict:
    """What /health reports: model, LM, engine, thresholds."""
    import torch

    model = detector.model
    extractor = model.extractor
    lm = model.scoring_engine.language_model()
    card = model.card
    return {
        "model": {"location": location or "default (shipped)", "name": card.name,
                  "trained": card.trained, "classifier": card.classifier,
                  "feature_version": card.feature_version},
        "lm": {"name": lm.name, "revision": lm.revision, "max_tokens": lm.max_tokens, "window": lm.window},
        "engine": {"name": extractor.engine_name, "device": extractor.device, "dtype": extractor.dtype,
                   "trained_with": card.engine, "torch": torch.__version__,
                   "threads": torch.get_num_threads()},
        "thresholds": asdict(model.thresholds),
    }


def _template(name: str) -> str:
    return resources.files("detector").joinpath("templates", name).read_text(encoding="utf-8")


def create_app(detector: Detector, config: ServeConfig, location: str | None = None) -> FastAPI:
    """The ASGI app; the detector should be loaded (the server warms its LM before listening)."""
    from detector.html_report import templates

    detector.model.extractor.set_params(cache=None)  # nothing stored between requests
    info = describe(detector, location)
    state: dict[str, Scorer] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scorer = Scorer(detector, config)
        scorer.start()
        state["scorer"] = app.state.scorer = scorer
        yield
        await scorer.stop()

    app = FastAPI(
        title="mgt-detector", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Score how likely texts are machine-generated: p(machine), a verdict and its reason. "
                    "Errors are {\"error\": \"one line\"}. With a token, send `Authorization: Bearer TOKEN`.",
    )
    if is_loopback(config.host):  # a page on another site cannot reach us through DNS rebinding
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"])

    async def authorized(request: Request) -> None:
        if not token_ok(request.headers.get("authorization"), config.token):
            raise ApiError(401, "missing or wrong token: send Authorization: Bearer TOKEN",
                           {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _one_line(err)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    errors = {code: {"model": ErrorAnswer, "description": text} for code, text in (
        (400, "not UTF-8 or not JSON"), (401, "missing or wrong token"), (413, "over a limit"),
        (415, "unknown content type"), (422, "wrong types or empty text"), (503, "queue full (see Retry-After)"),
        (504, "timed out"))}
    body_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": ScoreRequest.model_json_schema()},
        "text/plain": {"schema": {"type": "string"}, "description": "one text (e.g. a file's bytes), decoded "
                                                                    "as `detector score` decodes files"}}}}

    @app.post("/v1/score", dependencies=[Depends(authorized)], openapi_extra=body_doc,
              responses={200: {"model": ScoreRecord | list[ScoreRecord]}, **errors})
    async def score(request: Request) -> JSONResponse:
        """Score `{"text": ...}` (one record back) or `{"texts": [...]}` (a list of records).

        The records are those of `detector score --format json`. `"explain": true` (or `?explain=true`)
        adds per-sentence scores and the top features. A text/plain body is one text, e.g. a file's
        bytes (`?source=NAME` names it)."""
        parsed = await parse_request(request, config)
        return JSONResponse(await state["scorer"].submit(parsed))

    render_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": RenderRequest.model_json_schema()},
        "text/plain": {"schema": {"type": "string"}}}}}

    @app.post("/v1/render", dependencies=[Depends(authorized)], openapi_extra=render_doc,
              responses={200: {"model": RenderAnswer}, **errors})
    async def render(request: Request) -> JSONResponse:
        """One text, explained, with the HTML view the page shows (the `--html` report's template)."""
        parsed = await parse_request(request, config, RenderRequest)
        parsed.explain = True  # the view shows the top features
        return JSONResponse(await state["scorer"].submit(parsed, render=True))

    @app.get("/health", dependencies=[Depends(authorized)], responses={401: errors[401]})
    async def health() -> dict:
        """The model, its LM, the engine, the verdict thresholds, the limits and the queue."""
        scorer = state["scorer"]
        limits = {k: getattr(config, k) for k in ("max_body_bytes", "max_texts", "max_chars", "queue_size",
                                                  "timeout_s", "batch_texts", "batch_wait_s")}
        return {"status": "ok", **info, "limits": limits, "queue": {"waiting": scorer.queue.qsize()},
                "token_required": bool(config.token)}

    page_headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        html = templates().get_template("page.html.j2").render(token_required=bool(config.token), info=info,
                                                               config=config)
        return HTMLResponse(html, headers=page_headers)

    page_js = _template("page.js")

    @app.get("/page.js", include_in_schema=False)
    async def script() -> Response:
        return Response(page_js, media_type="text/javascript", headers=page_headers)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        html = templates().get_template("docs.html.j2").render(api=app.openapi(), dumps=_pretty)
        return HTMLResponse(html, headers=page_headers)

    return app


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# ----------------------------------------------------------------------------------------- running


def _listen(host: str, port: int) -> socket.socket:
    """Bind before loading the model, so a taken port is said at once, in one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        raise ServeError(f"cannot listen on {host}:{port} ({err.strerror or err})") from err
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(location: str | None, config: ServeConfig, device: str | None = None, dtype: str | None = None,
          engine: str | None = None, tracking_uri: str | None = None) -> int:
    """Load once, then serve until Ctrl-C."""
    import signal

    import uvicorn

    # The CLI lets SIGPIPE end `detector score | head` quietly; a server must outlive a client hanging up.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    check_exposure(config.host, config.token)
    sock = _listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    detector = Detector.load(location, engine=engine, dtype=dtype, tracking_uri=tracking_uri)
    if device:
        detector.model.extractor.set_params(device=device)
    app = create_app(detector, config, location)  # switches the stats cache off and loads the LM
    detector.score(["Loading the language model before the first request."])  # warm: no slow first answer
    logging.getLogger("detector.serve").setLevel(logging.INFO)
    shown = f"[{host}]" if ":" in host else host
    log.info("serving on http://%s:%d/ (API /v1/score, docs /docs%s)", shown, port,
             ", token required" if config.token else "")
    logs = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    logs["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout stays free; access lines carry no text
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", log_config=logs, timeout_graceful_shutdown=10))
    server.run(sockets=[sock])
    if not app.state.scorer.stopped:
        # A batch is still in the LM (minutes on a busy machine): leave without it. A normal exit would
        # tear the interpreter down under the running torch thread, which aborts the process.
        log.warning("a batch was still being scored at exit; left unfinished")
        sys.stderr.flush()
        os._exit(0)
    return 0
