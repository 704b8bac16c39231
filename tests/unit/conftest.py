"""Fixtures for the unit tests: archive factories, an in-process WSGI client, page parsing.

The WSGI client builds a PEP 3333 environ and calls the real application returned by
``cheesecellar.app(...)``; nothing is mocked. Archives are built byte by byte with zipfile and
tarfile so that each test controls exactly what the server receives.
"""

from __future__ import annotations

import base64
import gc
import gzip
import hashlib
import html.parser
import io
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import pytest

USER = "alice"
PASSWORD = "s3cret-Pa55"
HOST = "index.example:8080"

# A fixed timestamp keeps archives byte-identical when built twice from the same inputs.
_ZIP_DATE = (2024, 1, 2, 3, 4, 6)


# --------------------------------------------------------------------------- archives


def core_metadata(
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    metadata_version: str = "2.1",
    extra: Sequence[str] = (),
    description: str = "",
) -> bytes:
    """A core metadata file (METADATA / PKG-INFO) as bytes."""
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(extra)
    text = "\n".join(lines) + "\n"
    if description:
        text += "\n" + description
    return text.encode()


@dataclass(frozen=True)
class Dist:
    """A built distribution file and the metadata file inside it."""

    path: Path
    metadata: bytes

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


@dataclass(frozen=True)
class TarMember:
    """One tar member: a regular file, a symlink ('sym') or a hard link ('hard')."""

    name: str
    data: bytes = b""
    kind: str = "file"
    target: str = ""


def write_tar(path: Path, members: Iterable[TarMember], *, compression: str = "gz") -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.mtime = 1_700_000_000
            if member.kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, member.target
                tf.addfile(info)
            elif member.kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, member.target
                tf.addfile(info)
            else:
                info.size = len(member.data)
                tf.addfile(info, io.BytesIO(member.data))
    if compression == "gz":
        path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    elif compression == "bz2":
        import bz2

        path.write_bytes(bz2.compress(raw.getvalue()))
    else:
        path.write_bytes(raw.getvalue())
    return path


WheelFactory = Callable[..., Dist]
SdistFactory = Callable[..., Dist]


@pytest.fixture
def dist_dir(tmp_path: Path) -> Path:
    path = tmp_path / "dists"
    path.mkdir()
    return path


@pytest.fixture
def make_wheel(dist_dir: Path) -> WheelFactory:
    """Build ``{dist}-{version}-{tags}.whl`` with a real .dist-info/METADATA, WHEEL and RECORD."""

    def make(
        name: str = "demo-pkg",
        version: str = "1.0",
        *,
        requires_python: str | None = ">=3.8",
        tags: str = "py3-none-any",
        filename: str | None = None,
        metadata: bytes | None = None,
        payload: bytes = b"VALUE = 1\n",
        directory: Path | None = None,
    ) -> Dist:
        dist = name.replace("-", "_").replace(".", "_").lower()
        meta = (
            metadata
            if metadata is not None
            else core_metadata(name, version, requires_python=requires_python)
        )
        info = f"{dist}-{version}.dist-info"
        members = {
            f"{dist}/__init__.py": payload,
            f"{info}/METADATA": meta,
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: unit-tests\nRoot-Is-Purelib: true\n"
            + f"Tag: {tags}\n".encode(),
            f"{info}/RECORD": b"",
        }
        target = (directory or dist_dir) / (filename or f"{dist}-{version}-{tags}.whl")
        write_zip(target, members)
        return Dist(target, meta)

    return make


@pytest.fixture
def make_sdist(dist_dir: Path) -> SdistFactory:
    """Build ``{name}-{version}.tar.gz`` (or .zip) with a top-level PKG-INFO."""

    def make(
        name: str = "demo-pkg",
        version: str = "1.0",
        *,
        requires_python: str | None = ">=3.8",
        filename: str | None = None,
        metadata: bytes | None = None,
        payload: bytes = b"VALUE = 1\n",
        directory: Path | None = None,
        fmt: str = "tar.gz",
    ) -> Dist:
        stem = f"{name.replace('-', '_').replace('.', '_').lower()}-{version}"
        meta = (
            metadata
            if metadata is not None
            else core_metadata(name, version, requires_python=requires_python)
        )
        target = (directory or dist_dir) / (filename or f"{stem}.{fmt}")
        members = {f"{stem}/PKG-INFO": meta, f"{stem}/setup.py": payload}
        if fmt == "zip":
            write_zip(target, members)
        else:
            write_tar(
                target,
                [TarMember(n, d) for n, d in members.items()],
                compression="bz2" if fmt == "tar.bz2" else "gz",
            )
        return Dist(target, meta)

    return make


