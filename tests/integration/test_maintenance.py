"""The subcommands that work on a package directory directly: reindex, yank, status."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from .servers import Server, ServerFactory
from .support import NORMALIZED, PASSWORD, PROJECT, USER, Builder, client_env, run

pytestmark = pytest.mark.integration


def cli(*args: str | Path, check: bool = True) -> str:
    return run([sys.executable, "-m", "cheesecellar", *map(str, args)], env=client_env(),
               check=check).stdout  # fmt: skip


def manifest(root: Path) -> dict[str, dict[str, object]]:
    doc = json.loads((root / ".cheesecellar" / "index" / f"{NORMALIZED}.json").read_text())
    files: dict[str, dict[str, object]] = doc["files"]
    return files


def json_page(server: Server) -> dict[str, object]:
    resp = server.request(
        "GET", f"/simple/{NORMALIZED}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    doc: dict[str, object] = json.loads(resp.body)
    return doc


def test_reindex_records_a_directory_filled_by_hand(
    tmp_path: Path, build: Builder, server_factory: ServerFactory
) -> None:
    root = tmp_path / "packages"
    # pypiserver users keep files flat and in sub-folders.
    (root / "linode").mkdir(parents=True)
    dist1, dist2 = build("0.1"), build("0.2")
    shutil.copy(dist1.wheel, root / dist1.wheel.name)
    shutil.copy(dist1.sdist, root / "linode" / dist1.sdist.name)
    shutil.copy(dist2.wheel, root / "linode" / dist2.wheel.name)
    (root / "README.txt").write_text("not a distribution")

    out = cli("reindex", root)
    assert out.splitlines()[-1].startswith(
        "reindexed 1 project(s); 3 file(s) newly recorded in "
    ), out
    assert "hashing: 3/3 files" in out  # progress, in its non-terminal form
    files = manifest(root)
    assert sorted(files) == sorted([dist1.wheel.name, dist1.sdist.name, dist2.wheel.name])
    for path in (dist1.wheel, dist1.sdist, dist2.wheel):
        assert files[path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert files[path.name]["size"] == path.stat().st_size
        # Discovery only hashes: the metadata is read when a page first needs it.
        assert files[path.name]["unread"] is True
        assert "metadata_sha256" not in files[path.name]
        assert "requires_python" not in files[path.name]
    assert files[dist1.sdist.name]["path"] == f"linode/{dist1.sdist.name}"

    # Idempotent: a second run records nothing new and changes nothing.
    before = (root / ".cheesecellar" / "index" / f"{NORMALIZED}.json").read_bytes()
    again = cli("reindex", root)
    assert "; 0 file(s) newly recorded" in again
    assert (root / ".cheesecellar" / "index" / f"{NORMALIZED}.json").read_bytes() == before

    # An interrupted run leaves some projects unrecorded: a rerun completes them.
    (root / ".cheesecellar" / "index" / f"{NORMALIZED}.json").unlink()
    assert "; 3 file(s) newly recorded" in cli("reindex", root)
    assert sorted(manifest(root)) == sorted(files)

    # The first page read records each file's Requires-Python and .metadata hash, once.
    with zipfile.ZipFile(dist2.wheel) as zf:
        metadata = zf.read(f"{PROJECT}-0.2.dist-info/METADATA")
    digest = hashlib.sha256(metadata).hexdigest()
    server = server_factory(roots=[root])
    page = server.get(f"/simple/{NORMALIZED}/")
    assert page.status == 200
    wheel_link = f'href="../../packages/{dist2.wheel.name}#sha256='
    anchor = next(line for line in page.text.splitlines() if wheel_link in line)
    assert 'data-requires-python="&gt;=3.8"' in anchor
    assert f'data-dist-info-metadata="sha256={digest}"' in anchor
    assert page.text.count('data-requires-python="&gt;=3.8"') == 3
    assert page.text.count("data-dist-info-metadata=") == 3  # the sdist has Metadata 2.2+
    completed = manifest(root)
    assert all("unread" not in record for record in completed.values())
    assert completed[dist2.wheel.name]["metadata_sha256"] == digest
    assert completed[dist1.sdist.name]["requires_python"] == ">=3.8"
    served = server.get(f"/packages/{dist2.wheel.name}.metadata")
    assert (served.status, served.body) == (200, metadata)
    # Served from disk the first time, kept for the next.
    assert (root / ".cheesecellar" / "metadata" / f"{dist2.wheel.name}.metadata").read_bytes() == (
        metadata
    )


def test_reindex_refuses_a_missing_directory(tmp_path: Path) -> None:
    proc = run(
        [sys.executable, "-m", "cheesecellar", "reindex", tmp_path / "nope"],
        env=client_env(),
        check=False,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stdout


def test_yank_and_status_from_the_command_line(
    server_factory: ServerFactory, build: Builder
) -> None:
    server = server_factory()
    dist = build("0.1")
    assert server.upload(dist.wheel).status == 200
    assert server.upload(dist.sdist).status == 200

    out = cli("yank", server.root, "Linode.Example", "0.1", "--reason", "use 0.2 <now>")
    assert out == f"yanked {dist.wheel.name}, {dist.sdist.name}\n"
    page = server.get(f"/simple/{NORMALIZED}/").text
    assert page.count('data-yanked="use 0.2 &lt;now&gt;"') == 2
    doc = json_page(server)
    assert [f["yanked"] for f in doc["files"]] == ["use 0.2 <now>"] * 2  # type: ignore[attr-defined]

    cli("unyank", server.root, PROJECT, "0.1", "--filename", dist.sdist.name)
    by_name = {f["filename"]: f for f in json_page(server)["files"]}  # type: ignore[attr-defined]
    assert by_name[dist.sdist.name]["yanked"] is False
    assert by_name[dist.wheel.name]["yanked"] == "use 0.2 <now>"

    assert cli("status", server.root, PROJECT, "archived", "--reason", "moved") == (
        f"{NORMALIZED} is now archived\n"
    )
    page = server.get(f"/simple/{NORMALIZED}/").text
    assert '<meta name="pypi:project-status" content="archived">' in page
    assert '<meta name="pypi:project-status-reason" content="moved">' in page
    assert json_page(server)["project-status"] == {"status": "archived", "reason": "moved"}
    refused = server.upload(build("0.2").wheel)
    assert refused.status == 403
    assert refused.text == f"Project {PROJECT!r} is archived; uploads are closed.\n"
    assert not (server.root / f"{PROJECT}-0.2-py3-none-any.whl").exists()

    cli("status", server.root, PROJECT, "quarantined")
    assert json_page(server)["files"] == []
    assert server.get(f"/packages/{dist.wheel.name}").status == 404


def test_status_over_http_needs_a_login(server: Server, build: Builder) -> None:
    assert server.upload(build("0.1").wheel).status == 200
    fields = [(":action", "set_status"), ("name", PROJECT), ("status", "deprecated")]
    assert server.post_form(fields).status == 401
    assert server.post_form(fields, auth=(USER, "wrong")).status == 403
    assert "project-status" not in json_page(server)
    ok = server.post_form(fields, auth=(USER, PASSWORD))
    assert (ok.status, ok.text) == (200, f"{NORMALIZED} is deprecated\n")
    assert json_page(server)["project-status"] == {"status": "deprecated"}
    bad = server.post_form([*fields[:2], ("status", "sleeping")], auth=(USER, PASSWORD))
    assert bad.status == 400
    assert bad.text.startswith("Unknown project status 'sleeping'")
