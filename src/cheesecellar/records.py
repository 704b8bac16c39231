"""The facts recorded for each file and project, and their JSON form in manifests."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.version import InvalidVersion, Version

PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")


def utc_now() -> str:
    """The current time as PEP 700 wants it: ISO 8601, UTC, microseconds, ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One distribution file: where it is and what was learned when it arrived."""

    filename: str
    root: int  # index into the configured package directories
    path: str  # posix path relative to that directory
    version: str
    sha256: str
    size: int
    uploaded: str
    requires_python: str | None = None
    metadata_sha256: str | None = None  # set when a .metadata file is served (PEP 658)
    yanked: str | None = None  # None: not yanked; "": yanked without a reason
    uploader: str | None = None
    inode: int | None = None  # local files: a new inode means the file was replaced by hand
    # True for a file found on disk whose core metadata is read on first use, not at discovery
    # (requires_python and metadata_sha256 are unknown until then).
    unread: bool | None = None

    def to_json(self) -> dict[str, Any]:
        # Plain attribute reads: dataclasses.asdict deep-copies, which shows when 100,000
        # files are recorded at once.
        return {name: value for name in _JSON_FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_json(cls, filename: str, data: dict[str, Any]) -> FileRecord:
        fields = {k: v for k, v in data.items() if k in _JSON_FIELD_SET}
        # A process holds many records: share the strings that repeat (a flat file's path is
        # its name; versions and Requires-Python recur across files).
        if fields.get("path") == filename:
            fields["path"] = filename
        for name in ("version", "requires_python"):
            if isinstance(fields.get(name), str):
                fields[name] = sys.intern(fields[name])
        return cls(filename=filename, **fields)

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (*_version_key(self.version), self.filename)


@functools.lru_cache(maxsize=4096)
def _version_key(version: str) -> tuple[int, Any]:
    # Parsed once per distinct version: a manifest read sorts its files by version, and the
    # same versions recur across projects.
    try:
        return (0, Version(version))
    except (InvalidVersion, ValueError):
        return (-1, version)


_JSON_FIELDS = tuple(f.name for f in dataclasses.fields(FileRecord) if f.name != "filename")
_JSON_FIELD_SET = frozenset(_JSON_FIELDS)


@dataclass(frozen=True, slots=True)
class Project:
    """A project's manifest as read at one version."""

    normalized: str
    name: str
    files: tuple[FileRecord, ...] = ()
    status: str = "active"
    status_reason: str = ""
    version: str = field(default="", compare=False)  # the manifest's storage version

    def file(self, filename: str) -> FileRecord | None:
        for record in self.files:
            if record.filename == filename:
                return record
        return None

    @property
    def versions(self) -> list[str]:
        """Distinct versions, oldest first (PEP 440 order; unparsable ones first)."""
        seen: dict[str, FileRecord] = {}
        for record in sorted(self.files, key=lambda r: r.sort_key):
            seen.setdefault(record.version, record)
        return list(seen)


def project_to_json(project: Project) -> bytes:
    doc: dict[str, Any] = {
        "name": project.name,
        "status": project.status,
        "files": {r.filename: r.to_json() for r in sorted(project.files, key=lambda r: r.filename)},
    }
    if project.status_reason:
        doc["status_reason"] = project.status_reason
    # Compact: the C encoder only serves dumps without indent.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def project_from_json(normalized: str, body: bytes, version: str) -> Project:
    doc = json.loads(body)
    files = tuple(
        sorted(
            (FileRecord.from_json(name, data) for name, data in doc.get("files", {}).items()),
            key=lambda r: r.sort_key,
        )
    )
    return Project(
        normalized=normalized,
        name=doc.get("name", normalized),
        files=files,
        status=doc.get("status", "active"),
        status_reason=doc.get("status_reason", ""),
        version=version,
    )
