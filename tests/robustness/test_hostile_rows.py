"""Single hostile requests the fuzzers found misbehaving, kept as plain rows with one answer."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import cheesecellar

from .archives import Dist, make_wheel
from .conftest import AppFactory
from .hostile import PROJECT
from .support import OPEN
from .wsgi import Part, upload_form


def _row_request(case: str, dist: Dist) -> tuple[str, str, bytes, dict[str, str]]:
    """(method, target, body, headers) of one regression row."""
    form = upload_form(dist)
    headers: dict[str, str] = {}
    if case == "origin-invalid-ipv6":
        headers["Origin"] = "http://[evil.example"
    elif case == "origin-not-utf8":
        headers["Origin"] = "http://\u00e9vil.example"  # the byte 0xE9, as a server passes it
    elif case == "windows-path-filename":
        form.fields("content")[0].filename = "C:\\Users\\x\\" + dist.filename
    elif case == "unc-path-filename":
        form.fields("content")[0].filename = "\\\\server\\share\\" + dist.filename
    elif case == "part-charset-unknown":
        form.parts[0].content_type = "text/plain; charset=no-such-codec"
    elif case == "description-99k":
        # twine sends the long description as a field: ~99 KB, plus the other fields.
        form.parts.append(Part("description", b"=" * 99_000))
        form.parts.append(Part("summary", b"s" * 3_000))
    elif case in ("authorization-not-utf8", "accept-not-utf8"):
        key = "Authorization" if case.startswith("auth") else "Accept"
        return (
            "GET",
            "/simple/",
            b"",
            {key: "Basic \u00ff" if key == "Authorization" else "text/html, \u00ff/x"},
        )
    body, ctype = form.encode()
    if case == "request-charset-unknown":
        ctype += "; charset=no-such-codec"
    return "POST", "/", body, {"Content-Type": ctype, **headers}


@pytest.mark.parametrize(
    ("case", "want"),
    [
        ("request-charset-unknown", 400),
        ("part-charset-unknown", 400),
        ("origin-invalid-ipv6", 403),
        ("origin-not-utf8", 403),
        ("authorization-not-utf8", 200),
        ("accept-not-utf8", 200),
        ("windows-path-filename", 400),
        ("unc-path-filename", 400),
        ("description-99k", 200),
    ],
)
def test_hostile_request_rows(make_app: AppFactory, case: str, want: int) -> None:
    """Single requests the fuzzers found misbehaving; each has one right answer."""
    app, state = make_app()
    dist = make_wheel(PROJECT, "1.0")
    method, target, body, headers = _row_request(case, dist)
    reply = app.request(method, target, body, headers)
    assert reply.status == want, (reply.status, reply.body)
    if want == 200 and method == "POST":
        state.accept(dist)
    state.check()


def test_access_log_cannot_be_forged(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """CR/LF decoded from a URL must not start a new line in the access log."""
    app, _ = make_app()
    caplog.set_level("INFO", logger="cheesecellar.access")
    app.get("/simple/x%0d%0a127.0.0.1%20%22GET%20/admin%22%20200%200.1ms/")
    app.get("/packages/a%0ab.whl")
    lines = [r.getMessage() for r in caplog.records if r.name == "cheesecellar.access"]
    assert len(lines) == 2, lines
    for line in lines:
        assert "\n" not in line and "\r" not in line, repr(line)


def test_app_builds_without_warnings(tmp_path: Path) -> None:
    """The suite runs with warnings as errors; building the app must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cheesecellar.app(root=str(tmp_path), **OPEN)
