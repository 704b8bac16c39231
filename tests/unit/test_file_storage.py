"""The directory storage's temp files: batches of documents, and what a crash leaves behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cheesecellar.storage import FileStorage

HOUR = 3600


def test_a_batch_of_documents_leaves_no_temp_folder(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.prepare()
    with storage.deferred_sync():
        for n in range(20):
            storage.write_doc(f"index/p{n}.json", f'{{"n": {n}}}'.encode(), expect_version=None)
        (folder,) = (tmp_path / ".cheesecellar" / "tmp").iterdir()
        assert folder.name.startswith("batch-") and not list(folder.iterdir())
    assert not list((tmp_path / ".cheesecellar" / "tmp").iterdir())
    got = storage.read_doc("index/p7.json")
    assert got is not None and got[0] == b'{"n": 7}'


def test_start_up_removes_what_a_crash_left_an_hour_ago_and_keeps_newer(tmp_path: Path) -> None:
    tmp = tmp_path / ".cheesecellar" / "tmp"
    stale_batch, fresh_batch = tmp / "batch-1-2", tmp / "batch-3-4"
    for folder in (stale_batch, fresh_batch):
        folder.mkdir(parents=True)
        (folder / "doc-0123").write_bytes(b"{}")
    stale_upload, fresh_upload = tmp / "upload-old", tmp / "upload-new"
    stale_upload.write_bytes(b"half")
    fresh_upload.write_bytes(b"in flight")
    old = time.time() - 2 * HOUR
    for path in (stale_batch, stale_upload):
        os.utime(path, (old, old))

    FileStorage(tmp_path).prepare()

    assert sorted(p.name for p in tmp.iterdir()) == ["batch-3-4", "upload-new"]
    assert (fresh_batch / "doc-0123").read_bytes() == b"{}"
