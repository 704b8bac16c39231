"""Maintenance for scale-out mode: copy a package directory into a bucket; rebuild its manifests.

Both walk a whole directory or bucket, which a serving node never does (scale-out.md §6, §8).
Both are safe to rerun: what is already recorded with the same sha256 is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from .catalog import (
    CHUNK,
    PROJECTS_DOC,
    Catalog,
    file_facts,
    metadata_key,
    same_distribution,
    stored_sha256,
)
from .distributions import Distribution, parse_filename
from .errors import BadRequest, InvalidDistribution
from .metadata import CoreMetadata, parse_core_metadata, read_metadata
from .records import FileRecord, Project, utc_now
from .storage import AlreadyExists, FileStorage, Storage
from .storage.filesystem import STATE_DIR

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, filename)
_CAS_ATTEMPTS = 40


@runtime_checkable
class BlobStore(Storage, Protocol):
    """A storage that can list its blobs and tell their recorded sha256 (S3Storage)."""

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        """(key, size) of every blob."""

    def blob_sha256(self, key: str) -> str | None:
        """The sha256 stored with the blob; FileNotFoundError when it is missing."""


@dataclass(frozen=True)
class MigrateSummary:
    files: int  # distribution files found in the directory
    copied: int  # blobs written to the bucket
    recorded: int  # manifest entries added
    skipped: int  # already recorded in the bucket with the same sha256
    conflicts: tuple[str, ...]  # the bucket holds different bytes under these names


@dataclass(frozen=True)
class RebuildSummary:
    projects: int
    blobs: int
    added: tuple[str, ...]  # blobs that had no manifest entry
    removed: tuple[str, ...]  # manifest entries whose blob is gone


def _local_files(directory: Path) -> list[tuple[str, Path, Distribution]]:
    """(relative path, path, distribution) of every distribution file, as the scanner sees them."""
    found: list[tuple[str, Path, Distribution]] = []
    for folder, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != STATE_DIR)
        for name in sorted(names):
            if name.startswith("."):
                continue
            try:
                dist = parse_filename(name)
            except BadRequest:
                continue
            path = Path(folder, name)
            found.append((path.relative_to(directory).as_posix(), path, dist))
    return found


def _local_records(local: Catalog) -> dict[str, tuple[Project, FileRecord]]:
    """The directory's own recorded files (root 0), by relative path."""
    recorded: dict[str, tuple[Project, FileRecord]] = {}
    for key in local.storage.list_docs("index"):
        project = local.project(key.rpartition("/")[2].removesuffix(".json"))
        if project is None:
            continue
        for record in project.files:
            if record.root == 0:
                recorded[record.path] = (project, record)
    return recorded


def _metadata(path: Path, dist: Distribution, raw: bytes | None) -> CoreMetadata | None:
    with contextlib.suppress(InvalidDistribution):
        return parse_core_metadata(raw) if raw is not None else read_metadata(path, dist)
    log.warning("cannot read the metadata of %s; migrated without it", path)
    return None


def migrate(directory: Path, storage: Storage, progress: Progress | None = None) -> MigrateSummary:
    """Copy every distribution file of *directory*, with its recorded facts, into *storage*.

    Resumable: files the bucket already records with the same sha256 are skipped, and blobs an
    interrupted run stored without a record are adopted after comparing their sha256.
    """
    job = _Migration(directory, storage)
    files = _local_files(directory)
    by_project: dict[str, list[tuple[str, Path, Distribution]]] = {}
    for item in files:
        by_project.setdefault(item[2].project, []).append(item)
    done = added = 0
    for normalized, items in sorted(by_project.items()):
        existing = job.target.project(normalized)
        known = list(existing.files) if existing else []
        records: list[FileRecord] = []
        for relpath, path, dist in items:
            if progress is not None:
                progress(done, len(files), dist.filename)
            done += 1
            record = job.copy(relpath, path, dist, known)
            if record is not None:
                records.append(record)
                known.append(record)
        if records:
            name = job.names.get(normalized, items[0][2].name)
            status = job.statuses.get(normalized, ("active", ""))
            added += _add_records(job.target, normalized, name, records, status)
    if progress is not None and files:
        progress(len(files), len(files), "")
    return MigrateSummary(len(files), job.copied, added, job.skipped, tuple(job.conflicts))


