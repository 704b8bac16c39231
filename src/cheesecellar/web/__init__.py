"""The only Bottle code: the WSGI app, its routes, negotiation and page rendering."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..config import Config
from .app import create_app

__all__ = ["create_app", "quick_requests", "with_access_log"]

log = logging.getLogger("cheesecellar.access")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_access_log(app: WSGIApp) -> WSGIApp:
    """Wrap *app* so that every request is logged on one line (never its headers)."""

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["-"]

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return (
                start_response(code, headers, exc_info)
                if exc_info
                else start_response(code, headers)
            )

        result = app(environ, capture)
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        # Escaped, so a CR/LF or quote in a URL cannot forge a second log line.
        path = path[:300].encode("unicode_escape").decode("ascii").replace('"', '\\"')
        log.info(
            '%s "%s %s" %s %.1fms',
            environ.get("REMOTE_ADDR", "-"),
            environ.get("REQUEST_METHOD", "-"),
            path,
            status[0],
            (time.perf_counter() - started) * 1000,
        )
        return result

    return logged


def quick_requests(config: Config) -> Callable[[dict[str, Any]], bool] | None:
    """The requests this app answers without waiting on anything slow, for a server that runs
    those on its event loop; None when there are none.

    With packages on a local disk and reads open to all, a GET or HEAD touches only that disk
    (a rescan, a wheel's metadata read once) and never checks a password; an object store is
    the network, and a password check (bcrypt) takes a tenth of a second.
    """
    if config.storage or {"list", "download"} & config.authenticate or config.auther:
        return None

    def quick(environ: dict[str, Any]) -> bool:
        return environ["REQUEST_METHOD"] in ("GET", "HEAD")

    return quick
