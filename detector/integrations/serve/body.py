"""A request's body -> the texts to score, within the limits; every problem an ApiError, never a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel, ValidationError

from detector.integrations.serve.config import ServeConfig
from detector.integrations.serve.schemas import ApiError, RenderRequest, ScoreRequest, one_line
from detector.io.decoding import decode, nothing_to_score


@dataclass
class Parsed:
    texts: list[str]
    sources: list[str]
    notes: list[str | None]
    explain: bool
    single: bool  # {"text": ...} or a plain-text body: answer one record, not a list


async def read_body(request: Request, limit: int) -> bytes:
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


def check_text(text: str, where: str, max_chars: int) -> None:
    blank = nothing_to_score(text)
    if blank:
        raise ApiError(422, f"{where} is {blank}")
    if len(text) > max_chars:
        raise ApiError(413, f"{where} has {len(text)} characters, over the limit of {max_chars} (--max-chars)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # JSON can spell lone surrogates ("\ud800"), which are not text
        raise ApiError(400, f"{where} is not valid Unicode (lone surrogate at character {err.start})") from err


def _plain(raw: bytes, request: Request, explain: bool, config: ServeConfig) -> Parsed:
    """A file's bytes, decoded exactly as `detector score FILE` decodes them."""
    item = decode(raw, request.query_params.get("source", "body"))
    if item.error:
        status = 422 if item.error.startswith(("empty", "whitespace")) else 400
        raise ApiError(status, f"body: {item.error}")
    check_text(item.text, "body", config.max_chars)
    return Parsed([item.text], [item.source], [item.note], explain, True)


def _json(raw: bytes, model: type[BaseModel]) -> BaseModel:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"body is not UTF-8 (invalid byte 0x{raw[err.start]:02x} at offset {err.start})") from err
    try:
        data = json.loads(decoded)
    except json.JSONDecodeError as err:
        raise ApiError(400, f"body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ApiError(422, one_line(err)) from err


async def parse_request(request: Request, config: ServeConfig, model: type[BaseModel] = ScoreRequest) -> Parsed:
    """The request body -> texts, with every problem as an ApiError (never a traceback)."""
    raw = await read_body(request, config.max_body_bytes)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    explain = request.query_params.get("explain", "false").lower() in ("1", "true", "yes")
    if kind in ("text/plain", "application/octet-stream"):
        return _plain(raw, request, explain, config)
    if kind != "application/json":
        raise ApiError(415, f"content type {kind} not understood: send application/json or text/plain")
    body = _json(raw, model)
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
        check_text(text, source, config.max_chars)
    return Parsed(texts, sources, [None] * len(texts), explain, single)
