"""Real clients against a real server: build, upload with a login, install, import.

Installs are isolated from the machine's pip/uv configuration so only our server can
satisfy them; each test checks the bytes on disk, the project page and the installed code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .servers import (
    Server,
    ServerFactory,
    expected_link,
)
from .support import (
    EXAMPLES,
    NORMALIZED,
    PASSWORD,
    PROJECT,
    USER,
    Builder,
    Dist,
    TwineUpload,
    Venv,
    client_env,
    run,
    uv_env,
)

pytestmark = pytest.mark.integration


def installed_from(server: Server, file: Path, venv: Venv, cwd: Path, *pip_args: str) -> None:
    """pip installs `file` from the server's download URL into `venv`, and it runs."""
    before = server.count("GET", f"/packages/{file.name}", 200)
    venv.pip_install(server, *pip_args, cwd=cwd)
    assert server.answered("GET", f"/packages/{file.name}", 200, before + 1), server.log_text()
    assert venv.hello(cwd) == "hello world\n"


def downloaded_from(server: Server, *files: Path) -> None:
    """The server's download URL of each file gives exactly the file's bytes."""
    for path in files:
        resp = server.get(f"/packages/{path.name}")
        assert resp.status == 200, (path.name, resp.status, resp.body)
        assert resp.body == path.read_bytes()


