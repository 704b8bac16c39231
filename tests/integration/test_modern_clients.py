"""The modern index API as real installers use it: .metadata, upload times, yanking.

pip (a current release, which has --uploaded-prior-to) and uv resolve against a real server
process; the server's request log shows what they fetched.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .servers import Server, ServerFactory
from .support import (
    NORMALIZED,
    PASSWORD,
    PROJECT,
    USER,
    Builder,
    Venv,
    make_venv,
    pip_env,
    run,
    uv_env,
)

pytestmark = pytest.mark.integration

VERSIONS = ("0.1", "0.2", "0.3")


@pytest.fixture(scope="session")
def modern_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """An install target whose pip knows --uploaded-prior-to (pip >= 26.0)."""
    return make_venv(tmp_path_factory.mktemp("modern") / "venv", "pip>=26.0")


@pytest.fixture
def target(modern_venv: Venv) -> Iterator[Venv]:
    """The modern venv without the example package before and after the test."""
    uninstall = [modern_venv.python, "-m", "pip", "--isolated", "uninstall", "-y", PROJECT]
    run(uninstall, env=pip_env())
    yield modern_venv
    run(uninstall, env=pip_env())


def installed_version(venv: Venv) -> str:
    code = f"import importlib.metadata as m; print(m.version({PROJECT!r}))"
    return run([venv.python, "-I", "-c", code]).stdout.strip()


def upload_versions(server: Server, build: Builder, versions: tuple[str, ...]) -> list[Path]:
    wheels = []
    for version in versions:
        wheel = build(version).wheel
        resp = server.upload(wheel)
        assert (resp.status, resp.body) == (200, b""), (resp, server.log_text())
        wheels.append(wheel)
    return wheels


def pip(venv: Venv, server: Server, *args: str) -> str:
    return run(
        [venv.python, "-m", "pip", "--isolated", "install", "--no-cache-dir",
         "--disable-pip-version-check", "--index-url", server.simple_url, *args],
        env=pip_env(),
    ).stdout  # fmt: skip


def uv_pip(uv: list[str], venv: Venv, server: Server, *args: str) -> str:
    return run(
        [*uv, "pip", "install", "--python", str(venv.python), "--no-cache",
         "--index-url", server.simple_url, *args],
        env=uv_env(),
    ).stdout  # fmt: skip


def downloads(server: Server, wheel: Path) -> tuple[int, int]:
    """(GETs of the wheel's .metadata, GETs of the wheel itself) answered 200."""
    path = f"/packages/{wheel.name}"
    return server.count("GET", path + ".metadata", 200), server.count("GET", path, 200)


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_resolution_reads_metadata_files_not_wheels(
    installer: str, server: Server, build: Builder, target: Venv, uv: list[str]
) -> None:
    wheels = upload_versions(server, build, VERSIONS)
    if installer == "pip":
        pip(target, server, PROJECT)
    else:
        uv_pip(uv, target, server, PROJECT)
    assert installed_version(target) == "0.3"
    assert server.answered("GET", f"/packages/{wheels[-1].name}", 200)
    metadata_gets, wheel_gets = downloads(server, wheels[-1])
    assert metadata_gets >= 1, server.log_text()  # resolved from the .metadata file
    assert wheel_gets == 1, server.log_text()
    for older in wheels[:-1]:
        assert downloads(server, older) == (0, 0), server.log_text()


def _upload_time(server: Server, filename: str) -> datetime:
    resp = server.request(
        "GET", f"/simple/{NORMALIZED}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert resp.status == 200
    files = {f["filename"]: f for f in json.loads(resp.body)["files"]}
    return datetime.strptime(files[filename]["upload-time"], "%Y-%m-%dT%H:%M:%S.%f%z")


@pytest.fixture
def two_dated_versions(server: Server, build: Builder) -> str:
    """0.1 and 0.2 uploaded a few seconds apart; a cutoff between them (whole seconds)."""
    (first,) = upload_versions(server, build, ("0.1",))
    time.sleep(1.2)
    cutoff = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.2)
    (second,) = upload_versions(server, build, ("0.2",))
    assert _upload_time(server, first.name) < cutoff < _upload_time(server, second.name)
    return cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_pip_uploaded_prior_to_uses_recorded_upload_times(
    server: Server, two_dated_versions: str, target: Venv
) -> None:
    pip(target, server, "--uploaded-prior-to", two_dated_versions, PROJECT)
    assert installed_version(target) == "0.1"


def test_uv_exclude_newer_uses_recorded_upload_times(
    server: Server, two_dated_versions: str, target: Venv, uv: list[str]
) -> None:
    uv_pip(uv, target, server, "--exclude-newer", two_dated_versions, PROJECT)
    assert installed_version(target) == "0.1"


def test_upload_time_survives_a_copy_of_the_directory(
    server_factory: ServerFactory, build: Builder, tmp_path: Path
) -> None:
    """The recorded time is the upload's, not the file's mtime, which a copy changes."""
    first = server_factory()
    (wheel,) = upload_versions(first, build, ("0.1",))
    uploaded = _upload_time(first, wheel.name)
    copy = tmp_path / "restored"
    shutil.copytree(first.root, copy)  # new mtimes on every file
    (copy / wheel.name).touch()
    second = server_factory(["-P", ".", "-a", "."], [copy])
    assert _upload_time(second, wheel.name) == uploaded


def yank(server: Server, version: str, reason: str) -> None:
    resp = server.post_form(
        [(":action", "yank"), ("name", PROJECT), ("version", version), ("reason", reason)],
        auth=(USER, PASSWORD),
    )
    assert (resp.status, resp.text) == (200, f"Yanked {PROJECT}-{version}-py3-none-any.whl\n")


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_yanked_release_is_skipped_unless_pinned(
    installer: str, server: Server, build: Builder, target: Venv, uv: list[str]
) -> None:
    upload_versions(server, build, ("0.1", "0.2"))
    yank(server, "0.2", "broken build")
    page = server.get(f"/simple/{NORMALIZED}/").text
    assert 'data-yanked="broken build"' in page

    def install(*args: str) -> str:
        if installer == "pip":
            return pip(target, server, *args)
        return uv_pip(uv, target, server, *args)

    install(PROJECT)
    assert installed_version(target) == "0.1"
    out = install(f"{PROJECT}==0.2")
    assert installed_version(target) == "0.2"
    assert "yanked" in out.lower() and "broken build" in out, out
