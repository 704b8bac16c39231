"""One frozen, validated Config; built from the command line or from ``app(**kwargs)``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ACTIONS = ("download", "list", "update")
PYPI_SIMPLE_URL = "https://pypi.org/simple/"
DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024
# Room for the multipart envelope and the form's text fields around the file itself.
UPLOAD_FORM_OVERHEAD = 16 * 1024 * 1024
_OFF = {"0", "no", "off", "false", "none", ""}
_HEALTH_RE = re.compile(r"^/[a-z0-9/_-]+\Z")

Auther = Callable[[str, str], bool]


@dataclass(frozen=True)
class Config:
    """Everything the app needs to know; validated when built."""

    roots: tuple[Path, ...]
    host: str = "0.0.0.0"
    port: int = 8080
    password_file: Path | None = None
    authenticate: frozenset[str] = frozenset({"update"})
    fallback_url: str | None = None  # None: unknown projects get 404
    overwrite: bool = False
    hash_algo: str | None = "sha256"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    page_max_age: int = 0
    file_cache_control: int | None = None
    health_endpoint: str = "/health"
    welcome_file: Path | None = None
    auther: Auther | None = field(default=None, compare=False)
    verbosity: int = 0
    # Scale-out: keep files and records in an S3-compatible store instead of roots.
    storage: str | None = None  # "s3://BUCKET/PREFIX"
    s3_endpoint: str | None = None
    s3_public_endpoint: str | None = None
    s3_region: str | None = None
    s3_download: str = "redirect"  # or "proxy"

    def __post_init__(self) -> None:
        if self.storage is not None:
            if not re.match(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?\Z", self.storage):
                raise ConfigError(f"storage: {self.storage!r} is not s3://BUCKET[/PREFIX]")
            if self.s3_download not in ("redirect", "proxy"):
                raise ConfigError(f"s3_download: {self.s3_download!r} is not redirect or proxy")
        elif not self.roots:
            raise ConfigError("roots: give at least one package directory")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port!r} is not a TCP port")
        bad = set(self.authenticate) - set(ACTIONS)
        if bad:
            raise ConfigError(
                f"authenticate: unknown action(s) {', '.join(sorted(bad))}; "
                f"use any of {', '.join(ACTIONS)} or '.'"
            )
        if self.hash_algo not in (None, "sha256"):
            raise ConfigError(f"hash_algo: {self.hash_algo!r} is not supported; use sha256 or off")
        if self.max_upload_bytes <= 0:
            raise ConfigError(f"max_upload_bytes: {self.max_upload_bytes!r} must be positive")
        if self.page_max_age < 0:
            raise ConfigError(f"page_max_age: {self.page_max_age!r} must not be negative")
        if self.file_cache_control is not None and self.file_cache_control < 0:
            raise ConfigError(f"cache_control: {self.file_cache_control!r} must not be negative")
        if not _HEALTH_RE.match(self.health_endpoint) or self.health_endpoint.startswith(
            ("/simple", "/packages")
        ):
            raise ConfigError(f"health_endpoint: {self.health_endpoint!r} is not a free path")
        if self.welcome_file is not None and not self.welcome_file.is_file():
            raise ConfigError(f"welcome: {str(self.welcome_file)!r} is not a readable file")
        if self.fallback_url is not None and not re.match(r"https?://\S+\Z", self.fallback_url):
            raise ConfigError(f"fallback_url: {self.fallback_url!r} is not an http(s) URL")


def parse_actions(value: str | Iterable[str] | None) -> frozenset[str]:
    """``"update,download"``, ``["update"]``, ``"."`` (nothing) -> a set of action names."""
    if value is None:
        return frozenset({"update"})
    items = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if names == ["."]:
        return frozenset()
    if "." in names:
        raise ConfigError(f"authenticate: '.' cannot be combined with actions: {value!r}")
    bad = sorted(set(names) - set(ACTIONS))
    if bad:
        raise ConfigError(
            f"authenticate: unknown action {', '.join(map(repr, bad))}; "
            f"use any of {', '.join(ACTIONS)} or '.'"
        )
    return frozenset(names)


def parse_hash_algo(value: str | None) -> str | None:
    if value is None or str(value).strip().lower() in _OFF:
        return None
    return str(value).strip().lower()


def password_file_of(value: str | Path | None) -> Path | None:
    """``"."`` and None mean no password file."""
    if value is None or str(value) == ".":
        return None
    return Path(value).expanduser().resolve()


def check_auth_pair(password_file: str | Path | None, actions: frozenset[str]) -> None:
    """pypiserver's rule: ``-P .`` and ``-a .`` go together."""
    if password_file is not None and str(password_file) == "." and actions:
        raise ConfigError(
            "passwords: '.' (no password file) needs authenticate '.' too; "
            f"got authenticate {','.join(sorted(actions))}"
        )


