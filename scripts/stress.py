#!/usr/bin/env python3
"""Bounded stress run against real cheesecellar servers on loopback; exits non-zero on any error.

Starts one or two ``cheesecellar run`` processes on one new package directory (free loopback
ports, no passwords), then for ``--seconds`` has ``--threads`` clients mix page reads (HTML and
JSON), downloads of acknowledged files and uploads of new, distinct wheels, through both
servers. Any 5xx, connection error, or wrong answer is an error: a download whose bytes differ
from what was acknowledged, a page that misses an acknowledged file or lists one nobody sent.
At the end every server must list exactly the acknowledged uploads with their sha256, and
stop cleanly on SIGTERM. Prints the figures; exit 0 only when nothing went wrong.

    python scripts/stress.py --seconds 60 --threads 8 --servers 2
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"  # loopback only
PROJECTS = [f"stress-{i}" for i in range(5)]
JSON = "application/vnd.pypi.simple.v1+json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def start_server(root: Path, logs: Path, python: str) -> Server:
    port = free_port()
    log = logs / f"server-{port}.log"
    cmd = [
        python,
        "-m",
        "cheesecellar",
        "run",
        "-p",
        str(port),
        "-i",
        HOST,
        "-P",
        ".",
        "-a",
        ".",
        str(root),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"server on port {port} not ready in 30 s:\n{log.read_text()}")


def stop_server(server: Server) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(15)
            return -9
    return server.proc.returncode


def make_wheel(name: str, version: str, size: int) -> tuple[str, bytes]:
    stem = f"{name.replace('-', '_')}-{version}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name.replace('-', '_')}/data.bin", os.urandom(size))
        zf.writestr(
            f"{stem}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nStress.\n",
        )
        zf.writestr(
            f"{stem}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{stem}.dist-info/RECORD", "")
    return f"{stem}-py3-none-any.whl", buf.getvalue()


def upload_body(name: str, version: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    stem = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{stem}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class Shared:
    """What every client thread sees: the acknowledged uploads and the tallies."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (project, sha256)
    in_flight: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    next_version: int = 0

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def version(self) -> str:
        with self.lock:
            self.next_version += 1
            return f"{self.next_version}.0"


class Client:
    """One thread's keep-alive connections, one per server."""

    def __init__(self, ports: list[int], shared: Shared, seed: int) -> None:
        self.ports = ports
        self.shared = shared
        self.rng = random.Random(seed)
        self.conns: dict[int, http.client.HTTPConnection] = {}

    def request(
        self,
        port: int,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes] | None:
        started = time.perf_counter()
        try:
            conn = self.conns.get(port) or http.client.HTTPConnection(HOST, port, timeout=30)
            self.conns[port] = conn
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                del self.conns[port]
        except (OSError, http.client.HTTPException) as exc:
            self.conns.pop(port, None)
            self.shared.error(f"{method} {path} on :{port}: connection error {exc!r}")
            return None
        with self.shared.lock:
            self.shared.counts["requests"] += 1
            self.shared.latencies.append(time.perf_counter() - started)
        if resp.status >= 500:
            self.shared.error(f"{method} {path} on :{port}: {resp.status} {data[:200]!r}")
            return None
        return resp.status, data

    def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            roll = self.rng.random()
            port = self.rng.choice(self.ports)
            if roll < 0.3:
                self.upload(port)
            elif roll < 0.75:
                self.read_page(port)
            else:
                self.download(port)
        for conn in self.conns.values():
            conn.close()

    def upload(self, port: int) -> None:
        project = self.rng.choice(PROJECTS)
        version = self.shared.version()
        filename, data = make_wheel(project, version, self.rng.randint(256, 64 * 1024))
        body, ctype = upload_body(project, version, data)
        with self.shared.lock:
            self.shared.in_flight.add(filename)
        got = self.request(port, "POST", "/", body, {"Content-Type": ctype})
        with self.shared.lock:
            self.shared.counts["uploads"] += 1
            if got is not None and got[0] == 200:
                self.shared.acked[filename] = (project, hashlib.sha256(data).hexdigest())
                self.shared.in_flight.discard(filename)
        if got is not None and got[0] != 200:
            self.shared.error(f"upload of new {filename} on :{port}: {got[0]} {got[1][:200]!r}")

    def read_page(self, port: int) -> None:
        project = self.rng.choice(PROJECTS)
        kind = self.rng.choice(
            ["root-html", "root-json", "project-html", "project-json", "packages", "pypi-json"]
        )
        with self.shared.lock:
            before = {f: sha for f, (p, sha) in self.shared.acked.items() if p == project}
        path = {
            "root-html": "/simple/",
            "root-json": "/simple/",
            "packages": "/packages/",
            "project-html": f"/simple/{project}/",
            "project-json": f"/simple/{project}/",
            "pypi-json": f"/pypi/{project}/json",
        }[kind]
        headers = {"Accept": JSON} if kind.endswith("-json") and kind != "pypi-json" else {}
        got = self.request(port, "GET", path, headers=headers)
        with self.shared.lock:
            self.shared.counts[f"pages:{kind}"] += 1
        if got is None:
            return
        status, body = got
        if status == 404 and kind in ("project-html", "project-json", "pypi-json") and not before:
            return
        if status != 200:
            self.shared.error(f"GET {path} ({kind}) on :{port}: {status} {body[:200]!r}")
            return
        if kind == "project-json":
            listed = {f["filename"]: f["hashes"]["sha256"] for f in json.loads(body)["files"]}
            self.check_listing(port, project, before, listed)
        elif kind in ("project-html", "packages"):
            text = body.decode()
            missing = [f for f in before if f not in text]
            if missing:
                self.shared.error(f"{path} on :{port} misses acknowledged {missing[:3]}")

    def check_listing(
        self, port: int, project: str, before: dict[str, str], listed: dict[str, str]
    ) -> None:
        with self.shared.lock:
            known = {f: sha for f, (p, sha) in self.shared.acked.items() if p == project}
            in_flight = set(self.shared.in_flight)
        for filename, digest in before.items():
            if listed.get(filename) != digest:
                self.shared.error(
                    f"{project} on :{port}: acknowledged {filename} not listed "
                    f"with its sha256 (got {listed.get(filename)})"
                )
        for filename, digest in listed.items():
            if filename not in in_flight and known.get(filename) != digest:
                self.shared.error(f"{project} on :{port}: lists {filename} that nobody sent")

    def download(self, port: int) -> None:
        with self.shared.lock:
            if not self.shared.acked:
                return
            filename = self.rng.choice(sorted(self.shared.acked))
            digest = self.shared.acked[filename][1]
        got = self.request(port, "GET", f"/packages/{filename}")
        with self.shared.lock:
            self.shared.counts["downloads"] += 1
        if got is None:
            return
        if got[0] != 200 or hashlib.sha256(got[1]).hexdigest() != digest:
            self.shared.error(
                f"download of acknowledged {filename} on :{port}: {got[0]}, "
                f"sha256 {hashlib.sha256(got[1]).hexdigest()} != {digest}"
            )


