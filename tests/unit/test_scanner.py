"""First discovery of many hand-copied files: forked hashing processes record exactly what one
process would, report progress, and a process that dies leaves its share to the parent."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from cheesecellar import scanner as scanner_module
from cheesecellar.catalog import Catalog, Upload
from cheesecellar.distributions import normalize_name as normalize
from cheesecellar.errors import InsufficientStorage
from cheesecellar.scanner import Scanner
from cheesecellar.storage import FileStorage

from .conftest import Dist, SdistFactory, WheelFactory

PROJECTS = ("alpha-one", "Beta.Two", "gamma_three", "delta", "epsilon-5")


@pytest.fixture
def corpus(make_wheel: WheelFactory, make_sdist: SdistFactory) -> list[Dist]:
    return [
        make(name, version, requires_python=f">=3.{minor}")
        for minor, name in enumerate(PROJECTS, start=8)
        for version in ("1.0", "1.1", "2.0")
        for make in (make_wheel, make_sdist)
    ]


def _copy_in(dists: list[Dist], root: Path) -> None:
    (root / "team").mkdir(parents=True)
    for index, dist in enumerate(dists):
        shutil.copy(dist.path, (root / "team" if index % 3 == 0 else root) / dist.filename)


def _discover(root: Path, jobs: int) -> tuple[int, list[tuple[int, int, str]], Scanner]:
    storage = FileStorage(root)
    storage.prepare()
    calls: list[tuple[int, int, str]] = []
    scanner = Scanner(Catalog(storage, [root]))
    found = scanner.start(lambda done, total, name: calls.append((done, total, name)), jobs=jobs)
    return found, calls, scanner


def _discovered(tmp_path: Path, corpus: list[Dist]) -> tuple[Path, Scanner]:
    """The corpus copied into a new root and discovered by one process."""
    root = tmp_path / "root"
    _copy_in(corpus, root)
    return root, _discover(root, jobs=1)[2]


def _manifests(root: Path) -> dict[str, Any]:
    """Every manifest, without what differs between two discoveries (time, inode)."""
    docs = {}
    for path in sorted((root / ".cheesecellar" / "index").iterdir()):
        doc = json.loads(path.read_bytes())
        for record in doc.get("files", {}).values():
            if isinstance(record, dict):
                del record["uploaded"], record["inode"]
        docs[path.name] = doc
    return docs


def test_forked_discovery_records_what_one_process_does(
    tmp_path: Path, corpus: list[Dist], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scanner_module, "_FORK_FROM", 2)
    single, forked = tmp_path / "single", tmp_path / "forked"
    _copy_in(corpus, single)
    _copy_in(corpus, forked)

    found_single, calls_single, _ = _discover(single, jobs=1)
    found_forked, calls_forked, scanner = _discover(forked, jobs=3)

    assert found_single == found_forked == len(corpus) == 30
    assert _manifests(forked) == _manifests(single)
    names = json.loads((forked / ".cheesecellar" / "index" / "_projects.json").read_bytes())
    # Named as the filenames spell them until the metadata is read (test_first_use_reads...).
    assert names == {
        "alpha-one": "alpha_one",
        "beta-two": "beta_two",
        "delta": "delta",
        "epsilon-5": "epsilon_5",
        "gamma-three": "gamma_three",
    }
    # One process names each file as it goes; the forked ones report counts only.
    assert {c[2] for c in calls_single[:-1]} == {d.filename for d in corpus}
    assert calls_forked[-1] == (30, 30, "")
    assert {c[2] for c in calls_forked} == {""}
    # The parent learned every recorded file: nothing is found again on the next check.
    assert scanner.refresh() == 0


def test_forked_discovery_hashes_in_other_processes(
    tmp_path: Path, corpus: list[Dist], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scanner_module, "_FORK_FROM", 2)
    _copy_in(corpus, tmp_path / "root")
    real = scanner_module.read_small

    def spy(*args: Any, **kwargs: Any) -> Any:
        with open(tmp_path / f"pid-{os.getpid()}", "w"):
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(scanner_module, "read_small", spy)
    _discover(tmp_path / "root", jobs=2)
    pids = {int(p.name[4:]) for p in tmp_path.glob("pid-*")}
    assert len(pids) == 2 and os.getpid() not in pids  # this process hashed nothing itself


def test_a_hashing_process_that_dies_leaves_its_share_to_the_parent(
    tmp_path: Path,
    corpus: list[Dist],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(scanner_module, "_FORK_FROM", 2)
    monkeypatch.setattr(Scanner, "_adopt_child", lambda self, *args: os._exit(3))
    root = tmp_path / "root"
    _copy_in(corpus, root)
    single = tmp_path / "single"
    _copy_in(corpus, single)
    _discover(single, jobs=1)

    found, calls, scanner = _discover(root, jobs=2)

    assert found == 30
    assert _manifests(root) == _manifests(single)
    assert caplog.text.count("a hashing process failed; recording its share here") == 2
    assert scanner.refresh() == 0


def test_first_use_reads_the_metadata_discovery_left_unread(
    tmp_path: Path, corpus: list[Dist]
) -> None:
    root, scanner = _discovered(tmp_path, corpus)
    catalog = scanner.catalog
    found = catalog.project("beta-two")
    assert found is not None and len(found.files) == 6
    assert all(r.unread and r.requires_python is r.metadata_sha256 is None for r in found.files)

    project = catalog.complete(found)

    assert project is not None and project.name == "Beta.Two"
    by_name = {d.filename: d for d in corpus}
    for record in project.files:
        dist = by_name[record.filename]
        assert (record.unread, record.requires_python) == (None, ">=3.9")
        if record.filename.endswith(".whl"):
            assert record.metadata_sha256 == hashlib.sha256(dist.metadata).hexdigest()
        else:  # Metadata-Version 2.1: an sdist's PKG-INFO is not served before 2.2
            assert record.metadata_sha256 is None
        assert (record.sha256, record.size) == (
            hashlib.sha256(dist.path.read_bytes()).hexdigest(),
            dist.path.stat().st_size,
        )
    # Recorded for every process, and the index lists the name the metadata gives.
    doc = json.loads((root / ".cheesecellar" / "index" / "beta-two.json").read_bytes())
    assert doc["name"] == "Beta.Two"
    assert all("unread" not in r and r["requires_python"] == ">=3.9" for r in doc["files"].values())
    assert Catalog(catalog.storage, [root]).project_names()[1]["beta-two"] == "Beta.Two"
    assert catalog.complete(catalog.project("beta-two")) == project  # nothing left to read


@pytest.mark.parametrize(
    "refusal",
    [
        InsufficientStorage("No space left on the index's disk."),
        PermissionError(13, "Permission denied"),
    ],
    ids=["full", "read-only"],
)
def test_first_use_on_a_full_or_read_only_disk_serves_what_it_read(
    tmp_path: Path, corpus: list[Dist], monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    root, scanner = _discovered(tmp_path, corpus)
    catalog = scanner.catalog
    before = (root / ".cheesecellar" / "index" / "delta.json").read_bytes()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise refusal

    monkeypatch.setattr(catalog.storage, "write_doc", refuse)
    project = catalog.complete(catalog.project("delta"))

    assert project is not None
    assert {r.requires_python for r in project.files} == {">=3.11"}
    assert (root / ".cheesecellar" / "index" / "delta.json").read_bytes() == before
    # The read is kept in this process: the next request does not read the files again.
    assert catalog.project("delta") is project


def _reader() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "read-metadata"), None)


def test_the_first_request_after_discovery_reads_the_rest_in_the_background(
    tmp_path: Path, corpus: list[Dist], caplog: pytest.LogCaptureFixture
) -> None:
    root, scanner = _discovered(tmp_path, corpus)
    assert _reader() is None  # discovery itself reads nothing
    caplog.set_level(logging.INFO, logger="cheesecellar.scanner")

    assert scanner.refresh() == 0  # no page is read: only the background thread reads metadata
    reader = _reader()  # None when it is already done
    if reader is not None:
        reader.join(timeout=60)
        assert not reader.is_alive()

    index = root / ".cheesecellar" / "index"
    for minor, name in enumerate(PROJECTS, start=8):
        doc = json.loads((index / f"{normalize(name)}.json").read_bytes())
        assert doc["name"] == name
        records = doc["files"].values()
        assert len(records) == 6
        assert all("unread" not in r and r["requires_python"] == f">=3.{minor}" for r in records)
    listed = json.loads((index / "_projects.json").read_bytes())
    assert listed == {normalize(name): name for name in PROJECTS}
    assert "read the metadata of 5 project(s) found on disk in " in caplog.text
    scanner.refresh()
    assert _reader() is None  # once only


def test_one_process_reads_in_the_background_and_the_others_leave_it(
    tmp_path: Path, corpus: list[Dist]
) -> None:
    root, scanner = _discovered(tmp_path, corpus)
    before = _manifests(root)
    with open(root / ".cheesecellar" / "metadata.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as another process of the server would
        scanner.refresh()
        reader = _reader()  # None when it has already found the lock taken
        if reader is not None:
            reader.join(timeout=60)
            assert not reader.is_alive()
    assert _manifests(root) == before  # left to the lock holder (and to page reads)


def test_a_yank_made_while_the_metadata_is_read_stays(
    tmp_path: Path, corpus: list[Dist], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, scanner = _discovered(tmp_path, corpus)
    catalog = scanner.catalog
    real = catalog._read_unread
    yanked: list[str] = []

    def read_while_another_process_yanks(record: Any) -> Any:
        if not yanked:  # another process yanks 1.1 after this one read the manifest
            yanked.extend(catalog.yank("delta", "1.1", "broken"))
        return real(record)

    monkeypatch.setattr(catalog, "_read_unread", read_while_another_process_yanks)
    project = catalog.complete(catalog.project("delta"))

    assert project is not None and len(yanked) == 2
    by_name = {r.filename: r for r in project.files}
    assert {by_name[name].yanked for name in yanked} == {"broken"}
    assert {r.requires_python for r in project.files} == {">=3.11"}
    assert not any(r.unread for r in project.files)
    doc = json.loads((root / ".cheesecellar" / "index" / "delta.json").read_bytes())
    assert sorted(n for n, r in doc["files"].items() if r.get("yanked") == "broken") == sorted(
        yanked
    )


def test_a_request_during_a_rescan_waits_for_the_files_it_records(
    tmp_path: Path,
    corpus: list[Dist],
    make_wheel: WheelFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests skip the scanner's lock when no directory changed; one that comes while another
    request rescans (the directory's new mtime already noted, the new file not yet recorded)
    must still wait for it rather than answer without the file."""
    root, scanner = _discovered(tmp_path, corpus)
    monkeypatch.setattr(scanner_module, "_SETTLE_NS", -1)  # every mtime is trusted at once
    scanner.catalog.complete_all()
    assert scanner.refresh() == 0
    hashing, go_on = threading.Event(), threading.Event()
    real = scanner._adopt_all

    def slow_hashing(*args: Any) -> None:
        hashing.set()
        assert go_on.wait(timeout=30)
        real(*args)

    monkeypatch.setattr(scanner, "_adopt_all", slow_hashing)
    shutil.copy(make_wheel("delta", "3.0").path, root / "delta-3.0-py3-none-any.whl")
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.update(first=scanner.refresh()))
    first.start()
    assert hashing.wait(timeout=30)
    second = threading.Thread(target=lambda: results.update(second=scanner.refresh()))
    second.start()
    second.join(timeout=0.5)
    waited = second.is_alive() and results == {}
    go_on.set()
    first.join(timeout=30)

    assert waited  # for the rescan to finish, not answering without the new file
    second.join(timeout=30)
    assert results == {"first": 1, "second": 0}
    project = scanner.catalog.project("delta")
    assert project is not None
    assert "delta-3.0-py3-none-any.whl" in {r.filename for r in project.files}


