"""`pypi-server run --config FILE`: a TOML file of app() keywords, overridden by options."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .servers import ServerFactory, basic_auth
from .support import NORMALIZED, PASSWORD, USER, Builder, client_env, run

pytestmark = pytest.mark.integration


def test_config_file_sets_roots_auth_and_limits(
    server_factory: ServerFactory, build: Builder, tmp_path: Path
) -> None:
    root = tmp_path / "from-config"
    config = tmp_path / "cheesecellar.toml"
    config.write_text(
        "[cheesecellar]\n"
        f"roots = [{str(root)!r}]\n"
        "port = 1\n"  # overridden by the -p the test harness passes
        f"password_file = {str(server_factory.htpasswd)!r}\n"
        'authenticate = ["update", "list"]\n'
        'max_upload_size = "1M"\n'
        "page_max_age = 30\n"
    )
    server = server_factory(["--config", config], roots=[])
    assert root.is_dir()
    assert server.get("/simple/").status == 401  # "list" is guarded, as the file says
    wheel = build("0.1").wheel
    assert server.upload(wheel).status == 200
    assert (root / wheel.name).read_bytes() == wheel.read_bytes()
    page = server.request(
        "GET", f"/simple/{NORMALIZED}/", headers={"Authorization": basic_auth(USER, PASSWORD)}
    )
    assert page.status == 200
    assert page.headers["Cache-Control"] == "max-age=30, public"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[cheesecellar]\nport = 8080\nuploads = true\n", "unknown key(s) uploads"),
        ("[cheesecellar\n", "config file"),
        ('[cheesecellar]\nauthenticate = ["upload"]\n', "unknown action 'upload'"),
        ("[cheesecellar]\nworkers = 0\n", "--workers must be a whole number from 1, not 0"),
        ('[cheesecellar]\nworkers = "two"\n', "argument --workers: invalid int value: 'two'"),
    ],
)
def test_bad_config_file_is_an_error_at_startup(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    proc = run(
        [sys.executable, "-m", "cheesecellar", "run", "--config", config, tmp_path],
        env=client_env(),
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stdout
    assert "Traceback" not in proc.stdout


def test_pypiserver_log_format_options_are_accepted_and_reported(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(["-P", ".", "-a", ".", "--log-req-frmt", "%(bottle.request)s"])
    assert server.get("/health").status == 200
    assert "--log-req-frmt is accepted for pypiserver compatibility and has no effect" in (
        server.log_text()
    )