def verify(ports: list[int], root: Path, shared: Shared) -> list[str]:
    """Every server lists exactly the acknowledged files, with their hashes; disk agrees."""
    problems: list[str] = []
    want = {f: sha for f, (_, sha) in shared.acked.items()}
    for port in ports:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        conn.request("GET", "/simple/", headers={"Accept": JSON})
        names = [p["name"] for p in json.loads(conn.getresponse().read())["projects"]]
        listed: dict[str, str] = {}
        for name in names:
            conn.request("GET", f"/simple/{name}/", headers={"Accept": JSON})
            doc = json.loads(conn.getresponse().read())
            listed.update({f["filename"]: f["hashes"]["sha256"] for f in doc["files"]})
        conn.close()
        for filename in sorted(set(want) | set(listed)):
            if want.get(filename) != listed.get(filename):
                problems.append(
                    f":{port} lists {filename} with {listed.get(filename)}, "
                    f"acknowledged {want.get(filename)}"
                )
    for filename, digest in want.items():
        path = root / filename
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{filename} on disk does not match its acknowledged sha256")
    leftovers = list((root / ".cheesecellar" / "tmp").iterdir())
    if leftovers:
        problems.append(f"temp files left: {leftovers}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (60)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (8)")
    parser.add_argument(
        "--servers",
        type=int,
        choices=(1, 2),
        default=2,
        help="server processes on the one directory (2)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter with cheesecellar installed (this one)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the package dir and logs")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the clients (1)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.threads <= 0:
        parser.error("--seconds and --threads must be positive")
    work = Path(tempfile.mkdtemp(prefix="cheesecellar-stress-"))
    root = work / "packages"
    root.mkdir()
    servers: list[Server] = []
    shared = Shared()
    exit_codes: list[int] = []
    try:
        for _ in range(args.servers):
            servers.append(start_server(root, work, args.python))
        ports = [s.port for s in servers]
        print(
            f"stress: {args.threads} threads, {args.seconds:g} s, servers on ports {ports}, "
            f"root {root}",
            flush=True,
        )
        deadline = time.monotonic() + args.seconds
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=Client(ports, shared, args.seed * 1000 + i).run,
                args=(deadline,),
                daemon=True,
            )
            for i in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.seconds + 120)
        elapsed = time.monotonic() - started
        if any(t.is_alive() for t in threads):
            shared.error("client threads did not finish in time")
        mismatches = verify(ports, root, shared)
    except RuntimeError as exc:
        print(f"stress: setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in servers:
            exit_codes.append(stop_server(server))
    for server, code in zip(servers, exit_codes, strict=True):
        if code != 0:
            shared.error(f"server :{server.port} exited with {code}")
    failed = bool(shared.errors or mismatches)
    for line in shared.errors[:20]:
        print(f"  error: {line}")
    for line in mismatches[:20]:
        print(f"  mismatch: {line}")
    if failed:
        for server in servers:
            print(f"--- tail of {server.log}\n{server.log.read_text(errors='replace')[-2000:]}")
    if failed or args.keep:
        print(f"package dir and server logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    # The figures come last, so that the tail of the output always shows them.
    counts = shared.counts
    lat = sorted(shared.latencies) or [0.0]
    pages = {k.split(":")[1]: v for k, v in counts.items() if k.startswith("pages:")}
    print(
        f"requests   {counts['requests']} in {elapsed:.1f} s = {counts['requests'] / elapsed:.0f}/s"
    )
    print(f"uploads    {counts['uploads']} sent, {len(shared.acked)} acknowledged")
    print(f"downloads  {counts['downloads']}")
    print(f"pages      {sum(pages.values())} {dict(sorted(pages.items()))}")
    print(
        f"latency    p50 {lat[len(lat) // 2] * 1000:.1f} ms, "
        f"p95 {lat[int(len(lat) * 0.95)] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
    )
    print(f"errors     {len(shared.errors)}")
    print(f"mismatches {len(mismatches)}")
    print("stress: FAILED" if failed else "stress: OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
