"""Basic credentials, htpasswd files and per-action authorization (pypiserver-compat §4)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cheesecellar.auth import Authenticator, Htpasswd, parse_basic
from cheesecellar.errors import Forbidden, Unauthorized


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# RFC 7617: "Basic" base64(user ":" password); the scheme is case-insensitive.
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Basic " + b64(b"alice:secret"), ("alice", "secret")),
        ("basic " + b64(b"alice:secret"), ("alice", "secret")),
        ("BASIC   " + b64(b"alice:secret") + "  ", ("alice", "secret")),
        ("Basic " + b64(b"alice:se:cr:et"), ("alice", "se:cr:et")),
        ("Basic " + b64(b"alice:"), ("alice", "")),
        ("Basic " + b64(b":secret"), ("", "secret")),
        ("Basic " + b64("jürgen:pässword".encode()), ("jürgen", "pässword")),
        ("Basic " + b64(b"alice-without-colon"), None),
        ("Basic !!!not-base64!!!", None),
        ("Basic YWxpY2U6c2VjcmV0", ("alice", "secret")),
        ("Basic " + b64(b"\xff\xfe:\xff"), None),  # not UTF-8
        ("Basic", None),
        ("Bearer " + b64(b"alice:secret"), None),
        ("Bearer pypi-AgEIcHlwaS5vcmc", None),
        ("Digest username=alice", None),
    ],
)
def test_parse_basic(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic(header) == expected


# ----------------------------------------------------------------------------- htpasswd


def _hash(scheme: str, password: str) -> str:
    from passlib import hash as passlib_hash

    if scheme == "bcrypt":  # htpasswd -B; low cost keeps the suite fast
        return str(passlib_hash.bcrypt.using(rounds=4, ident="2y").hash(password))
    if scheme == "apr_md5_crypt":  # htpasswd -m
        return str(passlib_hash.apr_md5_crypt.hash(password))
    if scheme == "ldap_sha1":  # htpasswd -s
        return str(passlib_hash.ldap_sha1.hash(password))
    raise AssertionError(scheme)


PREFIXES = {"bcrypt": "$2y$04$", "apr_md5_crypt": "$apr1$", "ldap_sha1": "{SHA}"}
SCHEMES = sorted(PREFIXES)

WriteEntries = Callable[..., Path]


@pytest.fixture
def write_htpasswd(tmp_path: Path) -> WriteEntries:
    """Write ``user:hash`` lines made by passlib; returns the file's path."""
    path = tmp_path / "htpasswd"

    def write(scheme: str, **users: str) -> Path:
        lines = []
        for user, password in users.items():
            entry = _hash(scheme, password)
            assert entry.startswith(PREFIXES[scheme])
            lines.append(f"{user}:{entry}\n")
        path.write_text("".join(lines))
        return path

    return write


@pytest.mark.parametrize("scheme", SCHEMES)
def test_htpasswd_right_password(write_htpasswd: WriteEntries, scheme: str) -> None:
    htpasswd = Htpasswd(write_htpasswd(scheme, alice="s3cret", bob="other"))
    assert htpasswd.check("alice", "s3cret") is True
    assert htpasswd.check("bob", "other") is True


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong"), ("alice", ""), ("alice", "S3CRET"), ("alice", "s3cret "),
     ("bob", "s3cret"), ("", "s3cret"), ("ALICE", "s3cret")],
)  # fmt: skip
def test_htpasswd_refuses(
    write_htpasswd: WriteEntries, scheme: str, user: str, password: str
) -> None:
    htpasswd = Htpasswd(write_htpasswd(scheme, alice="s3cret"))
    assert htpasswd.check(user, password) is False


@pytest.mark.parametrize(
    "password",
    ["x" * 100, "p" * 72 + "y" * 28, "é" * 50],
    ids=["100-bytes", "72-byte-prefix-matches", "100-utf8-bytes"],
)
def test_htpasswd_long_password_against_bcrypt(write_htpasswd: WriteEntries, password: str) -> None:
    # bcrypt >= 5 raises ValueError for secrets over 72 bytes (pypiserver #668); that is a
    # failed login, never an exception, and never a match on a truncated prefix.
    htpasswd = Htpasswd(write_htpasswd("bcrypt", alice="p" * 72))
    assert len(password.encode()) == 100
    assert htpasswd.check("alice", password) is False
    assert htpasswd.check("alice", "p" * 72) is True


def test_htpasswd_long_password_for_unknown_user(write_htpasswd: WriteEntries) -> None:
    htpasswd = Htpasswd(write_htpasswd("apr_md5_crypt", alice="s3cret"))
    assert htpasswd.check("mallory", "x" * 100) is False


