"""The command line as users run it: both forms, several dirs, startup text, signals, errors."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..loopback import free_port
from .servers import (
    ServerFactory,
    expected_link,
)
from .support import (
    PASSWORD,
    USER,
    Dist,
    client_env,
    pypi_server_script,
    run,
)

pytestmark = pytest.mark.integration


def test_legacy_form_without_subcommand_serves(server_factory: ServerFactory, dist01: Dist) -> None:
    root = server_factory.new_root()
    (root / dist01.wheel.name).write_bytes(dist01.wheel.read_bytes())
    server = server_factory([], [root], legacy=True)
    assert server.cmd[0] == str(pypi_server_script())

    assert server.links() == [expected_link(dist01.wheel)]
    resp = server.get(f"/packages/{dist01.wheel.name}")
    assert (resp.status, resp.body) == (200, dist01.wheel.read_bytes())
    assert f"http://127.0.0.1:{server.port}/simple/" in server.log_text()
    # Without -P, uploads stay guarded (-a update is the default) and no login can succeed.
    assert server.upload(dist01.sdist, auth=None).status == 401
    assert server.upload(dist01.sdist, auth=(USER, PASSWORD)).status == 403
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == [dist01.wheel.name]


def test_startup_output_names_the_url_and_sigterm_exits_0(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    text = server.log_text()
    assert f"http://127.0.0.1:{server.port}/" in text, text
    assert f"http://127.0.0.1:{server.port}/simple/" in text, text
    assert "pip install" in text, text
    assert "twine upload" in text, text

    assert server.get("/simple/").status == 200
    assert server.stop(signal.SIGTERM) == 0
    assert not server.is_listening()


def test_sigint_exits_0(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert server.stop(signal.SIGINT) == 0
    assert not server.is_listening()


def test_log_file_gets_one_whole_line_per_request(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    log_file = tmp_path / "access.log"
    server = server_factory(
        ["--log-file", log_file, "--log-stream", "none", "--log-frmt", "%(name)s|%(message)s",
         "-P", ".", "-a", "."]
    )  # fmt: skip
    paths = [f"/simple/p{i}/" for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: server.get(paths[i % 8]).status, range(200)))
    assert statuses == [404] * 200
    deadline = time.monotonic() + 10
    while log_file.read_text().count('"GET /simple/p') < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in log_file.read_text().splitlines() if "/simple/p" in line]
    assert len(lines) == 200
    for line in lines:  # whole lines: no two requests' lines run together
        assert re.fullmatch(
            r'cheesecellar\.access\|127\.0\.0\.1 "GET /simple/p[0-7]/" 404 [0-9.]+ms', line
        )
    assert "/simple/p" not in server.log_text()  # --log-stream none: nothing on the console


def test_python_m_cheesecellar_and_cheesecellar_script_show_help(tmp_path: Path) -> None:
    script = str(Path(sys.executable).parent / "cheesecellar")
    for cmd in ([sys.executable, "-m", "cheesecellar", "--help"], [script, "--help"]):
        out = run(cmd, env=client_env(), cwd=tmp_path, timeout=60)
        assert "usage:" in out.stdout, out.stdout


def test_unknown_authenticate_action_is_refused(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    port = free_port()
    root = server_factory.new_root()
    cmd = server_factory.command(["-P", server_factory.htpasswd, "-a", "upload"], [root], port)
    try:
        out = run(cmd, env=client_env(), cwd=tmp_path, check=False, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server started with `-a upload` instead of refusing it: {cmd}")
    assert out.returncode != 0, out.stdout
    assert "'upload'" in out.stdout, out.stdout
    assert "Traceback" not in out.stdout, out.stdout
    assert f"http://127.0.0.1:{port}/" not in out.stdout, out.stdout
    assert list(root.iterdir()) == []
