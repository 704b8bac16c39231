"""The generated upload form: mutations of a valid upload, and the status each must get.

A case is a list of (kind, argument) mutations applied to a valid twine-style upload. Kinds in
BAD_KINDS must turn it into exactly a 400, a cross-site origin into a 403, and any mix of the
other kinds (what different clients legitimately send) leaves it a 200.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .archives import Dist, make_wheel
from .hostile import (
    CROSS_SITE,
    HOSTILE_FILENAMES,
    HOSTILE_NAMES,
    HOSTILE_VERSIONS,
    HTML_BITS,
    OPTIONAL,
    REQUIRED,
    SAME_ORIGIN,
    SINGLE,
)
from .wsgi import Form, Part, Reply, Wsgi, upload_form

# Over 1,000 generated cases per run in total, the same cases every run.
UPLOAD_CASES = 450
MULTIPART_CASES = 250
URL_CASES = 400
ESCAPE_CASES = 60


def fuzz_settings(examples: int) -> settings:
    """Derandomized (the same cases every run), no deadline, no example database."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # one root per test, on purpose
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


FIELD_CHARS = "abcdefghijklmnopqrstuvwxyz_0123456789"
text_noise = st.one_of(
    st.sampled_from(HTML_BITS),
    st.text(min_size=0, max_size=40),
    st.sampled_from(["a\r\nX-Injected: 1", "line1\nline2", "\u2028\u2029", "\x7f\x1b[31m"]),
)


@st.composite
def mutations(draw: Any) -> list[tuple[str, Any]]:
    """A list of (kind, argument): 'bad' kinds must make the upload a 400, others not."""
    ops: list[tuple[str, Any]] = []
    bad = draw(st.booleans())
    # Harmless changes: clients differ in what they send.
    for _ in range(draw(st.integers(0, 3))):
        ops.append(
            draw(
                st.one_of(
                    st.tuples(st.just("drop_optional"), st.sampled_from(OPTIONAL)),
                    st.tuples(
                        st.just("extra_field"),
                        st.tuples(st.text(FIELD_CHARS, min_size=1, max_size=20), text_noise),
                    ),
                    st.tuples(st.just("huge_ignored_field"), st.integers(110_000, 400_000)),
                    st.tuples(st.just("upper_digests"), st.none()),
                    st.tuples(st.just("shuffle"), st.randoms(use_true_random=False)),
                    st.tuples(
                        st.just("content_type"),
                        st.sampled_from(
                            [
                                "text/html",
                                "application/zip",
                                "application/octet-stream; charset=utf-8",
                                "<script>",
                            ]
                        ),
                    ),
                    st.tuples(st.just("preamble"), st.binary(max_size=200)),
                    st.tuples(st.just("route"), st.sampled_from(["/legacy/", "/legacy"])),
                    st.tuples(
                        st.just("name_spelling"),
                        st.sampled_from(["Demo-Pkg", "demo_pkg", "DEMO.PKG", "demo--pkg"]),
                    ),
                )
            )
        )
    if draw(st.integers(0, 9)) == 0:
        ops.append(draw(st.tuples(st.just("origin"), st.sampled_from(SAME_ORIGIN + CROSS_SITE))))
    if bad:
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
            ops.append(
                draw(
                    st.one_of(
                        st.tuples(st.just("drop"), st.sampled_from(REQUIRED)),
                        st.tuples(st.just("duplicate"), st.sampled_from(SINGLE)),
                        st.tuples(st.just("filename"), st.sampled_from(HOSTILE_FILENAMES)),
                        st.tuples(st.just("name"), st.sampled_from(HOSTILE_NAMES)),
                        st.tuples(st.just("version"), st.sampled_from(HOSTILE_VERSIONS)),
                        st.tuples(
                            st.just("non_utf8"),
                            st.tuples(
                                st.sampled_from(
                                    [":action", "name", "version", "filetype", "summary"]
                                ),
                                st.sampled_from(
                                    [b"\xff", b"\xc0\xae", b"\xed\xa0\x80", b"\x80abc"]
                                ),
                            ),
                        ),
                        st.tuples(st.just("nul"), st.sampled_from([":action", "name", "version"])),
                        st.tuples(
                            st.just("wrong_digest"),
                            st.sampled_from(["sha256_digest", "blake2_256_digest", "md5_digest"]),
                        ),
                        st.tuples(
                            st.just("malformed_digest"),
                            st.sampled_from(
                                ["zz" * 32, "0" * 63, "0" * 65, "<script>", "0x" + "0" * 62]
                            ),
                        ),
                        st.tuples(
                            st.just("filetype"),
                            st.sampled_from(["bdist_egg", "<b>", "sdist\r\nX: 1"]),
                        ),
                        st.tuples(st.just("protocol"), st.sampled_from(["2", "0", "1.0"])),
                        st.tuples(st.just("garbage_content"), st.binary(min_size=1, max_size=3000)),
                        st.tuples(st.just("empty_content"), st.none()),
                        st.tuples(st.just("content_as_text"), st.none()),
                        st.tuples(st.just("other_project_content"), st.none()),
                        st.tuples(
                            st.just("huge_required_field"),
                            st.sampled_from(["name", "version", ":action"]),
                        ),
                        st.tuples(
                            st.just("envelope"),
                            st.sampled_from(
                                [
                                    "no_terminator",
                                    "truncate",
                                    "wrong_boundary",
                                    "no_colon",
                                    "no_disposition",
                                    "lf_only",
                                    "no_boundary_param",
                                    "header_only",
                                    "unterminated_header",
                                ]
                            ),
                        ),
                        st.tuples(st.just("truncate_at"), st.floats(0.0, 0.95)),
                        st.tuples(
                            st.just("charset"),
                            st.tuples(
                                st.sampled_from(["request", "part"]),
                                # Unknown codecs only: Python reads "utf-8'" as utf-8, and so
                                # do we.
                                st.sampled_from(["no-such-codec", "x\u00ff", "utf-9"]),
                            ),
                        ),
                    )
                )
            )
    return ops


