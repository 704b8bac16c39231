"""The projects and their files: recorded facts, uploads, removals, and cached reads."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from packaging.version import InvalidVersion, Version

from .cache import VersionedCache
from .distributions import (
    Distribution,
    check_upload_filename,
    is_valid_name,
    normalize_name,
    parse_filename,
)
from .errors import (
    BadRequest,
    CheesecellarError,
    DigestMismatch,
    FileExists,
    Forbidden,
    InvalidDistribution,
    NotFound,
    TooLarge,
)
from .metadata import CoreMetadata, read_metadata
from .records import (
    PROJECT_STATUSES,
    FileRecord,
    Project,
    project_from_json,
    project_to_json,
    utc_now,
)
from .storage import AlreadyExists, Conflict, Storage
from .storage.base import disk_errors
from .storage.filesystem import safe_join

log = logging.getLogger(__name__)

PROJECTS_DOC = "index/_projects.json"
CHUNK = 1024 * 1024
_READ_WHOLE = 16 * 1024 * 1024
_CAS_ATTEMPTS = 40
_UNREAD = object()  # update_project: the caller has not read the manifest
# Records of recently read projects kept per process, ~600 bytes each (~18 MB in all). A page
# kept in the page cache is sent without its records, so they are needed only to render a
# page, for a download or a .metadata file: a project dropped from here costs one manifest
# read (~100 µs) then. Holding a whole 100,000-file index took ~55 MB more for no faster page.
_RECORDS_KEPT = 30_000


def manifest_key(normalized: str) -> str:
    return f"index/{normalized}.json"


def metadata_key(filename: str) -> str:
    return f"metadata/{filename}.metadata"


@dataclass(frozen=True)
class Upload:
    """An upload as the web layer hands it over: plain values and a stream."""

    filename: str
    name: str
    version: str
    stream: BinaryIO
    digests: dict[str, str]  # "sha256" / "blake2_256" / "blake2b_512" / "md5" -> hex, as sent
    uploader: str | None = None


@dataclass(frozen=True)
class Facts:
    """What hashing and reading a file's metadata found."""

    sha256: str
    size: int
    metadata: CoreMetadata | None


def _hash_stream(stream: BinaryIO) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def stored_sha256(storage: Storage, key: str) -> str:
    """The sha256 of a stored blob: as recorded by the store, or by reading it once."""
    recorded = storage.blob_sha256(key)
    if recorded is not None:
        return recorded
    with storage.open(key) as stream:
        return _hash_stream(stream)[0]


def read_small(
    path: str | Path, *, dir_fd: int | None = None
) -> tuple[bytes | None, str, int, int]:
    """(the bytes when small enough to read whole, sha256, size, link count) of a file;
    *path* is relative to the directory open as *dir_fd* if given."""
    # Small files (most distributions) are read whole, with plain os calls: one read serves
    # the hash and the metadata, and discovering 100,000 files costs a few syscalls each.
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        size = st.st_size
        data: bytes | None = os.read(fd, size + 1) if size <= _READ_WHOLE else None
        if data is None or len(data) != size:  # large, or changing as it is read: stream it
            data = None
            with os.fdopen(fd, "rb", closefd=False) as fh:
                fh.seek(0)
                sha256, size = _hash_stream(fh)
        else:
            sha256 = hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)
    return data, sha256, size, st.st_nlink


def file_facts(path: str | Path, dist: Distribution, *, strict: bool) -> Facts:
    """Hash *path* and read its core metadata; a broken archive raises only when *strict*."""
    data, sha256, size, _ = read_small(path)
    try:
        meta: CoreMetadata | None = read_metadata(path, dist, data)
    except InvalidDistribution:
        if strict:
            raise
        log.warning("cannot read the metadata of %s; listed without it", path)
        meta = None
    return Facts(sha256, size, meta)


