"""Render the simple index pages (PEP 503 HTML, PEP 691 JSON) and keep them until they change."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote as _quote

from bottle import SimpleTemplate

from ..cache import VersionedCache
from ..records import FileRecord, Project
from .negotiate import HTML, V1_HTML, V1_JSON

# 1.1 (PEP 700) is complete; 1.2-1.4 add only optional keys, of which PEP 792 is served.
API_VERSION = "1.4"


def quote(text: str) -> str:
    return _quote(text, safe="+!~")


@cache
def template(name: str) -> SimpleTemplate:
    source = resources.files("cheesecellar.web").joinpath("templates", f"{name}.tpl").read_text()
    return SimpleTemplate(source, noescape=False)


# Pages are kept gzip-compressed, about a third of their size, so that three times as many
# stay in memory; clients that accept gzip (pip and uv do) get those bytes as they are, and
# others get the page inflated per request (~6 µs for ten files). A large page, such as the
# project list at 100,000 files (~600 KB, over a millisecond to inflate), is also kept as
# rendered.
_KEEP_PLAIN_FROM = 64 * 1024


@dataclass(frozen=True)
class Page:
    """A rendered body, gzip-compressed, with the headers that depend on it."""

    gzip: bytes
    content_type: str
    etag: str  # of the body as rendered; the gzip-coded body has its own
    plain: bytes | None = None  # the body as rendered, kept for a large page

    @property
    def body(self) -> bytes:
        return self.plain if self.plain is not None else zlib.decompress(self.gzip, wbits=31)

    @property
    def gzip_etag(self) -> str:
        # A different representation needs a different strong validator (RFC 9110 §8.8.3).
        return f'{self.etag[:-1]}-gzip"'

    @property
    def size(self) -> int:
        return len(self.gzip) + len(self.plain or b"")


def _page(body: str | bytes, media_type: str) -> Page:
    data = body.encode() if isinstance(body, str) else body
    content_type = f"{media_type}; charset=utf-8" if media_type != V1_JSON else media_type
    return Page(
        gzip.compress(data, compresslevel=6, mtime=0),
        content_type,
        f'"{hashlib.sha256(data).hexdigest()[:32]}"',
        data if len(data) >= _KEEP_PLAIN_FROM else None,
    )


def _visible(project: Project) -> list[FileRecord]:
    # PEP 792: a quarantined project lists no files.
    return [] if project.status == "quarantined" else list(project.files)


def render_root(names: dict[str, str], media_type: str) -> Page:
    ordered = sorted(names.items())
    if media_type == V1_JSON:
        doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for _, n in ordered]}
        return _page(json.dumps(doc), V1_JSON)
    return _page(
        template("root").render(projects=ordered, quote=quote, api_version=API_VERSION), media_type
    )


def render_project(project: Project, media_type: str, hash_algo: str | None) -> Page:
    files = _visible(project)
    if media_type == V1_JSON:
        return _page(json.dumps(_project_json(project, files)), V1_JSON)

    def fragment(record: FileRecord) -> str:
        return f"#sha256={record.sha256}" if hash_algo else ""

    body = template("project").render(
        project=project, files=files, quote=quote, fragment=fragment, api_version=API_VERSION
    )
    return _page(body, media_type)


def _project_json(project: Project, files: list[FileRecord]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": project.normalized,
        "versions": project.versions if files else [],
        "files": [_file_json(r) for r in files],
    }
    if project.status != "active" or project.status_reason:
        status: dict[str, str] = {"status": project.status}
        if project.status_reason:
            status["reason"] = project.status_reason
        doc["project-status"] = status
    return doc


def _file_json(record: FileRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": record.filename,
        "url": f"../../packages/{quote(record.filename)}",
        "hashes": {"sha256": record.sha256},
        "requires-python": record.requires_python,
        "size": record.size,
        "upload-time": record.uploaded,
        "yanked": (record.yanked or True) if record.yanked is not None else False,
    }
    if record.metadata_sha256:
        data["core-metadata"] = {"sha256": record.metadata_sha256}
    return data


class PageCache(VersionedCache[tuple[str, str], Page]):
    """Rendered pages keyed by (project, media type), each as of one version of what it was
    rendered from, within *max_bytes* of what is kept of them."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        super().__init__(max_bytes, lambda page: page.size)


MEDIA_TYPES = (HTML, V1_HTML, V1_JSON)
