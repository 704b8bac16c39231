"""A real `cheesecellar run` process on a free loopback port, and raw-socket helpers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..loopback import free_port
from .archives import Dist
from .wsgi import upload_form


@dataclass(frozen=True)
class HttpReply:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()


@dataclass
class ServerProcess:
    """A real `cheesecellar run` process on a free loopback port."""

    root: Path
    log_path: Path
    options: Sequence[str] = ("-P", ".", "-a", ".")
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "cheesecellar",
            "run",
            "-p",
            str(self.port),
            "-i",
            "127.0.0.1",
            *self.options,
            str(self.root),
        ]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/health").status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"server not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> HttpReply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return HttpReply(resp.status, resp.reason, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> HttpReply:
        return self.request("GET", path, headers=headers)

    def upload(self, dist: Dist) -> HttpReply:
        body, ctype = upload_form(dist).encode()
        return self.request("POST", "/", body, {"Content-Type": ctype})

    def listing(self, project: str) -> dict[str, str]:
        """{filename: sha256} from the project's PEP 691 JSON page; {} on 404."""
        reply = self.get(f"/simple/{project}/", {"Accept": "application/vnd.pypi.simple.v1+json"})
        if reply.status == 404:
            return {}
        assert reply.status == 200, (reply.status, reply.body)
        return {f["filename"]: f["hashes"]["sha256"] for f in json.loads(reply.body)["files"]}

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it hangs; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def read_reply(sock: socket.socket, timeout: float) -> bytes:
    """Whatever the server sends until it closes the connection or *timeout* passes."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def request_head(path: str, content_type: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()
