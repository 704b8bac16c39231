"""The server's processes: ``pypi-server run --workers N`` (N processes share the port, each
sees every upload on its next request, a process that dies is replaced, SIGTERM stops them
all), and a first start on thousands of new files, which forked processes hash."""

from __future__ import annotations

import os
import signal
import time
import zipfile
from pathlib import Path

import pytest

from ..loopback import free_port
from .servers import Server, ServerFactory, expected_link
from .support import NORMALIZED, Dist, client_env, run

pytestmark = pytest.mark.integration

LOG_FORMAT = "%(process)d %(name)s %(message)s"


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def answering_pids(server: Server, path: str) -> list[int]:
    """The process of every access-log line for GET *path*."""
    pids = []
    for line in server.log_text().splitlines():
        words = line.split()
        request = words[3:5]
        if words[1:2] == ["cheesecellar.access"] and request == ['"GET', path + '"']:
            pids.append(int(words[0]))
    return pids


def start(server_factory: ServerFactory, htpasswd: Path, workers: int = 2) -> Server:
    options = ["--workers", str(workers), "--log-frmt", LOG_FORMAT, "-P", htpasswd, "-a", "update"]
    return server_factory(options)


def test_processes_share_the_port_and_see_each_upload(
    server_factory: ServerFactory, htpasswd: Path, dist01: Dist
) -> None:
    server = start(server_factory, htpasswd)
    assert f"serving {server.root} with 2 processes" in server.log_text()
    workers = children(server.proc.pid)
    assert len(workers) == 2

    for _ in range(40):  # a new connection each: the kernel spreads them over both sockets
        assert server.get("/health").status == 200
    assert server.answered("GET", "/health", 200, times=40)
    assert set(answering_pids(server, "/health")) == workers

    assert server.upload(dist01.wheel).status == 200
    for _ in range(20):
        assert server.links() == [expected_link(dist01.wheel)]
    page_pids = answering_pids(server, f"/simple/{NORMALIZED}/")
    assert len(page_pids) == 20 and set(page_pids) == workers

    assert server.stop(signal.SIGTERM) == 0
    assert "cheesecellar stopped" in server.log_text()
    assert not any(alive(pid) for pid in workers)
    assert not server.is_listening()


def test_a_process_that_dies_is_replaced(
    server_factory: ServerFactory, htpasswd: Path, dist01: Dist
) -> None:
    server = start(server_factory, htpasswd)
    time.sleep(2.5)  # past the start-up window in which a dying process stops the server
    first = children(server.proc.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = children(server.proc.pid)
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.1)
    now = children(server.proc.pid)
    assert len(now) == 2 and victim not in now and (now & first) == first - {victim}
    assert f"server process {victim} exited" in server.log_text()

    assert server.upload(dist01.sdist).status == 200
    for _ in range(20):
        assert server.links() == [expected_link(dist01.sdist)]
    assert set(answering_pids(server, f"/simple/{NORMALIZED}/")) == now
    assert server.stop(signal.SIGINT) == 0
    assert not any(alive(pid) for pid in now)


def test_workers_must_be_at_least_one(server_factory: ServerFactory, tmp_path: Path) -> None:
    cmd = server_factory.command(["--workers", "0"], [tmp_path], port=free_port())
    out = run(cmd, env=client_env(), cwd=tmp_path, timeout=60, check=False)
    assert out.returncode == 2, out.stdout
    assert "--workers must be a whole number from 1, not 0" in out.stdout


def write_wheel(directory: Path, name: str, version: str) -> tuple[Path, bytes]:
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    meta = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.9\n"
    ).encode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", meta)
        zf.writestr(f"{info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        zf.writestr(f"{info}/RECORD", b"")
    return path, meta


def test_a_first_start_on_thousands_of_new_files_records_them_all(
    server_factory: ServerFactory, htpasswd: Path
) -> None:
    root = server_factory.new_root()
    written = {}
    for project in range(250):
        for minor in range(8):  # 2,000 files: enough for discovery to fork hashing processes
            path, meta = write_wheel(root, f"proj-{project:03d}", f"1.{minor}")
            written[path.name] = (path, meta)

    server = server_factory(["--workers", "2", "-P", htpasswd, "-a", "update"], [root])

    assert "hashing: 2000/2000 files" in server.log_text()
    assert len(server.projects()) == 250
    for project in ("000", "123", "249"):
        listed = sorted(server.links(f"proj-{project}"))
        assert listed == sorted(
            expected_link(path) for name, (path, _) in written.items() if f"_{project}-" in name
        )
    # The .metadata file was not written at discovery: it is read out of the wheel on request.
    name = "proj_123-1.5-py3-none-any.whl"
    assert not (root / ".cheesecellar" / "metadata" / f"{name}.metadata").exists()
    reply = server.get(f"/packages/{name}.metadata")
    assert (reply.status, reply.body) == (200, written[name][1])
