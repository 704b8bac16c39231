"""cheesecellar under a real Apache httpd + mod_wsgi, deployed the way deploy/README.md says:
uploads with real twine, installs with real pip, two daemon processes, `Require ip`, a prefix."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from ..loopback import free_port
from .harness import (
    AS_ROOT,
    CHECKOUT,
    PASSWORD,
    USER,
    Apache,
    Response,
    alive,
    build_wheel,
    pip_install_isolated,
    request,
    run,
    upload_form,
)

pytestmark = pytest.mark.apache


@pytest.fixture(scope="module")
def apache(launch_apache: Callable[..., Apache]) -> Iterator[Apache]:
    """The deployment as rendered with default options (so `Require ip 127.0.0.1 ::1`)."""
    server = launch_apache("root")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def apache_prefix(launch_apache: Callable[..., Apache]) -> Iterator[Apache]:
    """The same deployment mounted under /pypi."""
    server = launch_apache("prefix", "--require", "ip 127.0.0.1", prefix="/pypi")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dists(workdir: pathlib.Path) -> pathlib.Path:
    return workdir / "dist"


def upload(apache: Apache, wheel: pathlib.Path, auth: tuple[str, str] | None) -> Response:
    name, version = wheel.name.split("-")[:2]
    body, content_type = upload_form(wheel, name, version)
    return request(apache.url, "POST", body, {"Content-Type": content_type}, auth=auth)


def twine_upload(url: str, wheel: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINE_")}
    run(
        [
            sys.executable, "-m", "twine", "upload", "--non-interactive",
            "--disable-progress-bar", "--repository-url", url, "-u", USER, "-p", PASSWORD,
            wheel,
        ],
        env=env,
    )  # fmt: skip


def install_and_import(client: pathlib.Path, index_url: str, name: str, version: str) -> None:
    pip_install_isolated(client, index_url, f"{name}=={version}")
    done = run([client / "bin" / "python", "-c", f"import {name}; print({name}.VERSION)"])
    assert done.stdout.strip() == version


def assert_stored(apache: Apache, wheel: pathlib.Path) -> None:
    stored = apache.packages / wheel.name
    assert stored.read_bytes() == wheel.read_bytes(), apache.logs()
    if AS_ROOT:
        assert stored.owner() == "www-data"  # written by the daemon process, not by root


def test_upload_without_credentials_is_401_and_with_a_wrong_password_403(
    apache: Apache, dists: pathlib.Path
) -> None:
    wheel = build_wheel(dists, "cc_apache_denied", "0.1.0")
    anonymous = upload(apache, wheel, auth=None)
    assert anonymous.status == 401, apache.logs()
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = upload(apache, wheel, auth=(USER, "not-" + PASSWORD))
    assert wrong.status == 403, apache.logs()
    unknown = upload(apache, wheel, auth=("mallory", PASSWORD))
    assert unknown.status == 403, apache.logs()
    assert not (apache.packages / wheel.name).exists()


def test_twine_upload_then_pip_install(
    apache: Apache, dists: pathlib.Path, client_venv: pathlib.Path
) -> None:
    wheel = build_wheel(dists, "cc_apache_root", "0.1.0")
    twine_upload(apache.url, wheel)
    assert_stored(apache, wheel)
    install_and_import(client_venv, apache.url + "simple/", "cc_apache_root", "0.1.0")


def test_upload_through_one_process_is_listed_by_the_other(
    apache: Apache, dists: pathlib.Path
) -> None:
    page = apache.url + "simple/cc-apache-shared/"

    def listing(expect: str) -> Response:
        resp = request(page)
        assert resp.status == 200, apache.logs()
        assert expect.encode() in resp.body, (resp.pid, resp.body)
        return resp

    first = build_wheel(dists, "cc_apache_shared", "0.1.0")
    assert upload(apache, first, auth=(USER, PASSWORD)).status == 200, apache.logs()
    # Both daemon processes render (and may cache) the project page before the next upload.
    seen: set[int] = set()
    for _ in range(200):
        seen.add(listing(first.name).pid)
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"expected answers from 2 daemon processes, got {seen}"

    second = build_wheel(dists, "cc_apache_shared", "0.2.0")
    uploaded = upload(apache, second, auth=(USER, PASSWORD))
    assert uploaded.status == 200, apache.logs()
    for _ in range(200):
        other = listing(second.name)
        if other.pid != uploaded.pid:
            break
    assert other.pid != uploaded.pid, "every request went to the process that took the upload"
    assert first.name.encode() in other.body


def test_address_outside_require_gets_403(apache: Apache) -> None:
    # Linux routes all of 127.0.0.0/8 to loopback: the request reaches Apache from 127.0.0.2.
    outsider = request(apache.url + "simple/", source="127.0.0.2")
    assert outsider.status == 403
    assert "X-Served-By-Pid" not in outsider.headers  # refused by Apache, not by the app
    assert request(apache.url + "simple/", source="127.0.0.1").status == 200
    assert "AH01630" in (apache.run_dir / "error.log").read_text()


def test_mounted_under_a_prefix(
    apache_prefix: Apache, dists: pathlib.Path, client_venv: pathlib.Path
) -> None:
    assert apache_prefix.url.endswith("/pypi/")
    outside = request(apache_prefix.url.replace("/pypi/", "/simple/"))
    assert outside.status in (403, 404) and "X-Served-By-Pid" not in outside.headers
    wheel = build_wheel(dists, "cc_apache_prefix", "0.1.0")
    assert upload(apache_prefix, wheel, auth=None).status == 401
    twine_upload(apache_prefix.url, wheel)
    assert_stored(apache_prefix, wheel)
    page = request(apache_prefix.url + "simple/cc-apache-prefix/")
    assert page.status == 200
    hrefs = re.findall(rb'href="([^"]+)"', page.body)
    assert hrefs and all(not h.startswith(b"/") or h.startswith(b"/pypi/") for h in hrefs), hrefs
    install_and_import(client_venv, apache_prefix.url + "simple/", "cc_apache_prefix", "0.1.0")


def test_apache_stops_with_all_its_processes(launch_apache: Callable[..., Apache]) -> None:
    server = launch_apache("stop")
    pid = request(server.url + "simple/").pid
    server.stop()
    assert not alive(pid)
    with pytest.raises(OSError):
        request(server.url + "simple/")


def test_systemd_unit_command_serves(
    workdir: pathlib.Path, server_venv: pathlib.Path, dists: pathlib.Path
) -> None:
    """The unit's ExecStart, with /srv/cheesecellar moved into the work dir, serves the index."""
    unit = (CHECKOUT / "deploy" / "cheesecellar.service").read_text()
    base = workdir / "systemd"
    (base / "packages").mkdir(parents=True)
    (base / "venv").symlink_to(server_venv)
    run(["htpasswd", "-cbB", base / "htpasswd", USER, PASSWORD])
    port = free_port()
    unit = unit.replace("/srv/cheesecellar", str(base)).replace("-p 8080", f"-p {port}")
    (base / "cheesecellar.service").write_text(unit)
    if shutil.which("systemd-analyze"):
        done = subprocess.run(
            ["systemd-analyze", "verify", base / "cheesecellar.service"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    execstart = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert execstart is not None
    argv = shlex.split(execstart.group(1))
    at = argv.index("-p") + 2
    argv[at:at] = ["-i", "127.0.0.1"]  # tests listen on loopback only
    with open(base / "server.log", "wb") as log:
        server = subprocess.Popen(argv, cwd=base, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, (base / "server.log").read_text()
            try:
                assert request(url + "simple/").status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, (base / "server.log").read_text()
                time.sleep(0.2)
        wheel = build_wheel(dists, "cc_systemd_probe", "0.1.0")
        body, content_type = upload_form(wheel, "cc_systemd_probe", "0.1.0")
        headers = {"Content-Type": content_type}
        assert request(url, "POST", body, headers).status == 401
        assert request(url, "POST", body, headers, auth=(USER, PASSWORD)).status == 200
        assert (base / "packages" / wheel.name).read_bytes() == wheel.read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=15)
