"""Crashes: a client that hangs up mid-body, and a server killed with SIGKILL mid-upload."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .archives import Dist, make_wheel
from .checks import check_manifests
from .servers import ServerProcess, read_reply, request_head
from .support import STATE, sha256
from .wsgi import upload_form

pytestmark = pytest.mark.integration

Servers = Callable[..., ServerProcess]
HOUR = 3600


def temp_files(root: Path) -> list[Path]:
    tmp = root / STATE / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def assert_consistent(root: Path, nodes: list[ServerProcess], acked: list[Dist]) -> dict[str, str]:
    """Every listed file's bytes match its recorded sha256; acknowledged uploads all listed."""
    listed = check_manifests(root)
    for dist in acked:
        assert listed.get(dist.filename) == dist.sha256, dist.filename
    for node in nodes:
        served: dict[str, str] = {}
        for project in {d.name for d in acked} | {"victim-pkg"}:
            served.update(node.listing(project))
        assert served == listed, (served, listed)
        for filename, digest in served.items():
            got = node.get(f"/packages/{filename}")
            assert got.status == 200 and sha256(got.body) == digest, filename
    return listed


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_client_hangs_up_mid_body(tmp_path: Path, servers: Servers, fraction: float) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = servers(root)
    victim = make_wheel("victim-pkg", "1.0", payload=os.urandom(2 * 1024 * 1024), compress=0)
    body, ctype = upload_form(victim).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_head("/", ctype, len(body)))
        sock.sendall(body[: int(len(body) * fraction)])
    time.sleep(0.3)
    assert server.proc is not None and server.proc.poll() is None, "the server died"
    assert server.listing("victim-pkg") == {}
    assert server.get(f"/packages/{victim.filename}").status == 404
    assert not (root / victim.filename).exists()
    assert wait_for(lambda: not temp_files(root)), temp_files(root)
    # Nothing was half-claimed: the same upload now goes through whole.
    assert server.upload(victim).status == 200
    assert (root / victim.filename).read_bytes() == victim.data
    assert server.listing("victim-pkg") == {victim.filename: victim.sha256}


def acked_uploads(server: ServerProcess, count: int) -> list[Dist]:
    dists = [make_wheel("steady-pkg", f"{i}.0", payload=os.urandom(4096)) for i in range(count)]
    for dist in dists:
        assert server.upload(dist).status == 200
    return dists


def test_server_killed_while_a_slow_client_sends(tmp_path: Path, servers: Servers) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = servers(root)
    acked = acked_uploads(server, 3)
    victim = make_wheel("victim-pkg", "1.0", payload=os.urandom(512 * 1024), compress=0)
    body, ctype = upload_form(victim).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(request_head("/", ctype, len(body)))
        step = len(body) // 20
        for i in range(10):  # half the body, slowly
            sock.sendall(body[i * step : (i + 1) * step])
            time.sleep(0.05)
        server.kill()
        read_reply(sock, timeout=1)
    finally:
        sock.close()
    restarted = servers(root)
    listed = assert_consistent(root, [restarted], acked)
    assert victim.filename not in listed
    assert not (root / victim.filename).exists()
    assert not temp_files(root)


def test_server_killed_inside_the_upload(tmp_path: Path, servers: Servers) -> None:
    """SIGKILL while the app writes its temp file; a restart cleans up and stays consistent."""
    root = tmp_path / "root"
    root.mkdir()
    server = servers(root)
    acked = acked_uploads(server, 3)
    caught: list[Path] = []
    victim: Dist | None = None
    for attempt in range(6):
        victim = make_wheel(
            "victim-pkg", f"{attempt + 1}.0", payload=os.urandom(24 * 1024 * 1024), compress=0
        )
        caught = kill_when_temp_file_appears(server, root, victim)
        if caught:
            break
        acked.append(victim)  # the upload finished before the watcher saw a temp file
    assert caught and victim is not None, "never caught the server inside an upload"
    leftovers = temp_files(root)
    print(
        f"\nkilled with temp files {[p.name for p in caught]}; left: {[p.name for p in leftovers]}"
    )
    old = time.time() - 2 * HOUR
    for path in leftovers:
        os.utime(path, (old, old))
    fresh = root / STATE / "tmp" / "upload-fresh-from-another-process"
    fresh.write_bytes(b"in flight elsewhere")
    restarted = servers(root)
    for path in leftovers:
        assert not path.exists(), f"stale temp file {path.name} survived the restart"
    assert fresh.exists(), "a fresh temp file (another process's upload) was removed"
    listed = assert_consistent(root, [restarted], acked)
    on_disk = root / victim.filename
    if on_disk.exists():  # killed after the atomic link: complete, and listed as such
        assert on_disk.read_bytes() == victim.data
        assert listed.get(victim.filename) == victim.sha256
    else:
        assert victim.filename not in listed
    assert not any(name.startswith("upload-") for name in listed)
    fresh.unlink()


def kill_when_temp_file_appears(server: ServerProcess, root: Path, dist: Dist) -> list[Path]:
    """Upload *dist*; SIGKILL the server the moment a temp file shows. The files seen, if any."""
    seen: list[Path] = []
    stop = threading.Event()

    def watch() -> None:
        tmp = root / STATE / "tmp"
        while not stop.is_set():
            found = [Path(e.path) for e in os.scandir(tmp)] if tmp.exists() else []
            if found:
                server.kill()
                seen.extend(found)
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        try:
            reply = server.upload(dist)
        except (OSError, http.client.HTTPException):
            reply = None
    finally:
        stop.set()
        watcher.join()
    if not seen:
        assert reply is not None and reply.status == 200, reply
    return seen