class Catalog:
    """The index's projects, backed by storage documents and cached per process."""

    def __init__(
        self,
        storage: Storage,
        roots: Sequence[Path] = (),
        *,
        overwrite: bool = False,
        max_upload_bytes: int | None = None,
    ) -> None:
        # roots: the local package directories; the first is the FileStorage's own root.
        self.storage = storage
        self.roots = [Path(r) for r in roots]
        self.overwrite = overwrite
        self.max_upload_bytes = max_upload_bytes
        self._lock = threading.RLock()
        # Recently read manifests: a page, a download or an upload of one of them costs one
        # stat. Bounded, so that a process does not grow with the index.
        self._projects: VersionedCache[str, Project] = VersionedCache(
            _RECORDS_KEPT, lambda project: len(project.files) or 1
        )
        self._names: tuple[str, dict[str, str]] | None = None  # (doc version, normalized->name)
        self._local = threading.local()

    def keep_no_records(self) -> None:
        """Keep no records once written or read: for a process that only records files."""
        self._projects.budget = 0  # the next record kept makes room by dropping the rest

    # -- reads -----------------------------------------------------------------------------

    def project_version(self, normalized: str) -> str | None:
        """The version of the project's manifest (one stat), None when there is none: what
        is rendered from it can be kept and checked against this."""
        if not is_valid_name(normalized) or normalize_name(normalized) != normalized:
            return None  # never let an arbitrary string become a storage key
        return self.storage.doc_version(manifest_key(normalized))

    def project(self, normalized: str) -> Project | None:
        """The project's current manifest; one stat when nothing changed."""
        version = self.project_version(normalized)
        if version is None:
            return None
        cached = self._projects.get(normalized, version)
        if cached is not None:
            return cached
        got = self.storage.read_doc(manifest_key(normalized))
        if got is None:
            return None
        project = project_from_json(normalized, *got)
        self._projects.put(normalized, project.version, project)
        return project

    def complete(self, project: Project | None) -> Project | None:
        """*project* with the core metadata of its files found on disk read in.

        Discovery only hashes files; their metadata (Requires-Python, the ``.metadata`` hash,
        the project's display name) is read here, when a page or the JSON API first needs it,
        and recorded for every process.
        """
        if project is None or not any(r.unread for r in project.files):
            return project
        filled: dict[str, FileRecord] = {}
        names: list[str] = []
        for record in project.files:
            if record.unread and (read := self._read_unread(record)) is not None:
                filled[record.filename], name = read
                if name:
                    names.append(name)

        def change(current: Project) -> Project | None:
            # Only what was read is set: a yank made meanwhile stays.
            files = tuple(
                replace(
                    f,
                    requires_python=got.requires_python,
                    metadata_sha256=got.metadata_sha256,
                    unread=None,
                )
                if f.unread
                and (got := filled.get(f.filename)) is not None
                and (got.inode, got.sha256) == (f.inode, f.sha256)
                else f
                for f in current.files
            )
            if files == current.files:
                return None
            # Found on disk only: the name was spelled as in a filename; the metadata's is better.
            named = names and all(f.unread for f in current.files)
            return replace(current, files=files, name=names[0] if named else current.name)

        try:
            return self.update_project(project.normalized, project.name, change)
        except (CheesecellarError, OSError) as exc:  # a full or read-only disk: serve what was read
            log.warning("cannot record the metadata read for %s: %s", project.normalized, exc)
        done = replace(project, files=tuple(filled.get(f.filename, f) for f in project.files))
        if self._projects.get(project.normalized, project.version) is project:
            self._projects.put(project.normalized, project.version, done)
        return done

    def complete_all(self) -> int:
        """complete() every project, recording in one batch; returns the projects completed."""
        done = 0
        with self.batch():
            for normalized in self.project_names()[1]:
                project = self.project(normalized)
                if project is not None and any(r.unread for r in project.files):
                    self.complete(project)
                    done += 1
        return done

    def _read_unread(self, record: FileRecord) -> tuple[FileRecord, str | None] | None:
        """The record with its file's core metadata read, and the name the metadata gives;
        None when the file is gone."""
        path = self.file_path(record)
        if path is None:
            return None
        try:
            dist = parse_filename(record.filename)
            meta: CoreMetadata | None = read_metadata(path, dist)
        except InvalidDistribution:
            log.warning("cannot read the metadata of %s; listed without it", path)
            meta = None
        except (BadRequest, OSError):
            return None
        read = replace(
            record,
            requires_python=meta.requires_python if meta else None,
            metadata_sha256=self.store_metadata(
                record.filename, meta, wheel=dist.kind == "wheel", keep=False
            ),
            unread=None,
        )
        return read, meta.name if meta else None

    def project_names(self) -> tuple[str, dict[str, str]]:
        """(version, {normalized: display name}) of every project that has files."""
        version = self.storage.doc_version(PROJECTS_DOC) or ""
        with self._lock:
            if self._names is not None and self._names[0] == version:
                return self._names
        got = self.storage.read_doc(PROJECTS_DOC)
        names: dict[str, str] = json.loads(got[0]) if got else {}
        result = (got[1] if got else "", names)
        with self._lock:
            self._names = result
        return result

    def locate(self, filename: str) -> tuple[Project, FileRecord] | None:
        """The project and record of a listed file, looked up by its name alone."""
        try:
            dist = parse_filename(filename)
        except BadRequest:
            return None
        project = self.project(dist.project)
        if project is None:
            return None
        record = project.file(filename)
        return (project, record) if record is not None else None

    def file_path(self, record: FileRecord) -> Path | None:
        """The file's local path, or None when storage keeps it elsewhere."""
        if record.root == 0:
            return self.storage.local_path(record.path)
        return safe_join(self.roots[record.root], record.path)

    def open_file(self, record: FileRecord) -> BinaryIO:
        if record.root == 0:
            return self.storage.open(record.path)
        return open(safe_join(self.roots[record.root], record.path), "rb")

    def download_url(self, record: FileRecord) -> str | None:
        return self.storage.download_url(record.path, record.filename) if record.root == 0 else None

    def metadata_file(self, record: FileRecord) -> bytes | None:
        """The core metadata file served at ``<file>.metadata`` (PEP 658), if there is one."""
        if record.metadata_sha256 is None:
            return None
        got = self.storage.read_doc(metadata_key(record.filename))
        if got is not None:
            return got[0]
        # A file found on disk: its metadata file is read out of the distribution when it is
        # first asked for, checked against the recorded hash, and kept.
        path = self.file_path(record)
        if path is None:
            return None
        try:
            raw = read_metadata(path, parse_filename(record.filename)).raw
        except (BadRequest, OSError):
            return None
        if hashlib.sha256(raw).hexdigest() != record.metadata_sha256:
            return None
        with contextlib.suppress(CheesecellarError):
            self.storage.put_doc(metadata_key(record.filename), raw)
        return raw

    # -- writes ----------------------------------------------------------------------------

    def update_project(
        self,
        normalized: str,
        name: str,
        change: Callable[[Project], Project | None],
        *,
        read: Project | None | object = _UNREAD,
    ) -> Project:
        """Compare-and-swap the project's manifest; *change* returns None to leave it alone.

        *read*: the manifest as the caller has just read it (None when there was none), to
        try first instead of reading it again; if it is stale, the swap fails and is retried.
        """
        key = manifest_key(normalized)
        for attempt in range(_CAS_ATTEMPTS):
            trusted = attempt > 0 or read is _UNREAD
            expected: str | None
            if not trusted:
                current = read if isinstance(read, Project) else Project(normalized, name)
                expected = read.version if isinstance(read, Project) else None
            else:
                got = self.storage.read_doc(key)
                current = project_from_json(normalized, *got) if got else Project(normalized, name)
                expected = got[1] if got else None
            changed = change(current)
            if changed is None:
                if not trusted:
                    continue  # nothing to do by the caller's copy: check the stored one
                return current
            try:
                version = self.storage.write_doc(
                    key, project_to_json(changed), expect_version=expected
                )
            except Conflict:
                if trusted:  # another writer got there first: let it finish
                    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                continue
            changed = replace(changed, version=version)
            self._projects.put(normalized, version, changed)
            self._sync_project_names(changed)
            return changed
        raise Conflict(f"the manifest of {normalized} kept changing; try again")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Within it (this thread only), the project list is written once, at the end, and a
        filesystem syncs the disk once instead of per document: for recording many files."""
        if getattr(self._local, "pending", None) is not None:
            yield
            return
        pending: dict[str, str | None] = {}
        self._local.pending = pending
        deferred = getattr(self.storage, "deferred_sync", None)
        try:
            with deferred() if deferred is not None else contextlib.nullcontext():
                yield
        finally:
            self._local.pending = None
            if pending:
                self.write_project_names(pending)

    def _sync_project_names(self, project: Project) -> None:
        pending: dict[str, str | None] | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending[project.normalized] = project.name if project.files else None
            return
        self.write_project_names({project.normalized: project.name if project.files else None})

    def write_project_names(self, changes: dict[str, str | None]) -> None:
        """Apply {normalized: display name, or None to drop it} to the project list by CAS."""
        for attempt in range(_CAS_ATTEMPTS):
            got = self.storage.read_doc(PROJECTS_DOC)
            names: dict[str, str] = json.loads(got[0]) if got else {}
            updated = dict(names)
            for normalized, name in changes.items():
                if name is None:
                    updated.pop(normalized, None)
                else:  # a manifest's name can change once: see complete()
                    updated[normalized] = name
            if updated == names:
                return
            body = json.dumps(updated, sort_keys=True, separators=(",", ":")).encode()
            try:
                self.storage.write_doc(PROJECTS_DOC, body, expect_version=got[1] if got else None)
                return
            except Conflict:
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise Conflict("the project list kept changing; try again")

    def store_metadata(
        self, filename: str, meta: CoreMetadata | None, *, wheel: bool, keep: bool = True
    ) -> str | None:
        """The sha256 of the core metadata file served at ``<file>.metadata``, or None when
        there is none to serve; with *keep*, the file is stored now rather than on first use."""
        if meta is None or not (wheel or meta.servable_for_sdist):
            return None
        if keep:
            self.storage.put_doc(metadata_key(filename), meta.raw)
        return hashlib.sha256(meta.raw).hexdigest()

    def upload(self, upload: Upload) -> bool:
        """Store an upload; True when stored, False when identical bytes were already there."""
        dist = check_upload_filename(upload.filename, upload.name, upload.version)
        existing = self.project(dist.project)
        if existing is not None and existing.status in ("archived", "quarantined"):
            raise Forbidden(f"Project {existing.name!r} is {existing.status}; uploads are closed.")
        with disk_errors():
            return self._upload(upload, dist)

    def _upload(self, upload: Upload, dist: Distribution) -> bool:
        fd, tmp = self.storage.temp_file()
        try:
            with os.fdopen(fd, "wb") as out:
                sha256, size = self._receive(upload, out)
            if size == 0:
                raise BadRequest("Upload payload does not have a file.")
            meta = read_metadata(tmp, dist)
            _check_metadata_version(meta, upload.version)
            return self._store(upload, dist, tmp, Facts(sha256, size, meta))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _receive(self, upload: Upload, out: BinaryIO) -> tuple[str, int]:
        hashes: dict[str, Any] = {
            "sha256": hashlib.sha256(),
            "blake2_256": hashlib.blake2b(digest_size=32),
        }
        if "md5" in upload.digests:
            hashes["md5"] = hashlib.md5(usedforsecurity=False)
        if "blake2b_512" in upload.digests:
            hashes["blake2b_512"] = hashlib.blake2b()
        size = 0
        while chunk := upload.stream.read(CHUNK):
            size += len(chunk)
            if self.max_upload_bytes is not None and size > self.max_upload_bytes:
                raise TooLarge(f"File too large. The limit is {self.max_upload_bytes} bytes.")
            for h in hashes.values():
                h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
        for algo, sent in upload.digests.items():
            actual = hashes[algo].hexdigest()
            if not hmac.compare_digest(sent.strip().lower().encode(), actual.encode()):
                raise DigestMismatch(
                    "The digest supplied does not match a digest calculated "
                    f"from the uploaded file ({algo})."
                )
        return hashes["sha256"].hexdigest(), size

    def new_record(
        self,
        dist: Distribution,
        facts: Facts,
        *,
        root: int = 0,
        path: str | None = None,
        inode: int | None = None,
        uploader: str | None = None,
        uploaded: str | None = None,
        unread: bool = False,
    ) -> FileRecord:
        """The record of a file just stored or found; its upload time is now by default.

        *unread* (a file found on a local disk): the metadata was not read, see complete()."""
        meta = facts.metadata
        return FileRecord(
            filename=dist.filename,
            root=root,
            path=path if path is not None else dist.filename,
            version=dist.version,
            sha256=facts.sha256,
            size=facts.size,
            uploaded=uploaded or utc_now(),
            requires_python=meta.requires_python if meta else None,
            metadata_sha256=self.store_metadata(dist.filename, meta, wheel=dist.kind == "wheel"),
            uploader=uploader,
            inode=inode,
            unread=True if unread else None,
        )

    def _duplicates(
        self, files: Sequence[FileRecord], dist: Distribution, sha256: str
    ) -> tuple[FileRecord | None, list[FileRecord]]:
        """(a record of the same release file with these bytes, records this upload replaces).

        Duplicates are found by canonical key (name, version, tags), not by spelling; other
        bytes are a conflict (409) unless overwrite is on.
        """
        superseded: list[FileRecord] = []
        for record in files:
            if not same_distribution(record.filename, dist):
                continue
            if record.sha256 == sha256:
                return record, []
            if not self.overwrite:
                raise _exists(record.filename, record.sha256)
            superseded.append(record)
        return None, superseded

    def _store(self, upload: Upload, dist: Distribution, tmp: Path, facts: Facts) -> bool:
        try:
            return self._commit(upload, dist, tmp, facts)
        except _Identical:
            return False  # the same bytes were recorded under another spelling meanwhile

    def _commit(self, upload: Upload, dist: Distribution, tmp: Path, facts: Facts) -> bool:
        project = self.project(dist.project)
        if self._duplicates(project.files if project else (), dist, facts.sha256)[0]:
            return False  # identical bytes already listed: a safe rerun
        created = replaced = False
        try:
            self.storage.put_new(dist.filename, tmp, sha256=facts.sha256)
            created = True
        except AlreadyExists:
            on_disk = stored_sha256(self.storage, dist.filename)
            if on_disk != facts.sha256:
                if not self.overwrite:
                    raise _exists(dist.filename, on_disk) from None
                self.storage.replace(dist.filename, tmp, sha256=facts.sha256)
                replaced = True
        try:
            return self._record_upload(upload, dist, facts, replaced)
        except BaseException:
            if created:  # this upload made the file: take it back, nothing half-done stays
                self.storage.delete(dist.filename)
                self.storage.discard_doc(metadata_key(dist.filename))
            raise

    def _record_upload(
        self, upload: Upload, dist: Distribution, facts: Facts, replaced: bool
    ) -> bool:
        local = self.storage.local_path(dist.filename)
        record = self.new_record(
            dist,
            facts,
            uploader=upload.uploader,
            inode=local.stat().st_ino if local is not None else None,
        )
        superseded: list[FileRecord] = []
        identical: list[FileRecord] = []

        def change(current: Project) -> Project | None:
            # Checked again inside the compare-and-swap: two uploads of one release under
            # different spellings race here, and only one of them can win.
            same, replaces = self._duplicates(
                [f for f in current.files if f.filename != record.filename], dist, facts.sha256
            )
            if same is not None:
                identical[:] = [same]
                return None
            superseded[:] = replaces
            gone = {r.filename for r in replaces} | {record.filename}
            files = [f for f in current.files if f.filename not in gone]
            return replace(current, files=(*files, record))

        self.update_project(dist.project, upload.name, change)
        if identical:
            raise _Identical
        for old in superseded:
            self._delete_file(old)
        log.info(
            "stored %s (%d bytes%s)", dist.filename, facts.size, ", replaced" if replaced else ""
        )
        return True

    def remove(self, name: str, version: str) -> list[str]:
        """Delete every file of one release; the names removed. NotFound when there are none."""
        normalized = normalize_name(name)
        project = self.project(normalized)
        doomed = [r for r in project.files if same_version(r.version, version)] if project else []
        if not doomed or project is None:
            raise NotFound(f"{name} ({version}) not found")
        gone = {r.filename for r in doomed}
        # The record goes first: a crash in between leaves an unlisted file, never a listed
        # file that is missing (scale-out design §5).
        self.update_project(
            normalized,
            project.name,
            lambda p: replace(p, files=tuple(f for f in p.files if f.filename not in gone)),
        )
        for record in doomed:
            self._delete_file(record)
        return sorted(gone)

    def _delete_file(self, record: FileRecord) -> None:
        if record.root == 0:
            self.storage.delete(record.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(safe_join(self.roots[record.root], record.path))
        self.storage.discard_doc(metadata_key(record.filename))

    def _release(self, name: str, version: str, filename: str | None) -> tuple[Project, set[str]]:
        project = self.project(normalize_name(name))
        files = [
            r
            for r in (project.files if project else ())
            if same_version(r.version, version) and filename in (None, r.filename)
        ]
        if project is None or not files:
            raise NotFound(f"{name} ({version}{', ' + filename if filename else ''}) not found")
        return project, {r.filename for r in files}

    def yank(
        self, name: str, version: str, reason: str = "", *, filename: str | None = None
    ) -> list[str]:
        """PEP 592: mark a release's files (or one file) yanked, with an optional reason."""
        return self._set_yanked(name, version, reason, filename)

    def unyank(self, name: str, version: str, *, filename: str | None = None) -> list[str]:
        """Undo :meth:`yank`."""
        return self._set_yanked(name, version, None, filename)

    def _set_yanked(
        self, name: str, version: str, reason: str | None, filename: str | None
    ) -> list[str]:
        project, chosen = self._release(name, version, filename)

        def change(current: Project) -> Project:
            files = tuple(
                replace(f, yanked=reason) if f.filename in chosen else f for f in current.files
            )
            return replace(current, files=files)

        self.update_project(project.normalized, project.name, change)
        return sorted(chosen)

    def set_status(self, name: str, status: str, reason: str = "") -> Project:
        """PEP 792: set the project's status (active, archived, quarantined, deprecated)."""
        if status not in PROJECT_STATUSES:
            raise BadRequest(
                f"Unknown project status {status!r}; use one of {', '.join(PROJECT_STATUSES)}."
            )
        normalized = normalize_name(name)
        if self.project(normalized) is None:
            raise NotFound(f"No project named {name!r} on this index.")
        return self.update_project(
            normalized, name, lambda p: replace(p, status=status, status_reason=reason)
        )


class _Identical(Exception):
    """Raised out of a manifest update: another spelling of this file, same bytes, won."""


def _exists(filename: str, sha256: str) -> FileExists:
    return FileExists(f"File already exists ({filename!r}, with sha256 hash {sha256!r}).")


def same_distribution(filename: str, dist: Distribution) -> bool:
    """True when *filename* names the same distribution as *dist* (canonical key)."""
    if filename == dist.filename:
        return True
    try:
        return parse_filename(filename).key == dist.key
    except BadRequest:
        return False


def same_version(a: str, b: str) -> bool:
    """PEP 440 equality (``1.0`` is ``1.0.0``); plain comparison for unparsable versions."""
    try:
        return Version(a) == Version(b)
    except (InvalidVersion, ValueError):
        return a == b


def _check_metadata_version(meta: CoreMetadata, form_version: str) -> None:
    if not same_version(meta.version, form_version):
        raise InvalidDistribution(
            f"Invalid distribution file. Its metadata says version {meta.version!r}, "
            f"the upload form {form_version!r}."
        )
