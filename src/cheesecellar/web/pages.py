"""Render the simple index pages (PEP 503 HTML, PEP 691 JSON) and keep them until they change."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote as _quote

from bottle import SimpleTemplate

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


@dataclass(frozen=True)
class Page:
    """A rendered body with the headers that depend on it."""

    body: bytes
    content_type: str
    etag: str


def _page(body: str | bytes, media_type: str) -> Page:
    data = body.encode() if isinstance(body, str) else body
    content_type = f"{media_type}; charset=utf-8" if media_type != V1_JSON else media_type
    return Page(data, content_type, f'"{hashlib.sha256(data).hexdigest()[:32]}"')


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


class PageCache:
    """Rendered pages keyed by what they were rendered from, within *max_bytes*; safe across
    threads.

    A random page makes room for a new one. Least-recently-used would drop every page just
    before it is asked for again when clients cycle through more projects than fit (a mirror
    or a benchmark walking the index); random eviction keeps most of them.
    """

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._pages: dict[tuple[str, str], tuple[str, Page]] = {}
        self._keys: list[tuple[str, str]] = []  # the same keys, for picking one at random
        self._slots: dict[tuple[str, str], int] = {}  # key -> its index in _keys
        self._bytes = 0
        self._random = random.Random(0)
        self.max_bytes = max_bytes

    def get(self, key: tuple[str, str], version: str) -> Page | None:
        hit = self._pages.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, key: tuple[str, str], version: str, page: Page) -> None:
        with self._lock:
            self._drop(key)
            while self._keys and self._bytes + len(page.body) > self.max_bytes:
                self._drop(self._keys[self._random.randrange(len(self._keys))])
            self._pages[key] = (version, page)
            self._slots[key] = len(self._keys)
            self._keys.append(key)
            self._bytes += len(page.body)

    def _drop(self, key: tuple[str, str]) -> None:
        old = self._pages.pop(key, None)
        if old is None:
            return
        self._bytes -= len(old[1].body)
        # Swap the last key into this one's slot: O(1) removal from the list.
        slot = self._slots.pop(key)
        last = self._keys.pop()
        if last != key:
            self._keys[slot] = last
            self._slots[last] = slot


MEDIA_TYPES = (HTML, V1_HTML, V1_JSON)
