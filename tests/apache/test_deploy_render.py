"""`cheesecellar deploy-apache` renders what deploy/ ships, every directive the deployment needs,
and a configuration that Apache itself accepts."""

from __future__ import annotations

import argparse
import configparser
import os
import pathlib
import re
import shlex
import subprocess
import sys
import types

import pytest

from cheesecellar import deploy
from cheesecellar.errors import ConfigError

from .harness import APACHE_ENV, CHECKOUT, write_httpd_conf

DEPLOY = CHECKOUT / "deploy"
LEFTOVER = re.compile(r"(?<!%)\{[A-Z_]+\}")


def parse(*argv: str | os.PathLike[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cheesecellar deploy-apache")
    deploy.configure_parser(parser)
    return parser.parse_args([str(a) for a in argv])


def directives(conf: str) -> list[str]:
    """The config's lines, continuations joined, blanks collapsed, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", conf)
    lines = (" ".join(line.split()) for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture
def site(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        "out": tmp_path / "site",
        "packages": tmp_path / "packages",
        "htpasswd": tmp_path / "htpasswd",
        "venv": tmp_path / "venv",
    }


def render(site: dict[str, pathlib.Path], *extra: str) -> list[pathlib.Path]:
    args = parse(
        "-o", site["out"], "-P", site["htpasswd"], "--venv", site["venv"],
        "--server-name", "pypi.example.org", *extra, site["packages"],
    )  # fmt: skip
    return deploy.run(args)


def test_repository_templates_are_the_ones_rendered() -> None:
    assert (DEPLOY / "apache" / "cheesecellar.conf").read_text() == deploy.VHOST_TEMPLATE
    assert (DEPLOY / "cheesecellar.wsgi").read_text() == deploy.render_wsgi(
        pathlib.Path("/srv/cheesecellar/packages"), pathlib.Path("/srv/cheesecellar/htpasswd")
    )


def test_template_documents_every_placeholder() -> None:
    doc, _, body = deploy.VHOST_TEMPLATE.partition("\n\n<VirtualHost")
    assert set(LEFTOVER.findall(body)) == set(LEFTOVER.findall(doc))


def test_defaults_render_every_directive(site: dict[str, pathlib.Path]) -> None:
    wsgi, conf = render(site)
    out = site["out"]
    assert (wsgi, conf) == (out / "cheesecellar.wsgi", out / "cheesecellar.conf")
    text = conf.read_text()
    assert not LEFTOVER.search(text)
    assert directives(text) == [
        "<VirtualHost *:80>",
        "ServerName pypi.example.org",
        f"WSGIDaemonProcess cheesecellar user=www-data group=www-data processes=2 threads=8 "
        f"python-home={site['venv']} home={out} display-name=%{{GROUP}}",
        "WSGIProcessGroup cheesecellar",
        "WSGIApplicationGroup %{GLOBAL}",
        "WSGIPassAuthorization On",
        f"WSGIScriptAlias / {out}/cheesecellar.wsgi",
        "LimitRequestBody 104857600",
        f"<Directory {out}>",
        "<Files cheesecellar.wsgi>",
        "Require ip 127.0.0.1 ::1",
        "</Files>",
        "</Directory>",
        "</VirtualHost>",
    ]
    assert "# Require all granted" in text
    for path in (wsgi, conf):
        assert path.stat().st_mode & 0o777 == 0o644  # the daemon user must read them


def test_options_reach_the_vhost(site: dict[str, pathlib.Path]) -> None:
    _, conf = render(
        site,
        "--name", "index2", "--listen", "::1", "-p", "8081", "--prefix", "/pypi/",
        "--require", "ip 10.0.0.0/8", "--require", "ip 192.168.1.0/24",
        "--user", "pypi", "--group", "pypi", "--processes", "3", "--threads", "5",
        "--limit-request-body", "0",
    )  # fmt: skip
    out = site["out"]
    assert conf == out / "index2.conf"
    lines = directives(conf.read_text())
    assert lines[0] == "<VirtualHost [::1]:8081>"
    assert (
        f"WSGIDaemonProcess index2 user=pypi group=pypi processes=3 threads=5 "
        f"python-home={site['venv']} home={out} display-name=%{{GROUP}}"
    ) in lines
    assert "WSGIProcessGroup index2" in lines
    assert f"WSGIScriptAlias /pypi {out}/index2.wsgi" in lines
    assert "LimitRequestBody 0" in lines
    assert "<Files index2.wsgi>" in lines
    assert lines.count("Require ip 10.0.0.0/8") == lines.count("Require ip 192.168.1.0/24") == 1
    assert "Listen 8081" in conf.read_text()  # the header says which Listen is needed


def test_paths_are_made_absolute(
    site: dict[str, pathlib.Path], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wsgi, conf = deploy.run(parse("-P", "./auth/../htpasswd", "pkgs"))
    assert (wsgi, conf) == (tmp_path / "cheesecellar.wsgi", tmp_path / "cheesecellar.conf")
    assert f"python-home={sys.prefix} " in " ".join(directives(conf.read_text()))
    kwargs = run_wsgi(wsgi.read_text(), monkeypatch)
    assert kwargs["root"] == str(tmp_path / "pkgs")
    assert kwargs["password_file"] == str(tmp_path / "htpasswd")


def run_wsgi(source: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Execute a rendered .wsgi against a stand-in ``cheesecellar.app``; its keyword args."""
    seen: dict[str, object] = {}

    def app(**kwargs: object) -> str:
        seen.update(kwargs)
        return "the app"

    monkeypatch.setitem(sys.modules, "cheesecellar", types.SimpleNamespace(app=app))
    namespace: dict[str, object] = {}
    exec(compile(source, "cheesecellar.wsgi", "exec"), namespace)
    assert namespace["application"] == "the app"
    return seen


def test_wsgi_entry_point_passes_the_documented_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    odd = pathlib.Path('/srv/ch"ee\\se/päckages')
    kwargs = run_wsgi(deploy.render_wsgi(odd, pathlib.Path("/etc/htpasswd")), monkeypatch)
    assert kwargs == {
        "root": str(odd),
        "password_file": "/etc/htpasswd",
        "authenticate": ["update"],
        "redirect_to_fallback": False,
    }


def test_rerun_replaces_the_files(site: dict[str, pathlib.Path]) -> None:
    render(site, "-p", "8080")
    _, conf = render(site, "-p", "8081")
    assert "<VirtualHost *:8081>" in conf.read_text()
    assert sorted(p.name for p in site["out"].iterdir()) == [
        "cheesecellar.conf",
        "cheesecellar.wsgi",
    ]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--prefix", "pypi"),
        ("--prefix", "/py pi"),
        ("--prefix", "/../x"),
        ("--prefix", "//x"),
        ("--user", "root"),
        ("--group", "root"),
        ("--user", "a b"),
        ("--port", "0"),
        ("--port", "65536"),
        ("--listen", "a b"),
        ("--server-name", "bad/name"),
        ("--require", "Require all granted"),
        ("--require", "ip 10.0.0.1\nRequire all granted"),
        ("--require", " "),
        ("--processes", "0"),
        ("--threads", "0"),
        ("--limit-request-body", "-1"),
        ("--limit-request-body", "2147483648"),
        ("--name", "a/b"),
        ("--output-dir", "/srv/with space"),
        ("--venv", "/opt/${HOME}"),
    ],
)
def test_bad_values_are_refused_by_name(
    site: dict[str, pathlib.Path], option: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(option)):
        render(site, option, value)
    assert not site["out"].exists()


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    text = capsys.readouterr().out
    for option in (
        "--passwords", "--output-dir", "--venv", "--name", "--server-name", "--listen",
        "--port", "--prefix", "--require", "--user", "--group", "--processes", "--threads",
        "--limit-request-body", "PACKAGES",
    ):  # fmt: skip
        assert option in text
    assert "ip 127.0.0.1 ::1" in text