@pytest.mark.parametrize("http_server", ["default", "waitress"])
def test_twine_upload_then_pip_install(
    server_factory: ServerFactory,
    htpasswd: Path,
    http_server: str,
    dist01: Dist,
    twine_upload: TwineUpload,
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    """With the built-in HTTP server (the default) and with `--server waitress`."""
    options: list[str | Path] = ["-P", htpasswd, "-a", "update"]
    if http_server == "waitress":
        options += ["--server", "waitress"]
    server = server_factory(options)
    expected = "cheesecellar (waitress)" if http_server == "waitress" else "cheesecellar"
    assert server.get("/health").headers["Server"] == expected
    twine_upload(server, dist01.wheel, dist01.sdist)

    for dist in (dist01.wheel, dist01.sdist):
        assert (server.root / dist.name).read_bytes() == dist.read_bytes()
    assert sorted(server.links()) == sorted(
        [expected_link(dist01.wheel), expected_link(dist01.sdist)]
    )
    assert server.projects() == [f"{NORMALIZED}/"]
    downloaded_from(server, dist01.wheel, dist01.sdist)

    installed_from(server, dist01.wheel, client_venv, tmp_path, f"{PROJECT}==0.1")


def test_pip_installs_sdist_from_server(
    server: Server,
    dist01: Dist,
    twine_upload: TwineUpload,
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    twine_upload(server, dist01.sdist)
    assert server.links() == [expected_link(dist01.sdist)]

    installed_from(
        server, dist01.sdist, client_venv, tmp_path, "--no-build-isolation", f"{PROJECT}==0.1"
    )


def test_uv_publish_and_uv_pip_install(
    server: Server,
    build: Builder,
    uv: list[str],
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    dist02 = build("0.2")
    run(
        [
            *uv,
            "publish",
            "--publish-url",
            server.url,
            "-u",
            USER,
            "-p",
            PASSWORD,
            dist02.wheel,
            dist02.sdist,
        ],
        env=uv_env(HOME=str(tmp_path)),
    )
    for dist in (dist02.wheel, dist02.sdist):
        assert (server.root / dist.name).read_bytes() == dist.read_bytes()
    assert sorted(server.links()) == sorted(
        [expected_link(dist02.wheel), expected_link(dist02.sdist)]
    )

    run(
        [
            *uv,
            "pip",
            "install",
            "--python",
            client_venv.python,
            "--index-url",
            server.simple_url,
            "--no-cache",
            f"{PROJECT}==0.2",
        ],
        env=uv_env(HOME=str(tmp_path)),
    )
    assert server.answered("GET", f"/packages/{dist02.wheel.name}", 200), server.log_text()
    assert client_venv.hello(tmp_path) == "hello world\n"


def test_pip_conf_extra_index_url(
    server: Server,
    dist01: Dist,
    twine_upload: TwineUpload,
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    """examples/pip.conf, pointed at the test server, makes pip find our private package.

    The primary index is an empty local one, so the package can only come from the
    example's extra-index-url.
    """
    twine_upload(server, dist01.wheel)
    empty_index = tmp_path / "empty-index"
    (empty_index / "simple").mkdir(parents=True)
    (empty_index / "simple" / "index.html").write_text("<!DOCTYPE html><html></html>\n")

    example = (EXAMPLES / "pip.conf").read_text()
    assert "extra-index-url = http://localhost:8080/simple/\n" in example
    assert "trusted-host = localhost\n" in example
    rendered = example.replace("localhost:8080", f"127.0.0.1:{server.port}").replace(
        "trusted-host = localhost", "trusted-host = 127.0.0.1"
    )
    rendered = rendered.replace(
        "[global]\n", f"[global]\nindex-url = {(empty_index / 'simple').as_uri()}/\n"
    )
    conf = tmp_path / "pip.conf"
    conf.write_text(rendered)

    run(
        [
            client_venv.python,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            f"{PROJECT}==0.1",
        ],
        env=client_env(PIP_CONFIG_FILE=str(conf)),
        cwd=tmp_path,
    )
    assert server.answered("GET", f"/packages/{dist01.wheel.name}", 200), server.log_text()
    assert client_venv.hello(tmp_path) == "hello world\n"


def test_setup_py_sdist_upload_with_pypirc(
    server: Server,
    build: Builder,
    legacy_venv: Venv,
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    """`python setup.py sdist upload -r local` with examples/pypirc as ~/.pypirc."""
    home = tmp_path / "home"
    home.mkdir()
    example = (EXAMPLES / "pypirc").read_text()
    for placeholder in ("http://localhost:8080/", "<your-username>", "<your-password>"):
        assert placeholder in example
    (home / ".pypirc").write_text(
        example.replace("http://localhost:8080/", server.url)
        .replace("<your-username>", USER)
        .replace("<your-password>", PASSWORD)
    )
    src = build.copy_example(tmp_path / "src")

    out = run(
        [legacy_venv.python, "setup.py", "sdist", "upload", "-r", "local"],
        env=client_env(HOME=str(home)),
        cwd=src,
    )
    assert "Server response (200): OK" in out.stdout, out.stdout
    (sdist,) = (src / "dist").iterdir()
    assert sdist.name == f"{PROJECT}-0.1.tar.gz"
    assert (server.root / sdist.name).read_bytes() == sdist.read_bytes()
    assert server.links() == [expected_link(sdist)]

    installed_from(server, sdist, client_venv, tmp_path, "--no-build-isolation", f"{PROJECT}==0.1")


def test_file_copied_by_hand_is_served_without_restart(
    server: Server,
    dist01: Dist,
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    assert server.get(f"/simple/{NORMALIZED}/").status == 404
    assert server.projects() == []

    staged = tmp_path / "staged"
    staged.mkdir()
    shutil.copy(dist01.sdist, staged / "partial.tmp")
    shutil.move(staged / "partial.tmp", server.root / dist01.sdist.name)
    assert server.links() == [expected_link(dist01.sdist)]
    assert server.projects() == [f"{NORMALIZED}/"]
    downloaded_from(server, dist01.sdist)

    installed_from(
        server, dist01.sdist, client_venv, tmp_path, "--no-build-isolation", f"{PROJECT}==0.1"
    )

    # A second file for a project whose page the server has already rendered.
    shutil.copy(dist01.wheel, staged / "partial.tmp")
    shutil.move(staged / "partial.tmp", server.root / dist01.wheel.name)
    assert sorted(server.links()) == sorted(
        [expected_link(dist01.sdist), expected_link(dist01.wheel)]
    )
    downloaded_from(server, dist01.wheel)


def test_two_dirs_upload_to_first_list_both(
    server_factory: ServerFactory,
    build: Builder,
    dist01: Dist,
    twine_upload: TwineUpload,
    client_venv: Venv,
    tmp_path: Path,
) -> None:
    first, second = server_factory.new_root(), server_factory.new_root()
    shutil.copy(dist01.sdist, second / dist01.sdist.name)
    server = server_factory(roots=[first, second])
    dist02 = build("0.2")

    twine_upload(server, dist02.wheel)
    assert sorted(p.name for p in first.iterdir() if not p.name.startswith(".")) == [
        dist02.wheel.name
    ]
    assert sorted(p.name for p in second.iterdir() if not p.name.startswith(".")) == [
        dist01.sdist.name
    ]
    assert (first / dist02.wheel.name).read_bytes() == dist02.wheel.read_bytes()
    assert sorted(server.links()) == sorted(
        [expected_link(dist01.sdist), expected_link(dist02.wheel)]
    )
    downloaded_from(server, dist01.sdist, dist02.wheel)

    installed_from(server, dist02.wheel, client_venv, tmp_path, f"{PROJECT}==0.2")