# pypiserver's legacy keywords and the modern ones they stand for.
_LEGACY = {
    "root": "roots",
    "authenticated": "authenticate",
    "passwords": "password_file",
    "server": "server_method",
    "welcome_file": "welcome_msg",
}
_MODERN = {
    "roots", "port", "host", "authenticate", "password_file", "disable_fallback",
    "fallback_url", "health_endpoint", "server_method", "overwrite", "welcome_msg",
    "cache_control", "log_req_frmt", "log_res_frmt", "log_err_frmt", "server_base_url",
    "auther", "verbosity", "log_file", "log_stream", "log_frmt", "hash_algo", "backend_arg",
    "redirect_to_fallback", "max_upload_size", "page_max_age", "storage", "s3_endpoint",
    "s3_public_endpoint", "s3_region", "s3_download",
}  # fmt: skip


def config_from_kwargs(kwargs: dict[str, Any]) -> Config:
    """Build a Config from pypiserver-style ``app(...)`` keywords (see pypiserver-compat.md)."""
    unknown = set(kwargs) - _MODERN - set(_LEGACY)
    if unknown:
        raise TypeError(f"app() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    kw = dict(kwargs)
    for legacy, modern in _LEGACY.items():
        if legacy in kw:
            if modern in kw:
                raise ValueError(f"app(): give {legacy!r} or {modern!r}, not both")
            kw[modern] = kw.pop(legacy)
    if "redirect_to_fallback" in kw and "disable_fallback" in kw:
        raise ValueError("app(): give 'redirect_to_fallback' or 'disable_fallback', not both")
    roots_value = kw.get("roots", () if kw.get("storage") else "~/packages")
    roots_list = [roots_value] if isinstance(roots_value, str | Path) else list(roots_value)
    roots = tuple(Path(r).expanduser().resolve() for r in roots_list)
    actions = parse_actions(kw.get("authenticate"))
    password = kw.get("password_file")
    check_auth_pair(password, actions)
    fallback_url = kw.get("fallback_url")
    if kw.get("redirect_to_fallback") is True:
        fallback_url = fallback_url or PYPI_SIMPLE_URL
    if kw.get("disable_fallback") is True or kw.get("redirect_to_fallback") is False:
        fallback_url = None
    welcome = kw.get("welcome_msg")
    return Config(
        roots=roots,
        host=str(kw.get("host", "0.0.0.0")),
        port=int(kw.get("port", 8080)),
        password_file=password_file_of(password),
        authenticate=actions,
        fallback_url=fallback_url,
        overwrite=_boolean("overwrite", kw.get("overwrite", False)),
        hash_algo=parse_hash_algo(kw.get("hash_algo", "sha256")),
        max_upload_bytes=int(kw.get("max_upload_size", DEFAULT_MAX_UPLOAD)),
        page_max_age=int(kw.get("page_max_age", 0)),
        file_cache_control=None if kw.get("cache_control") is None else int(kw["cache_control"]),
        health_endpoint=str(kw.get("health_endpoint", "/health")),
        welcome_file=Path(welcome) if welcome else None,
        auther=kw.get("auther"),
        verbosity=int(kw.get("verbosity", 0)),
        storage=kw.get("storage"),
        s3_endpoint=kw.get("s3_endpoint"),
        s3_public_endpoint=kw.get("s3_public_endpoint"),
        s3_region=kw.get("s3_region"),
        s3_download=str(kw.get("s3_download", "redirect")),
    )


def _boolean(option: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "yes", "on", "true"):
        return True
    if text in _OFF:
        return False
    raise ConfigError(f"{option}: {value!r} is not a boolean")
