"""Generated URLs and headers: traversal in every encoding, over-long paths, odd headers.

A download answers only with the bytes of a listed file; no page leaks the sentinel folder
beside the root or the state folder inside it; redirects stay on this site.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from .archives import make_wheel
from .conftest import AppFactory
from .fuzzing import URL_CASES, fuzz_settings
from .hostile import PROJECT

TRAVERSAL = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "%e2%80%a4%e2%80%a4",
    "%ef%bc%8e%ef%bc%8e",
    "..%2f",
    "%2f",
    "%5c",
    "..%5c",
    "..\\",
    "%ef%bc%8f",
    "%e2%88%95",
    "%00",
    "%0d%0aX-Injected:%201",
    "....//",
    "..;",
    "~",
    "%25",
    "%u002e%u002e",
    ".",
]
PREFIXES = [
    "/packages/",
    "/simple/",
    f"/simple/{PROJECT}/",
    "/pypi/",
    f"/pypi/{PROJECT}/",
    "/",
    "/packages/sub/",
    "/legacy/",
    "/health/",
    f"/{PROJECT}/",
]


@st.composite
def urls(draw: Any, secret: str, known: list[str]) -> str:
    suffixes = [
        "sentinel/secret.txt",
        "secret.txt",
        "etc/passwd",
        ".cheesecellar/index/_projects.json",
        ".cheesecellar/lock",
        ".cheesecellar/index/demo-pkg.json",
        "json",
        "",
        quote(secret),
        secret,
        *known,
        *(k + ".metadata" for k in known),
    ]
    prefix: str = draw(st.sampled_from(PREFIXES))
    middle = draw(st.lists(st.sampled_from(TRAVERSAL), max_size=6))
    seps = draw(
        st.lists(
            st.sampled_from(["/", "%2f", "%5c", "\\", "//"]),
            min_size=len(middle),
            max_size=len(middle),
        )
    )
    path: str = prefix + "".join(m + s for m, s in zip(middle, seps, strict=True))
    path += draw(st.one_of(st.sampled_from(suffixes), st.text(max_size=30).map(quote)))
    if draw(st.integers(0, 9)) == 0:
        path += draw(st.sampled_from(["a", "%2e%2e/", "x/"])) * draw(st.integers(2_000, 60_000))
    if draw(st.booleans()):
        path += "?" + draw(
            st.sampled_from(
                [
                    "format=application/vnd.pypi.simple.v1%2Bjson",
                    "a=%0d%0aX:1",
                    "x=" + "y" * 5000,
                    "format=%ff",
                    "&&==",
                ]
            )
        )
    return path


# Header values as a server hands them over: latin-1 strings, so bytes >= 0x80 included.
header_values = st.one_of(
    st.sampled_from(
        [
            "application/vnd.pypi.simple.v1+json",
            "*/*",
            "x/y",
            "text/html;q=0.5",
            '"etag"',
            "*",
            "Basic",
            "Basic !!!",
            "Bearer x",
            "same-origin",
            "bytes=0-10",
            "bytes=99999-",
            "bytes=-0",
            "bytes=a-b",
            "\u00ff",
            "caf\u00e9",
            "\u00c3\u00a9",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
)
request_headers = st.dictionaries(
    st.sampled_from(
        [
            "Accept",
            "If-None-Match",
            "Authorization",
            "Origin",
            "Sec-Fetch-Site",
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "Range",
            "If-Modified-Since",
        ]
    ),
    header_values,
    max_size=3,
)


def test_fuzz_urls(make_app: AppFactory) -> None:
    """Traversal in every encoding and over-long URLs: never a file outside the listed ones."""
    app, state = make_app()
    secret = str(state.sentinel / "secret.txt")
    known: list[str] = []
    for version in ("1.0", "2.0"):
        dist = make_wheel(PROJECT, version)
        assert app.upload(dist).status == 200
        state.accept(dist)
        known.append(dist.filename)
    forbidden = [b"SENTINEL", (state.root / ".cheesecellar/index/_projects.json").read_bytes()]
    counter = [0]

    @fuzz_settings(URL_CASES)
    @given(
        target=urls(secret, known),
        method=st.sampled_from(["GET", "HEAD"]),
        raw=st.booleans(),
        headers=request_headers,
    )
    def run(target: str, method: str, raw: bool, headers: dict[str, str]) -> None:
        counter[0] += 1
        # Some servers hand PATH_INFO over undecoded; both must be safe.
        extra: dict[str, Any] = {"path_info": target.partition("?")[0]} if raw else {}
        reply = app.request(method, target, headers=headers, **extra)
        allowed = (200, 206, 301, 303, 304, 400, 404, 405, 406, 416)
        assert reply.status in allowed, (reply.status, reply.body)
        if reply.status == 206:
            assert any(reply.body in data for data in state.accepted.values()), target
        for bad in forbidden:
            assert bad not in reply.body, f"{target!r} leaked {bad[:40]!r}"
        if reply.status == 200 and reply.content_type not in (
            "text/html",
            "application/json",
            "application/vnd.pypi.simple.v1+json",
            "application/vnd.pypi.simple.v1+html",
            "text/plain",
        ):
            assert method == "HEAD" or reply.body in state.accepted.values(), target
        if reply.status == 200 and reply.content_type == "text/plain" and method == "GET":
            assert reply.body in (b"Ok",) or reply.body.startswith(b"Metadata-Version"), target
        location = reply.header("Location") or ""
        assert "//" not in location.split("?")[0] and ":" not in location.split("?")[0], location
        state.check()

    run()
    print(f"URL fuzz: {counter[0]} cases")
    assert counter[0] >= URL_CASES
