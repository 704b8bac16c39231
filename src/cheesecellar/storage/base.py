"""The Storage protocol every backend implements (see the scale-out design)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import CheesecellarError


class AlreadyExists(CheesecellarError):
    """A create-only write found the key taken."""

    status = 409


class Conflict(CheesecellarError):
    """A compare-and-swap write found that the document changed since it was read."""

    status = 409


@dataclass(frozen=True)
class ObjectInfo:
    """One stored blob as seen by a listing: its key, size and change token."""

    key: str
    size: int
    version: str


class Storage(Protocol):
    """Blobs are immutable once created; documents change by compare-and-swap."""

    def put_new(self, key: str, source: Path) -> None:
        """Store the file at *source* under *key* unless the key exists (AlreadyExists)."""

    def replace(self, key: str, source: Path) -> None:
        """Store *source* under *key*, replacing what is there (the overwrite option)."""

    def path(self, key: str) -> Path:
        """The local path of *key* (filesystem backends)."""

    def delete(self, key: str) -> None:
        """Remove the blob *key*; a missing key is not an error."""

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        """The document's body and version token, or None when absent."""

    def doc_version(self, key: str) -> str | None:
        """The document's current version token, cheaply, or None when absent."""

    def write_doc(self, key: str, body: bytes, *, expect_version: str | None) -> str:
        """Write a document if its version is still *expect_version* (None: must not exist)."""
