"""`detector serve`: a local web page and a JSON API around one loaded detector.

One process, one ASGI app. The model and its LM are loaded once at start; a single worker thread owns
them. Requests wait in a bounded queue, each with its deadline (`timeout_s` from its arrival); the worker
takes whatever is waiting (up to `batch_texts` texts), skips what can no longer make its deadline, and runs
the features and the classifier once per batch (or per part of one, so that no request waits more than ~2 s
for its batchmates' LM passes: `answers.FLUSH_S`). Each request gets its own records back, the same as
`Detector.score` gives for its texts alone; no cache is kept between requests (the on-disk
token-statistics cache is switched off), and no text is logged unless `log_texts` is set.

Bad requests get a 4xx with a one-line JSON reason, {"error": "..."}: 400 malformed (not UTF-8, not
JSON), 401 missing/wrong token, 413 over a limit (body bytes, number of texts, characters per text),
415 unknown content type, 422 wrong types or empty text; 503 with Retry-After when the queue is full,
504 when a request could not be answered by its deadline.

The modules, one job each: `config` (settings), `security` (who may call), `schemas` (request and answer
shapes), `body` (body -> texts, limits), `jobs` (deadlines, pace), `worker` (the thread), `scorer` (the
queue and its batches), `answers` (the detector calls, in the thread), `app` (routes), `startup`
(socket, uvicorn). fastapi and uvicorn come with the `serve` extra.
"""

from detector.core.errors import ServeError
from detector.integrations.serve.config import TOKEN_ENV, ServeConfig
from detector.integrations.serve.security import check_exposure, is_loopback, token_ok

# The web framework is the `serve` extra: without it, `detector serve` says so in one line.
FRAMEWORK = ("fastapi", "uvicorn", "starlette", "pydantic")
try:
    from detector.integrations.serve.app import create_app
    from detector.integrations.serve.startup import serve
except ModuleNotFoundError as err:
    if (err.name or "").split(".")[0] not in FRAMEWORK:
        raise
    raise ServeError(f"detector serve needs {err.name}, which is not installed: "
                     "pip install 'mgt-detector[serve]'") from err

__all__ = ["TOKEN_ENV", "ServeConfig", "ServeError", "check_exposure", "create_app", "is_loopback", "serve",
           "token_ok"]