@pytest.mark.parametrize("recorded_before", [False, True], ids=["new-project", "known-project"])
def test_an_upload_recorded_while_discovery_hashes_its_project_is_kept(
    tmp_path: Path,
    make_wheel: WheelFactory,
    make_sdist: SdistFactory,
    recorded_before: bool,
) -> None:
    """Discovery writes a project's manifest from what it read (or, for a project that had
    none at start, without reading it again): an upload another process records in between
    makes that write fail its compare-and-swap, and the files of both end up listed."""
    root = tmp_path / "root"
    root.mkdir()
    if recorded_before:
        shutil.copy(make_sdist("delta", "0.9").path, root / "delta-0.9.tar.gz")
        assert _discover(root, jobs=1)[0] == 1
    for dist in (make_wheel("delta", "1.0"), make_sdist("delta", "1.0")):
        shutil.copy(dist.path, root / dist.filename)
    other = Catalog(FileStorage(root), [root])  # another process of the same index
    uploaded = make_wheel("delta", "3.0")

    def upload_once(done: int, total: int, name: str) -> None:
        if done == 0 and name:
            with uploaded.path.open("rb") as stream:
                upload = Upload(uploaded.filename, "delta", "3.0", stream, {})
                assert other.upload(upload) is True

    storage = FileStorage(root)
    scanner = Scanner(Catalog(storage, [root]))
    assert scanner.start(upload_once, jobs=1) == 2

    project = scanner.catalog.project("delta")
    assert project is not None
    expected = {"delta-1.0-py3-none-any.whl", "delta-1.0.tar.gz", "delta-3.0-py3-none-any.whl"}
    assert {r.filename for r in project.files} == expected | (
        {"delta-0.9.tar.gz"} if recorded_before else set()
    )
    record = project.file("delta-3.0-py3-none-any.whl")
    assert record is not None and record.sha256 == hashlib.sha256(uploaded.data).hexdigest()
    assert record.unread is None  # the upload's own record, with its metadata read
    # The uploaded file is in the directory now, and known by its inode: nothing to record.
    assert scanner.refresh() == 0
    names = json.loads((root / ".cheesecellar" / "index" / "_projects.json").read_bytes())
    assert names == {"delta": "delta"}


