"""Distribution files built in memory: small valid wheels and sdists, and hostile zips.

`raw_zip` writes zip files by hand so that sizes, CRCs and offsets can lie; `zeros_deflated`
makes deflate streams that inflate to gigabytes without spending time compressing them.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .support import sha256


@dataclass(frozen=True)
class Dist:
    """A distribution file in memory, with the name and version its upload form carries."""

    name: str
    version: str
    filename: str
    data: bytes

    @property
    def sha256(self) -> str:
        return sha256(self.data)

    def save(self, folder: Path) -> Path:
        path = folder / self.filename
        path.write_bytes(self.data)
        return path


def metadata_text(name: str, version: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"{key}: {value}" for key, value in extra]
    return ("\n".join(lines) + "\n\nA test distribution.\n").encode("utf-8")


WHEEL_INFO = (
    b"Wheel-Version: 1.0\nGenerator: robustness\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)


def make_wheel(
    name: str,
    version: str,
    *,
    extra: Sequence[tuple[str, str]] = (),
    payload: bytes = b"",
    members: Sequence[tuple[str, bytes]] = (),
    compress: int = zipfile.ZIP_DEFLATED,
) -> Dist:
    """A small but valid wheel of *name* and *version*; *payload* makes its bytes unique."""
    stem = f"{name.replace('-', '_')}-{version}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        zf.writestr(f"{name.replace('-', '_')}/__init__.py", b"VALUE = 1\n")
        if payload:
            zf.writestr(f"{name.replace('-', '_')}/payload.bin", payload)
        for member, data in members:
            zf.writestr(member, data)
        zf.writestr(f"{stem}.dist-info/METADATA", metadata_text(name, version, extra))
        zf.writestr(f"{stem}.dist-info/WHEEL", WHEEL_INFO)
        zf.writestr(f"{stem}.dist-info/RECORD", b"")
    return Dist(name, version, f"{stem}-py3-none-any.whl", buf.getvalue())


def make_sdist(
    name: str,
    version: str,
    *,
    extra: Sequence[tuple[str, str]] = (),
    before: Sequence[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = (),
    after: Sequence[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = (),
) -> Dist:
    """A .tar.gz sdist with a top-level PKG-INFO; *before*/*after* are extra raw members."""
    stem = f"{name.replace('-', '_')}-{version}"
    buf = io.BytesIO()

    def add(tf: tarfile.TarFile, item: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> None:
        if isinstance(item, tuple):
            info, data = item
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        else:
            tf.addfile(item)

    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for item in before:
            add(tf, item)
        pkg_info = metadata_text(name, version, extra)
        add(tf, (tarfile.TarInfo(f"{stem}/PKG-INFO"), pkg_info))
        add(tf, (tarfile.TarInfo(f"{stem}/setup.py"), b"from setuptools import setup\nsetup()\n"))
        for item in after:
            add(tf, item)
    return Dist(name, version, f"{stem}.tar.gz", buf.getvalue())


def zeros_deflated(
    mib: int, head: bytes = b"", tail: bytes = b"", wbits: int = -15
) -> tuple[bytes, int, int]:
    """A deflate stream of *head*, *mib* MiB of zeros and *tail*: (stream, size, crc32).

    The zeros are one full-flushed 1 MiB block repeated: a stream that inflates to gigabytes
    costs no compression time and about 1 KiB per MiB.
    """
    assert mib % 16 == 0
    zero = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    start = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zero) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(zero) + comp.flush(zlib.Z_FULL_FLUSH) == block
    stream = start + block * mib + comp.compress(tail) + comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    chunk = bytes(16 << 20)
    for _ in range(mib // 16):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    return stream, len(head) + (mib << 20) + len(tail), crc


def gzip_of_zeros(head: bytes, mib: int, tail: bytes) -> bytes:
    """A .gz file of *head*, *mib* MiB of zeros and *tail*, built without compressing them."""
    stream, size, crc = zeros_deflated(mib, head, tail)
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    return header + stream + struct.pack("<II", crc, size & 0xFFFFFFFF)


@dataclass
class RawEntry:
    """One zip entry written by hand, so that sizes and offsets can lie."""

    name: str
    data: bytes  # as stored (compressed)
    method: int
    crc: int
    size: int  # uncompressed size in the local header
    cd_size: int | None = None  # uncompressed size in the central directory (None: same)
    share_with: int | None = None  # index of an earlier entry whose local data this reuses


def raw_zip(entries: Sequence[RawEntry]) -> bytes:
    """A zip file from raw entries (no zip64: every size below 4 GiB)."""
    out = io.BytesIO()
    offsets: list[int] = []
    for entry in entries:
        if entry.share_with is not None:
            offsets.append(offsets[entry.share_with])
            continue
        offsets.append(out.tell())
        name = entry.name.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                entry.method,
                0,
                0x21,
                entry.crc,
                len(entry.data),
                entry.size,
                len(name),
                0,
            )
            + name
            + entry.data
        )
    central = out.tell()
    for entry, offset in zip(entries, offsets, strict=True):
        source = entries[entry.share_with] if entry.share_with is not None else entry
        name = entry.name.encode()
        size = entry.cd_size if entry.cd_size is not None else source.size
        out.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                source.method,
                0,
                0x21,
                source.crc,
                len(source.data),
                size,
                len(name),
                0,
                0,
                0,
                0,
                0o644 << 16,
                offset,
            )
            + name
        )
    end = out.tell()
    out.write(
        struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), end - central, central, 0
        )
    )
    return out.getvalue()


def deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


def plain_entry(name: str, data: bytes) -> RawEntry:
    return RawEntry(name, deflate(data), 8, zlib.crc32(data), len(data))
