"""Scale-out storage: blobs and documents in an S3-compatible bucket, through boto3 only.

Blob ``K`` is the object ``<prefix>packages/K``, document ``D`` the object ``<prefix>D``. Blobs
are created with ``If-None-Match: *``; documents change by ``If-Match`` on their ETag.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError, StorageUnavailable, UnsafePath
from .base import AlreadyExists, Conflict

log = logging.getLogger(__name__)

PRESIGN_SECONDS = 300
BLOBS = "packages/"
# Some stores answer a create racing another create with 409 ConditionalRequestConflict:
# retry a few times, then treat it like 412 (reference scale-out.md §4).
_CONFLICT_RETRIES = 5
_CACHE_ENTRIES = 4096
_CACHE_MAX_BODY = 1024 * 1024
_URL_RE = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(\S*))?\Z")
# Names we put into a Content-Disposition header as they are; anything else gets none.
_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9._+!-]+\Z")
_CHUNK = 1024 * 1024


def check_key(key: str) -> str:
    """Refuse a key that is empty, absolute, or has ``.``/``..``/empty segments."""
    if not key or "\x00" in key or "\\" in key or key.startswith("/"):
        raise UnsafePath(f"Refusing unsafe key {key!r}.")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise UnsafePath(f"Refusing unsafe key {key!r}.")
    return key


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_refusal(exc: ClientError) -> bool:
    """412 PreconditionFailed, or 409 ConditionalRequestConflict: the condition did not hold."""
    return _status(exc) in (409, 412)


_T = TypeVar("_T")


def _unavailable_on_store_errors(cls: type[_T]) -> type[_T]:
    """Store failures during requests become StorageUnavailable (503), never a 500."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (BotoCoreError, ClientError) as exc:
                raise StorageUnavailable(f"The package store is unavailable: {exc}") from exc

        return wrapper

    for name in _SERVING_METHODS:
        setattr(cls, name, wrap(getattr(cls, name)))
    return cls


_SERVING_METHODS = (
    "put_new", "replace", "delete", "open", "blob_sha256", "download_url",
    "doc_version", "read_doc", "write_doc", "put_doc", "discard_doc", "list_docs",
)  # fmt: skip


