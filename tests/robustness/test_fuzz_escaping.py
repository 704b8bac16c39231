"""HTML and JavaScript in metadata, yank and status reasons, and the Host header stay text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from .archives import make_wheel
from .checks import parse_page
from .conftest import AppFactory
from .fuzzing import ESCAPE_CASES, fuzz_settings
from .hostile import HTML_BITS, PROJECT
from .wsgi import action_form

payloads = (
    st.one_of(
        st.sampled_from(
            HTML_BITS
            + [
                "</title><script>alert(1)</script>",
                "javascript:alert(1)",
                "' onmouseover='alert(1)",
                "<!--",
                "]]>",
                "{{7*7}}",
            ]
        ),
        st.lists(
            st.sampled_from(list("<>&\"'=/ ab;:") + ["script", "img", "\u00e9"]),
            min_size=1,
            max_size=30,
        ).map("".join),
    )
    .map(lambda t: " ".join(t.split()))
    .filter(bool)
)


def test_fuzz_pages_escape_metadata(make_app: AppFactory) -> None:
    """HTML/JS in metadata, yank reasons, status reasons and the Host header stays text."""
    app, state = make_app()
    counter = [0]
    pages = ["/", "/simple/", f"/simple/{PROJECT}/", "/packages/"]

    @fuzz_settings(ESCAPE_CASES)
    @given(payload=payloads)
    def run(payload: str) -> None:
        counter[0] += 1
        version = f"{counter[0]}.0"
        dist = make_wheel(
            PROJECT,
            version,
            extra=[("Requires-Python", payload), ("Summary", payload), ("Author", payload)],
        )
        assert app.upload(dist).status == 200
        state.accept(dist)
        reply = app.post(action_form("yank", name=PROJECT, version=version, reason=payload))
        assert reply.status == 200, reply.body
        reply = app.post(
            action_form("set_status", name=PROJECT, status="deprecated", reason=payload)
        )
        assert reply.status == 200, reply.body
        for page in pages:
            got = app.get(page, headers={"Host": f"{payload}.example"})
            assert got.status == 200 and got.content_type == "text/html", (page, got.status)
            parsed = parse_page(got.body)
            if page == f"/simple/{PROJECT}/":
                anchor = next(a for a in parsed.anchors if a[1] == dist.filename)
                assert anchor[2].get("data-requires-python") == payload
                assert anchor[2].get("data-yanked") == payload
                meta = {
                    t[1].get("name"): t[1].get("content") for t in parsed.tags if t[0] == "meta"
                }
                assert meta.get("pypi:project-status-reason") == payload
            if page == "/":
                assert any(f"{payload}.example" in text for text in parsed.text)
        for page in (
            f"/pypi/{PROJECT}/json",
            f"/pypi/{PROJECT}/{version}/json",
            f"/{PROJECT}/json",
        ):
            got = app.get(page)
            assert got.status == 200 and got.content_type == "application/json", page
            doc = json.loads(got.body)
            if page.endswith(f"/{version}/json"):
                assert doc["info"]["summary"] == payload
                assert doc["info"]["yanked_reason"] == payload
        got = app.get(f"/simple/{PROJECT}/?format=application/vnd.pypi.simple.v1%2Bjson")
        files = json.loads(got.body)["files"]
        assert next(f for f in files if f["filename"] == dist.filename)["yanked"] == payload
        state.check()

    run()
    print(f"escaping fuzz: {counter[0]} cases")
    assert counter[0] >= ESCAPE_CASES
