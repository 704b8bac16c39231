"""The Storage protocol every backend implements (see the scale-out design)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import CheesecellarError, InsufficientStorage


class AlreadyExists(CheesecellarError):
    """A create-only write found the key taken."""

    status = 409


class Conflict(CheesecellarError):
    """A compare-and-swap write found that the document changed since it was read."""

    status = 409


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """A full disk or quota is a 507 with a clear message, not a 500."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(
                "Not enough space on the server's disk; nothing was stored."
            ) from exc
        raise


class Storage(Protocol):
    """Blobs are immutable once created; documents change by compare-and-swap.

    Blob keys are a filename or a relative path; document keys look like ``index/<p>.json``.
    """

    def prepare(self) -> None:
        """Get ready to serve (create folders, check the store, clean up after crashes)."""

    def temp_file(self) -> tuple[int, Path]:
        """A new local temp file (fd, path) to stage an upload in before :meth:`put_new`."""

    def put_new(self, key: str, source: Path, *, sha256: str) -> None:
        """Store the file at *source* (whose hash is *sha256*) under *key*, unless the key
        exists (AlreadyExists)."""

    def replace(self, key: str, source: Path, *, sha256: str) -> None:
        """Store *source* under *key*, replacing what is there (the overwrite option)."""

    def blob_sha256(self, key: str) -> str | None:
        """The sha256 recorded with the blob, if the store keeps one (else None: read it)."""

    def delete(self, key: str) -> None:
        """Remove the blob *key*; a missing key is not an error."""

    def open(self, key: str) -> BinaryIO:
        """Read the blob *key*; FileNotFoundError when it is missing."""

    def local_path(self, key: str) -> Path | None:
        """The blob's path on a local filesystem, or None when it has none."""

    def download_url(self, key: str, filename: str) -> str | None:
        """A URL clients may fetch the blob from directly, or None to serve it through the app."""

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        """The document's body and version token, or None when absent."""

    def doc_version(self, key: str) -> str | None:
        """The document's current version token, cheaply, or None when absent."""

    def write_doc(self, key: str, body: bytes, *, expect_version: str | None) -> str:
        """Write a document if its version is still *expect_version* (None: must not exist).

        Returns the new version; raises Conflict when the document moved.
        """

    def put_doc(self, key: str, body: bytes) -> None:
        """Write a document whatever is there (derived data such as ``.metadata`` files)."""

    def discard_doc(self, key: str) -> None:
        """Remove a document whatever its version; a missing one is not an error."""

    def list_docs(self, prefix: str) -> list[str]:
        """Keys of the documents directly under *prefix*."""