def test_readme_commands_parse() -> None:
    readme = (DEPLOY / "README.md").read_text()
    commands = [
        shlex.split(line.replace("\\\n", " "))
        for line in re.findall(r"^\S*cheesecellar deploy-apache (?:.*\\\n)*.*$", readme, re.M)
    ]
    assert commands, "deploy/README.md shows no `cheesecellar deploy-apache` command"
    for argv in commands:
        args = parse(*argv[2:])
        assert args.passwords == pathlib.Path("/srv/cheesecellar/htpasswd")
        assert args.packages == pathlib.Path("/srv/cheesecellar/packages")


def test_systemd_unit_matches_the_layout() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "cheesecellar.service").read_text())
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/bin/pypi-server")
    assert argv[1:] == [
        "run", "-p", "8080", "-P", "/srv/cheesecellar/htpasswd", "/srv/cheesecellar/packages",
    ]  # fmt: skip
    assert service["User"] == "www-data"
    assert service["WorkingDirectory"] == "/srv/cheesecellar"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/srv/cheesecellar/packages"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.apache
def test_apache_accepts_the_rendered_config(
    apache2: str, site: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    for extra in [(), ("--prefix", "/pypi", "--listen", "127.0.0.1", "-p", "8080")]:
        for path in site["out"].glob("*"):
            path.unlink()
        _, vhost = render(site, *extra)
        conf = write_httpd_conf(tmp_path, 8080, vhost)
        done = subprocess.run(
            [apache2, "-f", str(conf), "-t"], capture_output=True, text=True, env=APACHE_ENV
        )
        assert done.returncode == 0, done.stderr
        assert "Syntax OK" in done.stderr
