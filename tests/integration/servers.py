"""Real server processes for the end-to-end tests, and plain HTTP to talk to them.

`ServerFactory` starts `python -m cheesecellar run` (or the `pypi-server` script) on a free
loopback port, waits for `/health` and stops every server it started; `Server` makes exact
requests (no redirects, no proxy) and reads the server's request log.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..loopback import free_port
from .support import (
    NORMALIZED,
    PASSWORD,
    USER,
    client_env,
    pypi_server_script,
    sha256_of,
)

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, "".join(self._text).strip()))
            self._href = None


def anchors(page: str) -> list[tuple[str, str]]:
    """(href, text) of every link in an HTML page, parsed with a real HTML parser."""
    parser = _Anchors()
    parser.feed(page)
    parser.close()
    return parser.anchors


def expected_link(path: Path) -> tuple[str, str]:
    """The PEP 503 anchor a project page must have for a distribution file."""
    return (f"../../packages/{path.name}#sha256={sha256_of(path)}", path.name)


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def multipart(fields: Sequence[tuple[str, str]], file: Path | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body as twine sends it; `file` goes in the `content` part."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
            f'filename="{file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + file.read_bytes()
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload_fields(dist: Path) -> list[tuple[str, str]]:
    """The form fields of a legacy-API upload of one of the example's files."""
    name, version = dist.name.split("-")[:2]
    if dist.name.endswith(".tar.gz"):
        version = version.removesuffix(".tar.gz")
        filetype, pyversion = "sdist", "source"
    else:
        filetype, pyversion = "bdist_wheel", "py3"
    data = dist.read_bytes()
    return [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", name),
        ("version", version),
        ("filetype", filetype),
        ("pyversion", pyversion),
        ("sha256_digest", hashlib.sha256(data).hexdigest()),
        ("blake2_256_digest", hashlib.blake2b(data, digest_size=32).hexdigest()),
    ]


# --------------------------------------------------------------------------- server


@dataclass
class Server:
    """One running server process; `root` is the first package dir (where uploads go)."""

    port: int
    roots: list[Path]
    cmd: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def simple_url(self) -> str:
        return f"{self.url}simple/"

    @property
    def root(self) -> Path:
        return self.roots[0]

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request, no redirects followed, no proxy; any status is returned."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.reason, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post_form(
        self,
        fields: Sequence[tuple[str, str]],
        file: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Response:
        body, content_type = multipart(fields, file)
        headers = {"Content-Type": content_type}
        if auth is not None:
            headers["Authorization"] = basic_auth(*auth)
        return self.request("POST", "/", body, headers)

    def upload(self, dist: Path, auth: tuple[str, str] | None = (USER, PASSWORD)) -> Response:
        return self.post_form(upload_fields(dist), dist, auth)

    def links(self, project: str = NORMALIZED) -> list[tuple[str, str]]:
        """The anchors of a project page, which must answer 200 text/html."""
        resp = self.get(f"/simple/{project}/")
        assert resp.status == 200, (resp.status, resp.body, self.log_text())
        assert resp.headers.get_content_type() == "text/html", resp.headers
        return anchors(resp.text)

    def projects(self) -> list[str]:
        """The link targets of the root page `/simple/`, which must answer 200 text/html."""
        resp = self.get("/simple/")
        assert resp.status == 200, (resp.status, resp.body, self.log_text())
        assert resp.headers.get_content_type() == "text/html", resp.headers
        return [href for href, _ in anchors(resp.text)]

    def count(self, method: str, path: str, status: int) -> int:
        """How many `method path` requests the request log shows answered with `status`."""
        found = 0
        for line in self.log_text().splitlines():
            words = line.replace('"', " ").split()
            for i in range(len(words) - 1):
                if words[i : i + 2] == [method, path] and str(status) in words[i + 2 :]:
                    found += 1
        return found

    def answered(self, method: str, path: str, status: int, times: int = 1) -> bool:
        """Whether the log shows `times` such requests; waits a little for the log line."""
        deadline = time.monotonic() + 5
        while self.count(method, path, status) < times and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count(method, path, status) >= times

    def is_listening(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                pytest.fail(
                    f"server exited with {self.proc.returncode} before serving; "
                    f"command {self.cmd}\n{self.log_text()}"
                )
            try:
                resp = self.get("/health")
            except OSError:
                time.sleep(0.1)
                continue
            assert (resp.status, resp.body) == (200, b"Ok"), (resp, self.log_text())
            return
        self.stop()
        pytest.fail(f"server not ready within {STARTUP_TIMEOUT} s: {self.cmd}\n{self.log_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the server and wait for it; kill it if it does not stop in time."""
        if self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                self.exit_code = self.proc.returncode
                pytest.fail(f"server ignored {sig.name} for {STOP_TIMEOUT} s\n{self.log_text()}")
        self.exit_code = self.proc.returncode
        return self.exit_code


class ServerFactory:
    """Starts servers for one test and stops every one of them at teardown."""

    def __init__(self, tmp: Path, htpasswd: Path) -> None:
        self.tmp = tmp
        self.htpasswd = htpasswd
        self.servers: list[Server] = []
        self.roots = 0

    def new_root(self) -> Path:
        """A new, empty package dir."""
        self.roots += 1
        root = self.tmp / f"packages-{self.roots}"
        root.mkdir()
        return root

    def command(
        self,
        options: Sequence[str | os.PathLike[str]] | None,
        roots: Sequence[Path],
        port: int,
        legacy: bool = False,
    ) -> list[str]:
        if options is None:
            options = ["-P", self.htpasswd, "-a", "update"]
        if legacy:
            script = pypi_server_script()
            assert script.exists(), f"console script missing: {script}"
            head = [str(script), "-p", str(port), "-i", "127.0.0.1"]
        else:
            head = [sys.executable, "-m", "cheesecellar", "run", "-p", str(port), "-i", "127.0.0.1"]
        return head + [str(o) for o in options] + [str(r) for r in roots]

    def __call__(
        self,
        options: Sequence[str | os.PathLike[str]] | None = None,
        roots: Sequence[Path] | None = None,
        *,
        legacy: bool = False,
    ) -> Server:
        """Start a server; `options` defaults to `-P <htpasswd> -a update`."""
        roots = list(roots) if roots is not None else [self.new_root()]
        port = free_port()
        cmd = self.command(options, roots, port, legacy)
        log_path = self.tmp / f"server-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
                env=client_env(PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )
        server = Server(port, roots, cmd, proc, log_path)
        self.servers.append(server)
        server.wait_ready()
        return server

    def stop_all(self) -> list[str]:
        """Stop every server; describe each that did not exit with code 0."""
        problems: list[str] = []
        for server in self.servers:
            code = server.stop()
            if code != 0:
                problems.append(f"{server.cmd} exited with {code}\n{server.log_text()}")
        return problems
