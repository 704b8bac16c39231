"""A full disk: the upload that does not fit gets 507; everything stored before stays intact.

The package root is a 2 MiB tmpfs, mounted for the test (root only). Without permission to
mount, the tests skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..needs import unavailable
from .archives import Dist, make_wheel
from .checks import IndexState
from .conftest import build_app
from .support import OPEN
from .wsgi import Wsgi, action_form

pytestmark = pytest.mark.integration

PAGE = 4096


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        failure = done.stderr.strip() if done.returncode else ""
    except OSError as exc:
        failure = str(exc)
    if failure:
        unavailable(f"cannot mount a tmpfs ({failure}); run as root")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def app_on(disk: Path) -> tuple[Wsgi, IndexState]:
    root, sentinel = disk / "root", disk / "sentinel"
    root.mkdir()
    sentinel.mkdir()
    (sentinel / "secret.txt").write_bytes(b"SENTINEL\n")
    return Wsgi(build_app(root=str(root), **OPEN), allow={507}), IndexState(root, sentinel)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def incompressible(name: str, version: str, size: int) -> Dist:
    return make_wheel(name, version, payload=os.urandom(size), compress=zipfile.ZIP_STORED)


def wheel_of_exact_size(name: str, version: str, size: int) -> Dist:
    overhead = len(incompressible(name, version, 1).data) - 1
    dist = incompressible(name, version, size - overhead)
    assert len(dist.data) == size
    return dist


def assert_insufficient_storage(reply: object) -> None:
    status, body = reply.status, reply.body  # type: ignore[attr-defined]
    assert status == 507, (status, body)
    assert reply.content_type == "text/plain"  # type: ignore[attr-defined]
    text = body.decode().lower()
    assert "space" in text or "disk" in text, text


def test_upload_that_does_not_fit_gets_507(small_disk: Path) -> None:
    app, state = app_on(small_disk)
    failed = None
    for number in range(1, 40):
        dist = incompressible("fill-pkg", f"{number}.0", 200 * 1024)
        reply = app.upload(dist)
        if reply.status == 507:
            failed = dist
            assert_insufficient_storage(reply)
            break
        assert reply.status == 200, (reply.status, reply.body)
        state.accept(dist)
    assert failed is not None, "the disk never filled up"
    print(f"\n{len(state.accepted)} uploads fitted; upload {len(state.accepted) + 1} got 507")
    assert not (state.root / failed.filename).exists()
    state.check()  # earlier files and the manifests intact, nothing partial, no temp files
    listing = app.get("/simple/fill-pkg/?format=application/vnd.pypi.simple.v1%2Bjson")
    assert failed.filename.encode() not in listing.body
    # Freeing space lets the same upload through.
    reply = app.post(action_form("remove_pkg", name="fill-pkg", version="1.0"))
    assert reply.status == 200, reply.body
    state.accepted.pop("fill_pkg-1.0-py3-none-any.whl")
    assert app.upload(failed).status == 200
    state.accept(failed)
    state.check()


def test_disk_full_between_file_and_record(small_disk: Path) -> None:
    """The file fits to the last page; its record does not. 507 and nothing stored."""
    app, state = app_on(small_disk)
    first = incompressible("edge-pkg", "1.0", 8 * 1024)
    assert app.upload(first).status == 200
    state.accept(first)
    pages = 24
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free_bytes(small_disk) - pages * PAGE))
    assert free_bytes(small_disk) == pages * PAGE
    state.baseline()
    dist = wheel_of_exact_size("edge-pkg", "2.0", pages * PAGE)
    reply = app.upload(dist)
    assert_insufficient_storage(reply)
    assert not (state.root / dist.filename).exists(), "a 507 upload left its file in the root"
    listing = app.get("/simple/edge-pkg/?format=application/vnd.pypi.simple.v1%2Bjson")
    assert dist.filename.encode() not in listing.body, "a 507 upload is listed"
    state.check()
    filler.unlink()
    state.baseline()
    assert app.upload(dist).status == 200
    state.accept(dist)
    state.check()
