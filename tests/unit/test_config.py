"""Config from ``app(**kwargs)`` and from the command line (pypiserver-compat §1, §2, §4, §6)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cheesecellar.cli import _normalize_argv, build_parser, config_from_args, main
from cheesecellar.config import Config, config_from_kwargs
from cheesecellar.errors import ConfigError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "packages"
    path.mkdir()
    return path


@pytest.fixture
def passwords(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text("")
    return path


# ------------------------------------------------------------------ app(**kwargs), §2


def test_defaults(root: Path) -> None:
    config = config_from_kwargs({"roots": [str(root)]})
    assert config.roots == (root.resolve(),)
    assert config.authenticate == frozenset({"update"})
    assert config.password_file is None
    assert config.hash_algo == "sha256"
    # §6.7: no fallback to PyPI unless asked for (dependency confusion).
    assert config.fallback_url is None
    assert config.overwrite is False


def test_legacy_root_as_string(root: Path) -> None:
    assert config_from_kwargs({"root": str(root)}).roots == (root.resolve(),)


def test_legacy_root_as_list(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    config = config_from_kwargs({"root": [str(first), second]})
    assert config.roots == (first.resolve(), second.resolve())


def test_legacy_authenticated(root: Path) -> None:
    config = config_from_kwargs({"root": str(root), "authenticated": ["Download", "update"]})
    assert config.authenticate == frozenset({"download", "update"})


def test_legacy_passwords(root: Path, passwords: Path) -> None:
    config = config_from_kwargs({"root": str(root), "passwords": str(passwords)})
    assert config.password_file == passwords.resolve()


@pytest.mark.parametrize(
    ("redirect", "expected"), [(True, "https://pypi.org/simple/"), (False, None)]
)
def test_legacy_redirect_to_fallback(root: Path, redirect: bool, expected: str | None) -> None:
    config = config_from_kwargs({"root": str(root), "redirect_to_fallback": redirect})
    assert config.fallback_url == expected


def test_redirect_to_fallback_keeps_an_explicit_fallback_url(root: Path) -> None:
    config = config_from_kwargs(
        {"root": str(root), "redirect_to_fallback": True, "fallback_url": "https://m.example/s/"}
    )
    assert config.fallback_url == "https://m.example/s/"


def test_disable_fallback_wins_over_fallback_url(root: Path) -> None:
    config = config_from_kwargs(
        {"root": str(root), "disable_fallback": True, "fallback_url": "https://m.example/s/"}
    )
    assert config.fallback_url is None


def test_unknown_keyword_is_a_type_error(root: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument.*: rooot"):
        config_from_kwargs({"rooot": str(root)})


@pytest.mark.parametrize(
    ("legacy", "modern", "value"),
    [
        ("root", "roots", "/srv/packages"),
        ("authenticated", "authenticate", ["update"]),
        ("passwords", "password_file", "/srv/htpasswd"),
        ("server", "server_method", "auto"),
        ("welcome_file", "welcome_msg", "/srv/welcome.html"),
        ("redirect_to_fallback", "disable_fallback", True),
    ],
)
def test_legacy_keyword_with_its_modern_twin(legacy: str, modern: str, value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        config_from_kwargs({legacy: value, modern: value})
    assert legacy in str(excinfo.value) and modern in str(excinfo.value)


# §6.3: a typo'd action must not silently leave uploads open.
@pytest.mark.parametrize(
    ("value", "named"),
    [(["upload"], "upload"), ("upload", "upload"), (["update", "lsit"], "lsit"),
     ("update,donwload", "donwload")],
)  # fmt: skip
def test_unknown_authenticate_action(root: Path, value: object, named: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        config_from_kwargs({"root": str(root), "authenticate": value})
    assert f"'{named}'" in str(excinfo.value)
    assert str(excinfo.value).startswith("authenticate:")


def test_unknown_action_refused_by_config_itself(root: Path) -> None:
    with pytest.raises(ConfigError, match="upload"):
        Config(roots=(root,), authenticate=frozenset({"upload"}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["update"], {"update"}),
        ("update,download", {"update", "download"}),
        ("update download list", {"update", "download", "list"}),
        ("UPDATE", {"update"}),
        (["."], set()),
        (".", set()),
    ],
)
def test_authenticate_forms(root: Path, passwords: Path, value: object, expected: set[str]) -> None:
    password_file = "." if expected == set() else str(passwords)
    config = config_from_kwargs(
        {"root": str(root), "authenticate": value, "password_file": password_file}
    )
    assert config.authenticate == frozenset(expected)


def test_passwords_dot_with_update_is_refused(root: Path) -> None:
    # §1: '.' (no password file) only together with '-a .'.
    with pytest.raises(ConfigError) as excinfo:
        config_from_kwargs({"root": str(root), "password_file": ".", "authenticate": ["update"]})
    assert str(excinfo.value).startswith("passwords:")
    assert "update" in str(excinfo.value)


def test_passwords_dot_with_dot_is_no_auth(root: Path) -> None:
    config = config_from_kwargs({"root": str(root), "passwords": ".", "authenticated": "."})
    assert config.authenticate == frozenset()
    assert config.password_file is None


def test_dot_combined_with_actions_is_refused(root: Path) -> None:
    with pytest.raises(ConfigError, match="'.' cannot be combined"):
        config_from_kwargs({"root": str(root), "authenticate": ".,update"})


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"port": 70000}, "port"),
        ({"hash_algo": "md5"}, "hash_algo"),
        ({"health_endpoint": "/simple/x"}, "health_endpoint"),
        ({"health_endpoint": "health"}, "health_endpoint"),
        ({"fallback_url": "ftp://mirror.example/"}, "fallback_url"),
        ({"overwrite": "maybe"}, "overwrite"),
        ({"max_upload_size": 0}, "max_upload_bytes"),
    ],
)
def test_bad_values_name_the_option(root: Path, kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        config_from_kwargs({"root": str(root), **kwargs})
    assert str(excinfo.value).startswith(f"{option}:")


@pytest.mark.parametrize("off", ["off", "0", "no", "false", "OFF"])
def test_hash_algo_off(root: Path, off: str) -> None:
    assert config_from_kwargs({"root": str(root), "hash_algo": off}).hash_algo is None


# ------------------------------------------------------------------------- CLI, §1


@pytest.mark.parametrize(
    ("argv", "normalized"),
    [
        # pypiserver's legacy form has no command and means "run".
        (["-p", "8080", "/srv/p"], ["run", "-p", "8080", "/srv/p"]),
        (["/srv/p"], ["run", "/srv/p"]),
        (["run", "-p", "8080"], ["run", "-p", "8080"]),
        # Common options may come before the command.
        (["-v", "run", "/srv/p"], ["run", "-v", "/srv/p"]),
        (["-v", "update", "/srv/p"], ["update", "-v", "/srv/p"]),
        # "update" as the value of -a is not the update command (pypiserver's usual line).
        (["-p", "8080", "-P", "htpasswd", "-a", "update", "/srv/p"],
         ["run", "-p", "8080", "-P", "htpasswd", "-a", "update", "/srv/p"]),
        (["--authenticate", "update", "/srv/p"], ["run", "--authenticate", "update", "/srv/p"]),
        ([], []),
        (["--help"], ["--help"]),
        (["--version"], ["--version"]),
    ],
)  # fmt: skip
def test_normalize_argv(argv: list[str], normalized: list[str]) -> None:
    assert _normalize_argv(argv) == normalized


def parse(*argv: str) -> Config:
    return config_from_args(build_parser().parse_args(_normalize_argv(list(argv))))


def test_config_from_args_legacy_form(root: Path, passwords: Path) -> None:
    config = parse("-p", "9090", "-P", str(passwords), "-a", "update,download", str(root))
    assert config.port == 9090
    assert config.roots == (root.resolve(),)
    assert config.password_file == passwords.resolve()
    assert config.authenticate == frozenset({"update", "download"})
    assert config.fallback_url is None


def test_config_from_args_run(tmp_path: Path, root: Path) -> None:
    second = tmp_path / "more"
    second.mkdir()
    config = parse(
        "run", "-i", "127.0.0.1", "-P", ".", "-a", ".", "-o", "--hash-algo", "off",
        "--fallback-url", "https://mirror.example/simple/", "--max-upload-size", "2M",
        "--cache-control", "3600", str(root), str(second),
    )  # fmt: skip
    assert config.host == "127.0.0.1"
    assert config.roots == (root.resolve(), second.resolve())
    assert config.authenticate == frozenset()
    assert config.password_file is None
    assert config.overwrite is True
    assert config.hash_algo is None
    assert config.fallback_url == "https://mirror.example/simple/"
    assert config.max_upload_bytes == 2 * 1024 * 1024
    assert config.file_cache_control == 3600


def test_config_from_args_disable_fallback(root: Path) -> None:
    config = parse("--disable-fallback", "--fallback-url", "https://m.example/", str(root))
    assert config.fallback_url is None


def test_config_from_args_unknown_action(root: Path) -> None:
    with pytest.raises(ConfigError, match="'upload'"):
        parse("-a", "upload", str(root))


@pytest.mark.parametrize("command", [[], ["run"]], ids=["legacy-form", "run"])
def test_config_from_args_passwords_dot_with_update(root: Path, command: list[str]) -> None:
    with pytest.raises(ConfigError, match="^passwords:"):
        parse(*command, "-P", ".", "-a", "update", str(root))


def test_config_from_args_legacy_form_with_update_action(root: Path, passwords: Path) -> None:
    # The line every pypiserver README shows, without the (optional) "run".
    config = parse("-p", "8080", "-P", str(passwords), "-a", "update", str(root))
    assert config.authenticate == frozenset({"update"})
    assert config.password_file == passwords.resolve()
    assert config.roots == (root.resolve(),)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    # main() configures the root logger (basicConfig(force=True)); put pytest's handlers back.
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    yield
    for handler in root_logger.handlers[:]:
        if handler not in handlers:
            root_logger.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root_logger.handlers:
            root_logger.addHandler(handler)
    root_logger.setLevel(level)


def exit_status(argv: list[str]) -> int:
    """What the ``pypi-server`` console script exits with: sys.exit(main(argv))."""
    try:
        status = main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return status


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("argv", [["-a", "upload"], ["run", "--authenticate", "upload"]])
def test_cli_unknown_action_exits_2(
    root: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert exit_status([*argv, str(root)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("pypi-server: error: authenticate: ")
    assert "'upload'" in err
    assert "serving" not in out


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("command", [[], ["run"]], ids=["legacy-form", "run"])
def test_cli_passwords_dot_with_update_exits_2(
    root: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert exit_status([*command, "-P", ".", "-a", "update", str(root)]) == 2
    assert capsys.readouterr().err.startswith("pypi-server: error: passwords: ")


def test_cli_update_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(["update", "/srv/p"]) == 2
    assert "'update'" in capsys.readouterr().err
