"""The HTTP/1.1 layer of the local server, over real sockets on the loopback interface.

Every test runs against a real HttpServer on a free port, with the app's requests run in the
pool ("pool") and on the event loop ("inline"), since the server runs them either way.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cheesecellar.httpserver import HttpServer, _Connection

LIMIT = 64 * 1024
BIG = bytes(range(256)) * 2048  # 512 KiB: streamed, not held
MID = bytes(range(256)) * 512  # 128 KiB: held whole


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Echoes what it was given, or answers the way its path asks."""
    path = environ["PATH_INFO"]
    if path == "/fail":
        raise RuntimeError("the app broke")
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (BIG[i : i + 10000] for i in range(0, len(BIG), 10000))
    if path == "/mid":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [MID]
    if path == "/big-then-fail":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body() -> Iterator[bytes]:
            yield BIG
            raise RuntimeError("the app broke half-way")

        return body()
    if path.startswith("/file/"):
        start_response("200 OK", [("Content-Length", str(Path(path[5:]).stat().st_size))])
        return environ["wsgi.file_wrapper"](open(path[5:], "rb"))  # noqa: SIM115
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"]))
    body = environ["wsgi.input"].read()
    lines = [
        f"{environ['REQUEST_METHOD']} {environ['SCRIPT_NAME']}|{path}?{environ['QUERY_STRING']}",
        f"length={environ.get('CONTENT_LENGTH')} body={body!r}",
        f"x-test={environ.get('HTTP_X_TEST')} protocol={environ['SERVER_PROTOCOL']}",
    ]
    text = "\n".join(lines).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


