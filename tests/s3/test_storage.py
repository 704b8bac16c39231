"""The Storage contract on every backend (directory, moto, SeaweedFS), and S3-only behaviour:
presigned URLs, 304 revalidation, the startup probe."""

from __future__ import annotations

import functools
import hashlib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cheesecellar.errors import ConfigError, UnsafePath
from cheesecellar.storage import AlreadyExists, Conflict, Storage

from ..loopback import free_port
from .support import (
    Store,
    boto_client,
    client_env,
    node_command,
    race,
    run,
    s3_storage,
    sha256_of,
)

pytestmark = pytest.mark.integration


Stage = Callable[[Storage, bytes], Path]


@pytest.fixture
def stage() -> Iterator[Stage]:
    """Bytes in the storage's own temp file, as an upload stages them; removed afterwards."""
    made: list[Path] = []

    def make(storage: Storage, data: bytes) -> Path:
        fd, path = storage.temp_file()
        with open(fd, "wb") as out:
            out.write(data)
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink(missing_ok=True)


def test_blobs_are_created_once(storage: Storage, stage: Stage) -> None:
    first, second = stage(storage, b"first bytes"), stage(storage, b"other bytes")
    storage.put_new("demo-1.0.tar.gz", first, sha256=sha256_of(first))
    with pytest.raises(AlreadyExists):
        storage.put_new("demo-1.0.tar.gz", second, sha256=sha256_of(second))
    with storage.open("demo-1.0.tar.gz") as stream:
        assert stream.read() == b"first bytes"
    storage.replace("demo-1.0.tar.gz", second, sha256=sha256_of(second))
    with storage.open("demo-1.0.tar.gz") as stream:
        assert stream.read() == b"other bytes"
    storage.delete("demo-1.0.tar.gz")
    storage.delete("demo-1.0.tar.gz")  # a missing blob is not an error
    with pytest.raises(FileNotFoundError):
        storage.open("demo-1.0.tar.gz")


def test_racing_creates_have_one_winner(storage: Storage, stage: Stage) -> None:
    for round_ in range(3):
        key = f"race-{round_}.0.tar.gz"
        sources = [stage(storage, f"writer {i} round {round_}".encode()) for i in range(8)]
        results = race(
            [
                functools.partial(storage.put_new, key, source, sha256=sha256_of(source))
                for source in sources
            ]
        )
        winners = [i for i, result in enumerate(results) if result is None]
        assert len(winners) == 1, results
        assert all(isinstance(r, AlreadyExists) for r in results if r is not None), results
        with storage.open(key) as stream:
            assert stream.read() == f"writer {winners[0]} round {round_}".encode()


def test_documents_change_by_compare_and_swap(storage: Storage) -> None:
    key = "index/demo.json"
    assert storage.read_doc(key) is None and storage.doc_version(key) is None
    v1 = storage.write_doc(key, b'{"n": 1}', expect_version=None)
    with pytest.raises(Conflict):
        storage.write_doc(key, b'{"n": 9}', expect_version=None)  # create-only
    assert storage.doc_version(key) == v1
    v2 = storage.write_doc(key, b'{"n": 2}', expect_version=v1)
    assert v2 != v1
    with pytest.raises(Conflict):
        storage.write_doc(key, b'{"n": 9}', expect_version=v1)  # stale version
    assert storage.read_doc(key) == (b'{"n": 2}', v2)
    storage.write_doc("index/other.json", b"{}", expect_version=None)
    assert storage.list_docs("index") == ["index/demo.json", "index/other.json"]
    storage.discard_doc(key)
    storage.discard_doc(key)
    assert storage.read_doc(key) is None and storage.doc_version(key) is None
    with pytest.raises(Conflict):
        storage.write_doc(key, b"{}", expect_version=v2)  # gone is moved, too


def test_racing_document_creates_have_one_winner(storage: Storage) -> None:
    for round_ in range(3):
        key = f"index/created-{round_}.json"
        results = race(
            [
                functools.partial(storage.write_doc, key, f"{i}".encode(), expect_version=None)
                for i in range(8)
            ]
        )
        winners = [i for i, result in enumerate(results) if isinstance(result, str)]
        assert len(winners) == 1, results
        assert all(isinstance(r, Conflict) for i, r in enumerate(results) if i not in winners)
        # The version handed back is the document's, body and all.
        assert storage.read_doc(key) == (f"{winners[0]}".encode(), results[winners[0]])


def test_concurrent_writers_lose_no_update(storage: Storage) -> None:
    key = "index/counter.json"
    storage.write_doc(key, b"0", expect_version=None)

    def add_five() -> int:
        retries = 0
        for _step in range(5):
            while True:
                got = storage.read_doc(key)
                assert got is not None
                try:
                    storage.write_doc(key, str(int(got[0]) + 1).encode(), expect_version=got[1])
                    break
                except Conflict:
                    retries += 1
        return retries

    results = race([add_five] * 4)
    assert all(isinstance(r, int) for r in results), results
    got = storage.read_doc(key)
    assert got is not None and got[0] == b"20"


