"""Fixtures for the end-to-end tests: servers, htpasswd, builds, client venvs and tools.

Venvs and builds are session-scoped (they cost seconds); servers are per test and are
always stopped, with a clean exit (code 0 on SIGTERM) asserted at teardown.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..needs import require_tool
from .servers import (
    Server,
    ServerFactory,
)
from .support import (
    PASSWORD,
    PROJECT,
    USER,
    Builder,
    Dist,
    TwineUpload,
    Venv,
    make_venv,
    pip_env,
    run,
    twine_available,
    uv_command,
)


@pytest.fixture(scope="session")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An htpasswd file with USER/PASSWORD, written by passlib (the libpass package)."""
    from passlib.apache import HtpasswdFile

    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    passwords = HtpasswdFile(str(path), new=True)
    passwords.set_password(USER, PASSWORD)
    passwords.save()
    return path


@pytest.fixture
def server_factory(tmp_path: Path, htpasswd: Path) -> Iterator[ServerFactory]:
    """Starts servers for one test; stops them all and checks they exited cleanly."""
    factory = ServerFactory(tmp_path, htpasswd)
    try:
        yield factory
    finally:
        problems = factory.stop_all()
        for server in factory.servers:
            print(f"--- server log of {server.cmd}\n{server.log_text()}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    """A server with one empty package dir; uploads need USER/PASSWORD."""
    return server_factory()


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(tmp_path_factory.mktemp("builds"))


@pytest.fixture(scope="session")
def dist01(build: Builder) -> Dist:
    return build("0.1")


@pytest.fixture(scope="session")
def client_venv_session(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    # setuptools lets pip build our sdists with --no-build-isolation: the test index
    # (our server) has no setuptools to put into a build environment.
    return make_venv(tmp_path_factory.mktemp("client") / "venv", "setuptools>=70.1")


@pytest.fixture
def client_venv(client_venv_session: Venv) -> Iterator[Venv]:
    """The session's install target, without linode_example before and after the test."""
    assert not client_venv_session.has_project(), "a previous test left linode_example installed"
    try:
        yield client_venv_session
    finally:
        run(
            [
                client_venv_session.python,
                "-m",
                "pip",
                "--isolated",
                "uninstall",
                "-y",
                "--disable-pip-version-check",
                PROJECT,
            ],
            env=pip_env(),
        )


@pytest.fixture(scope="session")
def legacy_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A venv whose setuptools still has distutils' `upload` command (gone in 75)."""
    return make_venv(tmp_path_factory.mktemp("legacy") / "venv", "setuptools<75", "wheel")


@pytest.fixture(scope="session")
def uv() -> list[str]:
    cmd = uv_command()
    require_tool(cmd is not None, "uv")
    assert cmd is not None
    return cmd


@pytest.fixture(scope="session")
def twine() -> list[str]:
    require_tool(twine_available(), "twine")
    return [sys.executable, "-m", "twine"]


@pytest.fixture
def twine_upload(twine: list[str], tmp_path: Path) -> TwineUpload:
    return TwineUpload(twine, tmp_path)
