"""Starting the server: bind the socket first, load and warm the detector, run uvicorn, leave cleanly."""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import sys

import uvicorn

from detector.core.errors import ServeError
from detector.facade.detector import Detector
from detector.integrations.serve.app import create_app
from detector.integrations.serve.config import ServeConfig
from detector.integrations.serve.security import check_exposure

log = logging.getLogger("detector.integrations.serve")


def listen(host: str, port: int) -> socket.socket:
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
          engine: str | None = None, profile: str | None = None, tracking_uri: str | None = None) -> int:
    """Load once, then serve until Ctrl-C."""
    # The CLI lets SIGPIPE end `detector score | head` quietly; a server must outlive a client hanging up.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    check_exposure(config.host, config.token)
    sock = listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    detector = Detector.load(location, engine=engine, dtype=dtype, profile=profile, tracking_uri=tracking_uri)
    if device:
        detector.model.set_lm(device=device)
    app = create_app(detector, config, location)  # switches the stats cache off and loads the LM
    detector.score(["Loading the language model before the first request."])  # warm: no slow first answer
    logging.getLogger("detector.integrations.serve").setLevel(logging.INFO)
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
