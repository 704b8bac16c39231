"""The in-memory archive readers give exactly what zipfile, tarfile and the email parser give.

Each generated archive is read twice through `read_metadata`: with its bytes (the quick
readers, falling back to the standard library for anything unusual) and without them (the
standard library alone). Metadata and error messages must be identical. Header blocks are
compared with email's compat32 parser directly.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheesecellar import quickread
from cheesecellar.distributions import parse_filename
from cheesecellar.errors import InvalidDistribution
from cheesecellar.metadata import parse_core_metadata, read_metadata

SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

WHEEL = "demo_pkg-1.0-py3-none-any.whl"
SDIST_TGZ = "demo_pkg-1.0.tar.gz"
SDIST_ZIP = "demo_pkg-1.0.zip"

PLAIN_MEMBERS = [
    "demo_pkg-1.0.dist-info/METADATA",
    "Demo.Pkg-1.0.dist-info/METADATA",
    "other-1.0.dist-info/METADATA",
    "demo_pkg-1.0.dist-info/RECORD",
    "demo_pkg-1.0/PKG-INFO",
    "demo_pkg-1.0/sub/PKG-INFO",
    "PKG-INFO",
    "demo_pkg/__init__.py",
]
ODD_MEMBERS = [
    "./PKG-INFO",
    "../evil",
    "/abs/PKG-INFO",
    "C:/drive",
    "a\\..\\b",
    "ünïcode/PKG-INFO",
    "x" * 120 + "/PKG-INFO",
]
MEMBER_NAMES = PLAIN_MEMBERS * 4 + ODD_MEMBERS

PLAIN_NAMES = ["Metadata-Version", "Name", "name", "Version", "Requires-Python", "Dynamic"]
ODD_NAMES = ["Summary", "From ", "X Y", "", "Ünï"]
header_name = st.sampled_from(PLAIN_NAMES * 15 + ODD_NAMES)
header_value = st.sampled_from(
    ["2.1", "2.2", "demo-pkg", "Demo.Pkg", "1.0", ">=3.8", "UNKNOWN", "", "  spaced  ",
     "requires-python", "Requires-Dist", "a:b", "\t tab"]
)  # fmt: skip
line_end = st.sampled_from(["\n"] * 40 + ["\r\n", "\r", "\n "])


@st.composite
def metadata_text(draw: st.DrawFn) -> bytes:
    lines = [
        f"{draw(header_name)}:{draw(st.sampled_from([' ', '', '  ']))}{draw(header_value)}"
        f"{draw(line_end)}"
        for _ in range(draw(st.integers(0, 8)))
    ]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["\n", "body\n"])))
    body = draw(st.sampled_from(["", "\nLong description: here\n", "\n\nmore"]))
    text = "".join(lines) + body
    return text.encode("utf-8") if draw(st.booleans()) else text.encode("latin-1", "replace")


def good_metadata(data: bytes) -> bytes:
    return b"Metadata-Version: 2.2\nName: demo-pkg\nVersion: 1.0\nRequires-Python: >=3.9\n" + data


member_data = st.one_of(metadata_text(), metadata_text().map(good_metadata), st.binary(max_size=64))
members = st.lists(
    st.tuples(st.sampled_from(MEMBER_NAMES), member_data), max_size=6, unique_by=lambda m: m[0]
).flatmap(
    # Now and then a name twice: zipfile and tarfile each have their own view of that.
    lambda entries: st.sampled_from([entries] * 9 + [entries + entries[:1]])
)


def outcome(path: Path, data: bytes | None) -> tuple[object, ...]:
    try:
        meta = read_metadata(path, parse_filename(path.name), data)
    except InvalidDistribution as exc:
        return ("refused", str(exc))
    return ("read", meta.raw, meta.name, meta.version, meta.metadata_version,
            meta.requires_python, meta.dynamic)  # fmt: skip


def same_both_ways(path: Path) -> tuple[object, ...]:
    data = path.read_bytes()
    quick, standard = outcome(path, data), outcome(path, None)
    assert quick == standard
    return quick


def build_zip(path: Path, entries: list[tuple[str, bytes]], stored: bool) -> Path:
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of what is tried
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in entries:
                zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return path


@SETTINGS
@given(entries=members, stored=st.booleans(), target=st.sampled_from([WHEEL, SDIST_ZIP]))
def test_zip_archives_read_alike(
    tmp_path: Path, entries: list[tuple[str, bytes]], stored: bool, target: str
) -> None:
    same_both_ways(build_zip(tmp_path / target, entries, stored))


TAR_KINDS = st.sampled_from(["file"] * 20 + ["dir", "dir", "sym", "hard", "fifo"])
TAR_FORMATS = st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])


def build_tar(entries: list[tuple[str, bytes, str]], fmt: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tf:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "hard": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]  # fmt: skip
            info.linkname = "../outside" if name.endswith("PKG-INFO") else "demo_pkg-1.0/PKG-INFO"
            tf.addfile(info)
    return raw.getvalue()


@SETTINGS
@given(
    entries=st.lists(
        st.tuples(st.sampled_from(MEMBER_NAMES), member_data, TAR_KINDS),
        max_size=6,
        unique_by=lambda m: m[0],
    ),
    fmt=TAR_FORMATS,
    damage=st.sampled_from([None] * 7 + ["truncate", "flip", "no-end"]),
)
def test_tar_gz_archives_read_alike(
    tmp_path: Path, entries: list[tuple[str, bytes, str]], fmt: int, damage: str | None
) -> None:
    try:
        tar = build_tar(entries, fmt)
    except (ValueError, UnicodeError):
        return  # a name this tar format cannot hold
    if damage == "truncate":
        tar = tar[: len(tar) // 2]
    elif damage == "flip" and len(tar) > 600:
        tar = tar[:520] + bytes([tar[520] ^ 0xFF]) + tar[521:]
    elif damage == "no-end":
        tar = tar.rstrip(b"\x00")
    path = tmp_path / SDIST_TGZ
    path.write_bytes(gzip.compress(tar, mtime=0))
    same_both_ways(path)


def test_plain_archives_take_the_quick_path(tmp_path: Path) -> None:
    meta = good_metadata(b"")
    wheel = build_zip(tmp_path / WHEEL, [("demo_pkg-1.0.dist-info/METADATA", meta)], False)
    limits = {"max_members": 10, "max_inflated": 10_000, "max_member": 1000}
    assert quickread.zip_member(wheel.read_bytes(), lambda n: True, bytes, **limits) == (
        "demo_pkg-1.0.dist-info/METADATA",
        meta,
    )
    tar = build_tar([("demo_pkg-1.0", b"", "dir"), ("demo_pkg-1.0/PKG-INFO", meta, "file")],
                    tarfile.PAX_FORMAT)  # fmt: skip
    got = quickread.tar_gz_member(
        gzip.compress(tar), lambda n: n.endswith("PKG-INFO"), bytes, **limits
    )
    assert got == ("demo_pkg-1.0/PKG-INFO", meta)
    assert same_both_ways(wheel)[0:3] == ("read", meta, "demo-pkg")


@pytest.mark.parametrize("kind", ["sym", "hard", "fifo"], ids=["symlink", "hardlink", "fifo"])
def test_links_and_devices_are_left_to_tarfile(kind: str) -> None:
    tar = build_tar([("demo_pkg-1.0/link", b"", kind)], tarfile.USTAR_FORMAT)
    with pytest.raises(quickread.Unusual):
        quickread.tar_gz_member(
            gzip.compress(tar),
            lambda n: True,
            bytes,
            max_members=10,
            max_inflated=10_000,
            max_member=1000,
        )


def reference(raw: bytes) -> tuple[object, ...]:
    """The header reading as email's compat32 parser does it (what cheesecellar did first)."""
    msg = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(
        raw.decode("utf-8", "replace")
    )
    name, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
    if not name or not version:
        return ("refused",)
    requires = (msg.get("Requires-Python") or "").strip() or None
    return (
        name,
        version,
        (msg.get("Metadata-Version") or "1.0").strip(),
        None if requires == "UNKNOWN" else requires,
        tuple(v.strip() for v in msg.get_all("Dynamic") or ()),
    )


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(raw=st.one_of(metadata_text(), metadata_text().map(good_metadata)))
def test_header_blocks_parse_as_email_does(raw: bytes) -> None:
    try:
        meta = parse_core_metadata(raw)
    except InvalidDistribution:
        assert reference(raw) == ("refused",)
        return
    got = (meta.name, meta.version, meta.metadata_version, meta.requires_python, meta.dynamic)
    assert got == reference(raw)