def make_client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client: path-style addressing, SigV4, credentials from the usual AWS chain."""
    config = BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        # Checksums only where S3 requires them: many S3-compatible stores reject the others.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


@_unavailable_on_store_errors
class S3Storage:
    """The Storage protocol on one bucket and key prefix, shared by any number of nodes."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        signer: Any = None,
        download: str = "redirect",
        endpoint: str = "AWS S3",
    ) -> None:
        if download not in ("redirect", "proxy"):
            raise ConfigError(f"s3_download: {download!r} is not redirect or proxy")
        self.client = client
        self.signer = signer if signer is not None else client  # signs for public_endpoint_url
        self.bucket = bucket
        self.prefix = check_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self.download = download
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[str, bytes]] = OrderedDict()  # object -> etag, body

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str | None = None,
        download: str = "redirect",
    ) -> S3Storage:
        """Storage for ``s3://BUCKET[/PREFIX]``; presigned URLs carry *public_endpoint_url*."""
        match = _URL_RE.match(url)
        if match is None:
            raise ConfigError(f"storage: {url!r} is not s3://BUCKET[/PREFIX]")
        client = make_client(endpoint_url, region)
        signer = make_client(public_endpoint_url, region) if public_endpoint_url else client
        return cls(
            client,
            match.group(1),
            match.group(2) or "",
            signer=signer,
            download=download,
            endpoint=endpoint_url or "AWS S3",
        )

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix} at {self.endpoint})"

    def _blob(self, key: str) -> str:
        return f"{self.prefix}{BLOBS}{check_key(key)}"

    def _doc(self, key: str) -> str:
        return f"{self.prefix}{check_key(key)}"

    # -- startup -------------------------------------------------------------------------

    def prepare(self) -> None:
        """The startup probe: refuse a store that does not refuse conditional writes (§8)."""
        where = f"s3://{self.bucket}/{self.prefix} at {self.endpoint}"
        name = self._doc(f"index/.probe-{uuid.uuid4().hex}")
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=b"probe", IfNoneMatch="*")
            second_create = self._refuses(name, IfNoneMatch="*")
            wrong_match = self._refuses(name, IfMatch='"cheesecellar-probe-mismatch"')
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"storage: cannot write to {where}: {exc}") from exc
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_object(Bucket=self.bucket, Key=name)
        if not (second_create and wrong_match):
            raise ConfigError(
                f"storage: {where} does not refuse conditional writes (If-None-Match: *, "
                "If-Match), so nodes could overwrite each other's files and records; use a "
                "store that supports them, or a package directory on one node"
            )
        log.info("storage %s passed the conditional-write probe", where)

    def _refuses(self, name: str, **condition: str) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=b"overwritten", **condition)
        except ClientError as exc:
            return _is_refusal(exc)  # NotImplemented and the like count as "not refused"
        return False

    # -- blobs -----------------------------------------------------------------------------

    def temp_file(self) -> tuple[int, Path]:
        """A local temp file; the upload is PUT from it in one request."""
        fd, name = tempfile.mkstemp(prefix="cheesecellar-upload-")
        return fd, Path(name)

    def local_path(self, key: str) -> Path | None:
        return None

    def put_new(self, key: str, source: Path, *, sha256: str) -> None:
        name = self._blob(key)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._put_file(name, source, sha256, IfNoneMatch="*")
                return
            except ClientError as exc:
                if _status(exc) == 412:
                    raise AlreadyExists(f"{key} exists") from exc
                if _status(exc) != 409:
                    raise
                log.debug("409 on create of %s (attempt %d); retrying", key, attempt + 1)
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AlreadyExists(f"{key} is being created by another request")

    def replace(self, key: str, source: Path, *, sha256: str) -> None:
        self._put_file(self._blob(key), source, sha256)

    def _put_file(self, name: str, source: Path, sha256: str, **condition: str) -> None:
        # One put_object (up to 5 GB), not a multipart upload: the condition applies directly.
        with open(source, "rb") as body:
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=body,
                ContentType="application/octet-stream",
                Metadata={"sha256": sha256},
                **condition,
            )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._blob(key))

    def open(self, key: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._blob(key))
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(key) from exc
            raise
        return cast(BinaryIO, response["Body"])

    def blob_sha256(self, key: str) -> str | None:
        """The sha256 recorded when the blob was stored (one HEAD); FileNotFoundError if missing."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._blob(key))
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(key) from exc
            raise
        value = head.get("Metadata", {}).get("sha256")
        return str(value) if value else None

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        """(key, size) of every blob: a full listing, for migration and reindexing only."""
        start = len(self.prefix) + len(BLOBS)
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + BLOBS
        ):
            for obj in page.get("Contents", ()):
                yield str(obj["Key"])[start:], int(obj["Size"])

    def download_url(self, key: str, filename: str) -> str | None:
        if self.download != "redirect":
            return None  # proxy: the app streams open()
        params = {"Bucket": self.bucket, "Key": self._blob(key)}
        if _PLAIN_FILENAME.match(filename):
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url = self.signer.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
        )
        return str(url)

    # -- documents ---------------------------------------------------------------------------

    def doc_version(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._doc(key))
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return str(head["ETag"])

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        """Body and ETag; an unchanged cached document is revalidated with a 304."""
        name = self._doc(key)
        with self._lock:
            cached = self._cache.get(name)
        condition = {"IfNoneMatch": cached[0]} if cached is not None else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name, **condition)
        except ClientError as exc:
            if _status(exc) == 304 and cached is not None:
                self._remember(name, *cached)
                return cached[1], cached[0]
            if _status(exc) == 404:
                self._forget(name)
                return None
            raise
        with response["Body"] as stream:
            body = bytes(stream.read())
        etag = str(response["ETag"])
        self._remember(name, etag, body)
        return body, etag

    def write_doc(self, key: str, body: bytes, *, expect_version: str | None) -> str:
        name = self._doc(key)
        condition = (
            {"IfMatch": expect_version} if expect_version is not None else {"IfNoneMatch": "*"}
        )
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=body,
                ContentType="application/json" if key.endswith(".json") else "text/plain",
                **condition,
            )
        except ClientError as exc:
            # AWS answers If-Match on a missing object with 404 NoSuchKey: it moved, too.
            if _is_refusal(exc) or (expect_version is not None and _status(exc) == 404):
                raise Conflict(f"{key} changed") from exc
            raise
        etag = str(response["ETag"])
        self._remember(name, etag, body)
        return etag

    def put_doc(self, key: str, body: bytes) -> None:
        name = self._doc(key)
        response = self.client.put_object(
            Bucket=self.bucket, Key=name, Body=body, ContentType="text/plain"
        )
        self._remember(name, str(response["ETag"]), body)

    def discard_doc(self, key: str) -> None:
        name = self._doc(key)
        self.client.delete_object(Bucket=self.bucket, Key=name)
        self._forget(name)

    def list_docs(self, prefix: str) -> list[str]:
        """Keys of the documents directly under *prefix*; hidden ones (probes) left out."""
        start = len(self.prefix)
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._doc(prefix) + "/", Delimiter="/"
        ):
            for obj in page.get("Contents", ()):
                key = str(obj["Key"])[start:]
                if not key.rpartition("/")[2].startswith("."):
                    keys.append(key)
        return sorted(keys)

    def _remember(self, name: str, etag: str, body: bytes) -> None:
        if len(body) > _CACHE_MAX_BODY:
            return
        with self._lock:
            self._cache[name] = (etag, body)
            self._cache.move_to_end(name)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
