"""Bodies over the configured limit get 413 before anything is stored; request files are closed."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .archives import make_wheel
from .conftest import AppFactory, build_app
from .servers import ServerProcess, read_reply, request_head
from .support import OPEN
from .wsgi import leftover_files, make_environ, upload_form

LIMIT = 1024 * 1024


class CountingInput(io.BytesIO):
    """A wsgi.input that counts what the app read from it."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


def test_declared_length_over_limit_is_refused_unread(make_app: AppFactory) -> None:
    app, state = make_app(max_upload_size=LIMIT)
    dist = make_wheel("big-pkg", "1.0", payload=b"x" * 1000)
    body, ctype = upload_form(dist).encode()
    stream = CountingInput(body)
    declared = 64 * LIMIT
    reply = app.request(
        "POST", "/", headers={"Content-Type": ctype}, content_length=declared, stream=stream
    )
    assert reply.status == 413, (reply.status, reply.body)
    assert stream.taken == 0, f"the app read {stream.taken} bytes of a refused body"
    assert b"too large" in reply.body.lower()
    state.check()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_file_over_limit_is_refused(make_app: AppFactory, framing: str) -> None:
    """A file a little over the limit (the form overhead hides it from a length check)."""
    app, state = make_app(max_upload_size=LIMIT)
    dist = make_wheel("big-pkg", "1.0", payload=bytes(range(256)) * (LIMIT // 256 + 64), compress=0)
    assert LIMIT < len(dist.data) < 2 * LIMIT
    body, ctype = upload_form(dist).encode()
    headers = {"Content-Type": ctype}
    if framing == "chunked":
        headers["Transfer-Encoding"] = "chunked"
        body = (
            b"".join(
                f"{len(body[i : i + 65536]):x}\r\n".encode() + body[i : i + 65536] + b"\r\n"
                for i in range(0, len(body), 65536)
            )
            + b"0\r\n\r\n"
        )
        reply = app.request("POST", "/", body, headers, content_length=-1)
    else:
        reply = app.request("POST", "/", body, headers)
    assert reply.status == 413, (reply.status, reply.body)
    state.check()
    assert app.get("/simple/big-pkg/").status == 404


def test_request_files_are_closed(tmp_path: Path) -> None:
    """The body and file parts a request spools to disk are closed when it ends.

    A server drops them with the environ; left to the garbage collector they raise
    ResourceWarning (an error in this suite) and hold file descriptors meanwhile.
    """
    root = tmp_path / "root"
    root.mkdir()
    app = build_app(root=str(root), **OPEN)
    dist = make_wheel("spool-pkg", "1.0", payload=bytes(range(256)) * 1200, compress=0)
    body, ctype = upload_form(dist).encode()
    environ = make_environ("POST", "/", body, {"Content-Type": ctype})
    started: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[..., None]:
        started.append(status)
        return lambda data: None

    result = app(environ, start_response)
    b"".join(result)
    getattr(result, "close", lambda: None)()
    left = leftover_files(environ)
    names = [getattr(f, "name", repr(f)) for f in left]
    for item in left:
        item.close()
    assert started and started[0].startswith("200"), started
    assert not left, f"files left open after the request: {names}"


@pytest.mark.integration
def test_server_refuses_before_the_body_is_sent(
    tmp_path: Path, servers: Callable[..., ServerProcess]
) -> None:
    """A real server answers 413 to a too-long declared body while the client still sends."""
    root = tmp_path / "root"
    root.mkdir()
    server = servers(root, "-P", ".", "-a", ".", "--max-upload-size", "1M")
    dist = make_wheel("big-pkg", "1.0")
    body, ctype = upload_form(dist).encode()
    declared = 64 * LIMIT
    sock = None
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(request_head("/", ctype, declared))
        sent = 0
        started = time.monotonic()
        chunk = (body + b"\0" * 65536)[:65536]
        for _ in range(4):  # 256 KiB of the 64 MiB
            sock.sendall(chunk)
            sent += len(chunk)
        answer = read_reply(sock, timeout=10)
        waited = time.monotonic() - started
    finally:
        if sock is not None:
            sock.close()
    print(
        f"\nsent {sent} of {declared} declared bytes; answer after {waited:.2f} s: {answer[:80]!r}"
    )
    assert answer, f"no answer within 10 s after {sent} of {declared} bytes: the server waits"
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1:2] == [b"413"], status_line
    assert not [p for p in root.iterdir() if p.name != ".cheesecellar"]
    assert not list((root / ".cheesecellar" / "tmp").iterdir())
    # The server is still fine and the limit still holds for a real upload over it.
    reply = server.upload(
        make_wheel("big-pkg", "2.0", payload=bytes(range(256)) * 5000, compress=0)
    )
    assert reply.status == 413, (reply.status, reply.body)
    ok = make_wheel("big-pkg", "3.0")
    assert server.upload(ok).status == 200
    assert server.listing("big-pkg") == {ok.filename: ok.sha256}
