"""PyPI's JSON API shape (``/pypi/<project>/json``), built from the recorded facts."""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable
from typing import Any

from ..records import FileRecord, Project
from .pages import quote

# Core metadata fields copied into "info", as PyPI names them.
_INFO_FIELDS = {
    "summary": "Summary",
    "author": "Author",
    "author_email": "Author-email",
    "license": "License",
    "home_page": "Home-page",
    "keywords": "Keywords",
    "description_content_type": "Description-Content-Type",
}


def _metadata_fields(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {}
    text = raw.decode("utf-8", "replace")
    msg = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
    info: dict[str, Any] = {key: msg.get(field) for key, field in _INFO_FIELDS.items()}
    info["requires_dist"] = msg.get_all("Requires-Dist") or None
    info["classifiers"] = msg.get_all("Classifier") or []
    return info


def _file(record: FileRecord, base: str) -> dict[str, Any]:
    return {
        "filename": record.filename,
        "url": f"{base}packages/{quote(record.filename)}",
        "digests": {"sha256": record.sha256},
        "size": record.size,
        "packagetype": "bdist_wheel" if record.filename.endswith(".whl") else "sdist",
        "requires_python": record.requires_python,
        "upload_time": record.uploaded[:19],
        "upload_time_iso_8601": record.uploaded,
        "yanked": record.yanked is not None,
        "yanked_reason": record.yanked or None,
    }


def project_json(
    project: Project,
    version: str | None,
    base: str,
    metadata_of: Callable[[FileRecord], bytes | None],
) -> dict[str, Any]:
    """The document for a project (latest release) or for one of its versions.

    *metadata_of* gives a file's core metadata, from which "info" takes summary, author, ...
    """
    files = list(project.files)
    releases: dict[str, list[dict[str, Any]]] = {v: [] for v in project.versions}
    for record in files:
        releases[record.version].append(_file(record, base))
    unyanked = [v for v in project.versions if any(
        r.yanked is None for r in files if r.version == v)]  # fmt: skip
    chosen = version or (unyanked or project.versions)[-1]
    chosen_files = [r for r in files if r.version == chosen]
    info: dict[str, Any] = {
        "name": project.name,
        "version": chosen,
        "requires_python": next(
            (r.requires_python for r in chosen_files if r.requires_python), None
        ),
        "yanked": all(r.yanked is not None for r in chosen_files),
        "yanked_reason": next((r.yanked for r in chosen_files if r.yanked), None),
        "project_status": project.status,
        **_metadata_fields(next((m for r in chosen_files if (m := metadata_of(r))), None)),
    }
    doc: dict[str, Any] = {"info": info, "urls": [_file(r, base) for r in chosen_files]}
    if version is None:
        doc["releases"] = releases
    return doc