@pytest.mark.parametrize("key", ["../escape.whl", "a/../../b.whl", "/abs.whl", "a//b.whl", ""])
def test_unsafe_keys_are_refused(storage: Storage, key: str, stage: Stage) -> None:
    source = stage(storage, b"x")
    with pytest.raises(UnsafePath):
        storage.put_new(key, source, sha256=sha256_of(source))
    with pytest.raises(UnsafePath):
        storage.read_doc(key)


# --------------------------------------------------------------------------- S3 only


def test_unchanged_document_is_revalidated_not_downloaded(weed: Store) -> None:
    """Another node's write is seen on the next read; an unchanged one costs a 304 (§6)."""
    bucket = weed.new_bucket()
    reader, writer = s3_storage(weed.endpoint, bucket), s3_storage(weed.endpoint, bucket)
    statuses: list[int] = []

    def seen(http_response: Any, **_: Any) -> None:
        statuses.append(http_response.status_code)

    reader.client.meta.events.register("after-call.s3.GetObject", seen)
    version = writer.write_doc("index/p.json", b'{"files": {}}', expect_version=None)
    assert reader.read_doc("index/p.json") == (b'{"files": {}}', version)
    assert reader.read_doc("index/p.json") == (b'{"files": {}}', version)
    newer = writer.write_doc("index/p.json", b'{"files": {"a": 1}}', expect_version=version)
    assert reader.read_doc("index/p.json") == (b'{"files": {"a": 1}}', newer)
    assert statuses == [200, 304, 200]


def test_presigned_download(weed: Store, stage: Stage) -> None:
    storage = s3_storage(weed.endpoint, weed.new_bucket())
    storage.put_new(
        "demo-1.0-py3-none-any.whl",
        stage(storage, b"wheel bytes"),
        sha256=hashlib.sha256(b"wheel bytes").hexdigest(),
    )
    url = storage.download_url("demo-1.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl")
    assert url is not None and "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=30) as got:
        assert got.read() == b"wheel bytes"
        assert got.headers["Content-Disposition"] == (
            'attachment; filename="demo-1.0-py3-none-any.whl"'
        )
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=30)
    assert refused.value.code == 403
    refused.value.close()


def test_presigned_url_carries_the_public_endpoint(weed: Store, stage: Stage) -> None:
    port = urlsplit(weed.endpoint).port
    storage = s3_storage(
        weed.endpoint, weed.new_bucket(), public_endpoint_url=f"http://localhost:{port}"
    )
    storage.put_new(
        "demo-1.0.tar.gz",
        stage(storage, b"sdist bytes"),
        sha256=hashlib.sha256(b"sdist bytes").hexdigest(),
    )
    url = storage.download_url("demo-1.0.tar.gz", "demo-1.0.tar.gz")
    assert url is not None and url.startswith(f"http://localhost:{port}/")
    with urllib.request.urlopen(url, timeout=30) as got:
        assert got.read() == b"sdist bytes"


def test_proxy_mode_leaves_downloads_to_the_app(moto_endpoint: str, stage: Stage) -> None:
    bucket = f"cc-proxy-{uuid.uuid4().hex[:12]}"
    boto_client(moto_endpoint).create_bucket(Bucket=bucket)
    storage = s3_storage(moto_endpoint, bucket, download="proxy")
    storage.put_new(
        "demo-1.0.tar.gz",
        stage(storage, b"sdist bytes"),
        sha256=hashlib.sha256(b"sdist bytes").hexdigest(),
    )
    assert storage.download_url("demo-1.0.tar.gz", "demo-1.0.tar.gz") is None
    assert storage.local_path("demo-1.0.tar.gz") is None
    with storage.open("demo-1.0.tar.gz") as stream:
        assert stream.read(4) == b"sdis" and stream.read() == b"t bytes"


def test_probe_leaves_nothing_behind(weed: Store) -> None:
    bucket = weed.new_bucket()
    s3_storage(weed.endpoint, bucket)
    assert boto_client(weed.endpoint).list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_probe_refuses_a_store_without_conditional_writes(rclone: Store) -> None:
    """rclone `serve s3` silently overwrites; neither the library nor a node accepts it (§8)."""
    with pytest.raises(ConfigError, match="does not refuse conditional writes") as refused:
        s3_storage(rclone.endpoint, "probe-bucket")
    assert rclone.endpoint in str(refused.value)
    assert list((rclone.workdir / "data" / "probe-bucket").rglob("*.probe-*")) == []
    cmd = node_command("s3://probe-bucket/idx", rclone.endpoint, free_port())
    node = run(cmd, env=client_env(), check=False, timeout=60)
    assert node.returncode == 2, node.stdout
    assert "does not refuse conditional writes" in node.stdout
    assert "Traceback" not in node.stdout


def test_bad_storage_url_is_a_config_error() -> None:
    from cheesecellar.storage.s3 import S3Storage

    with pytest.raises(ConfigError, match="storage"):
        S3Storage.from_url("s3://Bad_Bucket/x")


def test_unreachable_store_or_wrong_secret_is_a_config_error(
    weed: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match="cannot write to") as refused:
        s3_storage(nowhere, "cc-nowhere")
    assert nowhere in str(refused.value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ConfigError, match="SignatureDoesNotMatch"):
        s3_storage(weed.endpoint, weed.new_bucket())
