"""The default storage: distribution files in a directory, documents in a hidden state folder."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from ..errors import UnsafePath
from .base import AlreadyExists, Conflict, disk_errors

log = logging.getLogger(__name__)

STATE_DIR = ".cheesecellar"
STALE_TEMP_SECONDS = 3600
_PATHS_KEPT = 1_000_000
T = TypeVar("T")


def safe_join(root: Path, key: str, *, follow_links: bool = True) -> Path:
    """Join *key* below *root*; refuse anything that could name a path outside it.

    With *follow_links*, symlinks are resolved and must stay inside the root too.
    """
    if not key or "\x00" in key or "\\" in key or key.startswith("/"):
        raise UnsafePath(f"Refusing unsafe path {key!r}.")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(f"Refusing unsafe path {key!r}.")
    candidate = root.joinpath(*parts)
    if not follow_links:
        return candidate
    resolved_root = root.resolve()
    # Symlinks placed by an admin are allowed only when they stay inside the root.
    if not candidate.resolve().is_relative_to(resolved_root):
        raise UnsafePath(f"Refusing path outside the package root: {key!r}.")
    return candidate


def _version_of(st: os.stat_result) -> str:
    # A document is replaced by rename, so the inode changes on every write.
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


class FileStorage:
    """Blobs are files under *root*; documents live in ``root/.cheesecellar``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / STATE_DIR
        self.tmp = self.state / "tmp"
        self._lock_path = self.state / "lock"
        self._local = threading.local()
        self._doc_paths: dict[str, str] = {}  # key -> path: stat()ed on every request
        self._thread_lock = threading.Lock()
        self._lock_fd: tuple[int, int] | None = None  # (process id, the open lock file)

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r})"

    def prepare(self) -> None:
        """Create the state folder and remove temp files that crashed uploads (or batches of
        documents, in folders of their own) left behind."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    log.info("removed stale temp file %s", entry.path)

    # -- blobs -----------------------------------------------------------------------------

    def temp_file(self) -> tuple[int, Path]:
        """A new temp file on the same filesystem as the blobs (for link/rename)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.tmp)
        # mkstemp makes 0600 files; distribution files are public, like the pages that list them.
        os.fchmod(fd, 0o644)
        return fd, Path(name)

    def local_path(self, key: str) -> Path:
        return safe_join(self.root, key)

    def open(self, key: str) -> BinaryIO:
        return open(self.local_path(key), "rb")

    def download_url(self, key: str, filename: str) -> str | None:
        return None  # served from disk by the app (sendfile under mod_wsgi)

    def put_new(self, key: str, source: Path, *, sha256: str) -> None:
        target = self.local_path(key)
        with disk_errors():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # link() is the atomic claim: it never replaces an existing name.
                os.link(source, target)
            except FileExistsError as exc:
                raise AlreadyExists(f"{key} exists") from exc
            _fsync_dir(target.parent)

    def replace(self, key: str, source: Path, *, sha256: str) -> None:
        target = self.local_path(key)
        with disk_errors():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = self.temp_file()
            os.close(fd)
            os.unlink(tmp)
            os.link(source, tmp)
            os.replace(tmp, target)
            _fsync_dir(target.parent)

    def blob_sha256(self, key: str) -> str | None:
        return None  # not kept beside the file: the catalog reads the file when it must

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.local_path(key))

    # -- documents ---------------------------------------------------------------------------

    def doc_path(self, key: str) -> Path:
        """The file holding document *key*, inside the state folder."""
        # Document keys are made by the catalog, and the state folder holds no links.
        return safe_join(self.state, key, follow_links=False)

    def _doc_str(self, key: str) -> str:
        path = self._doc_paths.get(key)
        if path is None:
            path = str(self.doc_path(key))
            if len(self._doc_paths) < _PATHS_KEPT:
                self._doc_paths[key] = path
        return path

    def doc_version(self, key: str) -> str | None:
        try:
            return _version_of(os.stat(self._doc_str(key)))
        except FileNotFoundError:
            return None

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        try:
            with open(self._doc_str(key), "rb") as fh:
                return fh.read(), _version_of(os.fstat(fh.fileno()))
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Documents written by this thread inside skip their fsyncs; one sync at the end.

        Their temp files go to a folder of their own, made for the batch: a new folder lands
        where the filesystem has room for its files' inodes, and this thread does not share
        a directory lock with other processes writing at the same time.
        """
        folder = self.tmp / f"batch-{os.getpid()}-{threading.get_ident()}"
        folder.mkdir(parents=True, exist_ok=True)
        self._local.batch = str(folder)
        try:
            yield
        finally:
            self._local.batch = None
            with contextlib.suppress(OSError):
                folder.rmdir()
            os.sync()

    def write_doc(self, key: str, body: bytes, *, expect_version: str | None) -> str:
        if expect_version is None:
            # link() never replaces a name: an atomic create-if-absent, without the lock.
            try:
                return self._place(key, body, os.link)
            except FileExistsError:
                raise Conflict(f"{key} changed") from None
        with self._locked():
            if self.doc_version(key) != expect_version:
                raise Conflict(f"{key} changed")
            return self._place(key, body, os.replace)

    def put_doc(self, key: str, body: bytes) -> None:
        # Atomic without the lock: a reader sees the old body or the new one, never a mix.
        self._place(key, body, os.replace)

    def _place(self, key: str, body: bytes, move: Callable[[str, str], None]) -> str:
        """Write *body* to a temp file and ``move(temp, path)`` it to the document's path;
        returns the document's version, the temp file's (a link or a rename keeps the inode,
        the mtime and the size)."""
        target = self._doc_str(key)
        with disk_errors():
            tmp, version, durable = self._write_temp(body)
            try:
                _in_folder(os.path.dirname(target), lambda: move(tmp, target))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # left beside a link, or by a failed move
            if durable:
                _fsync_dir(Path(target).parent)
            return version

    def _write_temp(self, body: bytes) -> tuple[str, str, bool]:
        """(a new temp file holding *body*, its version, whether it was synced to disk)."""
        batch: str | None = getattr(self._local, "batch", None)
        durable = batch is None
        folder = batch or str(self.tmp)
        # Random like mkstemp's names, in one call; O_EXCL still refuses a clash.
        tmp = os.path.join(folder, f"doc-{os.urandom(8).hex()}")
        fd = _in_folder(folder, lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
            version = _version_of(os.fstat(fd))
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp, version, durable

    def discard_doc(self, key: str) -> None:
        """Remove a document whatever its version; a missing one is not an error."""
        with self._locked(), contextlib.suppress(FileNotFoundError):
            os.unlink(self.doc_path(key))

    def list_docs(self, prefix: str) -> list[str]:
        """Keys of the documents directly inside the state folder *prefix*."""
        folder = self.doc_path(prefix)
        try:
            return sorted(f"{prefix}/{e.name}" for e in os.scandir(folder) if e.is_file())
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One lock file serialises document writes across threads and processes: threads
        # take turns here, processes by flock(), which only excludes other open file
        # descriptions, so a forked process opens the file again rather than share its parent's.
        with self._thread_lock:
            if self._lock_fd is None or self._lock_fd[0] != os.getpid():
                self.state.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                weakref.finalize(self, os.close, fd)
                self._lock_fd = (os.getpid(), fd)
            fd = self._lock_fd[1]
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


def _in_folder(folder: str, action: Callable[[], T]) -> T:
    """action(), which makes a name in *folder*; made first when it does not exist yet."""
    try:
        return action()
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return action()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
