"""`migrate` a package directory into the nodes' bucket, and `rebuild` lost manifests from blobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheesecellar.catalog import Catalog
from cheesecellar.s3tools import MigrateSummary, migrate, rebuild
from cheesecellar.scanner import Scanner
from cheesecellar.storage import FileStorage

from .support import Cluster, build_wheel, sha256_of

pytestmark = pytest.mark.integration


def test_migrate_is_resumable_and_served_by_the_nodes(cluster: Cluster, tmp_path: Path) -> None:
    directory = tmp_path / "packages"
    first = build_wheel(directory, "s3-migrated", "1.0")
    second = build_wheel(directory / "sub", "s3-migrated", "1.1")
    local = FileStorage(directory)
    local.prepare()
    recorded = Catalog(local, [directory])
    Scanner(recorded).start()  # what `pypi-server reindex DIR` records
    recorded.yank("s3-migrated", "1.0", "broken build")
    late = build_wheel(directory, "s3-migrated-late", "2.0")  # copied in after the reindex
    storage = cluster.storage()
    storage.put_new(
        second.name, second, sha256=sha256_of(second)
    )  # an interrupted earlier run stored this blob only
    calls: list[tuple[int, int, str]] = []

    summary = migrate(directory, storage, lambda *call: calls.append(call))

    assert summary == MigrateSummary(files=3, copied=2, recorded=3, skipped=0, conflicts=())
    assert calls[-1] == (3, 3, "") and len(calls) == 4
    assert migrate(directory, storage) == MigrateSummary(3, 0, 0, 3, ())
    for node in cluster.nodes[:2]:
        assert node.files("s3-migrated") == {
            first.name: sha256_of(first),
            second.name: sha256_of(second),
        }
        assert node.files("s3-migrated-late") == {late.name: sha256_of(late)}
        assert node.download(second.name) == second.read_bytes()
        page = node.get("/simple/s3-migrated/").body.decode()
        assert 'data-yanked="broken build"' in page  # recorded facts came along
        metadata = node.get(f"/packages/{late.name}.metadata")
        assert metadata.status == 200 and b"Name: s3-migrated-late" in metadata.body


def test_migrate_reports_names_the_bucket_holds_with_other_bytes(
    cluster: Cluster, tmp_path: Path
) -> None:
    ours = build_wheel(tmp_path / "packages", "s3-conflicting", "1.0")
    theirs = build_wheel(tmp_path / "elsewhere", "s3-conflicting", "1.0", payload="theirs")
    storage = cluster.storage()
    storage.put_new(theirs.name, theirs, sha256=sha256_of(theirs))
    summary = migrate(tmp_path / "packages", storage)
    assert summary == MigrateSummary(
        files=1, copied=0, recorded=0, skipped=0, conflicts=(ours.name,)
    )
    assert cluster.nodes[0].files("s3-conflicting") == {}


def test_rebuild_restores_lost_manifests_and_drops_gone_files(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.nodes[:2]
    kept = [build_wheel(tmp_path, "s3-rebuilt", version) for version in ("1.0", "1.1")]
    pruned = build_wheel(tmp_path, "s3-pruned", "1.0")
    survivor = build_wheel(tmp_path, "s3-pruned", "1.1")
    for wheel in (*kept, pruned, survivor):
        assert a.upload(wheel).status == 200
    storage = cluster.storage()
    storage.discard_doc("index/s3-rebuilt.json")  # a lost manifest
    storage.discard_doc("index/_projects.json")  # and a lost project list
    storage.delete(pruned.name)  # a blob deleted by hand
    assert b.files("s3-rebuilt") == {}
    calls: list[tuple[int, int, str]] = []

    summary = rebuild(storage, lambda *call: calls.append(call))

    assert {w.name for w in kept} <= set(summary.added)
    assert pruned.name in summary.removed and survivor.name not in summary.added
    assert calls[-1] == (len(summary.added), len(summary.added), "")
    for node in (a, b):
        assert node.files("s3-rebuilt") == {w.name: sha256_of(w) for w in kept}
        assert node.files("s3-pruned") == {survivor.name: sha256_of(survivor)}
        listing = node.get("/simple/").body.decode()
        assert "s3-rebuilt" in listing and "s3-pruned" in listing
        metadata = node.get(f"/packages/{kept[0].name}.metadata")
        assert metadata.status == 200 and b"Name: s3-rebuilt" in metadata.body
    again = rebuild(storage)
    assert (again.added, again.removed) == ((), ())
