"""Generated upload forms and raw multipart bodies against the real app, in-process.

Every request is checked for: no 5xx, no control characters in any header, a text/plain body on
every error, no temp file left, nothing written outside the root, and every file in the root
byte-identical to an upload that was accepted (nothing partial, nothing lost).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from .archives import make_wheel
from .conftest import AppFactory
from .fuzzing import (
    MULTIPART_CASES,
    UPLOAD_CASES,
    build,
    expected_status,
    fuzz_settings,
    mutations,
    send,
)
from .hostile import PROJECT


def test_fuzz_upload_form(make_app: AppFactory) -> None:
    """Missing, duplicated, huge, non-UTF-8 and hostile fields: 200 or 400, exactly."""
    app, state = make_app()
    counter = [0]

    @fuzz_settings(UPLOAD_CASES)
    @given(ops=mutations(), payload=st.binary(max_size=64))
    def run(ops: list[tuple[str, Any]], payload: bytes) -> None:
        counter[0] += 1
        dist = make_wheel(PROJECT, f"{counter[0]}.0", payload=payload)
        reply = send(app, build(dist, ops))
        want = expected_status(ops)
        assert reply.status == want, (ops, reply.status, reply.body)
        if reply.status == 200:
            state.accept(dist)
            assert (state.root / dist.filename).read_bytes() == dist.data
        assert b"X-Injected" not in repr(reply.headers).encode()
        state.check()

    run()
    print(f"upload-form fuzz: {counter[0]} cases, {len(state.accepted)} accepted uploads")
    assert counter[0] >= UPLOAD_CASES
    assert state.accepted, "no generated case was a valid upload"


# -- raw multipart bodies ------------------------------------------------------------------------

BOUNDARY = "fuzzBoundary7MA4YWxk"
tokens = st.one_of(
    st.just(f"--{BOUNDARY}\r\n".encode()),
    st.just(f"--{BOUNDARY}--\r\n".encode()),
    st.just(b"\r\n"),
    st.just(b'Content-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n'),
    st.just(b'Content-Disposition: form-data; name="content"; filename="../../x.whl"\r\n'),
    st.just(b'Content-Disposition: form-data; name="name"\r\n\r\n<script>\r\n'),
    st.just(b"Content-Type: text/plain; charset=utf-8\r\n"),
    st.just(b"Content-Type: text/plain; charset=no-such-codec\r\n"),
    st.just(b"Content-Length: 99999999999999999999\r\n"),
    st.binary(max_size=300),
    st.text(max_size=50).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
content_types = st.one_of(
    st.just(f"multipart/form-data; boundary={BOUNDARY}"),
    st.just(f'multipart/form-data; boundary="{BOUNDARY}"'),
    st.just(f"multipart/form-data; boundary={BOUNDARY}; charset=latin-1"),
    st.just(f"multipart/form-data; boundary={BOUNDARY}; charset=utf-16"),
    st.just(f"multipart/form-data; boundary={BOUNDARY}; charset=no-such-codec"),
    st.sampled_from(
        [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/mixed; boundary=x",
            "",
        ]
    ),
    st.text(max_size=60).map(lambda t: "multipart/form-data; " + t),
)


def test_fuzz_malformed_multipart(make_app: AppFactory) -> None:
    """Bodies assembled from multipart fragments and random bytes: always exactly 400."""
    app, state = make_app()
    counter = [0]

    @fuzz_settings(MULTIPART_CASES)
    @given(
        parts=st.lists(tokens, max_size=20),
        ctype=content_types,
        target=st.sampled_from(["/", "/legacy/"]),
    )
    def run(parts: list[bytes], ctype: str, target: str) -> None:
        counter[0] += 1
        ctype = "".join(ch for ch in ctype if ch.isprintable() and ord(ch) < 256)
        reply = app.request("POST", target, b"".join(parts), {"Content-Type": ctype})
        assert reply.status == 400, (reply.status, reply.body)
        state.check()

    run()
    print(f"raw multipart fuzz: {counter[0]} cases")
    assert counter[0] >= MULTIPART_CASES