# --------------------------------------------------------------------------- WSGI client


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def media_type(self) -> str | None:
        value = self.header("Content-Type")
        return value.split(";")[0].strip() if value else None


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call_wsgi(
    app: Any,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_length: int | None = None,
) -> Response:
    """One request through a PEP 3333 interface, as a server such as waitress makes it.

    *url* is the raw request target: its path is percent-decoded into PATH_INFO (latin-1),
    its query is passed through undecoded.
    """
    parts = urlsplit(url)
    host = (headers or {}).get("Host", HOST)
    server_name, _, server_port = host.partition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(parts.path).decode("latin-1"),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    length = len(body) if content_length is None else content_length
    if body or content_length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key != "HOST":
            environ[f"HTTP_{key}"] = value
    started: dict[str, Any] = {}

    def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started["status"], started["headers"] = status, hdrs
        return lambda data: None

    result = app(environ, start_response)
    try:
        chunks = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    code, _, reason = started["status"].partition(" ")
    return Response(int(code), reason, list(started["headers"]), chunks)


@dataclass(frozen=True)
class FilePart:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


BOUNDARY = "----cheesecellar-unit-boundary-7d93"


def multipart(fields: Sequence[tuple[str, str | FilePart]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body; a file part carries its filename verbatim."""
    out = io.BytesIO()
    for name, value in fields:
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, FilePart):
            disposition = f'form-data; name="{name}"; filename="{value.filename}"'
            out.write(f"Content-Disposition: {disposition}\r\n".encode())
            out.write(f"Content-Type: {value.content_type}\r\n\r\n".encode())
            out.write(value.data)
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            out.write(value.encode("utf-8"))
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def upload_fields(
    dist: Dist,
    *,
    filename: str | None = None,
    name: str | None = None,
    version: str | None = None,
    data: bytes | None = None,
    digests: bool = True,
) -> list[tuple[str, str | FilePart]]:
    """The fields twine sends for *dist* (sha256 and blake2_256 digests of the bytes)."""
    payload = dist.data if data is None else data
    filename = filename or dist.filename
    wheel = filename.endswith(".whl")
    meta_name, meta_version = _name_version(dist.metadata)
    fields: list[tuple[str, str | FilePart]] = [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", meta_name if name is None else name),
        ("version", meta_version if version is None else version),
        ("filetype", "bdist_wheel" if wheel else "sdist"),
        ("pyversion", "py3" if wheel else "source"),
    ]
    if digests:
        fields.append(("sha256_digest", hashlib.sha256(payload).hexdigest()))
        fields.append(("blake2_256_digest", hashlib.blake2b(payload, digest_size=32).hexdigest()))
    fields.append(("content", FilePart(filename, payload)))
    return fields


def _name_version(metadata: bytes) -> tuple[str, str]:
    values = {}
    for line in metadata.decode().splitlines():
        key, _, value = line.partition(": ")
        values.setdefault(key, value)
    return values["Name"], values["Version"]


GOOD_AUTH = basic()


@dataclass
class Client:
    """The real app for one test, the package directories it serves, and request helpers."""

    app: Any
    roots: list[Path]

    @property
    def root(self) -> Path:
        return self.roots[0]

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        content_length: int | None = None,
    ) -> Response:
        return call_wsgi(
            self.app, method, url, headers=headers, body=body, content_length=content_length
        )

    def get(self, url: str, **headers: str) -> Response:
        """GET with headers given as keywords: ``If_None_Match=...`` sends If-None-Match."""
        return self.request(
            "GET", url, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )

    def post_form(
        self,
        fields: Sequence[tuple[str, str | FilePart]],
        *,
        auth: str | None = GOOD_AUTH,
        url: str = "/",
    ) -> Response:
        """POST a multipart form; *auth* is the Authorization header (None: no header)."""
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        if auth is not None:
            headers["Authorization"] = auth
        return self.request("POST", url, headers=headers, body=multipart(fields))

    def upload(self, dist: Dist, *, auth: str | None = GOOD_AUTH, **kwargs: Any) -> Response:
        return self.post_form(upload_fields(dist, **kwargs), auth=auth)

    def page(self, url: str, **headers: str) -> tuple[Response, Page]:
        response = self.get(url, **headers)
        return response, parse_page(response.text)


ClientFactory = Callable[..., Client]


@pytest.fixture(scope="session")
def htpasswd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """USER/PASSWORD in apr1 (``htpasswd -m``): cheap to verify, so app tests stay fast."""
    from passlib.apache import HtpasswdFile

    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    entries = HtpasswdFile(str(path), new=True, default_scheme="apr_md5_crypt")
    entries.set_password(USER, PASSWORD)
    entries.save()
    return path


@pytest.fixture
def make_client(tmp_path: Path, htpasswd_file: Path) -> Iterator[ClientFactory]:
    """``cheesecellar.app(root=..., password_file=..., authenticate=['update'], **kwargs)``.

    At teardown, what the test's requests left unreachable is finalized, so that a file the
    app leaked is reported (as a ResourceWarning error) by this test and not by whichever later
    test the garbage collector happens to run in. Bottle keeps the thread's last request, and
    so its spooled body, in a thread-local until the next request: that is released first.
    """
    import bottle

    import cheesecellar

    def make(*, roots: int = 1, **kwargs: Any) -> Client:
        dirs = []
        for index in range(roots):
            path = tmp_path / ("packages" if index == 0 else f"packages{index + 1}")
            path.mkdir(exist_ok=True)
            dirs.append(path)
        kwargs.setdefault("password_file", str(htpasswd_file))
        kwargs.setdefault("authenticate", ["update"])
        root: str | list[str] = str(dirs[0]) if roots == 1 else [str(d) for d in dirs]
        return Client(cheesecellar.app(root=root, **kwargs), dirs)

    yield make
    bottle.request.bind({})
    bottle.response.bind()
    gc.collect()


@pytest.fixture
def client(make_client: ClientFactory) -> Client:
    return make_client()


# --------------------------------------------------------------------------- pages


@dataclass
class Anchor:
    attrs: dict[str, str | None]
    text: str

    @property
    def href(self) -> str:
        return self.attrs["href"] or ""


@dataclass
class Page:
    anchors: list[Anchor]
    metas: list[dict[str, str | None]]
    texts: dict[str, list[str]]  # tag -> text of each element (pre, h1, title, ...)

    def meta(self, name: str) -> str | None:
        found = [m.get("content") for m in self.metas if m.get("name") == name]
        assert len(found) <= 1
        return found[0] if found else None


class _PageParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page([], [], {})
        self._anchor: Anchor | None = None
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._anchor = Anchor(dict(attrs), "")
        elif tag == "meta":
            self.page.metas.append(dict(attrs))
        elif tag in ("pre", "h1", "title", "p", "code"):
            self._open.append((tag, []))

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._anchor.text += data
        for _, buf in self._open:
            buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            self.page.anchors.append(self._anchor)
            self._anchor = None
        elif self._open and self._open[-1][0] == tag:
            name, buf = self._open.pop()
            self.page.texts.setdefault(name, []).append("".join(buf))


def parse_page(text: str) -> Page:
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return parser.page


def resolve(page_url: str, href: str) -> str:
    """A link's path as a client resolves it against the page URL (fragment dropped)."""
    return urlsplit(urljoin(f"http://{HOST}{page_url}", href)).path


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file below *roots*: relative path -> (size, inode)."""
    found: dict[str, tuple[int, int]] = {}
    for index, root in enumerate(roots):
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = Path(dirpath) / name
                st = path.stat()
                found[f"{index}:{path.relative_to(root).as_posix()}"] = (st.st_size, st.st_ino)
    return found
