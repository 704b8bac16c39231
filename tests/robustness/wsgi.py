"""An in-process WSGI client for the real app, and the upload forms it sends.

`Wsgi` builds PEP 3333 environs as waitress does and checks on every response the invariants
every answer must keep: no 5xx, no control characters in the status line or any header (no
CR/LF injection), and a text/plain body on every error.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from .archives import Dist
from .support import sha256

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


_CONTROL = {chr(c) for c in range(32)} - {"\t"} | {"\x7f"}
_TOKEN = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_headers(status_line: str, headers: Sequence[tuple[str, str]]) -> None:
    """No CR/LF or other control characters anywhere in the status line or the headers."""
    assert isinstance(status_line, str), status_line
    assert not (_CONTROL & set(status_line)), f"control character in status {status_line!r}"
    status_line.encode("latin-1")
    for name, value in headers:
        assert isinstance(name, str) and isinstance(value, str), (name, value)
        assert name and set(name) <= _TOKEN, f"bad header name {name!r}"
        assert not (_CONTROL & set(value)), f"control character in header {name}: {value!r}"
        value.encode("latin-1")


def make_environ(
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    path_info: str | None = None,
    content_length: int | None = None,
    stream: Any = None,
) -> dict[str, Any]:
    """A PEP 3333 environ as waitress builds it: PATH_INFO is the %-decoded path, in latin-1.

    *target* is the request target as sent on the wire; *path_info* overrides the decoded path
    (a server that passes it on undecoded).
    """
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info
        if path_info is not None
        else unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream if stream is not None else io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    length = content_length if content_length is not None else len(body)
    if length >= 0 and (method in ("POST", "PUT") or body or content_length is not None):
        environ["CONTENT_LENGTH"] = str(length)  # -1: none (a chunked body)
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


def call_wsgi(app: App, environ: dict[str, Any]) -> Reply:
    """Run one request through *app*; checks the status line and headers it starts with."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, list(headers))]
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        # What a server does when it drops the environ; test_request_files_are_closed checks
        # that the app does it itself.
        for item in leftover_files(environ):
            item.close()
    assert started, "the app returned without calling start_response"
    status_line, headers = started[0]
    check_headers(status_line, headers)
    code, _, reason = status_line.partition(" ")
    return Reply(int(code), reason, headers, body)


def leftover_files(environ: dict[str, Any]) -> list[Any]:
    """Files the request's environ still holds open (the body and the form's file parts)."""
    found: list[Any] = []
    for value in environ.values():
        candidates = [value]
        if hasattr(value, "allitems"):  # Bottle's FormsDict of the POST body
            candidates += [getattr(v, "file", None) for _, v in value.allitems()]
        for item in candidates:
            is_file = isinstance(item, io.IOBase | tempfile._TemporaryFileWrapper)
            if is_file and not item.closed and item is not environ["wsgi.errors"]:
                found.append(item)
    return found


class Wsgi:
    """The real app called in-process; every reply is checked against the common invariants."""

    def __init__(self, app: App, host: str = "127.0.0.1:8080", allow: Iterable[int] = ()) -> None:
        self.app = app
        self.host = host
        self.allow = set(allow)  # 5xx statuses a test expects (507 on a full disk)
        self.requests = 0

    def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        environ = make_environ(method, target, body, {"Host": self.host, **(headers or {})}, **kw)
        reply = call_wsgi(self.app, environ)
        self.requests += 1
        check_reply(reply, f"{method} {target[:200]!r}", head=method == "HEAD", allow=self.allow)
        return reply

    def get(self, target: str, headers: dict[str, str] | None = None, **kw: Any) -> Reply:
        return self.request("GET", target, headers=headers, **kw)

    def post(self, form: Form, target: str = "/", headers: dict[str, str] | None = None) -> Reply:
        body, content_type = form.encode()
        return self.request("POST", target, body, {"Content-Type": content_type, **(headers or {})})

    def upload(self, dist: Dist, target: str = "/", headers: dict[str, str] | None = None) -> Reply:
        return self.post(upload_form(dist), target, headers)


def check_reply(reply: Reply, what: str, head: bool = False, allow: Iterable[int] = ()) -> None:
    """No 5xx (unless allowed); an error comes with a text/plain body (a HEAD answer has none)."""
    if reply.status not in allow:
        assert reply.status < 500, f"{what} -> {reply.status} {reply.reason}: {reply.body[:500]!r}"
    if reply.status >= 400:
        assert reply.content_type == "text/plain", (what, reply.status, reply.headers)
        if head:
            assert not reply.body, f"{what}: a HEAD answer with a body"
        else:
            assert reply.body.strip(), f"{what} -> {reply.status} with an empty body"


@dataclass
class Part:
    """One multipart part; *headers* are raw header lines (bytes) when given."""

    name: str | bytes
    value: bytes
    filename: str | bytes | None = None
    content_type: str | None = None
    headers: list[bytes] | None = None

    def head(self) -> bytes:
        if self.headers is not None:
            return b"".join(h + b"\r\n" for h in self.headers)
        name = self.name if isinstance(self.name, bytes) else self.name.encode("utf-8")
        line = b'Content-Disposition: form-data; name="' + name + b'"'
        if self.filename is not None:
            fn = self.filename
            line += b'; filename="' + (fn if isinstance(fn, bytes) else fn.encode("utf-8")) + b'"'
        lines = [line]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}".encode())
        return b"".join(h + b"\r\n" for h in lines)


@dataclass
class Form:
    parts: list[Part] = field(default_factory=list)
    boundary: str = field(default_factory=lambda: uuid.uuid4().hex)
    content_type: str | None = None  # overrides the multipart/form-data header

    def encode(self) -> tuple[bytes, str]:
        sep = b"--" + self.boundary.encode()
        out = [sep + b"\r\n" + p.head() + b"\r\n" + p.value + b"\r\n" for p in self.parts]
        out.append(sep + b"--\r\n")
        ctype = self.content_type or f"multipart/form-data; boundary={self.boundary}"
        return b"".join(out), ctype

    def fields(self, name: str) -> list[Part]:
        return [p for p in self.parts if p.name == name]


def text_parts(fields: Iterable[tuple[str, str]]) -> list[Part]:
    return [Part(name, value.encode("utf-8")) for name, value in fields]


def upload_fields(dist: Dist) -> list[tuple[str, str]]:
    return [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", dist.name),
        ("version", dist.version),
        ("filetype", "bdist_wheel" if dist.filename.endswith(".whl") else "sdist"),
        ("pyversion", "py3" if dist.filename.endswith(".whl") else "source"),
        ("sha256_digest", sha256(dist.data)),
        ("blake2_256_digest", hashlib.blake2b(dist.data, digest_size=32).hexdigest()),
    ]


def upload_form(dist: Dist) -> Form:
    parts = text_parts(upload_fields(dist))
    parts.append(Part("content", dist.data, dist.filename, "application/octet-stream"))
    return Form(parts)


def action_form(action: str, **fields: str) -> Form:
    return Form(text_parts([(":action", action), *fields.items()]))
