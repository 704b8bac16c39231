"""`pypi-server migrate DIR --storage ...` and `pypi-server reindex --storage ...` on the nodes'
bucket, as an admin runs them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .support import Cluster, build_wheel, run, sha256_of

pytestmark = pytest.mark.integration


def test_migrate_and_reindex_commands(cluster: Cluster, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "packages", "s3-cli-pkg", "1.0")
    cli: list[str | os.PathLike[str]] = [sys.executable, "-m", "cheesecellar"]
    where = ["--storage", cluster.url, "--s3-endpoint", cluster.store.endpoint]
    first = run([*cli, "migrate", tmp_path / "packages", *where])
    assert "1 copied, 1 recorded, 0 already there" in first.stdout
    again = run([*cli, "migrate", tmp_path / "packages", *where])
    assert "0 copied, 0 recorded, 1 already there" in again.stdout
    assert cluster.nodes[1].files("s3-cli-pkg") == {wheel.name: sha256_of(wheel)}
    cluster.storage().discard_doc("index/s3-cli-pkg.json")
    assert cluster.nodes[0].files("s3-cli-pkg") == {}
    rebuilt = run([*cli, "reindex", *where])
    assert "reindexed " in rebuilt.stdout and " recorded, 0 dropped" in rebuilt.stdout
    assert cluster.nodes[0].files("s3-cli-pkg") == {wheel.name: sha256_of(wheel)}
    refused = run([*cli, "migrate", tmp_path / "packages"], check=False)
    assert refused.returncode == 2 and "--storage" in refused.stdout