@dataclass
class Built:
    form: Form
    target: str = "/"
    body: bytes | None = None  # raw body overriding the form
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def build(dist: Dist, ops: list[tuple[str, Any]]) -> Built:
    form = upload_form(dist)
    built = Built(form)
    content = form.fields("content")[0]
    envelope: list[str] = []
    truncate: float | None = None
    preamble = b""
    charset = ""
    for kind, arg in ops:
        if kind == "drop_optional":
            form.parts = [p for p in form.parts if p.name != arg]
        elif kind == "extra_field":
            form.parts.append(Part(f"x_{arg[0]}", arg[1].encode("utf-8", "surrogatepass")))
        elif kind == "huge_ignored_field":
            form.parts.append(Part("description", b"<script>" + b"d" * arg))
        elif kind == "upper_digests":
            for p in form.parts:
                if isinstance(p.name, str) and p.name.endswith("_digest"):
                    p.value = p.value.upper()
        elif kind == "shuffle":
            arg.shuffle(form.parts)
        elif kind == "content_type":
            content.content_type = arg
        elif kind == "preamble":
            preamble = arg.replace(b"--", b"")
        elif kind == "route":
            built.target = arg
        elif kind == "name_spelling":
            for p in form.fields("name"):
                p.value = arg.encode()
        elif kind == "drop":
            form.parts = [p for p in form.parts if p.name != arg]
        elif kind == "duplicate":
            copies = form.fields(arg)[:1] or [Part(arg, b"1"), Part(arg, b"1")]
            form.parts.extend(copies)
        elif kind == "filename":
            content.filename = arg.format(f=dist.filename)
        elif kind == "name":
            for p in form.fields("name") or [Part("name", b"")]:
                p.value = arg.encode("utf-8")
        elif kind == "version":
            for p in form.fields("version"):
                p.value = arg.encode("utf-8")
        elif kind == "non_utf8":
            name, raw = arg
            targets = form.fields(name)
            if targets:
                targets[0].value = raw + targets[0].value
            else:
                form.parts.append(Part(name, raw))
        elif kind == "nul":
            for p in form.fields(arg):
                p.value = p.value[:1] + b"\x00" + p.value[1:]
        elif kind == "wrong_digest":
            size = 32 if arg == "md5_digest" else 64
            form.parts = [p for p in form.parts if p.name != arg]
            form.parts.append(Part(arg, b"0" * size))
        elif kind == "malformed_digest":
            form.parts = [p for p in form.parts if p.name != "sha256_digest"]
            form.parts.append(Part("sha256_digest", arg.encode()))
        elif kind == "filetype":
            form.parts = [p for p in form.parts if p.name != "filetype"]
            form.parts.append(Part("filetype", arg.encode()))
        elif kind == "protocol":
            form.parts = [p for p in form.parts if p.name != "protocol_version"]
            form.parts.append(Part("protocol_version", arg.encode()))
        elif kind == "garbage_content":
            _set_content(form, content, arg)
        elif kind == "empty_content":
            _set_content(form, content, b"")
        elif kind == "content_as_text":
            content.filename = None
        elif kind == "other_project_content":
            other = make_wheel("other-pkg", dist.version, payload=dist.data[-8:])
            _set_content(form, content, other.data)
        elif kind == "huge_required_field":
            for p in form.fields(arg):
                p.value = p.value + b"9" * 150_000
        elif kind == "envelope":
            envelope.append(arg)
        elif kind == "truncate_at":
            truncate = arg
        elif kind == "origin":
            built.headers[arg[0]] = arg[1]
        elif kind == "charset":
            where, codec = arg
            if where == "part":
                first_text = next(p for p in form.parts if p.filename is None)
                first_text.content_type = f"text/plain; charset={codec}"
            else:
                charset = f"; charset={codec}"
    body, ctype = form.encode()
    ctype += charset
    body = preamble + (b"\r\n" if preamble else b"") + body
    for kind in envelope:
        body, ctype = _break_envelope(kind, body, ctype, form.boundary)
    if truncate is not None:
        end = body.rfind(b"\r\n--" + form.boundary.encode() + b"--")
        body = body[: max(0, int(end * truncate))]
    built.body, built.content_type = body, ctype
    return built