def test_listing_keeps_regular_files_and_links_to_them_only(
    tmp_path: Path, make_wheel: WheelFactory, make_sdist: SdistFactory
) -> None:
    """What a directory listing records, by the type of each entry."""
    root = tmp_path / "root"
    (root / "odd-1.0-py3-none-any.whl").mkdir(parents=True)  # a folder, however named
    (root / ".hidden").mkdir()
    inside = make_wheel("inside", "1.0")
    shutil.copy(inside.path, root / "odd-1.0-py3-none-any.whl" / inside.filename)
    hidden = make_wheel("hidden", "1.0")
    shutil.copy(hidden.path, root / ".hidden" / hidden.filename)
    plain = make_sdist("plain", "1.0")
    shutil.copy(plain.path, root / plain.filename)
    shutil.copy(plain.path, root / ".plain-2.0.tar.gz")  # a dot-file
    (root / "README.txt").write_text("not a distribution\n")
    os.mkfifo(root / "fifo-1.0.tar.gz")  # opening it would block
    (root / "folder-1.0.tar.gz").symlink_to(root / "odd-1.0-py3-none-any.whl")
    (root / "linked-1.0.tar.gz").symlink_to(root / plain.filename)

    found, _, scanner = _discover(root, jobs=1)

    assert found == 3
    catalog = scanner.catalog
    assert catalog.project_names()[1] == {"inside": "inside", "linked": "linked", "plain": "plain"}
    record = catalog.locate(inside.filename)
    assert record is not None
    assert record[1].path == f"odd-1.0-py3-none-any.whl/{inside.filename}"
    linked = catalog.locate("linked-1.0.tar.gz")
    assert linked is not None
    assert linked[1].sha256 == hashlib.sha256(plain.data).hexdigest()
    assert scanner.refresh() == 0


def test_files_gone_by_hand_are_forgotten_when_others_arrive(
    tmp_path: Path,
    make_wheel: WheelFactory,
    make_sdist: SdistFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scanner_module, "_SETTLE_NS", -1)  # every mtime is trusted at once
    root = tmp_path / "root"
    root.mkdir()
    kept, removed, replaced = (
        make_sdist("kept", "1.0"),
        make_sdist("removed", "1.0"),
        make_wheel("replaced", "1.0"),
    )
    for dist in (kept, removed, replaced):
        shutil.copy(dist.path, root / dist.filename)
    found, _, scanner = _discover(root, jobs=1)
    assert found == 3
    os.unlink(root / removed.filename)
    os.unlink(root / replaced.filename)
    (root / replaced.filename).mkdir()  # the same name, now a folder
    added = make_sdist("added", "1.0")
    shutil.copy(added.path, root / added.filename)

    assert scanner.refresh() == 1
    assert scanner.catalog.project_names()[1] == {"added": "added", "kept": "kept"}
    assert scanner.catalog.locate(removed.filename) is None
    assert scanner.catalog.locate(replaced.filename) is None
