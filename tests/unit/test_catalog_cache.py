"""A process keeps a bounded number of records: projects read earlier are dropped to make
room, and every project is still served exactly as its manifest stands, by any process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cheesecellar import catalog as catalog_module
from cheesecellar.catalog import Catalog
from cheesecellar.scanner import Scanner
from cheesecellar.storage import FileStorage

from .conftest import SdistFactory, WheelFactory

PROJECTS = [f"proj-{n}" for n in range(8)]


def test_records_kept_stay_within_the_budget_and_every_project_stays_exact(
    tmp_path: Path,
    make_wheel: WheelFactory,
    make_sdist: SdistFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_module, "_RECORDS_KEPT", 10)
    root = tmp_path / "root"
    root.mkdir()
    for name in PROJECTS:
        for version in ("1.0", "2.0"):
            for dist in (make_wheel(name, version), make_sdist(name, version)):
                shutil.copy(dist.path, root / dist.filename)
    storage = FileStorage(root)
    storage.prepare()
    catalog = Catalog(storage, [root])
    Scanner(catalog).start()
    catalog.complete_all()
    other = Catalog(FileStorage(root), [root])  # another process of the same server

    for _ in range(2):
        for name in PROJECTS:
            project = catalog.project(name)
            assert project is not None
            assert sorted(r.filename for r in project.files) == sorted(
                json.loads((root / ".cheesecellar" / "index" / f"{name}.json").read_bytes())[
                    "files"
                ]
            )
            assert len(project.files) == 4
            assert catalog._projects.held <= 10
    assert catalog._projects.held == 8  # two projects of four files each
    # A project dropped here and changed by another process is read again as it now stands.
    yanked = other.yank(PROJECTS[0], "1.0", "broken")
    assert len(yanked) == 2
    for name in PROJECTS[1:]:
        catalog.project(name)
    project = catalog.project(PROJECTS[0])
    assert project is not None
    assert {r.filename for r in project.files if r.yanked == "broken"} == set(yanked)
