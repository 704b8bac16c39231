"""Core metadata read out of wheels and sdists, with bounded work (PEP 427, 643, 658)."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from cheesecellar.distributions import parse_filename
from cheesecellar.errors import InvalidDistribution
from cheesecellar.metadata import (
    MAX_METADATA_BYTES,
    parse_core_metadata,
    read_metadata,
)

from .conftest import SdistFactory, TarMember, WheelFactory, core_metadata, write_tar, write_zip

WHEEL_FILE = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
# A hostile archive must be refused without inflating it: well under a second.
QUICK = 2.0


def read(path: Path) -> bytes:
    return read_metadata(path, parse_filename(path.name)).raw


# ------------------------------------------------------------------------------- wheels


def test_wheel_metadata_is_extracted_byte_for_byte(make_wheel: WheelFactory) -> None:
    # PEP 658: the .metadata file is the wheel's METADATA, byte for byte; CRLF, trailing
    # spaces and a non-ASCII description must survive.
    raw = core_metadata(
        "demo-pkg", "1.0", requires_python=">=3.8", description="Ünïcode body  \r\nline 2\n"
    )
    wheel = make_wheel(metadata=raw)
    meta = read_metadata(wheel.path, parse_filename(wheel.filename))
    assert meta.raw == raw
    assert (meta.name, meta.version, meta.metadata_version) == ("demo-pkg", "1.0", "2.1")


@pytest.mark.parametrize(
    ("requires_python", "expected"),
    [(">=3.8", ">=3.8"), (">=3.9,<4", ">=3.9,<4"), (None, None), ("UNKNOWN", None)],
)
def test_wheel_requires_python(
    make_wheel: WheelFactory, requires_python: str | None, expected: str | None
) -> None:
    wheel = make_wheel(requires_python=requires_python)
    assert read_metadata(wheel.path, parse_filename(wheel.filename)).requires_python == expected


def test_wheel_metadata_found_under_unnormalized_dist_info(tmp_path: Path) -> None:
    # PEP 427 readers accept older spellings of the .dist-info directory name.
    raw = core_metadata("Demo.Pkg", "1.0")
    path = write_zip(
        tmp_path / "Demo.Pkg-1.0-py3-none-any.whl",
        {"Demo.Pkg-1.0.dist-info/METADATA": raw, "Demo.Pkg-1.0.dist-info/WHEEL": WHEEL_FILE},
    )
    assert read(path) == raw


def test_wheel_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    path.write_bytes(b"this is not a zip archive\n" * 10)
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file\. Not a valid zip"):
        read(path)


def test_wheel_truncated_zip(make_wheel: WheelFactory) -> None:
    wheel = make_wheel()
    wheel.path.write_bytes(wheel.data[: len(wheel.data) // 2])
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file\."):
        read(wheel.path)


def test_wheel_without_metadata(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "demo_pkg-1.0-py3-none-any.whl",
        {"demo_pkg/__init__.py": b"", "demo_pkg-1.0.dist-info/WHEEL": WHEEL_FILE},
    )
    with pytest.raises(InvalidDistribution) as excinfo:
        read(path)
    assert str(excinfo.value) == (
        "Invalid distribution file. The wheel has no .dist-info/METADATA for 'demo_pkg'."
    )


def test_wheel_metadata_of_another_project_is_not_used(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "demo_pkg-1.0-py3-none-any.whl",
        {"other-1.0.dist-info/METADATA": core_metadata("other", "1.0")},
    )
    with pytest.raises(InvalidDistribution, match="has no .dist-info/METADATA"):
        read(path)


def test_wheel_metadata_naming_another_project(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "demo_pkg-1.0-py3-none-any.whl",
        {"demo_pkg-1.0.dist-info/METADATA": core_metadata("other", "1.0")},
    )
    with pytest.raises(InvalidDistribution) as excinfo:
        read(path)
    assert str(excinfo.value) == (
        "Invalid distribution file. Its metadata names 'other', the filename 'demo_pkg'."
    )


def test_metadata_without_name_or_version(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "demo_pkg-1.0-py3-none-any.whl",
        {"demo_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo_pkg\n"},
    )
    with pytest.raises(InvalidDistribution, match="Metadata has no Name or Version"):
        read(path)


def _zeros_zip(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("demo_pkg-1.0.dist-info/METADATA", date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=False) as member:
            head = core_metadata("demo_pkg", "1.0")
            member.write(head)
            chunk = bytes(1024 * 1024)
            written = len(head)
            while written < size:
                part = chunk[: size - written]
                member.write(part)
                written += len(part)
    return path


def test_zip_bomb_metadata_declared_too_large(tmp_path: Path) -> None:
    # 20 MiB of zeros deflate to ~20 KB; the declared size alone must stop the read.
    path = _zeros_zip(tmp_path / "demo_pkg-1.0-py3-none-any.whl", 20 * 1024 * 1024)
    assert path.stat().st_size < 100_000
    started = time.perf_counter()
    with pytest.raises(InvalidDistribution, match="METADATA is too large"):
        read(path)
    assert time.perf_counter() - started < QUICK


def _patch_sizes(data: bytes, declared: int) -> bytes:
    """Make the zip's local and central headers claim *declared* uncompressed bytes."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    struct.pack_into("<I", out, local + 22, declared)
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, declared)
    return bytes(out)


