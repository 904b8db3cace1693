"""Who may reach the server: loopback unless a token is set, the bearer token, the hosts and the page's CSP."""

from __future__ import annotations

import hmac
import ipaddress

from detector.core.errors import ServeError
from detector.integrations.serve.config import TOKEN_ENV

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
# The page and the docs load nothing from elsewhere; the browser enforces it.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


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
