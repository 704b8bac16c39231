"""The real WSGI app, in process: upload rules, simple pages, downloads (index-standards §2–§9).

Every request goes through ``cheesecellar.app(...)`` via the PEP 3333 client in conftest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from cheesecellar.distributions import normalize_name

from .conftest import (
    BOUNDARY,
    Client,
    ClientFactory,
    Dist,
    FilePart,
    Response,
    SdistFactory,
    WheelFactory,
    basic,
    core_metadata,
    multipart,
    resolve,
    tree,
    upload_fields,
)

V1_JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
# PEP 629/700: `versions` and `size` need 1.1; everything after is optional, so up to 1.4 (§1).
API_VERSIONS = ("1.1", "1.2", "1.3", "1.4")
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
Fields = list[tuple[str, str | FilePart]]


def stored(client: Client) -> dict[str, tuple[int, int]]:
    return tree(*client.roots)


def temp_files(client: Client) -> list[str]:
    return sorted(os.listdir(client.root / ".cheesecellar" / "tmp"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def replace_field(fields: Fields, name: str, value: str | FilePart) -> Fields:
    assert any(k == name for k, _ in fields), name
    return [(k, value if k == name else v) for k, v in fields]


def drop_field(fields: Fields, name: str) -> Fields:
    return [(k, v) for k, v in fields if k != name]


def add_field(fields: Fields, name: str, value: str | FilePart) -> Fields:
    # Before the file part, where twine puts its form fields.
    return [*fields[:-1], (name, value), fields[-1]]


# ============================================================================ the app


def test_app_factory_emits_no_warnings(tmp_path: Path) -> None:
    # The suite runs with filterwarnings = error: a deprecated Bottle API used while
    # building the app would make every app() call (and every .wsgi file under -W error) fail.
    import warnings

    import cheesecellar

    (tmp_path / "packages").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cheesecellar.app(root=str(tmp_path / "packages"), password_file=".", authenticate=".")
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


# ======================================================================= upload: success


@pytest.fixture
def wheel(make_wheel: WheelFactory) -> Dist:
    return make_wheel("demo-pkg", "1.0", requires_python=">=3.8")


@pytest.fixture
def sdist(make_sdist: SdistFactory) -> Dist:
    return make_sdist("demo-pkg", "1.0", requires_python=">=3.9,<4")


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_upload_stores_the_exact_bytes(client: Client, wheel: Dist, sdist: Dist, kind: str) -> None:
    dist = wheel if kind == "wheel" else sdist
    response = client.upload(dist)
    assert (response.status, response.body) == (200, b"")
    assert (client.root / dist.filename).read_bytes() == dist.data
    assert temp_files(client) == []


def test_upload_digests_compare_case_insensitively(client: Client, sdist: Dist) -> None:
    fields = replace_field(upload_fields(sdist), "sha256_digest", sdist.sha256.upper())
    fields = add_field(fields, "md5_digest", hashlib.md5(sdist.data).hexdigest().upper())
    assert client.post_form(fields).status == 200


def test_upload_without_any_digest_is_accepted(client: Client, sdist: Dist) -> None:
    # index-standards §9: never require md5; do not require fields PyPI does not require.
    response = client.post_form(upload_fields(sdist, digests=False))
    assert response.status == 200


@pytest.mark.parametrize(
    ("version", "fmt", "filename"),
    [
        # PyPI refuses local versions; a private index accepts them (§8).
        ("1.0+local.7", "tar.gz", "demo_pkg-1.0+local.7.tar.gz"),
        # Bottle's FileUpload.filename drops '!' and '+': raw_filename must be used (§11).
        ("1!1.0", "tar.gz", "demo_pkg-1!1.0.tar.gz"),
        # .zip sdists are still accepted (PEP 527).
        ("1.0", "zip", "demo_pkg-1.0.zip"),
    ],
)
def test_upload_keeps_the_filename(
    client: Client, make_sdist: SdistFactory, version: str, fmt: str, filename: str
) -> None:
    dist = make_sdist("demo-pkg", version, fmt=fmt)
    assert dist.filename == filename
    assert client.upload(dist).status == 200
    assert (client.root / filename).read_bytes() == dist.data
    _, page = client.page("/simple/demo-pkg/")
    (anchor,) = page.anchors
    assert anchor.text == filename
    url = resolve("/simple/demo-pkg/", anchor.href)
    assert unquote(url) == f"/packages/{filename}"
    assert client.get(url).body == dist.data


def test_upload_larger_than_memory_buffers(client: Client, make_wheel: WheelFactory) -> None:
    # Over Bottle's 100 KiB in-memory limit the part is spooled to disk; hashed while streaming.
    wheel = make_wheel(payload=os.urandom(600_000))
    assert client.upload(wheel).status == 200
    assert (client.root / wheel.filename).read_bytes() == wheel.data
    assert temp_files(client) == []


def test_upload_over_the_size_limit_is_413(
    make_client: ClientFactory, make_wheel: WheelFactory
) -> None:
    client = make_client(max_upload_size=100_000)
    wheel = make_wheel(payload=os.urandom(200_000))
    before = stored(client)
    response = client.upload(wheel)
    assert response.status == 413
    assert response.text.startswith("File too large.")
    assert stored(client) == before
    assert temp_files(client) == []


# ======================================================================= upload: refusals


UploadCase = Callable[[Dist, Dist, WheelFactory, SdistFactory], Fields]


def _with_digest(dist: Dist, field: str, value: str) -> Fields:
    return replace_field(upload_fields(dist), field, value)


def _metadata_name(_w: Dist, _s: Dist, _mw: WheelFactory, make_sdist: SdistFactory) -> Fields:
    dist = make_sdist("demo-pkg", "1.0", metadata=core_metadata("other", "1.0"))
    return upload_fields(dist, name="demo-pkg", version="1.0")


def _metadata_version(_w: Dist, _s: Dist, make_wheel: WheelFactory, _ms: SdistFactory) -> Fields:
    dist = make_wheel("demo-pkg", "1.0", metadata=core_metadata("demo-pkg", "9.9"))
    return upload_fields(dist, name="demo-pkg", version="1.0")


def _corrupt_wheel(wheel: Dist, _s: Dist, _mw: WheelFactory, _ms: SdistFactory) -> Fields:
    return upload_fields(wheel, data=b"PK\x03\x04 this is no zip file at all" * 20)


def _renamed(filename: str) -> UploadCase:
    def fields(_w: Dist, sdist: Dist, _mw: WheelFactory, _ms: SdistFactory) -> Fields:
        return upload_fields(sdist, filename=filename)

    return fields


def _simple(build: Callable[[Dist, Dist], Fields]) -> UploadCase:
    def fields(wheel: Dist, sdist: Dist, _mw: WheelFactory, _ms: SdistFactory) -> Fields:
        return build(wheel, sdist)

    return fields


DIGEST_MISMATCH = "The digest supplied does not match a digest calculated from the uploaded file"
BAD_EXTENSION = "Invalid file extension: Use .tar.gz, .whl or .zip extension."
SLASH = "Cannot upload a file with '/' or '\\' in the name."
DOT = "Cannot upload a file whose name starts with '.' or contains '..'."
NO_FILE = "Upload payload does not have a file."

REFUSED: list[tuple[str, UploadCase, int, str | tuple[str, ...]]] = [
    # index-standards §9: "Upload payload does not have a file."
    ("missing-content", _simple(lambda w, s: drop_field(upload_fields(s), "content")), 400,
     NO_FILE),
    ("content-as-text-field",
     _simple(lambda w, s: replace_field(upload_fields(s), "content", "not a file")), 400, NO_FILE),
    ("empty-content", _simple(lambda w, s: upload_fields(s, data=b"")), 400, NO_FILE),
    # Digests: compared with every one that was sent.
    ("wrong-sha256", _simple(lambda w, s: _with_digest(s, "sha256_digest", sha256(b"other"))),
     400, DIGEST_MISMATCH),
    ("wrong-blake2",
     _simple(lambda w, s: _with_digest(s, "blake2_256_digest", sha256(b"other"))), 400,
     DIGEST_MISMATCH),
    ("wrong-md5", _simple(lambda w, s: add_field(upload_fields(s), "md5_digest", "0" * 32)), 400,
     DIGEST_MISMATCH),
    ("wrong-sha256-wheel",
     _simple(lambda w, s: _with_digest(w, "sha256_digest", sha256(b"other"))), 400,
     DIGEST_MISMATCH),
    # Filename against the form (PEP 625; PyPI's wording).
    ("name-mismatch", _simple(lambda w, s: upload_fields(s, name="other")), 400,
     "Start filename for 'other' with 'other'."),
    ("version-mismatch", _simple(lambda w, s: upload_fields(s, version="2.0")), 400,
     "Version in filename should be '2.0' not '1.0'."),
    ("wheel-version-mismatch", _simple(lambda w, s: upload_fields(w, version="1.0.1")), 400,
     "Version in filename should be '1.0.1' not '1.0'."),
    # The archive's own metadata against the filename and the form.
    ("metadata-name-mismatch", _metadata_name, 400,
     "Invalid distribution file. Its metadata names 'other', the filename 'demo_pkg'."),
    ("metadata-version-mismatch", _metadata_version, 400,
     "Invalid distribution file. Its metadata says version '9.9', the upload form '1.0'."),
    ("corrupt-wheel", _corrupt_wheel, 400, "Invalid distribution file. Not a valid zip"),
    # Names that could address anything but one file in the package directory.
    ("dotdot-slash", _renamed("../demo_pkg-1.0.tar.gz"), 400, SLASH),
    ("dotdot-backslash", _renamed("..\\demo_pkg-1.0.tar.gz"), 400, SLASH),
    ("absolute", _renamed("/etc/passwd"), 400, SLASH),
    ("absolute-dist-name", _renamed("/tmp/demo_pkg-1.0.tar.gz"), 400, SLASH),
    ("hidden", _renamed(".demo_pkg-1.0.tar.gz"), 400, DOT),
    # A NUL in a part header may already be refused by the multipart parser.
    ("nul", _renamed("demo_pkg-1.0.tar.gz\x00.whl"), 400,
     ("Cannot upload a file with non-printable characters in the name.",
      "Malformed form data: Header value must not contain control characters")),
    # PEP 715 / PEP 527: eggs, installers and .tar.bz2 are not uploadable.
    ("egg", _renamed("demo_pkg-1.0-py3.11.egg"), 400, BAD_EXTENSION),
    ("exe", _renamed("demo_pkg-1.0.win-amd64.exe"), 400, BAD_EXTENSION),
    ("tar-bz2", _renamed("demo_pkg-1.0.tar.bz2"), 400, BAD_EXTENSION),
    # Form fields.
    ("duplicated-name", _simple(lambda w, s: add_field(upload_fields(s), "name", "demo-pkg")),
     400, "The field 'name' was sent more than once."),
    ("duplicated-content",
     _simple(lambda w, s: [*upload_fields(s), ("content", FilePart(s.filename, s.data))]), 400,
     "The field 'content' was sent more than once."),
    ("missing-name", _simple(lambda w, s: drop_field(upload_fields(s), "name")), 400,
     "The fields 'name' and 'version' are required."),
    ("bad-filetype",
     _simple(lambda w, s: replace_field(upload_fields(s), "filetype", "bdist_egg")), 400,
     "Invalid value for filetype. Error: Use a known file type."),
    ("protocol-version-2",
     _simple(lambda w, s: replace_field(upload_fields(s), "protocol_version", "2")), 400,
     "Unknown protocol version."),
    # pypiserver-compat §6.2: invalid project names are refused at upload.
    ("invalid-project-name",
     _simple(lambda w, s: upload_fields(s, filename="bang!-1.0.zip", name="bang!")), 400,
     "Invalid project name 'bang!'."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "status", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_upload_refused_and_nothing_stored(
    client: Client,
    tmp_path: Path,
    wheel: Dist,
    sdist: Dist,
    make_wheel: WheelFactory,
    make_sdist: SdistFactory,
    build: UploadCase,
    status: int,
    message: str | tuple[str, ...],
) -> None:
    fields = build(wheel, sdist, make_wheel, make_sdist)
    before = tree(tmp_path)
    response = client.post_form(fields)
    assert response.status == status
    assert response.media_type == "text/plain"
    assert response.text.startswith(message), response.text
    # The reason phrase carries the message too (twine shows the reason; HTTP/2 has none).
    messages = (message,) if isinstance(message, str) else message
    assert any(response.reason.startswith(m) for m in messages), response.reason
    assert tree(tmp_path) == before
    assert temp_files(client) == []
    assert client.get("/simple/demo-pkg/").status == 404


@pytest.mark.parametrize("value", ["z" * 64, "abcd", sha256(b"x") + "00", "0x" + "0" * 62])
def test_upload_invalid_sha256_hex(client: Client, sdist: Dist, value: str) -> None:
    before = stored(client)
    response = client.post_form(replace_field(upload_fields(sdist), "sha256_digest", value))
    assert response.status == 400
    # PyPI: "Use a valid, hex-encoded, SHA256 message digest." (case aside)
    assert response.text.casefold() == "use a valid, hex-encoded, sha256 message digest.\n"
    assert stored(client) == before


def test_upload_invalid_md5_hex(client: Client, sdist: Dist) -> None:
    response = client.post_form(add_field(upload_fields(sdist), "md5_digest", "x" * 32))
    assert response.status == 400
    assert response.text.casefold() == "use a valid, hex-encoded, md5 message digest.\n"


# ---------------------------------------------------------------- malformed multipart


def _raw_post(
    client: Client, body: bytes, content_type: str, content_length: int | None = None
) -> Response:
    return client.request(
        "POST",
        "/",
        headers={"Content-Type": content_type, "Authorization": basic()},
        body=body,
        content_length=content_length,
    )


@pytest.mark.parametrize(
    "case",
    ["no-boundary", "truncated", "content-length-too-long", "no-disposition", "unclosed-header",
     "urlencoded", "not-multipart-at-all"],
)  # fmt: skip
def test_malformed_multipart_is_400_never_500(client: Client, sdist: Dist, case: str) -> None:
    body = multipart(upload_fields(sdist))
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    length = None
    if case == "no-boundary":
        content_type = "multipart/form-data"
    elif case == "truncated":
        body = body[: len(body) // 2]
    elif case == "content-length-too-long":
        length = len(body) + 5000
        body = body[: len(body) - 100]
    elif case == "no-disposition":
        body = f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nvalue\r\n--{BOUNDARY}--\r\n".encode()
    elif case == "unclosed-header":
        body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n'.encode()
    elif case == "urlencoded":
        body, content_type = (
            b":action=file_upload&name=demo-pkg&version=1.0",
            ("application/x-www-form-urlencoded"),
        )
    else:
        content_type = "application/octet-stream"
    before = stored(client)
    response = _raw_post(client, body, content_type, length)
    assert response.status == 400, response.text
    assert response.media_type == "text/plain"
    assert stored(client) == before
    assert temp_files(client) == []


# ------------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        (None, 401),
        ("Bearer some-token", 401),
        (basic("alice", "wrong"), 403),
        (basic("mallory", "s3cret-Pa55"), 403),
        (basic("alice", "x" * 100), 403),
    ],
)
def test_upload_needs_credentials(
    client: Client, sdist: Dist, auth: str | None, status: int
) -> None:
    before = stored(client)
    response = client.upload(sdist, auth=auth)
    assert response.status == status
    assert response.media_type == "text/plain"
    if status == 401:
        # pip asks keyring or prompts only on a 401 with a challenge (§9).
        assert response.header("WWW-Authenticate") == 'Basic realm="cheesecellar"'
    else:
        assert response.header("WWW-Authenticate") is None
        assert response.text == "Invalid username or password.\n"
    assert stored(client) == before
    assert temp_files(client) == []


def test_read_only_index_without_password_file(make_client: ClientFactory, sdist: Dist) -> None:
    client = make_client(password_file=None)
    before = stored(client)
    assert client.upload(sdist).status == 403
    assert stored(client) == before


def test_open_index_with_dot_dot(make_client: ClientFactory, sdist: Dist) -> None:
    client = make_client(password_file=".", authenticate=".")
    assert client.upload(sdist, auth=None).status == 200


@pytest.mark.parametrize("action", ["list", "download"])
def test_guarded_reads(make_client: ClientFactory, sdist: Dist, action: str) -> None:
    client = make_client(authenticate=["update", action])
    assert client.upload(sdist).status == 200
    url = "/simple/demo-pkg/" if action == "list" else f"/packages/{sdist.filename}"
    assert client.get(url).status == 401
    assert client.get(url, Authorization=basic("alice", "nope")).status == 403
    assert client.get(url, Authorization=basic()).status == 200
    # The health endpoint and the welcome page are never guarded.
    assert client.get("/health").status == 200
    assert client.get("/").status == 200


# ---------------------------------------------------------------------------- duplicates


def test_identical_reupload_is_200_and_changes_nothing(client: Client, wheel: Dist) -> None:
    assert client.upload(wheel).status == 200
    target = client.root / wheel.filename
    inode = target.stat().st_ino
    first = json.loads(client.get("/simple/demo-pkg/", Accept=V1_JSON).body)
    before = stored(client)
    response = client.upload(wheel)
    assert response.status == 200
    assert target.stat().st_ino == inode
    assert target.read_bytes() == wheel.data
    assert stored(client) == before
    assert json.loads(client.get("/simple/demo-pkg/", Accept=V1_JSON).body) == first


def test_different_bytes_same_filename_is_409(
    client: Client, make_sdist: SdistFactory, sdist: Dist, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert client.upload(sdist).status == 200
    other = make_sdist("demo-pkg", "1.0", payload=b"VALUE = 2\n", directory=elsewhere)
    assert other.filename == sdist.filename and other.data != sdist.data
    before = stored(client)
    response = client.upload(other)
    assert response.status == 409
    expected = f"File already exists ('{sdist.filename}', with sha256 hash '{sdist.sha256}')"
    assert response.text.startswith(expected)
    assert response.reason.startswith("File already exists")
    assert (client.root / sdist.filename).read_bytes() == sdist.data
    assert stored(client) == before
    assert temp_files(client) == []


def test_same_distribution_spelled_differently_is_409(
    client: Client, make_sdist: SdistFactory, sdist: Dist
) -> None:
    # pypiserver-compat §6.8: compare on a canonical key, not a case-sensitive basename.
    assert client.upload(sdist).status == 200
    other = make_sdist("Demo_Pkg", "1.0.0", filename="Demo_Pkg-1.0.0.tar.gz", payload=b"X = 3\n")
    before = stored(client)
    response = client.upload(other, name="Demo_Pkg", version="1.0.0")
    assert response.status == 409
    assert response.text.startswith(
        f"File already exists ('{sdist.filename}', with sha256 hash '{sdist.sha256}')"
    )
    assert stored(client) == before


def test_overwrite_replaces_the_bytes(
    make_client: ClientFactory, make_sdist: SdistFactory, sdist: Dist, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    client = make_client(overwrite=True)
    assert client.upload(sdist).status == 200
    other = make_sdist("demo-pkg", "1.0", payload=b"VALUE = 2\n", directory=elsewhere)
    response = client.upload(other)
    assert response.status == 200
    assert (client.root / sdist.filename).read_bytes() == other.data
    download = client.get(f"/packages/{sdist.filename}")
    assert download.body == other.data
    _, page = client.page("/simple/demo-pkg/")
    assert [a.href for a in page.anchors] == [
        f"../../packages/{sdist.filename}#sha256={other.sha256}"
    ]
    assert temp_files(client) == []


def test_overwrite_replaces_a_differently_spelled_file(
    make_client: ClientFactory, make_sdist: SdistFactory, sdist: Dist
) -> None:
    # Same canonical key (demo-pkg, version 1, sdist): with --overwrite the new upload
    # replaces the old distribution instead of answering 409 (§9); it must not leave two
    # sdists with different hashes listed for one release.
    client = make_client(overwrite=True)
    assert client.upload(sdist).status == 200
    other = make_sdist("demo-pkg", "1.0.0", payload=b"VALUE = 2\n")
    assert client.upload(other).status == 200
    _, page = client.page("/simple/demo-pkg/")
    assert len(page.anchors) == 1, [a.text for a in page.anchors]
    (anchor,) = page.anchors
    assert anchor.href.endswith(f"#sha256={other.sha256}")
    assert client.get(resolve("/simple/demo-pkg/", anchor.href)).body == other.data


# ----------------------------------------------------------------------- other actions


def test_remove_pkg(client: Client, wheel: Dist, sdist: Dist, make_sdist: SdistFactory) -> None:
    newer = make_sdist("demo-pkg", "2.0")
    for dist in (wheel, sdist, newer):
        assert client.upload(dist).status == 200
    response = client.post_form(
        [(":action", "remove_pkg"), ("name", "Demo.Pkg"), ("version", "1.0")]
    )
    assert response.status == 200
    assert response.text == f"Removed {wheel.filename}, {sdist.filename}\n"
    assert sorted(os.listdir(client.root)) == [".cheesecellar", newer.filename]
    assert client.get(f"/packages/{wheel.filename}").status == 404
    assert client.get(f"/packages/{wheel.filename}.metadata").status == 404
    _, page = client.page("/simple/demo-pkg/")
    assert [a.text for a in page.anchors] == [newer.filename]
    response = client.post_form([(":action", "remove_pkg"), ("name", "demo-pkg"), ("version", "2")])
    assert response.status == 200
    assert client.get("/simple/demo-pkg/").status == 404
    assert client.get(f"/packages/{newer.filename}").status == 404
    _, root = client.page("/simple/")
    assert root.anchors == []


def test_remove_pkg_unknown_is_404(client: Client) -> None:
    response = client.post_form([(":action", "remove_pkg"), ("name", "nope"), ("version", "1.0")])
    assert (response.status, response.text) == (404, "nope (1.0) not found\n")


def test_remove_pkg_needs_credentials(client: Client, sdist: Dist) -> None:
    assert client.upload(sdist).status == 200
    fields: Fields = [(":action", "remove_pkg"), ("name", "demo-pkg"), ("version", "1.0")]
    assert client.post_form(fields, auth=None).status == 401
    assert client.post_form(fields, auth=basic("alice", "bad")).status == 403
    assert (client.root / sdist.filename).exists()


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ([(":action", "doc_upload")], 410, "Documentation uploads are not supported"),
        ([(":action", "submit")], 410, "Project pre-registration is not needed"),
        ([(":action", "submit_pkg_info")], 410, "Project pre-registration is not needed"),
        ([(":action", "frobnicate")], 400, "Unsupported ':action' field: frobnicate"),
        ([("name", "demo-pkg")], 400, "Missing ':action' field."),
        ([(":action", "remove_pkg"), ("name", "demo-pkg")], 400,
         "The field 'version' is required, once."),
    ],
)  # fmt: skip
def test_other_actions(client: Client, fields: Fields, status: int, message: str) -> None:
    response = client.post_form(fields)
    assert response.status == status
    assert response.text.startswith(message)
    # poetry re-registers when a 400 says "was ever registered" (§9): never say it.
    assert "was ever registered" not in response.text


def test_post_to_simple_is_405(client: Client, sdist: Dist) -> None:
    response = client.post_form(upload_fields(sdist), url="/simple/")
    assert response.status == 405
    assert response.media_type == "text/plain"


# ============================================================================== pages


@pytest.fixture
def populated(client: Client, wheel: Dist, sdist: Dist, make_sdist: SdistFactory) -> Client:
    other = make_sdist("Other.Proj", "0.1", requires_python=None)
    for dist in (wheel, sdist, other):
        assert client.upload(dist).status == 200
    return client


def test_simple_root_page(populated: Client) -> None:
    response, page = populated.page("/simple/")
    assert response.status == 200
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Vary") == "Accept, Accept-Encoding"
    assert page.meta("pypi:repository-version") in API_VERSIONS
    assert [a.href for a in page.anchors] == ["demo-pkg/", "other-proj/"]
    # PEP 503: the text is the project's name (display or normalized form).
    assert [normalize_name(a.text) for a in page.anchors] == ["demo-pkg", "other-proj"]


def test_simple_project_page(populated: Client, wheel: Dist, sdist: Dist) -> None:
    response, page = populated.page("/simple/demo-pkg/")
    assert response.status == 200
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Vary") == "Accept, Accept-Encoding"
    assert page.meta("pypi:repository-version") in API_VERSIONS
    by_text = {a.text: a for a in page.anchors}
    assert sorted(by_text) == sorted([wheel.filename, sdist.filename])
    for dist in (wheel, sdist):
        anchor = by_text[dist.filename]
        url, _, fragment = anchor.href.partition("#")
        # The anchor text is the last path segment of the URL (PEP 503).
        assert unquote(url.rpartition("/")[2]) == dist.filename
        assert resolve("/simple/demo-pkg/", url) == f"/packages/{dist.filename}"
        on_disk = (populated.root / dist.filename).read_bytes()
        assert fragment == f"sha256={sha256(on_disk)}"
        assert populated.get(resolve("/simple/demo-pkg/", url)).body == on_disk
    assert by_text[wheel.filename].attrs["data-requires-python"] == ">=3.8"
    assert by_text[sdist.filename].attrs["data-requires-python"] == ">=3.9,<4"
    # Escaped in the markup (html.escape(value, quote=True)).
    assert 'data-requires-python="&gt;=3.8"' in response.text
    assert 'data-requires-python="&gt;=3.9,&lt;4"' in response.text
    assert ">=3" not in response.text.replace("&gt;=3", "")


def test_core_metadata_file(populated: Client, wheel: Dist, sdist: Dist) -> None:
    _, page = populated.page("/simple/demo-pkg/")
    by_text = {a.text: a for a in page.anchors}
    anchor = by_text[wheel.filename]
    expected = f"sha256={sha256(wheel.metadata)}"
    assert anchor.attrs["data-core-metadata"] == expected
    # PEP 714: the old name, if sent, must equal the new one.
    assert anchor.attrs["data-dist-info-metadata"] == expected
    url = resolve("/simple/demo-pkg/", anchor.href.partition("#")[0]) + ".metadata"
    response = populated.get(url)
    assert response.status == 200
    assert response.body == wheel.metadata
    assert f"sha256={sha256(response.body)}" == anchor.attrs["data-core-metadata"]
    assert response.media_type is not None
    # Metadata 2.1 sdists carry no servable metadata (PEP 643): neither attribute.
    assert "data-core-metadata" not in by_text[sdist.filename].attrs
    assert "data-dist-info-metadata" not in by_text[sdist.filename].attrs
    assert populated.get(f"/packages/{sdist.filename}.metadata").status == 404


def test_sdist_metadata_2_2_is_served(client: Client, make_sdist: SdistFactory) -> None:
    raw = core_metadata("demo-pkg", "1.0", metadata_version="2.2", extra=["Dynamic: Keywords"])
    dist = make_sdist("demo-pkg", "1.0", metadata=raw)
    assert client.upload(dist).status == 200
    _, page = client.page("/simple/demo-pkg/")
    (anchor,) = page.anchors
    assert anchor.attrs["data-core-metadata"] == f"sha256={sha256(raw)}"
    assert client.get(f"/packages/{dist.filename}.metadata").body == raw


def test_simple_project_json(populated: Client, wheel: Dist, sdist: Dist) -> None:
    response = populated.get("/simple/demo-pkg/", Accept=V1_JSON)
    assert response.status == 200
    assert response.header("Content-Type") == V1_JSON
    assert response.header("Vary") == "Accept, Accept-Encoding"
    doc = json.loads(response.body)
    assert list(doc["meta"]) == ["api-version"]
    assert doc["meta"]["api-version"] in API_VERSIONS
    assert doc["name"] == "demo-pkg"
    assert doc["versions"] == ["1.0"]
    files = {f["filename"]: f for f in doc["files"]}
    assert sorted(files) == sorted([wheel.filename, sdist.filename])
    for dist, requires in ((wheel, ">=3.8"), (sdist, ">=3.9,<4")):
        entry = files[dist.filename]
        assert "dist-info-metadata" not in entry  # pip 22.3–23.1 crash on it (pip#12042)
        assert "alternate-locations" not in entry
        assert entry["hashes"] == {"sha256": dist.sha256}
        assert entry["size"] == len(dist.data)
        assert UPLOAD_TIME.match(entry["upload-time"]), entry["upload-time"]
        assert entry["requires-python"] == requires  # plain, not HTML-escaped
        assert entry["yanked"] is False
        assert resolve("/simple/demo-pkg/", entry["url"]) == f"/packages/{dist.filename}"
    assert files[wheel.filename]["core-metadata"] == {"sha256": sha256(wheel.metadata)}
    assert files[sdist.filename].get("core-metadata", False) is False


def test_simple_root_json(populated: Client) -> None:
    response = populated.get("/simple/", Accept=V1_JSON)
    assert response.header("Content-Type") == V1_JSON
    doc = json.loads(response.body)
    assert list(doc["meta"]) == ["api-version"]
    assert doc["meta"]["api-version"] in API_VERSIONS
    assert sorted(normalize_name(p["name"]) for p in doc["projects"]) == [
        "demo-pkg",
        "other-proj",
    ]


@pytest.mark.parametrize(
    ("accept", "query", "media_type"),
    [
        (None, "", "text/html"),
        ("application/vnd.pypi.simple.latest+json", "", V1_JSON),
        (V1_HTML, "", V1_HTML),
        (V1_JSON, "?format=application/vnd.pypi.simple.v1%2Bhtml", V1_HTML),
        ("text/html", "?format=application/vnd.pypi.simple.v1%2Bjson", V1_JSON),
    ],
)
def test_negotiated_pages(
    populated: Client, accept: str | None, query: str, media_type: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    for url in ("/simple/", "/simple/demo-pkg/"):
        response = populated.request("GET", url + query, headers=headers)
        assert response.status == 200
        assert response.media_type == media_type
        assert response.header("Vary") == "Accept, Accept-Encoding"


@pytest.mark.parametrize("url", ["/simple/", "/simple/demo-pkg/"])
@pytest.mark.parametrize(
    ("accept", "query"), [("application/json", ""), (None, "?format=application/json")]
)
def test_not_acceptable_is_406(populated: Client, url: str, accept: str | None, query: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = populated.request("GET", url + query, headers=headers)
    assert response.status == 406
    assert response.media_type == "text/plain"
    assert V1_JSON in response.text and "text/html" in response.text


@pytest.mark.parametrize("url", ["/simple/", "/simple/demo-pkg/"])
@pytest.mark.parametrize("accept", [None, V1_JSON])
def test_pages_are_gzip_coded_for_clients_that_accept_it(
    populated: Client, url: str, accept: str | None
) -> None:
    media = {"Accept": accept} if accept else {}
    plain = populated.request("GET", url, headers=media)
    coded = populated.request("GET", url, headers={**media, "Accept-Encoding": "gzip, deflate"})

    assert (plain.status, coded.status) == (200, 200)
    assert plain.header("Content-Encoding") is None
    assert coded.header("Content-Encoding") == "gzip"
    assert gzip.decompress(coded.body) == plain.body
    assert coded.header("Content-Type") == plain.header("Content-Type")
    assert coded.header("Content-Length") == str(len(coded.body))
    for response in (plain, coded):
        assert response.header("Vary") == "Accept, Accept-Encoding"
    # Each coding has its own validator, and each revalidates only itself.
    assert coded.header("ETag") == plain.header("ETag")[:-1] + '-gzip"'
    again = populated.request(
        "GET",
        url,
        headers={**media, "Accept-Encoding": "gzip", "If-None-Match": coded.header("ETag")},
    )
    assert (again.status, again.body) == (304, b"")
    assert again.header("ETag") == coded.header("ETag")
    stale = populated.request("GET", url, headers={**media, "If-None-Match": coded.header("ETag")})
    assert (stale.status, stale.body) == (200, plain.body)
    for response, coding in ((plain, None), (coded, "gzip")):
        headers = {**media, "Accept-Encoding": coding or "identity"}
        head = populated.request("HEAD", url, headers=headers)
        assert (head.status, head.body) == (200, b"")
        for name in ("Content-Encoding", "Content-Length", "Content-Type", "ETag", "Vary"):
            assert head.header(name) == response.header(name)


def test_page_etag_gives_304(populated: Client) -> None:
    first = populated.get("/simple/demo-pkg/")
    etag = first.header("ETag")
    assert etag
    again = populated.get("/simple/demo-pkg/", If_None_Match=etag)
    assert (again.status, again.body) == (304, b"")


# ------------------------------------------------------------------- names and redirects


def test_non_normalized_name_redirects(populated: Client) -> None:
    response = populated.get("/simple/Demo_Pkg/")
    assert response.status == 301
    assert response.header("Location") == "../demo-pkg/"
    assert response.header("Content-Type") is not None
    assert resolve("/simple/Demo_Pkg/", response.header("Location") or "") == "/simple/demo-pkg/"


def test_redirect_keeps_the_query(populated: Client) -> None:
    query = "format=application%2Fvnd.pypi.simple.v1%2Bjson"
    response = populated.get(f"/simple/Demo.PKG/?{query}")
    assert response.status == 301
    assert response.header("Location") == f"../demo-pkg/?{query}"
    followed = populated.get(f"/simple/demo-pkg/?{query}")
    assert followed.media_type == V1_JSON


@pytest.mark.parametrize(
    ("url", "location"), [("/simple", "simple/"), ("/simple/demo-pkg", "demo-pkg/")]
)
def test_slashless_urls_redirect(populated: Client, url: str, location: str) -> None:
    response = populated.get(url)
    assert response.status == 301
    assert response.header("Location") == location
    assert response.header("Content-Type") is not None


@pytest.mark.parametrize(
    "url",
    ["/simple/with%20space/", "/simple/With%20Space/", "/simple/a%0d%0aSet-Cookie:%20x=1/",
     "/simple/%2e%2e/", "/simple/bang!/"],
)  # fmt: skip
def test_names_needing_quoting_do_not_loop(client: Client, url: str) -> None:
    # pypiserver-compat §6.2: compare decoded forms; never redirect a name to itself.
    response = client.get(url)
    assert response.status == 404
    assert response.header("Location") is None
    assert response.header("Set-Cookie") is None
    assert response.media_type == "text/plain"


def test_unknown_project_is_404(client: Client) -> None:
    response = client.get("/simple/nope/")
    assert response.status == 404
    assert response.media_type == "text/plain"
    assert response.header("Location") is None


def test_unknown_project_with_fallback_is_303(make_client: ClientFactory) -> None:
    client = make_client(fallback_url="https://mirror.example/simple/")
    response = client.get("/simple/nope/")
    assert response.status == 303
    assert response.header("Location") == "https://mirror.example/simple/nope/"
    assert response.header("Content-Type") is not None


def test_redirect_to_fallback_true_goes_to_pypi(make_client: ClientFactory) -> None:
    client = make_client(redirect_to_fallback=True)
    response = client.get("/simple/nope/")
    assert (response.status, response.header("Location")) == (303, "https://pypi.org/simple/nope/")


# ============================================================================ downloads


def test_download_range(populated: Client, sdist: Dist) -> None:
    response = populated.get(f"/packages/{sdist.filename}", Range="bytes=10-29")
    assert response.status == 206
    assert response.body == sdist.data[10:30]
    assert response.header("Content-Range") == f"bytes 10-29/{len(sdist.data)}"


def test_download_suffix_range(populated: Client, wheel: Dist) -> None:
    # uv and poetry read the end of a wheel (its zip directory) with a suffix range (§10).
    response = populated.get(f"/packages/{wheel.filename}", Range="bytes=-100")
    assert response.status == 206
    assert response.body == wheel.data[-100:]
    size = len(wheel.data)
    assert response.header("Content-Range") == f"bytes {size - 100}-{size - 1}/{size}"


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        # RFC 9110 §15.5.17: unsatisfiable -> 416 with "bytes */size" (or the whole file).
        ("bytes=99999-", (200, 416)),
        # §14.2: an invalid ranges-specifier may be ignored or rejected.
        ("bytes=5-2", (200, 416)),
        ("bytes=x", (200, 416)),
        # §14.2: a range unit the server does not understand MUST be ignored.
        ("lines=1-2", (200,)),
    ],
)
def test_download_unusable_range_is_not_404(
    populated: Client, sdist: Dist, value: str, allowed: tuple[int, ...]
) -> None:
    # The file exists: never 404 (and never a leaked file handle).
    response = populated.get(f"/packages/{sdist.filename}", Range=value)
    assert response.status in allowed, (response.status, response.text)
    if response.status == 200:
        assert response.body == sdist.data
    else:
        assert response.header("Content-Range") == f"bytes */{len(sdist.data)}"


def test_download_conditional(populated: Client, sdist: Dist) -> None:
    first = populated.get(f"/packages/{sdist.filename}")
    assert first.status == 200
    assert first.body == sdist.data
    etag = first.header("ETag")
    assert etag
    again = populated.get(f"/packages/{sdist.filename}", If_None_Match=etag)
    assert (again.status, again.body) == (304, b"")


def test_download_head(populated: Client, wheel: Dist) -> None:
    response = populated.request("HEAD", f"/packages/{wheel.filename}")
    assert response.status == 200
    assert response.body == b""
    assert response.header("Content-Length") == str(len(wheel.data))
    assert response.header("Accept-Ranges") == "bytes"


@pytest.mark.parametrize(
    ("kind", "media_type"), [("sdist", "application/gzip"), ("wheel", "application/octet-stream")]
)
def test_download_content_type(
    populated: Client, wheel: Dist, sdist: Dist, kind: str, media_type: str
) -> None:
    dist = wheel if kind == "wheel" else sdist
    response = populated.get(f"/packages/{dist.filename}")
    assert response.media_type == media_type
    # Clients would decompress and the hash would fail (§10).
    assert response.header("Content-Encoding") is None
    assert response.body == dist.data


def test_download_unknown_file_is_404(client: Client) -> None:
    response = client.get("/packages/nope-1.0.tar.gz")
    assert response.status == 404
    assert response.media_type == "text/plain"


@pytest.mark.parametrize(
    "url",
    [
        "/packages/../../etc/passwd",
        "/packages/../../../../../../etc/passwd",
        "/packages/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/packages/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/packages/..%2f..%2f..%2fetc%2fpasswd",
        "/packages/..%5c..%5cetc%5cpasswd",
        "/packages/%2fetc%2fpasswd",
        "/packages//etc/passwd",
        "/packages/demo_pkg-1.0.tar.gz%00.whl",
        "/packages/.cheesecellar/index/demo-pkg.json",
        "/packages/.cheesecellar/index/_projects.json",
        "/packages/.cheesecellar/lock",
        "/packages/%2echeesecellar/index/demo-pkg.json",
    ],
)
def test_traversal_urls_never_serve_other_files(populated: Client, url: str) -> None:
    response = populated.get(url)
    assert response.status in (400, 404), (response.status, response.body[:200])
    assert b"root:" not in response.body
    assert b'"files"' not in response.body
    assert response.media_type == "text/plain"


def test_symlink_leaving_the_root_is_neither_listed_nor_served(
    client: Client, tmp_path: Path
) -> None:
    # STYLE 7 / storage.safe_join: links are allowed only when they stay inside the root.
    # A link that leaves it must not be served, and so must not be listed either: a listed
    # file that cannot be downloaded breaks installs, and its sha256 and size describe a
    # file outside the package directory.
    secret = tmp_path / "secret.tar.gz"
    secret.write_bytes(b"top secret bytes\n")
    (client.root / "evil-1.0.tar.gz").symlink_to(secret)
    response = client.get("/packages/evil-1.0.tar.gz")
    assert response.status in (400, 404)
    assert b"top secret" not in response.body
    page = client.get("/simple/evil/")
    assert page.status == 404, page.text
    assert sha256(secret.read_bytes()) not in page.text


def test_symlink_inside_the_root_is_served(client: Client, make_sdist: SdistFactory) -> None:
    real = client.root / "store"
    real.mkdir()
    dist = make_sdist("demo-pkg", "1.0", directory=real, filename="demo_pkg-1.0.tar.gz.real")
    (client.root / "demo_pkg-1.0.tar.gz").symlink_to(dist.path)
    response = client.get("/packages/demo_pkg-1.0.tar.gz")
    assert (response.status, response.body) == (200, dist.data)


# ====================================================================== files on disk


def test_hand_copied_file_appears_and_disappears(
    client: Client, tmp_path: Path, make_sdist: SdistFactory
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    dist = make_sdist("demo-pkg", "3.0", directory=staging)
    data, digest = dist.data, dist.sha256
    assert client.get("/simple/demo-pkg/").status == 404
    os.rename(dist.path, client.root / dist.filename)
    response, page = client.page("/simple/demo-pkg/")
    assert response.status == 200
    assert [a.text for a in page.anchors] == [dist.filename]
    assert page.anchors[0].href == f"../../packages/{dist.filename}#sha256={digest}"
    assert page.anchors[0].attrs["data-requires-python"] == ">=3.8"
    assert client.get(f"/packages/{dist.filename}").body == data
    os.unlink(client.root / dist.filename)
    assert client.get("/simple/demo-pkg/").status == 404
    assert client.get(f"/packages/{dist.filename}").status == 404
    _, root = client.page("/simple/")
    assert root.anchors == []


def test_hand_copied_file_in_a_subdirectory(
    client: Client, tmp_path: Path, make_wheel: WheelFactory
) -> None:
    client.get("/simple/")
    sub = client.root / "team-a"
    sub.mkdir()
    dist = make_wheel("demo-pkg", "1.5", directory=sub)
    _, page = client.page("/simple/demo-pkg/")
    assert [a.href for a in page.anchors] == [
        f"../../packages/{dist.filename}#sha256={dist.sha256}"
    ]
    assert page.anchors[0].attrs["data-core-metadata"] == f"sha256={sha256(dist.metadata)}"
    assert client.get(f"/packages/{dist.filename}").body == dist.data
    # Discovery records the metadata file's hash only; the file itself is read out of the
    # wheel on first use, and kept.
    kept = client.root / ".cheesecellar" / "metadata" / f"{dist.filename}.metadata"
    assert not kept.exists()
    assert client.get(f"/packages/{dist.filename}.metadata").body == dist.metadata
    assert kept.read_bytes() == dist.metadata
    assert client.get(f"/packages/{dist.filename}.metadata").body == dist.metadata


def test_file_replaced_by_hand_gets_its_new_hash(
    client: Client, tmp_path: Path, make_sdist: SdistFactory
) -> None:
    # pypiserver-compat §6.4: digests are cached by (path, size, mtime), so a file replaced
    # on disk is hashed again; a stale hash makes pip refuse the download.
    staging = tmp_path / "staging"
    staging.mkdir()
    first = make_sdist("demo-pkg", "1.0", directory=staging)
    first_sha = first.sha256
    os.rename(first.path, client.root / first.filename)
    _, page = client.page("/simple/demo-pkg/")
    assert page.anchors[0].href.endswith(f"#sha256={first_sha}")
    second = make_sdist("demo-pkg", "1.0", directory=staging, payload=b"CHANGED = True\n")
    second_data = second.data
    assert sha256(second_data) != first_sha
    os.rename(second.path, client.root / second.filename)
    target = client.root / second.filename
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert client.get(f"/packages/{second.filename}").body == second_data
    _, page = client.page("/simple/demo-pkg/")
    assert [a.href for a in page.anchors] == [
        f"../../packages/{second.filename}#sha256={sha256(second_data)}"
    ]


def test_dot_files_are_not_listed(client: Client, make_sdist: SdistFactory) -> None:
    make_sdist("demo-pkg", "1.0", directory=client.root, filename=".demo_pkg-1.0.tar.gz")
    hidden = client.root / ".hidden"
    hidden.mkdir()
    make_sdist("demo-pkg", "1.1", directory=hidden)
    assert client.get("/simple/demo-pkg/").status == 404
    assert client.get("/packages/demo_pkg-1.1.tar.gz").status == 404
    assert client.get("/packages/.demo_pkg-1.0.tar.gz").status == 404


def test_second_root_is_listed_and_served(
    make_client: ClientFactory, tmp_path: Path, make_wheel: WheelFactory, sdist: Dist
) -> None:
    second = tmp_path / "packages2"
    second.mkdir()
    dist = make_wheel("extra-pkg", "2.0", directory=second)
    client = make_client(roots=2)
    assert client.roots[1] == second
    _, root = client.page("/simple/")
    assert [a.href for a in root.anchors] == ["extra-pkg/"]
    _, page = client.page("/simple/extra-pkg/")
    assert [a.href for a in page.anchors] == [
        f"../../packages/{dist.filename}#sha256={dist.sha256}"
    ]
    assert client.get(f"/packages/{dist.filename}").body == dist.data
    # Uploads go to the first directory.
    assert client.upload(sdist).status == 200
    assert (client.roots[0] / sdist.filename).read_bytes() == sdist.data
    assert not (second / sdist.filename).exists()


# ================================================================= welcome and health


def test_welcome_page(client: Client) -> None:
    response, page = client.page("/", Host="index.example:8080")
    assert response.status == 200
    assert response.media_type == "text/html"
    pre = page.texts["pre"]
    assert (
        "pip install --extra-index-url http://index.example:8080/simple/ "
        "--trusted-host index.example PACKAGE"
    ) in pre
    assert (
        "twine upload --repository-url http://index.example:8080/ -u USER -p PASSWORD dist/*"
    ) in pre


def test_welcome_page_escapes_the_host(client: Client) -> None:
    response = client.get("/", Host="<script>x</script>:8080")
    assert "<script>" not in response.text


def test_health(client: Client) -> None:
    response = client.get("/health")
    assert (response.status, response.body) == (200, b"Ok")
    assert response.media_type == "text/plain"


def test_every_response_has_a_content_type(populated: Client, sdist: Dist) -> None:
    # uv fails on a missing Content-Type, pip rejects unknown ones (§5).
    responses = [
        populated.get("/"),
        populated.get("/health"),
        populated.get("/simple"),
        populated.get("/simple/"),
        populated.get("/simple/Demo_Pkg/"),
        populated.get("/simple/nope/"),
        populated.get("/simple/", Accept="application/json"),
        populated.get(f"/packages/{sdist.filename}"),
        populated.get("/packages/nope-1.0.tar.gz"),
        populated.get("/no/such/route/at/all"),
        populated.post_form(upload_fields(sdist), auth=None),
        populated.post_form(upload_fields(sdist), url="/simple/"),
    ]
    for response in responses:
        assert response.header("Content-Type"), response


def test_pypiserver_json(populated: Client, wheel: Dist, sdist: Dist) -> None:
    # pypiserver-compat §3: GET /<p>/json -> {"info": {"version": V}, "releases": {V: [...]}}.
    response = populated.get("/demo-pkg/json")
    assert response.status == 200
    assert response.media_type == "application/json"
    doc = json.loads(response.body)
    assert doc["info"]["version"] == "1.0"
    urls = sorted(entry["url"] for entry in doc["releases"]["1.0"])
    assert urls == sorted(
        f"http://index.example:8080/packages/{d.filename}" for d in (wheel, sdist)
    )
    for url in urls:
        assert populated.get(urlsplit(url).path).status == 200
    moved = populated.get("/Demo_Pkg/json")
    assert (moved.status, moved.header("Location")) == (301, "../demo-pkg/json")


def test_links_are_relative(populated: Client) -> None:
    # Relative links keep pages correct under any mount prefix (STYLE 10, §2).
    _, root = populated.page("/simple/")
    _, project = populated.page("/simple/demo-pkg/")
    for anchor in root.anchors + project.anchors:
        assert not urlsplit(anchor.href).netloc
        assert not anchor.href.startswith("/")
