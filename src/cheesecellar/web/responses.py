"""Small HTTP helpers shared by the routes: headers, errors, ranges, content types."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO

import bottle
from bottle import HTTPResponse, request

from ..errors import CheesecellarError

log = logging.getLogger("cheesecellar.web")

TEXT = "text/plain; charset=utf-8"


def _reason(message: str) -> str:
    # The reason phrase must be one line of latin-1: no header injection through messages.
    cleaned = "".join(ch if ch.isprintable() and ord(ch) < 256 else "?" for ch in message)
    return cleaned[:200]


def error_response(status: int, message: str, **headers: str) -> HTTPResponse:
    phrase = _reason(message) or HTTPStatus(status).phrase
    return HTTPResponse(
        body=message + "\n", status=f"{status} {phrase}", headers={"Content-Type": TEXT, **headers}
    )


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CheesecellarError as exc:
            headers = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="cheesecellar"'
            return error_response(exc.status, str(exc), **headers)

    return wrapper


def header(name: str) -> str | None:
    """A request header as the server passed it (latin-1 text): Bottle's get_header decodes
    UTF-8 and fails on other bytes."""
    value = request.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


# RFC 9110 §14.1.2: a byte-range set; anything else in a Range header is ignored (§14.2).
_BYTE_RANGES = re.compile(r"^bytes=\s*\d*-\d*(\s*,\s*\d*-\d*)*\s*\Z")


def check_range(path: Path) -> HTTPResponse | None:
    """416 for a byte range that is valid but unsatisfiable; other odd ranges are ignored."""
    header = request.environ.get("HTTP_RANGE")
    if header is None:
        return None
    if not _BYTE_RANGES.match(header):
        del request.environ["HTTP_RANGE"]  # an unknown unit or garbage: send the whole file
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None  # static_file answers for a missing file
    if list(bottle.parse_range_header(header, size)):
        return None
    return error_response(416, "Range Not Satisfiable", **{"Content-Range": f"bytes */{size}"})


def text_response(message: str) -> HTTPResponse:
    return HTTPResponse(body=message + "\n", headers={"Content-Type": TEXT})


def chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(64 * 1024):
            yield chunk


def content_type(filename: str) -> str:
    if filename.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if filename.endswith(".zip"):
        return "application/zip"
    if filename.endswith(".tar.bz2"):
        return "application/x-bzip2"
    if filename.endswith(".tar.xz"):
        return "application/x-xz"
    return "application/octet-stream"


def error_page(error: bottle.HTTPError) -> str:
    bottle.response.content_type = TEXT
    if error.status_code >= 500:
        log.error("internal error: %s", error.traceback or error.body)
        return "Internal server error.\n"
    return f"{error.status_line}\n"
