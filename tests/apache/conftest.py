"""Session fixtures: the world-readable work dir, the server venv and launched Apache instances."""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator

import pytest

from ..loopback import free_port
from ..needs import unavailable
from .harness import (
    AS_ROOT,
    CHECKOUT,
    MODULES,
    PASSWORD,
    PID_WRAPPER,
    SYSTEM_PYTHON,
    USER,
    Apache,
    has_venv,
    run,
    write_httpd_conf,
)


@pytest.fixture(scope="session")
def apache2() -> str:
    """Path of the apache2 binary; skipped without it on a developer machine, failed in CI."""
    found = shutil.which("apache2", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    missing = [
        what
        for what, ok in [
            ("apache2", found is not None),
            ("mod_wsgi.so (libapache2-mod-wsgi-py3)", (MODULES / "mod_wsgi.so").exists()),
            ("htpasswd (apache2-utils)", shutil.which("htpasswd") is not None),
            ("/usr/bin/python3 -m venv (python3-venv)", has_venv()),
        ]
        if not ok
    ]
    if missing:
        unavailable(
            "missing: " + ", ".join(missing) + " (apt-get install apache2"
            " libapache2-mod-wsgi-py3 apache2-utils python3-venv)"
        )
    assert found is not None
    return found


WORKDIR_TEST_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and "workdir" in getattr(item, "fixturenames", ()):
        item.session.stash[WORKDIR_TEST_FAILED] = True
    return report


@pytest.fixture(scope="session")
def workdir(apache2: str, request: pytest.FixtureRequest) -> Iterator[pathlib.Path]:
    """A short, world-readable directory: www-data cannot enter pytest's mode-700 tmp_path, and
    the daemon sockets' paths must fit the 107-byte AF_UNIX limit. Kept when a test using it
    failed, for Apache's error.log and access.log."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="cc-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    if request.session.stash.get(WORKDIR_TEST_FAILED, False):
        print(f"\nApache work dir kept for its logs: {path}", file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_venv(workdir: pathlib.Path) -> pathlib.Path:
    """A venv of the Python that Debian's mod_wsgi embeds, with this checkout installed (not -e).

    The checkout is copied first so that building it writes nothing into the working tree.
    """
    source = workdir / "checkout"
    # The project's top-level files (pyproject.toml, README, licence) and src/; not .venv/.git.
    shutil.copytree(
        CHECKOUT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
    )
    for path in CHECKOUT.iterdir():
        if path.is_file():
            shutil.copy2(path, source)
    venv = workdir / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", source])
    return venv


@pytest.fixture(scope="session")
def client_venv(workdir: pathlib.Path) -> pathlib.Path:
    """An empty venv that installs only from the index under test."""
    venv = workdir / "client"
    run([sys.executable, "-m", "venv", venv])
    return venv


@pytest.fixture(scope="session")
def launch_apache(
    apache2: str, workdir: pathlib.Path, server_venv: pathlib.Path
) -> Iterator[Callable[..., Apache]]:
    """Start an Apache serving a deployment rendered by `cheesecellar deploy-apache`.

    Returns ``launch(name, *extra_cli_args, prefix="/")``; every instance is stopped at the end
    of the session, pass or fail.
    """
    instances: list[Apache] = []

    def launch(name: str, *extra: str, prefix: str = "/") -> Apache:
        run_dir = workdir / name
        site, packages = run_dir / "site", run_dir / "packages"
        for path in (run_dir, packages):
            path.mkdir()
            path.chmod(0o755)  # whatever the umask: www-data must get in
        if AS_ROOT:
            shutil.chown(packages, "www-data", "www-data")
        htpasswd = run_dir / "htpasswd"
        run(["htpasswd", "-cbB", htpasswd, USER, PASSWORD])
        htpasswd.chmod(0o644)
        port = free_port()
        rendered = run(
            [
                server_venv / "bin" / "cheesecellar",
                "deploy-apache",
                "--output-dir", site,
                "--passwords", htpasswd,
                "--venv", server_venv,
                "--listen", "127.0.0.1",
                "--port", str(port),
                "--server-name", "127.0.0.1",
                "--processes", "2",
                "--threads", "4",
                "--prefix", prefix,
                *extra,
                packages,
            ]
        )  # fmt: skip
        wsgi, vhost = site / "cheesecellar.wsgi", site / "cheesecellar.conf"
        assert wsgi.is_file() and vhost.is_file(), rendered.stdout + rendered.stderr
        # Test-only: the rendered entry point moves aside and a wrapper that adds the daemon's
        # PID takes its place; the vhost and the rendered code run unchanged.
        real = site / "rendered.wsgi.py"
        wsgi.rename(real)
        wsgi.write_text(PID_WRAPPER.format(rendered=str(real)))
        wsgi.chmod(0o644)
        conf = write_httpd_conf(run_dir, port, vhost)
        apache = Apache(run_dir, conf, port, prefix, packages, vhost, real)
        instances.append(apache)
        apache.start(apache2)
        return apache

    yield launch
    errors = []
    for apache in instances:
        try:
            apache.stop()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n".join(errors)
