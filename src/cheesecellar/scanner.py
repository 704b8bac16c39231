"""Find files copied into the package directories by hand, and files removed by hand.

Each watched directory's mtime is compared on every request (one stat each); only a changed
directory is listed again, and only files not yet recorded are hashed, once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from multiprocessing import connection
from pathlib import Path
from typing import Any

from .catalog import Catalog, read_small, same_distribution
from .distributions import SDIST_EXTENSIONS, Distribution, parse_filename
from .errors import BadRequest, CheesecellarError
from .records import FileRecord, Project, utc_now
from .storage.filesystem import STATE_DIR, FileStorage

log = logging.getLogger(__name__)

# A directory changed this recently may change again within the same mtime tick: list it again
# on the next request instead of trusting its mtime (the "racy timestamp" problem).
_SETTLE_NS = 2_000_000_000

_BATCH_FROM = 32
_SUFFIXES = (".whl", *SDIST_EXTENSIONS)
# Forking pays for itself from a few thousand files (a first start on a copied directory).
_FORK_FROM = 2000
DirKey = tuple[int, str]  # (root index, posix path relative to the root; "" for the root)
Found = tuple[DirKey, str, int]  # (directory, filename, inode)
Parsed = tuple[DirKey, str, Distribution, int]  # (directory, filename, parsed name, inode)
Progress = Callable[[int, int, str], None]  # (done, total, filename)
# A hashing process's report: (directory, filename, inode recorded or -1 when left for
# later) per file of its share not recorded as listed, the directories to list again, and
# how many it recorded.
_Effects = tuple[list[tuple[DirKey, str, int | None]], list[DirKey], int]


class Scanner:
    """Keeps the catalog in step with what is on disk in the package directories."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        # Per directory: the mtime last listed, and when to list it once more because that
        # mtime was too recent to trust.
        self._mtimes: dict[DirKey, tuple[int | None, int | None]] = {}
        # Per directory: recorded file names and their inodes (None when not recorded).
        self._files: dict[DirKey, dict[str, int | None]] = {}
        self._recorded = 0  # files recorded (new or replaced) since this scanner started
        self._unread = False  # records whose metadata is still to read: see _read_metadata
        self._path_strings: dict[DirKey, str] = {}
        self._dir_fds: dict[DirKey, int] = {}  # open while files found are recorded
        self._manifests: set[str] | None = None  # while starting: the projects with one

    def _dir_path(self, key: DirKey) -> Path:
        root = self.catalog.roots[key[0]]
        return root / key[1] if key[1] else root

    def _dir_str(self, key: DirKey) -> str:
        # Plain strings: this is stat()ed on every request, where Path joins show in profiles.
        path = self._path_strings.get(key)
        if path is None:
            path = self._path_strings[key] = str(self._dir_path(key))
        return path

    def _dir_fd(self, key: DirKey) -> int:
        # Files are opened relative to their directory: no path to join and walk per file.
        fd = self._dir_fds.get(key)
        if fd is None:
            fd = self._dir_fds[key] = os.open(self._dir_str(key), os.O_RDONLY | os.O_DIRECTORY)
        return fd

    def start(self, progress: Progress | None = None, *, jobs: int = 1) -> int:
        """Load what is recorded, then walk every directory once; returns files recorded.

        With *jobs* > 1, many new files are hashed by that many forked processes: call it
        only while this process runs no other thread (before serving, or from a command).
        """
        _, names = self.catalog.project_names()
        listed = {
            key.rpartition("/")[2][: -len(".json")]
            for key in self.catalog.storage.list_docs("index")
        } - {"_projects"}
        known = set(names) | listed
        with self._lock:
            unlisted: dict[str, str | None] = {}
            for normalized in sorted(known):
                project = self.catalog.project(normalized)
                for record in project.files if project else ():
                    self._remember(record)
                if project is not None and project.files and normalized not in names:
                    unlisted[normalized] = project.name  # a run stopped before listing it
            if unlisted:
                self.catalog.write_project_names(unlisted)
            for index in range(len(self.catalog.roots)):
                self._mtimes.setdefault((index, ""), (None, None))
            # A project without a manifest now is not read before its first files are
            # recorded: if one appears meanwhile, the manifest's compare-and-swap finds it.
            self._manifests = known
            try:
                recorded = self._refresh_locked(progress, jobs)
            finally:
                self._manifests = None
            self._unread = self._unread or recorded > 0
            return recorded

    def refresh(self) -> int:
        """The per-request check: stat each watched directory, rescan the changed ones;
        returns the number of files recorded."""
        if self._unread:
            self._read_metadata_later()
        # The stats alone take no lock, so requests do not queue on one another when nothing
        # changed. A rescan under way is checked for after them: one that started before them
        # has recorded what they saw by now, or still holds the lock.
        if next(self._changed(), None) is None and not self._lock.locked():
            return 0
        with self._lock:
            return self._refresh_locked(None)

    def _changed(self) -> Iterator[tuple[DirKey, bool]]:
        """Each watched directory that changed or is due a recheck, and whether it is gone."""
        now = time.time_ns()
        for key, (seen, recheck_at) in list(self._mtimes.items()):
            try:
                mtime = os.stat(self._dir_str(key)).st_mtime_ns
            except FileNotFoundError:
                yield key, True
                continue
            if mtime != seen or (recheck_at is not None and now >= recheck_at):
                yield key, False

    def _read_metadata_later(self) -> None:
        """On the first request after files were discovered, read their metadata in a thread
        (a page asked for before it gets there reads its own), so that pages soon come
        straight from the records. One process of a server does it; the others find it busy."""
        with self._lock:
            if not self._unread:
                return
            self._unread = False
        threading.Thread(target=self._read_metadata, name="read-metadata", daemon=True).start()

    def _read_metadata(self) -> None:
        storage = self.catalog.storage
        assert isinstance(storage, FileStorage)
        started = time.monotonic()
        try:
            with open(storage.state / "metadata.lock", "a+b") as held:  # closing releases it
                try:
                    fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another process is at it
                count = self.catalog.complete_all()
        except Exception:
            log.exception("reading the metadata of files found on disk failed; pages read it")
            return
        if count:
            log.info(
                "read the metadata of %d project(s) found on disk in %.1fs",
                count,
                time.monotonic() - started,
            )

    def _refresh_locked(self, progress: Progress | None, jobs: int = 1) -> int:
        changed: list[DirKey] = []
        for key, gone in list(self._changed()):
            if gone:
                del self._mtimes[key]
            changed.append(key)
        found: list[Found] = []
        for key in changed:
            found.extend(self._list(key))
        if not found:
            return 0
        before = self._recorded
        if jobs > 1 and len(found) >= _FORK_FROM:
            self._adopt_forked(found, progress, jobs)
        else:
            self._adopt_all(found, len(found), progress)
        if progress is not None:
            progress(len(found), len(found), "")
        return self._recorded - before

    def _adopt_all(self, found: list[Found], total: int, progress: Progress | None) -> None:
        by_project: dict[str, list[Parsed]] = {}
        for key, name, inode in found:
            try:
                dist = parse_filename(name)
            except BadRequest:
                continue  # not a distribution: never listed
            by_project.setdefault(dist.project, []).append((key, name, dist, inode))
        done = 0
        # Many files found at once (a first start, a reindex): sync the disk and write the
        # project list once at the end, not once per document. A few files copied in by hand
        # are recorded one durable write at a time, without a system-wide sync in a request.
        try:
            with self.catalog.batch() if total > _BATCH_FROM else contextlib.nullcontext():
                for project in list(by_project):  # each project's items freed once recorded
                    done = self._adopt(by_project.pop(project), done, total, progress)
        finally:
            for fd in self._dir_fds.values():
                os.close(fd)
            self._dir_fds.clear()

    def _adopt_forked(self, found: list[Found], progress: Progress | None, jobs: int) -> None:
        """Share the files out among forked processes, which record them as any concurrent
        writers would (compare-and-swap per manifest), then learn what each one recorded."""
        ctx = multiprocessing.get_context("fork")
        counts = ctx.RawArray("q", jobs)
        total = len(found)
        # Each process parses its own share of the names, shared out by what precedes the first
        # "-" (the whole name but in legacy sdists): a project's files mostly land in one share,
        # and the manifest update checks for a same distribution recorded by another process.
        # (Two replaces: str.translate takes four times as long over 100,000 names.)
        leads = [n[: n.find("-")].replace("_", "").replace(".", "").lower() for _, n, _ in found]
        # Dealt out in turn, so every process gets a share even of a few projects.
        share_of = {lead: n % jobs for n, lead in enumerate(sorted(set(leads)))}
        shares: list[list[Found]] = [[] for _ in range(jobs)]
        for item, lead in zip(found, leads, strict=True):
            shares[share_of[lead]].append(item)
        children = []
        for index, share in enumerate(shares):
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=self._adopt_child, args=(share, total, counts, index, send))
            child.start()
            send.close()
            children.append((child, receive, share))
        pending = {receive: (child, share) for child, receive, share in children}
        while pending:
            ready = connection.wait(list(pending), timeout=0.2)
            for receive in [r for r in pending if r in ready]:
                child, share = pending.pop(receive)
                try:
                    effects: _Effects | None = receive.recv()
                except EOFError:
                    effects = None
                child.join()
                if effects is None:
                    log.error("a hashing process failed; recording its share here")
                    self._adopt_all(share, total, None)
                else:
                    self._apply(share, effects)
            if progress is not None:
                progress(min(sum(counts), total), total, "")

    def _adopt_child(
        self,
        share: list[Found],
        total: int,
        counts: Any,
        index: int,
        send: connection.Connection,
    ) -> None:
        def count(done: int, total: int, name: str) -> None:
            counts[index] = done

        # This process ends when its share is done: its records need no cyclic collection.
        gc.disable()
        # Nor any use for the records it writes: memory it does not keep is reused, where
        # fresh pages cost a fault each (~16,000 in a share of 50,000 files).
        self.catalog.keep_no_records()
        before = self._recorded
        try:
            self._adopt_all(share, total, count)
            effects: _Effects = (
                [
                    (key, name, now)
                    for key, name, inode in share
                    if (now := self._files.get(key, {}).get(name, -1)) != inode
                ],
                [key for key, (_, recheck_at) in self._mtimes.items() if recheck_at == 0],
                self._recorded - before,
            )
            send.send(effects)
        finally:
            send.close()

    def _apply(self, share: list[Found], effects: _Effects) -> None:
        """What a hashing process learned: its share is recorded as listed but for the files
        it reports (left for later, or recorded meanwhile with another inode); rechecks."""
        files, rechecks, recorded = effects
        self._recorded += recorded
        for key, name, listed in share:
            self._files.setdefault(key, {})[name] = listed
        for key, name, inode in files:
            known = self._files.setdefault(key, {})
            if inode == -1:
                known.pop(name, None)
            else:
                known[name] = inode
        for key in rechecks:
            self._recheck(key)

    def _list(self, key: DirKey) -> list[Found]:
        """Rescan one directory (new subdirectories recursively): new or replaced files."""
        path = self._dir_path(key)
        now = time.time_ns()
        entries: Iterator[os.DirEntry[str]] | None
        try:
            mtime = os.stat(path).st_mtime_ns
            entries = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            entries, mtime = None, None
        if mtime is not None:
            settled = now - mtime > _SETTLE_NS
            self._mtimes[key] = (mtime, None if settled else mtime + _SETTLE_NS)
        known = self._files.setdefault(key, {})
        on_disk: list[str] = []
        found: list[Found] = []
        still_there = 0
        if entries is not None:
            # Read as it goes, not as a list: 100,000 entries held at once are ~30 MB.
            with contextlib.closing(entries):
                still_there = self._sort_entries(key, entries, on_disk, found)
        # Known files gone are looked for only when fewer are still there than are known: a
        # set of every name (100,000 of them) is not made on every listing for nothing.
        if still_there < len(known):
            for name in set(known).difference(on_disk):
                self._forget(key, name)
        return found

    def _sort_entries(
        self,
        key: DirKey,
        entries: Iterator[os.DirEntry[str]],
        on_disk: list[str],
        found: list[Found],
    ) -> int:
        """Add every distribution file's name in *entries* to *on_disk*, the new or replaced
        ones to *found*, with those of subdirectories not listed before; returns how many of
        the files known before are among them."""
        known = self._files[key]
        still_there = 0
        for entry in entries:
            # This loop runs over every file of a changed directory: the common case, a
            # regular file, costs as few calls as can be (the type comes with the listing).
            name = entry.name
            if entry.is_file(follow_symlinks=False):
                if name[0] == "." or not name.lower().endswith(_SUFFIXES):
                    continue  # dot-files and what is not a distribution are never listed
                inode = entry.inode()
            elif name[0] == "." or name == STATE_DIR:
                continue  # nor is the state folder served
            elif entry.is_dir(follow_symlinks=False):
                sub = (key[0], f"{key[1]}/{name}" if key[1] else name)
                if sub not in self._mtimes:
                    self._mtimes[sub] = (None, None)
                    found.extend(self._list(sub))
                continue
            elif (
                not name.lower().endswith(_SUFFIXES)
                or (linked := self._link_inode(key, entry)) is None
            ):
                continue
            else:
                inode = linked
            on_disk.append(name)
            recorded = known.get(name, -1)
            if recorded != -1:  # known (never -1: see _apply)
                still_there += 1
                if recorded is None or recorded == inode:
                    continue  # and unchanged
            found.append((key, name, inode))
        return still_there

    def _link_inode(self, key: DirKey, entry: os.DirEntry[str]) -> int | None:
        """The inode a link to a regular file in the root points at; None for anything else
        (a device, a socket, a link to a directory or to outside the root)."""
        if not entry.is_symlink():
            return None
        target = Path(os.path.realpath(entry.path))
        if not target.is_relative_to(self.catalog.roots[key[0]].resolve()) or not target.is_file():
            log.warning("ignoring %s: a link to outside the package directory", entry.path)
            return None
        return target.stat().st_ino

    def _uploading(self, key: DirKey, name: str, inode: int) -> bool:
        """True for a file (with more than one link) an upload has linked in but not recorded
        yet (its temp file, the other link to the same inode, is removed when it is done)."""
        try:
            storage = self.catalog.storage
            if key[0] != 0 or not isinstance(storage, FileStorage):
                return False
            return any(e.inode() == inode for e in os.scandir(storage.tmp))
        except OSError:
            return False

    def _recheck(self, key: DirKey) -> None:
        """List this directory again on the next request even if its mtime stays the same."""
        mtime, _ = self._mtimes.get(key, (None, None))
        self._mtimes[key] = (mtime, 0)

    def _remember(self, record: FileRecord) -> None:
        if record.unread:
            self._unread = True
        parent = record.path.rpartition("/")[0]
        self._files.setdefault((record.root, parent), {})[record.filename] = record.inode

    def _adopt(self, items: list[Parsed], done: int, total: int, progress: Progress | None) -> int:
        """Record the new or replaced files of one project, in one manifest update.

        Only the bytes are hashed: the metadata is read when first needed (Catalog.complete).
        """
        normalized = items[0][2].project
        project = (
            self.catalog.project(normalized)
            if self._manifests is None or normalized in self._manifests
            else None
        )
        records: list[FileRecord] = []
        uploaded = utc_now()
        for key, name, dist, inode in items:
            if progress is not None:
                progress(done, total, name)
            done += 1
            relpath = f"{key[1]}/{name}" if key[1] else name
            self._files.setdefault(key, {})[name] = inode
            listed = None
            if project is not None:
                # The same distribution under another spelling is a duplicate, not a new file.
                listed = project.file(name) or next(
                    (r for r in project.files if same_distribution(r.filename, dist)), None
                )
            if listed is not None and (listed.root, listed.path) != (key[0], relpath):
                log.warning("ignoring %s: the same file is listed from %s", relpath, listed.path)
                continue
            if listed is not None and listed.inode in (None, inode):
                continue  # recorded meanwhile, by this or another process
            try:
                _, sha256, size, links = read_small(name, dir_fd=self._dir_fd(key))
            except FileNotFoundError:
                self._files[key].pop(name, None)
                continue
            if links > 1 and self._uploading(key, name, inode):
                self._files[key].pop(name, None)
                self._recheck(key)
                continue
            if listed is not None and listed.sha256 == sha256:
                # Same bytes under a new inode (a copy or restore): keep the upload time.
                records.append(replace(listed, inode=inode))
                continue
            if listed is not None:
                log.warning("%s was replaced by hand; recording its new contents", relpath)
            records.append(
                FileRecord(
                    filename=name,
                    root=key[0],
                    path=relpath,
                    version=dist.version,
                    sha256=sha256,
                    size=size,
                    uploaded=uploaded,
                    inode=inode,
                    unread=True,  # the metadata is read when first needed
                )
            )
        if records:
            first = items[0][2]

            dists = {name: dist for _, name, dist, _ in items}

            def add(current: Project) -> Project | None:
                # A record another process made meanwhile for the same inode wins, and so does
                # one for the same distribution under another spelling.
                others = _keys(f.filename for f in current.files if f.filename not in dists)
                new = []
                for r in records:
                    if (old := current.file(r.filename)) is not None and old.inode == r.inode:
                        continue
                    if others and (other := others.get(dists[r.filename].key)) is not None:
                        log.warning("ignoring %s: the same file is listed from %s", r.path, other)
                        continue
                    new.append(r)
                if not new:
                    return None
                renewed = {r.filename for r in new}
                kept = [f for f in current.files if f.filename not in renewed]
                return replace(current, files=(*kept, *new))

            try:
                self.catalog.update_project(first.project, first.name, add, read=project)
            except CheesecellarError as exc:
                # A full disk must not break reads: leave these files for the next rescan.
                log.error("cannot record %d file(s) of %s: %s", len(records), first.project, exc)
                for key, name, _, _ in items:
                    self._files.get(key, {}).pop(name, None)
                    self._recheck(key)
                return done
            self._recorded += len(records)
            log.info("recorded %d file(s) of %s", len(records), first.project)
        return done

    def _forget(self, key: DirKey, name: str) -> None:
        self._files[key].pop(name, None)
        relpath = f"{key[1]}/{name}" if key[1] else name
        try:
            dist = parse_filename(name)
        except BadRequest:
            return
        if os.path.isfile(self._dir_path(key) / name):  # back meanwhile (a folder is not)
            return

        def drop(project: Project) -> Project | None:
            record = project.file(name)
            if record is None or (record.root, record.path) != (key[0], relpath):
                return None
            return replace(project, files=tuple(f for f in project.files if f.filename != name))

        if self.catalog.project(dist.project) is not None:
            self.catalog.update_project(dist.project, dist.name, drop)
            log.info("file removed from disk: %s", relpath)


def _keys(filenames: Iterable[str]) -> dict[str, str]:
    """{distribution key: filename} of the parsable names."""
    keys = {}
    for filename in filenames:
        with contextlib.suppress(BadRequest):
            keys[parse_filename(filename).key] = filename
    return keys
