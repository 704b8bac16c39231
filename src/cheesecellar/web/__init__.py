"""The only Bottle code: the WSGI app, its routes, negotiation and page rendering."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from .app import create_app

__all__ = ["create_app", "with_access_log"]

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