def test_zip_bomb_metadata_lying_about_its_size(tmp_path: Path) -> None:
    # The headers claim 1 KiB; the member inflates to 20 MiB. The read stops at the declared
    # size and the CRC no longer matches: refused, quickly, without inflating everything.
    path = _zeros_zip(tmp_path / "demo_pkg-1.0-py3-none-any.whl", 20 * 1024 * 1024)
    path.write_bytes(_patch_sizes(path.read_bytes(), 1024))
    started = time.perf_counter()
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file\."):
        read(path)
    assert time.perf_counter() - started < QUICK


def test_zip_bomb_metadata_just_over_the_limit(tmp_path: Path) -> None:
    path = _zeros_zip(tmp_path / "demo_pkg-1.0-py3-none-any.whl", MAX_METADATA_BYTES + 1)
    with pytest.raises(InvalidDistribution, match="too large"):
        read(path)


# ------------------------------------------------------------------------------- sdists


def test_sdist_tar_gz_pkg_info(make_sdist: SdistFactory) -> None:
    sdist = make_sdist(requires_python=">=3.10")
    meta = read_metadata(sdist.path, parse_filename(sdist.filename))
    assert meta.raw == sdist.metadata
    assert meta.requires_python == ">=3.10"


def test_sdist_zip_pkg_info(make_sdist: SdistFactory) -> None:
    sdist = make_sdist(fmt="zip")
    assert read(sdist.path) == sdist.metadata


def test_sdist_tar_bz2_pkg_info(make_sdist: SdistFactory) -> None:
    sdist = make_sdist(fmt="tar.bz2")
    assert read(sdist.path) == sdist.metadata


def test_sdist_pkg_info_last(tmp_path: Path) -> None:
    raw = core_metadata("demo_pkg", "1.0")
    members = [TarMember(f"demo_pkg-1.0/src/m{i}.py", b"x = %d\n" % i) for i in range(300)]
    members.append(TarMember("demo_pkg-1.0/PKG-INFO", raw))
    path = write_tar(tmp_path / "demo_pkg-1.0.tar.gz", members)
    assert read(path) == raw


def test_sdist_nested_pkg_info_is_not_the_top_level_one(tmp_path: Path) -> None:
    raw = core_metadata("demo_pkg", "1.0")
    path = write_tar(
        tmp_path / "demo_pkg-1.0.tar.gz",
        [
            TarMember("demo_pkg-1.0/src/demo_pkg.egg-info/PKG-INFO", core_metadata("x", "9")),
            TarMember("demo_pkg-1.0/PKG-INFO", raw),
        ],
    )
    assert read(path) == raw


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (
            TarMember("../PKG-INFO", core_metadata("evil", "6.6")),
            "Unsafe member name '../PKG-INFO'",
        ),
        (TarMember("../../escape.txt", b"escaped\n"), "Unsafe member name '../../escape.txt'"),
        (TarMember("demo_pkg-1.0/../PKG-INFO", b"x"), "Unsafe member name"),
        (TarMember("/abs/PKG-INFO", b"x"), "Unsafe member name '/abs/PKG-INFO'"),
        (TarMember("demo_pkg-1.0/link", kind="sym", target="/etc/passwd"), "links outside"),
        (TarMember("demo_pkg-1.0/link", kind="sym", target="../../x"), "links outside"),
        (TarMember("demo_pkg-1.0/hard", kind="hard", target="/etc/passwd"), "links outside"),
    ],
)
@pytest.mark.parametrize("before_pkg_info", [True, False])
def test_sdist_with_members_that_could_escape_is_refused_and_nothing_extracted(
    tmp_path: Path, member: TarMember, why: str, before_pkg_info: bool
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    good = TarMember("demo_pkg-1.0/PKG-INFO", core_metadata("demo_pkg", "1.0"))
    members = [member, good] if before_pkg_info else [good, member]
    path = write_tar(work / "demo_pkg-1.0.tar.gz", members)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidDistribution, match=why):
        read(path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "escape.txt").exists()


def test_sdist_dot_prefixed_pkg_info_is_not_the_top_level_one(tmp_path: Path) -> None:
    raw = core_metadata("demo_pkg", "1.0")
    path = write_tar(
        tmp_path / "demo_pkg-1.0.tar.gz",
        [
            TarMember("./PKG-INFO", core_metadata("evil", "6.6")),
            TarMember("demo_pkg-1.0/PKG-INFO", raw),
        ],
    )
    assert read(path) == raw