def test_htpasswd_is_reread_when_the_file_changes(write_htpasswd: WriteEntries) -> None:
    path = write_htpasswd("apr_md5_crypt", alice="old-password")
    htpasswd = Htpasswd(path)
    assert htpasswd.check("alice", "old-password") is True
    before = os.stat(path)
    write_htpasswd("apr_md5_crypt", alice="new-password", carol="hers")
    # Make sure the (inode, mtime, size) stamp differs even on a coarse-mtime filesystem.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert htpasswd.check("alice", "old-password") is False
    assert htpasswd.check("alice", "new-password") is True
    assert htpasswd.check("carol", "hers") is True


def test_htpasswd_user_removed_from_file(write_htpasswd: WriteEntries) -> None:
    path = write_htpasswd("ldap_sha1", alice="s3cret", bob="b0b")
    htpasswd = Htpasswd(path)
    assert htpasswd.check("bob", "b0b") is True
    before = os.stat(path)
    write_htpasswd("ldap_sha1", alice="s3cret")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert htpasswd.check("bob", "b0b") is False
    assert htpasswd.check("alice", "s3cret") is True


def test_htpasswd_missing_file_refuses_everyone(tmp_path: Path) -> None:
    assert Htpasswd(tmp_path / "absent").check("alice", "s3cret") is False


# ------------------------------------------------------------------------ authorization


def basic(user: str, password: str) -> str:
    return "Basic " + b64(f"{user}:{password}".encode())


@pytest.fixture
def authenticator(write_htpasswd: WriteEntries) -> Authenticator:
    path = write_htpasswd("apr_md5_crypt", alice="s3cret")
    return Authenticator(frozenset({"update"}), path)


def test_authorize_without_credentials_is_401(authenticator: Authenticator) -> None:
    with pytest.raises(Unauthorized) as excinfo:
        authenticator.authorize("update", None)
    assert excinfo.value.status == 401
    assert str(excinfo.value) == "Authentication required to upload or change packages."


@pytest.mark.parametrize(
    "header",
    [
        basic("alice", "wrong"),
        basic("mallory", "s3cret"),
        basic("alice", "x" * 100),
    ],
)
def test_authorize_with_wrong_credentials_is_403(authenticator: Authenticator, header: str) -> None:
    with pytest.raises(Forbidden) as excinfo:
        authenticator.authorize("update", header)
    assert excinfo.value.status == 403
    assert str(excinfo.value) == "Invalid username or password."


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", basic("alice", "s3cret")[:-2]])
def test_authorize_with_unusable_header_is_401(authenticator: Authenticator, header: str) -> None:
    with pytest.raises(Unauthorized):
        authenticator.authorize("update", header)


def test_failed_login_is_logged_with_the_client_address(
    authenticator: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="cheesecellar.auth"), pytest.raises(Forbidden):
        authenticator.authorize("update", basic("mallory", "guess"), client="203.0.113.7")
    assert caplog.messages == ["failed login for 'mallory' from 203.0.113.7 (update)"]
    assert "guess" not in caplog.text  # never the password


def test_authorize_returns_the_user(authenticator: Authenticator) -> None:
    assert authenticator.authorize("update", basic("alice", "s3cret")) == "alice"


def test_unguarded_actions_are_open(authenticator: Authenticator) -> None:
    assert authenticator.needs_login("update") is True
    assert authenticator.needs_login("download") is False
    assert authenticator.authorize("download", None) is None
    assert authenticator.authorize("list", basic("whoever", "whatever")) == "whoever"


def test_guarded_action_without_password_file_refuses_everyone() -> None:
    # pypiserver-compat §4: "-a update" without "-P" is a read-only index.
    authenticator = Authenticator(frozenset({"update"}))
    with pytest.raises(Forbidden):
        authenticator.authorize("update", basic("alice", "s3cret"))


def test_auther_replaces_htpasswd(write_htpasswd: WriteEntries) -> None:
    calls: list[tuple[str, str]] = []

    def auther(user: str, password: str) -> bool:
        calls.append((user, password))
        return (user, password) == ("api", "key")

    path = write_htpasswd("apr_md5_crypt", alice="s3cret")
    authenticator = Authenticator(frozenset({"update", "list"}), path, auther)
    assert authenticator.authorize("list", basic("api", "key")) == "api"
    with pytest.raises(Forbidden):
        authenticator.authorize("update", basic("alice", "s3cret"))
    assert calls == [("api", "key"), ("alice", "s3cret")]
