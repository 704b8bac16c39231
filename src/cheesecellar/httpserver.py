"""The local server's HTTP/1.1 layer: asyncio reads and writes, a pool of threads runs the app.

What it promises the WSGI app and its clients:

- A request's whole body is read before the app runs (into memory, or a temporary file past
  1 MiB), so a slow client holds no thread. A declared body over the limit gets 413 before
  it is read.
- ``Transfer-Encoding: chunked`` bodies are decoded; the app sees ``CONTENT_LENGTH``.
  ``Expect: 100-continue`` is answered.
- A file handed to ``wsgi.file_wrapper`` is sent from the event loop, so a slow download
  holds no thread either.
- Connections are kept alive (HTTP/1.1, and HTTP/1.0 on request); pipelined requests are
  answered in order. Idle connections and clients that stop reading are closed.
- Malformed requests get a 4xx answer and the connection is closed.

- Requests the caller's *inline* picks run on the event loop's own thread; the others in the
  pool. A request handed to a thread costs two thread switches and a fight for the GIL.

A trivial app (a 1.3 KB answer) on two cores under wrk with 16 connections: 9.7k req/s on
waitress (8 threads), the server used before; 16k here through the pool; 64k inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import logging
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from .workers import listening_sockets

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_HEAD = 64 * 1024  # request line and headers
MAX_HEADERS = 100
_SPOOL = 1024 * 1024  # bodies larger than this go to a temporary file
_CHUNK = 256 * 1024  # file sends, and where a response starts streaming
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}\Z")
_STATUS = re.compile(r"[1-5]\d\d [^\r\n]*\Z")
_NO_BODY = ("1", "204", "304")  # statuses (prefixes) that never carry a body
# RFC 9110's reason phrases for what the server answers itself (http.HTTPStatus's differ
# between Python versions: 413 is "Request Entity Too Large" before 3.13).
_PHRASES = {
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    413: "Content Too Large",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request the server itself refuses, before the app sees it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server may send from its event loop."""

    def __init__(self, filelike: IO[bytes], blksize: int = _CHUNK) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterable[bytes]:
        while data := self.filelike.read(self.blksize):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


@dataclass
class _Request:
    method: str
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    environ: dict[str, Any]
    keep_alive: bool
    body: _Body | None


@dataclass
class _Partial:
    """An answer whose body outgrew what the server holds: the rest comes from *iterator*."""

    started: list[Any]  # [status, headers]
    chunks: list[bytes]
    iterator: Any
    result: Any  # the app's iterable, to close at the end


@dataclass
class _Reply:
    """What the app answered, ready for the loop to send."""

    data: bytes  # the head, and the whole body unless streamed or in *file*
    keep_alive: bool
    file: FileWrapper | None = None
    count: int = 0  # bytes of *file* to send


