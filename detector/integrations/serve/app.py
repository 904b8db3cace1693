"""The ASGI app: routes, their OpenAPI description, the error handlers, the page and /health."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from detector.facade.detector import Detector
from detector.integrations.serve.body import parse_request
from detector.integrations.serve.config import ServeConfig
from detector.integrations.serve.schemas import (
    ApiError,
    ErrorAnswer,
    RenderAnswer,
    RenderRequest,
    ScoreRecord,
    ScoreRequest,
    one_line,
)
from detector.integrations.serve.scorer import Scorer
from detector.integrations.serve.security import LOOPBACK_NAMES, PAGE_HEADERS, is_loopback, token_ok

ERRORS = {code: {"model": ErrorAnswer, "description": text} for code, text in (
    (400, "not UTF-8 or not JSON"), (401, "missing or wrong token"), (413, "over a limit"),
    (415, "unknown content type"), (422, "wrong types or empty text"), (503, "queue full (see Retry-After)"),
    (504, "not scored by its deadline (--timeout)"))}


def describe(detector: Detector, location: str | None) -> dict:
    """What /health reports: model, LM, engine, thresholds."""
    import torch

    model = detector.model
    extractor = model.scoring_engine
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


def _body_doc(schema: type, plain: str | None = None) -> dict:
    text = {"schema": {"type": "string"}, **({"description": plain} if plain else {})}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema.model_json_schema()}, "text/plain": text}}}


def _template(name: str) -> str:
    return resources.files("detector").joinpath("templates", name).read_text(encoding="utf-8")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _error_handlers(app: FastAPI) -> None:
    """Every refusal is {"error": "one line"}: ours, FastAPI's validation and Starlette's (404, 405)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": one_line(err)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)


def create_app(detector: Detector, config: ServeConfig, location: str | None = None) -> FastAPI:
    """The ASGI app; the detector should be loaded (the server warms its LM before listening)."""
    from detector.io.html_report import templates

    detector.model.set_lm(cache=None)  # nothing stored between requests
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
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES))
    _error_handlers(app)

    async def authorized(request: Request) -> None:
        if not token_ok(request.headers.get("authorization"), config.token):
            raise ApiError(401, "missing or wrong token: send Authorization: Bearer TOKEN",
                           {"WWW-Authenticate": "Bearer"})

    @app.post("/v1/score", dependencies=[Depends(authorized)],
              openapi_extra=_body_doc(ScoreRequest, "one text (e.g. a file's bytes), decoded as `detector score` "
                                                    "decodes files"),
              responses={200: {"model": ScoreRecord | list[ScoreRecord]}, **ERRORS})
    async def score(request: Request) -> JSONResponse:
        """Score `{"text": ...}` (one record back) or `{"texts": [...]}` (a list of records).

        The records are those of `detector score --format json`. `"explain": true` (or `?explain=true`)
        adds per-sentence scores and the top features. A text/plain body is one text, e.g. a file's
        bytes (`?source=NAME` names it)."""
        parsed = await parse_request(request, config)
        return JSONResponse(await state["scorer"].submit(parsed))

    @app.post("/v1/render", dependencies=[Depends(authorized)], openapi_extra=_body_doc(RenderRequest),
              responses={200: {"model": RenderAnswer}, **ERRORS})
    async def render(request: Request) -> JSONResponse:
        """One text, explained, with the HTML view the page shows (the `--html` report's template)."""
        parsed = await parse_request(request, config, RenderRequest)
        parsed.explain = True  # the view shows the top features
        return JSONResponse(await state["scorer"].submit(parsed, render=True))

    @app.get("/health", dependencies=[Depends(authorized)], responses={401: ERRORS[401]})
    async def health() -> dict:
        """The model, its LM, the engine, the verdict thresholds, the limits and the queue."""
        limits = {k: getattr(config, k) for k in ("max_body_bytes", "max_texts", "max_chars", "queue_size",
                                                  "timeout_s", "batch_texts", "batch_wait_s")}
        return {"status": "ok", **info, "limits": limits, "queue": {"waiting": state["scorer"].waiting()},
                "token_required": bool(config.token)}

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        html = templates().get_template("page.html.j2").render(token_required=bool(config.token), info=info,
                                                               config=config)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    page_js = _template("page.js")

    @app.get("/page.js", include_in_schema=False)
    async def script() -> Response:
        return Response(page_js, media_type="text/javascript", headers=PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        html = templates().get_template("docs.html.j2").render(api=app.openapi(), dumps=_pretty)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    return app
