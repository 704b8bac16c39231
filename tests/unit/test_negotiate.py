"""PEP 691 content negotiation: the matrix of index-standards §5, row by row."""

from __future__ import annotations

import pytest

from cheesecellar.web.negotiate import HTML, V1_HTML, V1_JSON, accepts_gzip, choose

PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "answer"),
    [
        # §5 matrix
        (None, HTML),
        ("", HTML),
        ("*/*", HTML),
        (PIP, V1_JSON),
        (UV, V1_JSON),
        (POETRY, V1_JSON),
        (BROWSER, HTML),
        (V1_HTML, V1_HTML),
        ("application/vnd.pypi.simple.latest+json", V1_JSON),
        ("application/vnd.pypi.simple.latest+html", V1_HTML),
        ("application/json", None),
        # Entries are unordered; q decides, ties go to the server's order (HTML first).
        (f"text/html;q=0.5, {V1_JSON};q=0.6", V1_JSON),
        (f"{V1_JSON};q=0.5, {V1_HTML};q=0.5", V1_HTML),
        (f"{V1_JSON}, text/html", HTML),
        # q=0 excludes a type, also one that a wildcard would have allowed.
        (f"text/html;q=0, {V1_HTML};q=0, */*", V1_JSON),
        ("*/*;q=0", None),
        (f"{V1_JSON};q=0", None),
        (f"{V1_JSON};q=0, text/html;q=0.001", HTML),
        # The most specific range wins over a wildcard.
        (f"application/*;q=0.3, {V1_JSON};q=0.2, text/html;q=0.1", V1_HTML),
        (f"text/*;q=0.9, {V1_JSON}", V1_JSON),
        ("text/*", HTML),
        # Case-insensitive media types; odd spacing.
        ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", V1_JSON),
        (f"  {V1_JSON} ;  q=0.9 ,text/html;q=0.1", V1_JSON),
        # Unusable q values count as 0, not as 1.
        (f"{V1_JSON};q=abc, text/html;q=0.1", HTML),
        (f"{V1_JSON};q=2, text/html;q=0.1", HTML),
        ("image/png, application/xml", None),
    ],
)
def test_accept_header(accept: str | None, answer: str | None) -> None:
    assert choose(accept) == answer


@pytest.mark.parametrize(
    ("accept", "fmt", "answer"),
    [
        # ?format= overrides Accept (PEP 691 optional feature).
        (PIP, "text/html", HTML),
        (None, V1_JSON, V1_JSON),
        ("text/html", V1_JSON, V1_JSON),
        ("application/json", V1_HTML, V1_HTML),
        ("text/html", "application/vnd.pypi.simple.latest+json", V1_JSON),
        ("text/html", "application/vnd.pypi.simple.latest+html", V1_HTML),
        # An unsupported value is treated like an unacceptable Accept.
        ("text/html", "application/json", None),
        (PIP, "json", None),
        (None, "garbage/garbage", None),
        # An empty ?format= is no format at all.
        (PIP, "", V1_JSON),
    ],
)
def test_format_parameter(accept: str | None, fmt: str, answer: str | None) -> None:
    assert choose(accept, fmt) == answer


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        (None, False),  # no header: the page as rendered
        ("", False),
        ("gzip, deflate", True),  # pip (requests)
        ("gzip, deflate, br, zstd", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("identity", False),
        ("br", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # listed with q=0: refused even though * allows any
        ("gzip;q=0.001", True),
        ("gzip;q=0.0", False),
        ("gzip;q=abc", False),
        ("deflate, gzip;q=2", False),  # q out of range counts as 0
    ],
)
def test_gzip_is_sent_only_when_accepted(accept_encoding: str | None, gzipped: bool) -> None:
    assert accepts_gzip(accept_encoding) is gzipped