class Conn:
    """A client connection that reads responses by their framing, keeping what follows."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"the connection closed early; had {self.buffer[:200]!r}"
        self.buffer += chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._more()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def head(self) -> tuple[bytes, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, *fields = head.split(b"\r\n")
        headers: dict[str, str] = {}
        for field in fields:
            name, _, value = field.decode("latin-1").partition(":")
            assert name.lower() not in headers, f"{name} twice"
            headers[name.lower()] = value.strip()
        return status, headers

    def response(self, method: str = "GET") -> tuple[bytes, dict[str, str], bytes]:
        """One response: status line, headers (lower-case names), body by its framing."""
        status, headers = self.head()
        code = status.split(b" ")[1]
        if method == "HEAD" or code in (b"204", b"304") or code.startswith(b"1"):
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._more()
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line, 16)
                body += self._take(size + 2)[:size]
                if size == 0:
                    return status, headers, body
        return status, headers, self.rest()

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        data, self.buffer = self.buffer, b""
        while chunk := self.sock.recv(65536):
            data += chunk
        return data


class Running:
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.port = server.effective_port
        self.thread = threading.Thread(target=server.run, daemon=True)
        self.thread.start()

    def connect(self) -> Conn:
        return Conn(self.port)

    def exchange(self, raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
        with self.connect() as conn:
            conn.send(raw)
            return conn.response()

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.server.close()


@pytest.fixture(params=["pool", "inline"])
def start(request: pytest.FixtureRequest) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def make(**options: Any) -> Running:
        if request.param == "inline":
            options.setdefault("inline", lambda environ: environ["PATH_INFO"] != "/slow")
        options.setdefault("max_request_body_size", LIMIT)
        server = Running(HttpServer(options.pop("wsgi", app), host="127.0.0.1", **options))
        running.append(server)
        return server

    yield make
    for server in running:
        server.stop()


def echoed(method: str, script: str, path: str, query: str = "") -> bytes:
    return f"{method} {script}|{path}?{query}".encode()


def test_keep_alive_serves_requests_in_turn(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        for n in range(3):
            conn.send(f"GET /a/{n}?q={n} HTTP/1.1\r\nHost: x\r\nX-Test: {n}\r\n\r\n".encode())
            status, headers, body = conn.response()
            assert status == b"HTTP/1.1 200 OK"
            assert (
                body
                == (
                    f"GET |/a/{n}?q={n}\nlength=None body=b''\nx-test={n} protocol=HTTP/1.1"
                ).encode()
            )
            assert headers["content-type"] == "text/plain"
            assert headers["content-length"] == str(len(body))
            assert headers["server"] == "cheesecellar"
            assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"HEAD /three HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        replies = [conn.response(), conn.response(), conn.response("HEAD"), conn.response()]
        assert conn.rest() == b""
    assert [body.split(b"\n")[:2] for _, _, body in replies] == [
        [echoed("GET", "", "/one"), b"length=None body=b''"],
        [echoed("POST", "", "/two"), b"length=3 body=b'abc'"],
        [b""],
        [echoed("GET", "", "/four"), b"length=None body=b''"],
    ]
    # HEAD announces the length of what the app gave for it.
    answer = b"HEAD |/three?\nlength=None body=b''\nx-test=None protocol=HTTP/1.1"
    assert replies[2][1]["content-length"] == str(len(answer))
    assert replies[3][1]["connection"] == "close"


def test_chunked_body_reaches_the_app_decoded(start: Callable[..., Running]) -> None:
    server = start()
    status, _, body = server.exchange(
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    assert status == b"HTTP/1.1 200 OK"
    assert body.split(b"\n")[1] == b"length=11 body=b'hello world'"


def test_a_body_past_the_memory_limit_is_read_back_whole(start: Callable[..., Running]) -> None:
    payload = bytes(range(256)) * 6000  # 1.5 MiB: spooled to a temporary file
    seen: list[bytes] = []

    def reader(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("204 No Content", [])
        return []

    server = start(wsgi=reader, max_request_body_size=2 * 1024 * 1024)
    for framing in ("length", "chunked"):
        if framing == "length":
            raw = b"PUT /x HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
        else:
            pieces = [payload[i : i + 70000] for i in range(0, len(payload), 70000)]
            raw = (
                b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
                + b"0\r\n\r\n"
            )
        status, headers, body = server.exchange(raw)
        assert (status, body) == (b"HTTP/1.1 204 No Content", b"")
        assert "content-length" not in headers
    assert seen == [payload, payload]


def test_expect_100_continue_is_answered_before_the_body(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert conn.head() == (b"HTTP/1.1 100 Continue", {})
        conn.send(b"data")
        status, _, body = conn.response()
    assert status == b"HTTP/1.1 200 OK"
    assert body.split(b"\n")[1] == b"length=4 body=b'data'"


def test_declared_body_over_the_limit_is_refused_unread(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(f"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n".encode())
        status, headers, body = conn.response()
        assert conn.rest() == b""  # and the connection is closed
    assert status == b"HTTP/1.1 413 Content Too Large"
    assert headers["connection"] == "close"
    assert body == b"Request body too large.\n"


def test_chunked_body_over_the_limit_is_refused(start: Callable[..., Running]) -> None:
    server = start()
    piece = b"%x\r\n%s\r\n" % (LIMIT // 2, b"x" * (LIMIT // 2))
    status, _, body = server.exchange(
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + piece * 3
    )
    assert status == b"HTTP/1.1 413 Content Too Large"
    assert body == b"Request body too large.\n"


BAD = b"400 Bad Request"
TOO_LARGE = b"431 Request Header Fields Too Large"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /\r\n\r\n", BAD),
        (b"GET / HTTP/1.1 extra\r\n\r\n", BAD),
        (b"G(T / HTTP/1.1\r\n\r\n", BAD),
        (b"GET / HTTP/2.0\r\n\r\n", b"505 HTTP Version Not Supported"),
        (b"GET / HTTX/1.1\r\n\r\n", BAD),
        (b"GET nopath HTTP/1.1\r\n\r\n", BAD),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", BAD),
        (b"GET / HTTP/1.1\r\nName : x\r\n\r\n", BAD),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", BAD),
        (b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", BAD),
        (b"GET / HTTP/1.1\r\nA: x\ny\r\n\r\n", BAD),
        (b"GET / HTTP/1.1\r\nA: x\x00y\r\n\r\n", BAD),
        (b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", BAD),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", BAD),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            BAD,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            BAD,
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BAD),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501 Not Implemented"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", BAD),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", BAD),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\n",
            b"417 Expectation Failed",
        ),
        (
            b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1\r\n\r\n",
            TOO_LARGE,
        ),
        (
            b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 101 + b"\r\n",
            TOO_LARGE,
        ),
    ],
)
def test_malformed_requests_get_4xx_and_the_connection_ends(
    start: Callable[..., Running], raw: bytes, status: bytes
) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(raw)
        line, headers, body = conn.response()
        assert conn.rest() == b""
    assert line == b"HTTP/1.1 " + status
    assert headers["connection"] == "close"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.endswith(b".\n") and len(body) > 10, body
    # The server goes on serving.
    assert server.exchange(b"GET /ok HTTP/1.1\r\n\r\n")[0] == b"HTTP/1.1 200 OK"


def test_long_bodies_are_streamed_chunked_on_http11(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        for _ in range(2):  # and the connection goes on
            conn.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = conn.response()
            assert status == b"HTTP/1.1 200 OK"
            assert headers["transfer-encoding"] == "chunked"
            assert "content-length" not in headers
            assert body == BIG


def test_long_bodies_end_with_the_connection_on_http10(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(b"GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = conn.response()
    assert status == b"HTTP/1.0 200 OK"
    assert headers["connection"] == "close"
    assert "transfer-encoding" not in headers
    assert body == BIG


def test_http10_keeps_alive_only_when_asked(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert conn.response()[1]["connection"] == "keep-alive"
        conn.send(b"GET /y HTTP/1.0\r\n\r\n")
        status, headers, body = conn.response()
        assert headers["connection"] == "close"
        assert body.startswith(echoed("GET", "", "/y"))
        assert conn.rest() == b""


def test_files_are_sent_whole(start: Callable[..., Running], tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000 + b"end"  # several sends' worth
    (tmp_path / "f.bin").write_bytes(data)
    server = start()
    with server.connect() as conn:
        for _ in range(2):  # and the connection goes on
            conn.send(f"GET /file{tmp_path}/f.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body = conn.response()
            assert status == b"HTTP/1.1 200 OK"
            assert headers["content-length"] == str(len(data))
            assert body == data


def test_an_app_failure_is_a_500_and_the_server_goes_on(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = conn.response()
        assert conn.rest() == b""
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert headers["connection"] == "close"
    assert body == b"Internal server error.\n"
    assert server.exchange(b"GET /ok HTTP/1.1\r\n\r\n")[0] == b"HTTP/1.1 200 OK"


def test_a_failure_after_the_answer_began_drops_the_connection(
    start: Callable[..., Running],
) -> None:
    server = start()
    with server.connect() as conn:
        conn.send(b"GET /big-then-fail HTTP/1.1\r\nHost: x\r\n\r\n")
        data = conn.rest()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n0\r\n\r\n" not in data  # never a complete chunked body
    assert server.exchange(b"GET /ok HTTP/1.1\r\n\r\n")[0] == b"HTTP/1.1 200 OK"


def test_a_slow_upload_holds_up_nobody(start: Callable[..., Running]) -> None:
    """A client that sends its body slowly (or never) keeps no one waiting, even with one
    thread: bodies are read before the app runs."""
    server = start(threads=1)
    with server.connect() as slow:
        slow.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
        for n in range(3):
            status, _, body = server.exchange(f"GET /other/{n} HTTP/1.1\r\n\r\n".encode())
            assert status == b"HTTP/1.1 200 OK"
            assert body.split(b"\n")[0] == echoed("GET", "", f"/other/{n}")
        slow.send(b"x" * 993)
        _, _, body = slow.response()
    assert body.split(b"\n")[1] == b"length=1000 body=b'partial" + b"x" * 993 + b"'"


def test_a_slow_request_in_the_pool_holds_up_no_other(start: Callable[..., Running]) -> None:
    server = start(threads=2)
    with server.connect() as conn:
        conn.send(b"GET /slow?1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.exchange(b"GET /quick HTTP/1.1\r\n\r\n")[0] == b"HTTP/1.1 200 OK"
        assert conn.response()[2].startswith(echoed("GET", "", "/slow", "1"))


def test_idle_connections_are_closed(start: Callable[..., Running]) -> None:
    server = start(idle_timeout=0.4)
    with server.connect() as idle, server.connect() as stalled:
        stalled.send(b"POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        assert idle.rest() == b""  # closed, without an answer
        status, _, body = stalled.response()
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert body == b"Request timed out.\n"


def test_header_names_with_underscores_are_dropped(start: Callable[..., Running]) -> None:
    server = start()
    _, _, body = server.exchange(b"GET /u HTTP/1.1\r\nX_Test: spoofed\r\n\r\n")
    assert body.split(b"\n")[2] == b"x-test=None protocol=HTTP/1.1"
    _, _, body = server.exchange(b"GET /u HTTP/1.1\r\nX-Test: a\r\nx-test: b\r\n\r\n")
    assert body.split(b"\n")[2] == b"x-test=a, b protocol=HTTP/1.1"


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a%20b/%C3%A9?x=%20", "/a b/\xc3\xa9", "x=%20"),  # PATH_INFO: the bytes as latin-1
        (b"//double/slash", "/double/slash", ""),
        (b"/p?q#frag", "/p", "q#frag"),
        (b"/p#frag", "/p", ""),
        (b"http://example.org/abs?q", "/abs", "q"),
        (b"http://example.org", "/", ""),
    ],
)
def test_targets_become_path_info(
    start: Callable[..., Running], target: bytes, path: str, query: str
) -> None:
    server = start()
    _, _, body = server.exchange(b"GET " + target + b" HTTP/1.1\r\n\r\n")
    assert body.split(b"\n")[0] == echoed("GET", "", path, query)


def test_a_url_prefix_is_the_script_name(start: Callable[..., Running]) -> None:
    server = start(url_prefix="/pypi")
    _, _, body = server.exchange(b"GET /pypi/simple/ HTTP/1.1\r\n\r\n")
    assert body.split(b"\n")[0] == echoed("GET", "/pypi", "/simple/")
    _, _, body = server.exchange(b"GET /pypi HTTP/1.1\r\n\r\n")
    assert body.split(b"\n")[0] == echoed("GET", "/pypi", "")
    status, _, body = server.exchange(b"GET /pypix/ HTTP/1.1\r\n\r\n")
    assert status == b"HTTP/1.1 404 Not Found"
    assert body == b"Not found: this server answers under /pypi/.\n"


def test_a_client_that_stops_reading_frees_its_thread(start: Callable[..., Running]) -> None:
    server = start(threads=1, send_timeout=0.5)
    with server.connect() as stuck:
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        # Its answers fill the socket buffers; the thread writing them gives up after 0.5 s
        # and the one thread serves the next client.
        status, _, body = server.exchange(b"GET /big HTTP/1.1\r\n\r\n")
        assert (status, body) == (b"HTTP/1.1 200 OK", BIG)


def test_a_head_sent_a_byte_at_a_time_is_read(start: Callable[..., Running]) -> None:
    server = start()
    with server.connect() as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in b"\r\nGET /slowly?x HTTP/1.1\r\nX-Test: 1\r\n\r\n":
            conn.send(bytes([byte]))
        status, _, body = conn.response()
    assert status == b"HTTP/1.1 200 OK"
    assert body.split(b"\n")[0] == echoed("GET", "", "/slowly", "x")


def test_answers_a_client_does_not_read_are_not_piled_up(start: Callable[..., Running]) -> None:
    """A client that sends request after request and reads nothing makes the server stop
    answering (and reading) once the socket buffers are full, instead of holding every answer
    in memory; when it reads again, it gets every answer, in order."""
    server = start()
    count = 1000  # 1,000 answers of 128 KiB: 125 MiB if they were all held
    with server.connect() as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.send(b"GET /mid HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        held = []
        for _ in range(50):  # bounded: what the server holds settles within a few steps
            time.sleep(0.05)
            held = [
                c.transport.get_write_buffer_size()
                for c in list(server.server.connections)
                if c.transport is not None
            ]
        assert held and max(held) < 16 * 1024 * 1024, held
        for _ in range(count):
            status, _, body = conn.response()
            assert (status, body) == (b"HTTP/1.1 200 OK", MID)


class _Recorder(asyncio.Transport):
    """Stands in for the socket under one connection: keeps what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.mark.parametrize(
    "raw",
    [
        b"\r\n\r\nGET /bytes?x HTTP/1.1\r\nX-Test: 1\r\n\r\n",
        b"POST /bytes?x HTTP/1.1\r\nX-Test: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;a=b\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    ],
)
def test_every_split_of_a_request_reads_the_same(raw: bytes) -> None:
    """The request parsed from every way of cutting its bytes in two, and one byte at a time
    (the order in which a slow network may hand them over)."""
    server = HttpServer(app, host="127.0.0.1", inline=lambda environ: True)
    try:
        cuts = [[raw[:i], raw[i:]] for i in range(1, len(raw))]
        answers = set()
        for pieces in [*cuts, [raw[i : i + 1] for i in range(len(raw))]]:
            connection = _Connection(server)
            transport = _Recorder()
            connection.connection_made(transport)
            for piece in pieces:
                connection.data_received(piece)
            head, _, body = transport.written.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n"), (pieces, head)
            answers.add(body)
        method = raw.strip().split(b" ")[0].decode()
        body = b"length=None body=b''" if method == "GET" else b"length=3 body=b'abc'"
        assert answers == {
            echoed(method, "", "/bytes", "x") + b"\n" + body + b"\nx-test=1 protocol=HTTP/1.1"
        }
    finally:
        server.close()


def test_a_slow_download_holds_up_nobody(start: Callable[..., Running], tmp_path: Path) -> None:
    """A file goes out from the event loop: a client that reads none of a large one keeps
    no thread, and the one thread serves everyone else."""
    data = bytes(range(256)) * 40000  # 10 MB: more than the socket buffers hold
    (tmp_path / "big.bin").write_bytes(data)
    server = start(threads=1)
    with server.connect() as stuck:
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        stuck.send(f"GET /file{tmp_path}/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        for n in range(3):
            status, _, body = server.exchange(f"POST /other/{n} HTTP/1.1\r\n\r\n".encode())
            assert (status, body.split(b"\n")[0]) == (
                b"HTTP/1.1 200 OK",
                echoed("POST", "", f"/other/{n}"),
            )
        status, headers, body = stuck.response()
    assert (status, headers["content-length"]) == (b"HTTP/1.1 200 OK", str(len(data)))
    assert body == data
