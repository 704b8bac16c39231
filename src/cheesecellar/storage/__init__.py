"""The storage boundary: blobs written once, small documents changed by compare-and-swap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import AlreadyExists, Conflict, Storage
from .filesystem import FileStorage

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["AlreadyExists", "Conflict", "FileStorage", "Storage", "open_storage"]


def open_storage(config: Config) -> Storage:
    """The storage *config* asks for: the first package directory, or an S3 bucket."""
    if config.storage is None:
        return FileStorage(config.roots[0])
    from .s3 import S3Storage  # boto3 is an optional extra: imported only when asked for

    return S3Storage.from_url(
        config.storage,
        endpoint_url=config.s3_endpoint,
        public_endpoint_url=config.s3_public_endpoint,
        region=config.s3_region,
        download=config.s3_download,
    )