def _set_content(form: Form, content: Part, data: bytes) -> None:
    content.value = data
    for p in form.fields("sha256_digest"):
        p.value = hashlib.sha256(data).hexdigest().encode()
    for p in form.fields("blake2_256_digest"):
        p.value = hashlib.blake2b(data, digest_size=32).hexdigest().encode()


def _break_envelope(kind: str, body: bytes, ctype: str, boundary: str) -> tuple[bytes, str]:
    sep = b"--" + boundary.encode()
    if kind == "no_terminator":
        return body.replace(sep + b"--\r\n", b""), ctype
    if kind == "truncate":
        return body[: len(body) // 2], ctype
    if kind == "wrong_boundary":
        return body, ctype.replace(boundary, boundary[::-1])
    if kind == "no_colon":
        return body.replace(b"Content-Disposition:", b"Content-Disposition", 1), ctype
    if kind == "no_disposition":
        return body.replace(b"Content-Disposition:", b"X-Nothing:", 1), ctype
    if kind == "lf_only":
        return body.replace(b"\r\n", b"\n"), ctype
    if kind == "no_boundary_param":
        return body, "multipart/form-data"
    if kind == "header_only":
        return sep + b'\r\nContent-Disposition: form-data; name=":action"\r\n', ctype
    # unterminated_header: a part whose header section never ends before the next boundary
    return body.replace(b'"\r\n\r\n', b'"\r\n', 1), ctype


def expected_status(ops: list[tuple[str, Any]]) -> int:
    # The cross-site check comes before the form is read.
    if any(kind == "origin" and arg in CROSS_SITE for kind, arg in ops):
        return 403
    return 400 if any(kind in BAD_KINDS for kind, _ in ops) else 200


BAD_KINDS = {
    "drop",
    "duplicate",
    "filename",
    "name",
    "version",
    "non_utf8",
    "nul",
    "wrong_digest",
    "malformed_digest",
    "filetype",
    "protocol",
    "garbage_content",
    "empty_content",
    "content_as_text",
    "other_project_content",
    "huge_required_field",
    "envelope",
    "truncate_at",
    "charset",
}


def send(app: Wsgi, built: Built) -> Reply:
    assert built.body is not None and built.content_type is not None
    headers = {"Content-Type": built.content_type, **built.headers}
    return app.request("POST", built.target, built.body, headers)
