"""The server's settings and its start-up error: plain data, no web framework."""

from __future__ import annotations

from dataclasses import dataclass

TOKEN_ENV = "DETECTOR_TOKEN"


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # required (Authorization: Bearer) on every API call when set
    max_body_bytes: int = 1 << 20
    max_texts: int = 64  # per request
    max_chars: int = 100_000  # per text; the detector reads the first lengths.MAX_READ_CHARS of it
    queue_size: int = 64  # requests waiting for the worker; more -> 503
    timeout_s: float = 60.0  # a request's deadline, from its arrival; past it -> 504
    batch_texts: int = 16  # texts the worker takes from the queue at once (one features/classifier call)
    batch_wait_s: float = 0.05  # how long the worker waits for more requests to fill a batch
    retry_after_s: int = 5
    log_texts: bool = False
