"""Two real nodes on one SeaweedFS bucket: uploads on one are served by the other at once, and
races between them are decided by the store (scale-out.md §8, failure matrix)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

from .support import Cluster, build_wheel, client_env, race, run, sha256_of

pytestmark = pytest.mark.integration


def twine_upload(node_url: str, home: Path, *files: Path) -> None:
    home.mkdir(exist_ok=True)
    cmd: list[str | os.PathLike[str]] = [
        sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", node_url, "-u", "anyone", "-p", "anything", *files,
    ]  # fmt: skip
    run(cmd, env=client_env(HOME=str(home)))


def test_upload_on_a_is_installed_from_b(cluster: Cluster, tmp_path: Path) -> None:
    a, b = cluster.nodes[:2]
    wheel = build_wheel(tmp_path / "dist", "s3-demo-pkg", "1.0", payload="uploaded via A")
    twine_upload(a.url, tmp_path / "home", wheel)
    # The very next request on B lists it: B revalidates the manifest on every request.
    assert b.files("s3-demo-pkg") == {wheel.name: sha256_of(wheel)}
    redirect = b.get(f"/packages/{wheel.name}")
    assert redirect.status == 302
    assert redirect.headers["location"].startswith(cluster.store.endpoint + "/")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    pip: list[str | os.PathLike[str]] = [
        venv / "bin" / "python", "-m", "pip", "--isolated", "install", "--no-cache-dir",
        "--disable-pip-version-check", "--index-url", f"{b.url}simple/", "s3-demo-pkg",
    ]  # fmt: skip
    run(pip, env=client_env(PIP_CONFIG_FILE=os.devnull))
    imported = run([venv / "bin" / "python", "-I", "-c", "import s3_demo_pkg as m; print(m.VALUE)"])
    assert imported.stdout.strip() == "uploaded via A"


def test_same_filename_on_both_nodes_has_one_winner(cluster: Cluster, tmp_path: Path) -> None:
    nodes = cluster.nodes[:2]
    for round_ in range(3):
        version = f"2.0.{round_}"
        wheels = [
            build_wheel(tmp_path / f"{round_}-{i}", "s3-race-pkg", version, payload=f"node {i}")
            for i in range(2)
        ]
        assert wheels[0].name == wheels[1].name and sha256_of(wheels[0]) != sha256_of(wheels[1])
        results = race([functools.partial(n.upload, w) for n, w in zip(nodes, wheels, strict=True)])
        assert sorted(r.status for r in results) == [200, 409], results
        winner = wheels[[r.status for r in results].index(200)]
        loser = next(r for r in results if r.status == 409)
        assert b"File already exists" in loser.body
        for node in nodes:
            assert node.files("s3-race-pkg")[winner.name] == sha256_of(winner)
            assert node.download(winner.name) == winner.read_bytes()


def test_distinct_files_on_both_nodes_are_all_listed(cluster: Cluster, tmp_path: Path) -> None:
    nodes = cluster.nodes[:2]
    wheels = [build_wheel(tmp_path, "s3-many-pkg", f"3.0.{i}") for i in range(8)]
    results = race([functools.partial(nodes[i % 2].upload, w) for i, w in enumerate(wheels)])
    assert [r.status for r in results] == [200] * 8, results
    expected = {w.name: sha256_of(w) for w in wheels}
    for node in nodes:
        assert node.files("s3-many-pkg") == expected


def test_blob_without_record_is_invisible_then_adopted(cluster: Cluster, tmp_path: Path) -> None:
    """A node that died after the blob PUT, before the manifest, left only an orphan blob."""
    a, b = cluster.nodes[:2]
    wheel = build_wheel(tmp_path / "one", "s3-crash-pkg", "1.0")
    different = build_wheel(tmp_path / "two", "s3-crash-pkg", "1.0", payload="other bytes")
    cluster.storage().put_new(
        wheel.name, wheel, sha256=sha256_of(wheel)
    )  # exactly what the crash leaves behind
    for node in (a, b):
        assert node.files("s3-crash-pkg") == {}
        assert node.get(f"/packages/{wheel.name}").status == 404
        assert wheel.name not in node.get("/simple/").body.decode()
    # Not listed, different sha256: refused; the same bytes again: adopted.
    assert b.upload(different).status == 409
    twine_upload(a.url, tmp_path / "home", wheel)
    for node in (a, b):
        assert node.files("s3-crash-pkg") == {wheel.name: sha256_of(wheel)}
        assert node.download(wheel.name) == wheel.read_bytes()


def test_proxy_node_streams_files_from_the_bucket(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.nodes[0]
    wheel = build_wheel(tmp_path, "s3-proxied-pkg", "1.0")
    assert a.upload(wheel).status == 200
    proxy = cluster.start("proxy", "--s3-download", "proxy")
    resp = proxy.get(f"/packages/{wheel.name}")
    assert resp.status == 200 and resp.body == wheel.read_bytes()
    metadata = proxy.get(f"/packages/{wheel.name}.metadata")
    assert metadata.status == 200 and b"Name: s3-proxied-pkg" in metadata.body
    assert proxy.stop() == 0
