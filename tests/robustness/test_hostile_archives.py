"""Hostile archives through the upload endpoint: each is a 400, in bounded time and memory.

The uploads run in a subprocess whose address space is limited to 1 GiB, so an archive that
makes the server inflate gigabytes into memory fails the test instead of the machine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from .archives import (
    WHEEL_INFO,
    RawEntry,
    gzip_of_zeros,
    make_sdist,
    metadata_text,
    plain_entry,
    raw_zip,
    zeros_deflated,
)
from .checks import IndexState

LIMIT = 1 << 30  # RLIMIT_AS of the worker
WORKER = Path(__file__).with_name("_archive_worker.py")
NAME = "bomb-pkg"
PKG = NAME.replace("-", "_")


def _wheel(version: str, *middle: RawEntry, metadata: RawEntry | None = None) -> bytes:
    info = f"{PKG}-{version}.dist-info"
    return raw_zip(
        [
            plain_entry(f"{PKG}/__init__.py", b"VALUE = 1\n"),
            *middle,
            metadata or plain_entry(f"{info}/METADATA", metadata_text(NAME, version)),
            plain_entry(f"{info}/WHEEL", WHEEL_INFO),
            plain_entry(f"{info}/RECORD", b""),
        ]
    )


def zip_bomb_wheel(version: str) -> bytes:
    """A valid wheel with one member that inflates to 2 GiB (compression ratio ~1000)."""
    zeros, size, crc = zeros_deflated(2048)
    return _wheel(version, RawEntry(f"{PKG}/zeros.bin", zeros, 8, crc, size))


def overlapping_bomb_wheel(version: str) -> bytes:
    """1,000 directory entries that all point at one 1 GiB member: 1 TB declared."""
    zeros, size, crc = zeros_deflated(1024)
    first = RawEntry(f"{PKG}/data-0000.bin", zeros, 8, crc, size)
    shared = [
        RawEntry(f"{PKG}/data-{i:04}.bin", b"", 8, 0, 0, share_with=1) for i in range(1, 1000)
    ]
    return _wheel(version, first, *shared)


def huge_metadata_wheel(version: str, *, lie: bool) -> bytes:
    """METADATA that inflates to 1 GiB; with *lie* the directory says it is 200 bytes."""
    head = metadata_text(NAME, version)
    stream, size, crc = zeros_deflated(1024, head)
    declared = len(head) + 200 if lie else size
    name = f"{PKG}-{version}.dist-info/METADATA"
    return _wheel(version, metadata=RawEntry(name, stream, 8, crc, declared, cd_size=declared))


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def escaping_sdist(version: str, tag: str, *, hostile_first: bool) -> bytes:
    """Symlinks, hard links, '..' and absolute members next to a valid PKG-INFO."""
    stem = f"{PKG}-{version}"
    hostile: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = [
        _member(f"{stem}/passwd", tarfile.SYMTYPE, "/etc/passwd"),
        _member(f"{stem}/up", tarfile.SYMTYPE, "../../.."),
        _member(f"{stem}/hard", tarfile.LNKTYPE, "/etc/passwd"),
        (_member(f"../../escape-{tag}.txt"), b"escaped\n"),
        (_member(f"{stem}/../../../escape2-{tag}.txt"), b"escaped\n"),
        (_member(f"/tmp/abs-{tag}.txt"), b"escaped\n"),
        (_member(f"{stem}/up/escape3-{tag}.txt"), b"escaped\n"),
    ]
    if hostile_first:
        return make_sdist(NAME, version, before=hostile).data
    return make_sdist(NAME, version, after=hostile).data


def sdist_bomb(version: str) -> bytes:
    """A .tar.gz whose first member declares and inflates to 3 GiB, PKG-INFO after it."""
    stem = f"{PKG}-{version}"
    big = tarfile.TarInfo(f"{stem}/zeros.bin")
    big.size = 3 << 30
    head = big.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    pkg_info = metadata_text(NAME, version)
    info = tarfile.TarInfo(f"{stem}/PKG-INFO")
    info.size = len(pkg_info)
    tail = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape") + pkg_info
    tail += b"\0" * (-len(tail) % 512) + b"\0" * 1024
    return gzip_of_zeros(head, 3 << 10, tail)


def tarball_named_wheel(version: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = metadata_text(NAME, version)
        info = tarfile.TarInfo(f"{PKG}-{version}.dist-info/METADATA")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.integration
def test_hostile_archives_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    root, sentinel = tmp_path / "site" / "root", tmp_path / "site" / "sentinel"
    root.mkdir(parents=True)
    sentinel.mkdir()
    (sentinel / "secret.txt").write_bytes(b"SENTINEL\n")
    state = IndexState(root, sentinel)
    tag = uuid.uuid4().hex
    wheel = f"{PKG}-{{v}}-py3-none-any.whl"
    sdist = f"{PKG}-{{v}}.tar.gz"
    archives = {
        "zip-bomb-wheel": (wheel, zip_bomb_wheel),
        "overlapping-entries-wheel": (wheel, overlapping_bomb_wheel),
        "metadata-declared-1GiB": (wheel, lambda v: huge_metadata_wheel(v, lie=False)),
        "metadata-size-lies": (wheel, lambda v: huge_metadata_wheel(v, lie=True)),
        "wheel-not-a-zip": (wheel, lambda v: os.urandom(64 * 1024)),
        "wheel-is-a-tarball": (wheel, tarball_named_wheel),
        "sdist-links-dotdot-first": (sdist, lambda v: escaping_sdist(v, tag, hostile_first=True)),
        "sdist-links-dotdot-last": (sdist, lambda v: escaping_sdist(v, tag, hostile_first=False)),
        "sdist-bomb-3GiB-member": (sdist, sdist_bomb),
    }
    cases = []
    for number, (label, (pattern, build)) in enumerate(archives.items(), start=1):
        version = f"{number}.0"
        path = tmp_path / "archives" / label / pattern.format(v=version)
        path.parent.mkdir(parents=True)
        path.write_bytes(build(version))
        cases.append(
            {
                "label": label,
                "path": str(path),
                "name": NAME,
                "version": version,
                "filename": path.name,
            }
        )
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(LIMIT), str(root)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"the worker died (limit {LIMIT} bytes):\n{proc.stderr[-5000:]}"
    results = json.loads(proc.stdout)
    print(f"\n{'archive':28} {'size':>9} {'status':>6} {'seconds':>8} {'maxrss +KiB':>11}")
    for r in results:
        grown = r["maxrss_kib_after"] - r["maxrss_kib_before"]
        print(f"{r['label']:28} {r['size']:>9} {r['status']:>6} {r['seconds']:>8.3f} {grown:>11}")
    wrong = {r["label"]: (r["status"], r["body"]) for r in results if r["status"] != 400}
    assert not wrong, f"expected 400 for every hostile archive, got {wrong}"
    for r in results:
        assert r["body"].startswith("Invalid distribution file"), (r["label"], r["body"])
    state.check()
    escaped = [
        p for p in (Path("/tmp") / f"abs-{tag}.txt", *tmp_path.rglob(f"*{tag}*")) if p.exists()
    ]
    assert not escaped, escaped