@pytest.mark.parametrize(
    "member",
    [
        TarMember("demo_pkg-1.0/PKG-INFO", kind="sym", target="/etc/passwd"),
        TarMember("demo_pkg-1.0/PKG-INFO", kind="sym", target="../../../../etc/passwd"),
        TarMember("demo_pkg-1.0/PKG-INFO", kind="hard", target="/etc/passwd"),
    ],
    ids=["symlink-absolute", "symlink-relative", "hardlink"],
)
def test_sdist_pkg_info_link_is_never_followed(tmp_path: Path, member: TarMember) -> None:
    path = write_tar(tmp_path / "demo_pkg-1.0.tar.gz", [member])
    with pytest.raises(InvalidDistribution) as excinfo:
        read(path)
    assert str(excinfo.value) == (
        "Invalid distribution file. 'demo_pkg-1.0/PKG-INFO' links outside the archive."
    )


def test_sdist_without_pkg_info(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "demo_pkg-1.0.tar.gz", [TarMember("demo_pkg-1.0/setup.py")])
    with pytest.raises(InvalidDistribution, match="The sdist has no top-level PKG-INFO"):
        read(path)


def test_sdist_that_is_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "demo_pkg-1.0.tar.gz"
    path.write_bytes(gzip.compress(b"not a tar archive" * 100))
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file\."):
        read(path)


def test_sdist_that_is_not_compressed_at_all(tmp_path: Path) -> None:
    path = tmp_path / "demo_pkg-1.0.tar.gz"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file\."):
        read(path)


def test_sdist_tar_bomb(tmp_path: Path) -> None:
    # 100 MiB of zeros before PKG-INFO gzip to ~100 KB: a ratio of ~1000, far beyond the
    # ratio of 50 that PyPI accepts. Refused from the member header, without inflating it.
    size = 100 * 1024 * 1024
    path = tmp_path / "demo_pkg-1.0.tar.gz"
    info = tarfile.TarInfo("demo_pkg-1.0/zeros.bin")
    info.size = size
    with gzip.GzipFile(path, "wb", mtime=0) as gz:
        gz.write(info.tobuf(format=tarfile.PAX_FORMAT))
        chunk = bytes(1024 * 1024)
        for _ in range(size // len(chunk)):
            gz.write(chunk)
        raw = core_metadata("demo_pkg", "1.0")
        tail = io.BytesIO()
        with tarfile.open(fileobj=tail, mode="w", format=tarfile.PAX_FORMAT) as tf:
            pkg = tarfile.TarInfo("demo_pkg-1.0/PKG-INFO")
            pkg.size = len(raw)
            tf.addfile(pkg, io.BytesIO(raw))
        gz.write(tail.getvalue())
    assert path.stat().st_size < size // 500
    started = time.perf_counter()
    with pytest.raises(InvalidDistribution) as excinfo:
        read(path)
    assert time.perf_counter() - started < QUICK
    assert str(excinfo.value) == "Invalid distribution file. The archive inflates too far."


def test_sdist_pkg_info_too_large(tmp_path: Path) -> None:
    raw = core_metadata("demo_pkg", "1.0") + b"x" * MAX_METADATA_BYTES
    path = write_tar(tmp_path / "demo_pkg-1.0.tar.gz", [TarMember("demo_pkg-1.0/PKG-INFO", raw)])
    with pytest.raises(InvalidDistribution, match="PKG-INFO is too large"):
        read(path)


# --------------------------------------------------------------------------- PEP 643


# PEP 643: sdist metadata may be served when Metadata-Version >= 2.2 and none of the fields
# an installer needs (Requires-Dist, Requires-Python, Provides-Extra) is Dynamic.
@pytest.mark.parametrize(
    ("metadata_version", "dynamic", "servable"),
    [
        ("1.0", [], False),
        ("1.2", [], False),
        ("2.1", [], False),
        ("2.2", [], True),
        ("2.3", [], True),
        ("2.4", [], True),
        ("2.2", ["Requires-Dist"], False),
        ("2.2", ["requires-dist"], False),
        ("2.2", ["Requires-Python"], False),
        ("2.2", ["Provides-Extra"], False),
        ("2.2", ["Description", "Keywords"], True),
        ("2.4", ["License-Expression", "Requires-Dist"], False),
        ("garbage", [], False),
    ],
)
def test_servable_for_sdist(metadata_version: str, dynamic: list[str], servable: bool) -> None:
    raw = core_metadata(
        "demo", "1.0", metadata_version=metadata_version, extra=[f"Dynamic: {d}" for d in dynamic]
    )
    meta = parse_core_metadata(raw)
    assert meta.dynamic == tuple(dynamic)
    assert meta.servable_for_sdist is servable


def test_missing_metadata_version_means_1_0() -> None:
    meta = parse_core_metadata(b"Name: demo\nVersion: 1.0\n")
    assert meta.metadata_version == "1.0"
    assert meta.servable_for_sdist is False