class _Body:
    """A request body as it arrives: Content-Length or chunked framing, kept in a spool."""

    def __init__(self, length: int | None, limit: int) -> None:
        self.file: IO[bytes] = (
            io.BytesIO()
            if length is not None and length <= _SPOOL
            else tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 (closed later)
        )
        self.chunked = length is None
        self.remaining = length or 0
        self.limit = limit
        self.size = 0
        self.state = "size"  # chunked only: size, data, crlf, trailer
        self.trailer = 0

    def feed(self, buf: bytearray) -> bool:
        """Consume what *buf* holds of the body; True once the body is complete."""
        if not self.chunked:
            return self._take(buf)
        while True:
            if self.state == "data":
                if not self._take(buf):
                    return False
                self.state = "crlf"
            elif self.state == "crlf":
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise HttpError(400, "Malformed chunked body.")
                del buf[:2]
                self.state = "size"
            else:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 4096:
                        raise HttpError(400, "Malformed chunked body.")
                    return False
                line = bytes(buf[:end])
                del buf[: end + 2]
                if self.state == "trailer":
                    self.trailer += end + 2
                    if self.trailer > MAX_HEAD:
                        raise HttpError(431, "Request trailers too large.")
                    if end == 0:
                        return True
                    continue
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.match(size):
                    raise HttpError(400, "Malformed chunk size.")
                self.remaining = int(size, 16)
                if self.size + self.remaining > self.limit:
                    raise HttpError(413, "Request body too large.")
                self.state = "data" if self.remaining else "trailer"

    def _take(self, buf: bytearray) -> bool:
        take = min(len(buf), self.remaining)
        if take:
            self.file.write(buf[:take])
            del buf[:take]
            self.remaining -= take
            self.size += take
        return self.remaining == 0

    def finish(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file


def _error(status: int, message: str, version: str = "HTTP/1.1") -> bytes:
    body = (message + "\n").encode("utf-8")
    return (
        f"{version} {status} {_PHRASES[status]}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\nDate: {_date()}\r\n\r\n"
    ).encode("latin-1") + body


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class _HeadSent(Exception):
    """The response began and cannot be finished (the app failed, or the client left): the
    connection can only be dropped."""

    def __init__(self, failed: bool) -> None:
        super().__init__("the app failed" if failed else "the client went away")
        self.failed = failed


class _Connection(asyncio.Protocol):
    """One client connection: reads requests, hands them to the app, writes the replies."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = "head"  # head, body (reading it), app (running or sending), closed
        self.request: _Request | None = None
        self.last_active = self.loop.time()
        self.paused = False  # the transport's write buffer is full
        self.eof = False  # the client sent all it will send
        self.scanned = 0  # bytes of buf already searched for the end of a head
        self.drained: asyncio.Future[None] | None = None
        self.base: dict[str, Any] = {}

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.base = {
            "REMOTE_ADDR": str(peer[0]),
            "REMOTE_PORT": str(peer[1]),
            "SERVER_NAME": str(local[0]),
            "SERVER_PORT": str(local[1]),
            "SERVER_SOFTWARE": self.server.ident,
            "SCRIPT_NAME": self.server.url_prefix,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "closed"
        self.server.connections.discard(self)
        if self.request is not None and self.request.body is not None:
            self.request.body.file.close()
        if self.drained is not None and not self.drained.done():
            self.drained.set_exception(ConnectionError("the client went away"))

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        self.buf += data
        if self.state in ("head", "body"):
            self._advance()
        if len(self.buf) > MAX_HEAD and self.transport is not None:
            # Requests pile up while one runs, or while the client reads none of the answers
            # (which would otherwise all be held here): read more once that changes.
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.state == "app":
            return True  # finish the answer (and those pipelined before the end); then close
        return None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        elif self.state in ("head", "body") and self.transport is not None:
            self._advance()  # the requests that came while the client read nothing
            if self.state in ("head", "body"):
                self.transport.resume_reading()

    # reading requests

    def _advance(self) -> None:
        try:
            while self.state in ("head", "body"):
                if self.paused:
                    return  # answers wait in the transport: no more until the client reads
                if self.state == "head":
                    request = self._read_head()
                    if request is None:
                        return
                    self.request = request
                    if request.body is None:
                        self._dispatch()
                    else:
                        self.state = "body"
                else:
                    assert self.request is not None and self.request.body is not None
                    if not self.request.body.feed(self.buf):
                        return
                    self._dispatch()
        except HttpError as exc:
            self.refuse(exc.status, str(exc))

    def refuse(self, status: int, message: str) -> None:
        """Answer *status* for the server itself and close the connection."""
        log.info("%s refused: %d %s", self.base.get("REMOTE_ADDR", "-"), status, message)
        if self.request is not None and self.request.body is not None:
            self.request.body.file.close()
        self.state = "closed"
        self.buf.clear()
        assert self.transport is not None
        self.transport.write(_error(status, message))
        self.transport.close()

    def _read_head(self) -> _Request | None:
        buf = self.buf
        blank = 0
        while buf[blank : blank + 2] == b"\r\n":  # RFC 9112 §2.2: empty lines before a
            blank += 2  # request are ignored
        if blank:
            del buf[:blank]
            self.scanned = max(0, self.scanned - blank)
        # Search only what came since the last look: a head sent a byte at a time must not
        # cost a search of the whole buffer per byte.
        end = buf.find(b"\r\n\r\n", max(0, self.scanned - 3))
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise HttpError(431, "Request header fields too large.")
            self.scanned = len(buf)
            return None
        self.scanned = 0
        if end > MAX_HEAD:
            raise HttpError(431, "Request header fields too large.")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not _TOKEN.match(parts[0]):
            raise HttpError(400, "Malformed request line.")
        method_b, target, version_b = parts
        match = _VERSION.match(version_b)
        if match is None:
            raise HttpError(400, "Malformed request line.")
        if match.group(1) != b"1":
            raise HttpError(505, "Only HTTP/1.0 and HTTP/1.1 are served.")
        version = "HTTP/1.1" if match.group(2) != b"0" else "HTTP/1.0"
        if len(lines) > MAX_HEADERS + 1:
            raise HttpError(431, "Too many request header fields.")
        environ = self.base.copy()
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.match(name):
                raise HttpError(400, "Malformed request header field.")
            value = value.strip(b" \t")
            if b"\n" in value or b"\r" in value or b"\0" in value:
                raise HttpError(400, "Malformed request header field.")
            if b"_" in name:  # X_Foo would pass for X-Foo in the environ: drop it
                continue
            key = name.decode("ascii").upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            text = value.decode("latin-1")
            if key in environ:
                if key == "CONTENT_LENGTH" and environ[key] != text:
                    raise HttpError(400, "Conflicting Content-Length fields.")
                if key != "CONTENT_LENGTH":
                    environ[key] += ", " + text
            else:
                environ[key] = text
        method = method_b.decode("ascii")
        environ["REQUEST_METHOD"] = method
        environ["SERVER_PROTOCOL"] = version
        self._target(target, environ)
        connection = environ.get("HTTP_CONNECTION", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        body = self._body(environ, version)
        return _Request(method, version, environ, keep_alive, body)

    def _target(self, target: bytes, environ: dict[str, Any]) -> None:
        if target.startswith((b"http://", b"https://")):  # absolute form: keep the path
            slash = target.find(b"/", target.index(b"//") + 2)
            target = target[slash:] if slash >= 0 else b"/"
        elif not target.startswith(b"/"):
            raise HttpError(400, "The request target must be a path.")
        path, _, query = target.partition(b"?")
        path = path.partition(b"#")[0]
        path_info = unquote_to_bytes(b"/" + path.lstrip(b"/")).decode("latin-1")
        prefix = self.server.url_prefix
        if prefix:
            if path_info == prefix:
                path_info = ""
            elif path_info.startswith(prefix + "/"):
                path_info = path_info[len(prefix) :]
            else:
                raise HttpError(404, f"Not found: this server answers under {prefix}/.")
        environ["PATH_INFO"] = path_info
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["REQUEST_URI"] = target.decode("latin-1")

    def _body(self, environ: dict[str, Any], version: str) -> _Body | None:
        limit = self.server.max_request_body_size
        coding = environ.pop("HTTP_TRANSFER_ENCODING", None)
        length: int | None
        if coding is not None:
            if "CONTENT_LENGTH" in environ or version != "HTTP/1.1":
                raise HttpError(400, "Transfer-Encoding is not allowed here.")
            if coding.strip().lower() != "chunked":
                raise HttpError(501, f"Transfer-Encoding {coding[:40]!r} is not supported.")
            length = None
        else:
            declared = environ.get("CONTENT_LENGTH")
            if declared is None:
                environ["wsgi.input"] = io.BytesIO()
                return None
            if not declared.isdigit() or not declared.isascii():
                raise HttpError(400, "Malformed Content-Length.")
            length = int(declared)
            if length > limit:
                raise HttpError(413, "Request body too large.")
            if length == 0:
                environ["wsgi.input"] = io.BytesIO()
                return None
        expect = environ.pop("HTTP_EXPECT", None)
        if expect is not None:
            if expect.lower() != "100-continue":
                raise HttpError(417, "Only Expect: 100-continue is understood.")
            if version == "HTTP/1.1":
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return _Body(length, limit)

    # running the app

    def _dispatch(self) -> None:
        """Run the app for the request just read: here when the server's *inline* says so
        (the answer is then sent before this returns, unless it is a file or a long body),
        else in a pool thread."""
        request = self.request
        assert request is not None and self.transport is not None
        if request.body is not None:
            request.environ["wsgi.input"] = request.body.finish()
            request.environ["CONTENT_LENGTH"] = str(request.body.size)
        self.state = "app"
        server = self.server
        if server.inline is not None and server.inline(request.environ):
            try:
                outcome = server.start(request)
            except Exception as exc:
                self._failed(exc)
                return
            if isinstance(outcome, _Reply):
                self._reply(outcome)
                return
            future = self.loop.run_in_executor(server.pool, server.stream, self, request, outcome)
        else:
            self.transport.pause_reading()
            future = self.loop.run_in_executor(server.pool, server.respond, self, request)
        server.running.add(future)
        future.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future[_Reply]) -> None:
        self.server.running.discard(future)
        exc = future.exception()
        if exc is not None:
            self._failed(exc)
        else:
            self._reply(future.result())
        if self.state == "head":
            self._advance()
        if self.state in ("head", "body") and self.transport is not None:
            self.transport.resume_reading()

    def _failed(self, exc: BaseException) -> None:
        self._done()
        if not isinstance(exc, _HeadSent) or exc.failed:
            log.error("the app failed", exc_info=exc.__cause__ or exc)
        if self.state == "closed" or self.transport is None:
            return
        self.state = "closed"
        if isinstance(exc, _HeadSent):
            self.transport.abort()
        else:
            self.transport.write(_error(500, "Internal server error."))
            self.transport.close()

    def _done(self) -> None:
        request, self.request = self.request, None
        if request is not None and request.body is not None:
            request.body.file.close()

    def _reply(self, reply: _Reply) -> None:
        """Send *reply*; then the connection waits for the next request, or is closed."""
        if reply.file is not None:
            task = self.loop.create_task(self._send_file(reply))
            self.server.sending.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self.server.sending.discard)
            return
        self._done()
        if self.state == "closed" or self.transport is None:
            return
        if reply.data:
            self.transport.write(reply.data)
        if not reply.keep_alive or (self.eof and not self.buf):
            self.state = "closed"
            self.transport.close()
            return
        self.state = "head"
        self.last_active = self.loop.time()

    async def _send_file(self, reply: _Reply) -> None:
        assert reply.file is not None and self.transport is not None
        try:
            self.transport.write(reply.data)
            reply.data = b""
            remaining = reply.count
            while remaining > 0:
                data = reply.file.filelike.read(min(_CHUNK, remaining))
                if not data:
                    reply.keep_alive = False  # shorter than announced: end the connection
                    break
                remaining -= len(data)
                await self.send(data)
        except (ConnectionError, TimeoutError):
            self._done()
            self.state = "closed"
            self.transport.abort()
            return
        except OSError:
            log.exception("sending a file failed")
            self._done()
            self.state = "closed"
            self.transport.abort()
            return
        finally:
            reply.file.close()
        reply.file = None
        self._reply(reply)
        if self.state == "head":
            self._advance()
        if self.state in ("head", "body"):
            self.transport.resume_reading()

    async def send(self, data: bytes) -> None:
        """Write *data*, then wait (bounded) until the client has taken most of it."""
        if self.state == "closed" or self.transport is None or self.transport.is_closing():
            raise ConnectionError("the client went away")
        self.transport.write(data)
        if self.paused:
            self.drained = self.loop.create_future()
            try:
                await asyncio.wait_for(self.drained, self.server.send_timeout)
            finally:
                self.drained = None
        self.last_active = self.loop.time()

    def send_from_thread(self, data: bytes) -> None:
        future = asyncio.run_coroutine_threadsafe(self.send(data), self.loop)
        future.result(timeout=self.server.send_timeout + 5)  # the loop may have stopped


class HttpServer:
    """Serves *app* on the given listening sockets, or on a new one for *host* and *port*."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sockets: list[socket.socket] | None = None,
        threads: int = 8,
        url_prefix: str = "",
        max_request_body_size: int = 1024**3,
        idle_timeout: float = 60.0,
        send_timeout: float = 60.0,
        ident: str = "cheesecellar",
        inline: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """*inline* picks requests the app answers without waiting on anything slow (no
        network, no password hashing): those run on the event loop's thread, which spares
        two thread switches per request. Everything else runs in the pool."""
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.app = app
        self.sockets = sockets if sockets is not None else listening_sockets(host, port, 1)
        self.url_prefix = url_prefix.rstrip("/")
        self.max_request_body_size = max_request_body_size
        self.idle_timeout = idle_timeout
        self.send_timeout = send_timeout
        self.ident = ident
        self.inline = inline
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="cheesecellar-http")
        self.connections: set[_Connection] = set()
        self.running: set[asyncio.Future[_Reply]] = set()  # requests in the app
        self.sending: set[asyncio.Task[None]] = set()  # files being sent
        self._servers: list[asyncio.AbstractServer] = []

    @property
    def effective_port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (or until stop() from another thread)."""
        loop = self.loop
        asyncio.set_event_loop(loop)
        for sock in self.sockets:
            self._servers.append(
                loop.run_until_complete(
                    loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)
                )
            )
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, loop.stop)
        sweeper = loop.create_task(self._sweep())
        try:
            loop.run_forever()
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(sweeper)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    def close(self, grace: float = 30.0) -> None:
        """Stop listening, drop the connections, and give running requests *grace* seconds to
        finish (an upload being stored completes; its client gets no answer)."""
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if not self.loop.is_closed():
            if self.running:
                self.loop.run_until_complete(asyncio.wait(set(self.running), timeout=grace))
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        for sock in self.sockets:
            sock.close()

    async def _sweep(self) -> None:
        """Close connections that stayed silent too long while nothing ran for them."""
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 2))
            cutoff = self.loop.time() - self.idle_timeout
            for connection in list(self.connections):
                if connection.state in ("head", "body") and connection.last_active < cutoff:
                    assert connection.transport is not None
                    if connection.state == "body" or connection.buf:
                        connection.refuse(408, "Request timed out.")
                    else:
                        connection.transport.close()

    # running the app (in a pool thread, or on the loop for requests *inline* picks)

    def respond(self, connection: _Connection, request: _Request) -> _Reply:
        outcome = self.start(request)
        if isinstance(outcome, _Reply):
            return outcome
        return self.stream(connection, request, outcome)

    def start(self, request: _Request) -> _Reply | _Partial:
        """Call the app; its whole answer, or what came of a body too long to hold."""
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if exc_info is not None:
                try:
                    if sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif started:
                raise RuntimeError("start_response was called twice")
            if not isinstance(status, str) or not _STATUS.match(status):
                raise ValueError(f"bad status from the app: {status!r}")
            for name, value in headers:
                if not _TOKEN.match(name.encode("latin-1")) or any(c in value for c in "\r\n\0"):
                    raise ValueError(f"bad header from the app: {name!r}")
            started[:] = [status, headers]
            return written.append

        sent = False  # the app's own answer never started: the server's 500 may replace it
        result: Any = self.app(request.environ, start_response)
        try:
            if started and not self._has_body(request, started):
                head, keep_alive, _ = self._head(request, started, 0)
                return _Reply(head, keep_alive)  # HEAD, 304...: the body is not even read
            if isinstance(result, FileWrapper):
                reply = self._file_reply(request, started, result)
                if reply is not None:
                    result = None  # the loop sends it, and closes it
                    return reply
            chunks = written
            size = sum(map(len, chunks))
            iterator = iter(result)
            for chunk in iterator:
                if chunk:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > _CHUNK:  # too long to hold: the rest is sent as it comes
                        partial = _Partial(started, chunks, iterator, result)
                        result = None
                        return partial
            head, keep_alive, length = self._head(request, started, size)
            body = b"".join(chunks)
            if not self._has_body(request, started):
                body = b""
            elif length != size:
                keep_alive = False  # the app announced another length: send what it gave
                body = body[:length]
            return _Reply(head + body, keep_alive)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def stream(self, connection: _Connection, request: _Request, partial: _Partial) -> _Reply:
        """Send a long body as the app produces it (in a pool thread: this waits on the client)."""
        try:
            out = _Stream(self, connection, request, partial.started)
            for chunk in partial.chunks:
                out.write(chunk)
            for chunk in partial.iterator:
                if chunk:
                    out.write(chunk)
            return out.end()
        except _HeadSent:
            raise
        except Exception as exc:
            raise _HeadSent(failed=True) from exc
        finally:
            close = getattr(partial.result, "close", None)
            if close is not None:
                close()

    def _has_body(self, request: _Request, started: list[Any]) -> bool:
        return request.method != "HEAD" and not started[0].startswith(_NO_BODY)

    def _head(
        self, request: _Request, started: list[Any], size: int | None
    ) -> tuple[bytes, bool, int | None]:
        """The response head; *size* is the body's length when known (None: streamed)."""
        if not started:
            raise RuntimeError("the app did not call start_response")
        status, headers = started
        keep_alive = request.keep_alive
        length: int | None = None
        lines = [f"{request.version} {status}"]
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                if not value.isdigit():
                    raise ValueError(f"bad Content-Length from the app: {value!r}")
                length = int(value)
                continue
            elif lower == "connection":
                if "close" in value.lower():
                    keep_alive = False
                continue
            elif lower == "transfer-encoding":
                continue  # framing is the server's business
            lines.append(f"{name}: {value}")
        if self._has_body(request, started):
            if length is None and size is not None:
                length = size
            if length is not None:
                lines.append(f"Content-Length: {length}")
            elif request.version == "HTTP/1.1":
                lines.append("Transfer-Encoding: chunked")
            else:
                keep_alive = False
        elif length is not None:
            lines.append(f"Content-Length: {length}")
        if not keep_alive:
            lines.append("Connection: close")
        elif request.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        lines.append(f"Date: {_date()}")
        lines.append(f"Server: {self.ident}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head, keep_alive, length

    def _file_reply(
        self, request: _Request, started: list[Any], wrapper: FileWrapper
    ) -> _Reply | None:
        # start() has answered a HEAD or a 304 already, without looking at the body.
        if not started or not callable(getattr(wrapper.filelike, "read", None)):
            return None
        head, keep_alive, length = self._head(request, started, None)
        if length is None:
            return None  # no announced length: iterate it like any other body
        return _Reply(head, keep_alive, file=wrapper, count=length)


class _Stream:
    """A response body sent as the app produces it, from the app's thread."""

    def __init__(
        self, server: HttpServer, connection: _Connection, request: _Request, started: list[Any]
    ) -> None:
        self.connection = connection
        head, self.keep_alive, self.length = server._head(request, started, None)
        self.chunked = self.length is None and request.version == "HTTP/1.1"
        self.body = server._has_body(request, started)
        self.sent = 0
        self.pending = head

    def write(self, chunk: bytes) -> None:
        if not self.body:
            return
        if self.length is not None:
            chunk = chunk[: self.length - self.sent]
        self.sent += len(chunk)
        if self.chunked:
            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        self._send(self.pending + chunk)
        self.pending = b""

    def _send(self, data: bytes) -> None:
        try:
            self.connection.send_from_thread(data)
        except (ConnectionError, TimeoutError) as exc:
            raise _HeadSent(failed=False) from exc

    def end(self) -> _Reply:
        tail = self.pending
        if self.chunked and self.body:
            tail += b"0\r\n\r\n"
        if self.length is not None and self.sent != self.length and self.body:
            self.keep_alive = False
        return _Reply(tail, self.keep_alive)
