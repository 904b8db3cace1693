"""What the API accepts and answers: the request and record models (they make the OpenAPI schema) and the
error every refusal becomes, {"error": "one line"} with its HTTP status."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from detector.io.record import openapi_model


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


ScoreRecord = openapi_model()  # the record `detector score --format json` writes (detector.io.record)


class RenderAnswer(BaseModel):
    result: ScoreRecord
    html: str


class ErrorAnswer(BaseModel):
    error: str


def one_line(err: ValidationError | RequestValidationError) -> str:
    """A validation error as one line: where the first problem is, what it is, and how many more."""
    errors = err.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"
