"""The storage boundary: blobs written once, small documents changed by compare-and-swap."""

from __future__ import annotations

from .base import AlreadyExists, Conflict, Storage
from .filesystem import FileStorage

__all__ = ["AlreadyExists", "Conflict", "FileStorage", "Storage"]