class _Migration:
    """One migration's source, target and tallies."""

    def __init__(self, directory: Path, storage: Storage) -> None:
        self.local = Catalog(FileStorage(directory), [directory])
        self.recorded = _local_records(self.local)
        self.storage = storage
        self.target = Catalog(storage)
        self.copied = self.skipped = 0
        self.conflicts: list[str] = []
        self.names: dict[str, str] = {}  # display names: recorded ones first, then metadata
        self.statuses: dict[str, tuple[str, str]] = {}

    def copy(
        self, relpath: str, path: Path, dist: Distribution, known: list[FileRecord]
    ) -> FileRecord | None:
        """Store one file unless the bucket has it; the record to add, or None."""
        project, old = self.recorded.get(relpath, (None, None))
        if project is not None:
            self.names[dist.project] = project.name
            self.statuses[dist.project] = (project.status, project.status_reason)
        raw: bytes | None = None
        if old is not None and old.size == path.stat().st_size:
            sha256, size, raw = old.sha256, old.size, self.local.metadata_file(old)
        else:
            facts = file_facts(path, dist, strict=False)
            sha256, size, old = facts.sha256, facts.size, None
        listed = next((r for r in known if same_distribution(r.filename, dist)), None)
        if listed is not None:
            if listed.sha256 == sha256:
                self.skipped += 1
            else:
                self.conflicts.append(dist.filename)
            return None
        try:
            self.storage.put_new(dist.filename, path, sha256=sha256)
            self.copied += 1
        except AlreadyExists:
            if stored_sha256(self.storage, dist.filename) != sha256:
                self.conflicts.append(dist.filename)
                return None
        meta = _metadata(path, dist, raw)
        if meta is not None:
            self.names.setdefault(dist.project, meta.name)
        return FileRecord(
            filename=dist.filename,
            root=0,
            path=dist.filename,
            version=dist.version,
            sha256=sha256,
            size=size,
            uploaded=old.uploaded if old else utc_now(),
            requires_python=meta.requires_python if meta else old.requires_python if old else None,
            metadata_sha256=self.target.store_metadata(
                dist.filename, meta, wheel=dist.kind == "wheel"
            ),
            yanked=old.yanked if old else None,
            uploader=old.uploader if old else None,
        )


def _add_records(
    catalog: Catalog,
    normalized: str,
    name: str,
    records: list[FileRecord],
    status: tuple[str, str] = ("active", ""),
) -> int:
    """One manifest update adding *records*; entries recorded meanwhile by others are kept."""
    count = 0

    def add(current: Project) -> Project | None:
        nonlocal count
        new = [r for r in records if current.file(r.filename) is None]
        count = len(new)
        if not new:
            return None
        changed = replace(current, files=(*current.files, *new))
        if not current.files and status[0] != "active":
            changed = replace(changed, status=status[0], status_reason=status[1])
        return changed

    catalog.update_project(normalized, name, add)
    return count


def rebuild(storage: BlobStore, progress: Progress | None = None) -> RebuildSummary:
    """Record blobs missing from their manifest (reading each once) and drop entries of gone blobs.

    One full listing of ``packages/``; for migrations and manual bucket edits only.
    """
    catalog = Catalog(storage)
    blobs: dict[str, dict[str, int]] = {}
    for key, size in storage.list_blobs():
        try:
            dist = parse_filename(key.rpartition("/")[2])
        except BadRequest:
            log.warning("ignoring %s: not a distribution filename", key)
            continue
        blobs.setdefault(dist.project, {})[key] = size
    got = storage.read_doc(PROJECTS_DOC)
    names = set(json.loads(got[0]) if got else {}) | set(blobs)
    for key in storage.list_docs("index"):
        names.add(key.rpartition("/")[2].removesuffix(".json"))
    names.discard("_projects")
    plans: list[tuple[str, Project | None, list[str], set[str]]] = []
    for normalized in sorted(names):
        project = catalog.project(normalized)
        present = blobs.get(normalized, {})
        listed = {r.path for r in project.files} if project else set()
        gone = {r.filename for r in project.files if r.path not in present} if project else set()
        plans.append((normalized, project, sorted(set(present) - listed), gone))
    total = sum(len(plan[2]) for plan in plans)
    done = 0
    added: list[str] = []
    removed: list[str] = []
    for normalized, project, missing, gone in plans:
        records: list[FileRecord] = []
        display = project.name if project else normalized
        for key in missing:
            if progress is not None:
                progress(done, total, key)
            done += 1
            try:
                record, meta = _record_blob(catalog, key)
            except FileNotFoundError:
                continue  # deleted since the listing
            records.append(record)
            if project is None and meta is not None:
                display = meta.name
        if records or gone:
            _apply(catalog, normalized, display, records, gone)
            for filename in gone:
                storage.discard_doc(metadata_key(filename))
            added.extend(r.filename for r in records)
            removed.extend(sorted(gone))
    if progress is not None and total:
        progress(total, total, "")
    _fix_project_list(catalog, names)
    count = sum(len(b) for b in blobs.values())
    return RebuildSummary(len(names), count, tuple(added), tuple(removed))


def _record_blob(catalog: Catalog, key: str) -> tuple[FileRecord, CoreMetadata | None]:
    """Download one blob to a temp file and learn its facts."""
    dist = parse_filename(key.rpartition("/")[2])
    fd, tmp = catalog.storage.temp_file()
    try:
        with os.fdopen(fd, "wb") as out, catalog.storage.open(key) as stream:
            shutil.copyfileobj(stream, out, CHUNK)
        facts = file_facts(tmp, dist, strict=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return catalog.new_record(dist, facts, path=key), facts.metadata


def _apply(
    catalog: Catalog, normalized: str, name: str, records: list[FileRecord], gone: set[str]
) -> None:
    def change(current: Project) -> Project | None:
        kept = tuple(f for f in current.files if f.filename not in gone)
        new = tuple(r for r in records if current.file(r.filename) is None)
        if len(kept) == len(current.files) and not new:
            return None
        return replace(current, files=(*kept, *new))

    catalog.update_project(normalized, name, change)


def _fix_project_list(catalog: Catalog, names: set[str]) -> None:
    """Make the project list name exactly the projects whose manifest lists files."""
    _, listed = catalog.project_names()
    changes: dict[str, str | None] = {}
    for normalized in names | set(listed):
        project = catalog.project(normalized)
        changes[normalized] = project.name if project is not None and project.files else None
    catalog.write_project_names(changes)
