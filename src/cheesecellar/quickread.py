"""Read the core metadata member out of a plain, small archive already in memory.

Discovering 100,000 files spends most of its time in zipfile, tarfile and the email parser
(tens of µs per file each). These readers take the common case only: a zip without zip64,
encryption or odd compression; a gzip'd ustar with plain files and directories; a header block
of simple ``Name: value`` lines. Anything else raises `Unusual`, and the caller reads the
archive with the standard library instead. Both paths apply the same checks.
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from collections.abc import Callable
from typing import TypeVar

from .errors import InvalidDistribution

T = TypeVar("T")


class Unusual(Exception):
    """The archive uses something these readers leave to zipfile, tarfile or email."""


def safe_member_name(name: str) -> bool:
    """A relative path that stays inside the archive: no absolute path, drive or '..'."""
    if (
        not name
        or name.startswith(("/", "\\"))
        or "\x00" in name
        or (len(name) > 1 and name[1] == ":")
    ):
        return False
    return ".." not in name.replace("\\", "/").split("/")


# The refusals both paths share, word for word.


def unsafe_name(name: str) -> InvalidDistribution:
    return InvalidDistribution(f"Invalid distribution file. Unsafe member name {name!r}.")


def too_many_members() -> InvalidDistribution:
    return InvalidDistribution("Invalid distribution file. The archive has too many members.")


def zip_inflates_too_far() -> InvalidDistribution:
    return InvalidDistribution(
        "Invalid distribution file. The archive inflates too far (compression ratio over 50)."
    )


def tar_inflates_too_far() -> InvalidDistribution:
    return InvalidDistribution("Invalid distribution file. The archive inflates too far.")


# --------------------------------------------------------------------------------- zip

_END = struct.Struct("<4s4H2LH")  # end of central directory record (APPNOTE 4.3.16)
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header (4.3.12)
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header (4.3.7)


def zip_member(
    data: bytes,
    pick: Callable[[str], bool],
    read: Callable[[bytes], T],
    *,
    max_members: int,
    max_inflated: int,
    max_member: int,
) -> tuple[str, T | None] | None:
    """(name, read(bytes)) of the first member *pick* accepts, None in place of that when it
    declares more than *max_member* bytes; None when no member is picked. Refuses unsafe
    names, too many members and a declared inflation over *max_inflated*, as the zipfile path
    does: all members are checked before the picked one is read."""
    try:
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - _END.size - 0xFFFF))
        if end < 0:
            raise Unusual
        _, disk, cd_disk, on_disk, count, cd_size, cd_offset, comment = _END.unpack_from(data, end)
        if (disk, cd_disk) != (0, 0) or on_disk != count or count == 0xFFFF:
            raise Unusual  # multi-disk or zip64
        if cd_offset + cd_size != end or end + _END.size + comment != len(data):
            raise Unusual  # data before the archive, or trailing bytes
        pos, inflated, names, unsafe = cd_offset, 0, set(), None
        spans: list[tuple[int, int]] = []
        found: tuple[bytes, int, int, int, int, int, int] | None = None
        for _ in range(count):
            (sig, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _,
             offset) = _CENTRAL.unpack_from(data, pos)  # fmt: skip
            raw_name = data[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen]
            if sig != b"PK\x01\x02" or b"\x00" in raw_name or len(raw_name) != nlen:
                raise Unusual
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
            if name in names:
                raise Unusual  # zipfile's view of duplicates differs by call
            names.add(name)
            spans.append((offset, offset + _LOCAL.size + nlen + csize))
            pos += _CENTRAL.size + nlen + xlen + clen
            inflated += usize
            if unsafe is None and not safe_member_name(name):
                unsafe = name
            if found is None and pick(name):
                found = (raw_name, flags, method, crc, csize, usize, offset)
        spans.sort()
        if pos != end or any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
            raise Unusual  # overlapping entries: zipfile refuses some, and says why
        # The order of _check_zip: member count, inflation, then names.
        if count > max_members:
            raise too_many_members()
        if inflated > max_inflated:
            raise zip_inflates_too_far()
        if unsafe is not None:
            raise unsafe_name(unsafe)
        if found is None:
            return None
        raw_name, flags, method, crc, csize, usize, offset = found
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        if flags & 0x1 or method not in (0, 8) or 0xFFFFFFFF in (csize, usize):
            raise Unusual  # encrypted, another compression, or zip64 sizes
        if usize > max_member:
            return name, None
        sig, *_, lnlen, lxlen = _LOCAL.unpack_from(data, offset)
        local_name = data[offset + _LOCAL.size : offset + _LOCAL.size + lnlen]
        if sig != b"PK\x03\x04" or local_name != raw_name:
            raise Unusual
        start = offset + _LOCAL.size + lnlen + lxlen
        following = min((a for a, _ in spans if a > offset), default=cd_offset)
        if start + csize > following:
            raise Unusual
        stored = data[start : start + csize]
        body = zlib.decompressobj(-15).decompress(stored, usize + 1) if method else stored
        if len(body) != usize or zlib.crc32(body) != crc:
            raise Unusual  # let zipfile say what is wrong
    except (struct.error, UnicodeDecodeError, zlib.error) as exc:
        raise Unusual from exc
    return name, read(body)


# --------------------------------------------------------------------------------- tar

_BLOCK = 512
_POSIX_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"
_QUICK_TAR_BYTES = 8 * 1024 * 1024  # larger sdists are streamed by tarfile instead


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise Unusual  # base-256 number
    text = field.split(b"\x00", 1)[0].strip()
    try:
        number = int(text, 8) if text else 0
    except ValueError as exc:
        raise Unusual from exc
    if number < 0:
        raise Unusual
    return number


def tar_gz_member(
    data: bytes,
    pick: Callable[[str], bool],
    read: Callable[[bytes], T],
    *,
    max_members: int,
    max_inflated: int,
    max_member: int,
) -> tuple[str, T | None] | None:
    """(name, read(bytes)) of the first regular member *pick* accepts, None in place of that
    over *max_member* bytes; None when none is picked. Members are checked, and the picked one
    read, in archive order, as the tarfile path does."""
    if data[:2] != b"\x1f\x8b":
        raise Unusual
    try:
        inflater = zlib.decompressobj(31)
        tar = inflater.decompress(data, _QUICK_TAR_BYTES)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise Unusual  # large, truncated, or several gzip members
    except zlib.error as exc:
        raise Unusual from exc
    pos, count, inflated = 0, 0, 0
    found: tuple[str, T | None] | None = None
    while True:
        header = tar[pos : pos + _BLOCK]
        if len(header) < _BLOCK:
            raise Unusual  # no end-of-archive blocks
        if header.count(0) == _BLOCK:
            if pos == 0:
                raise Unusual
            return found
        magic = header[257:265]
        checksum = 256 + sum(header[:148]) + sum(header[156:])
        if magic not in (_POSIX_MAGIC, _GNU_MAGIC) or checksum != _octal(header[148:156]):
            raise Unusual
        kind = header[156:157]
        if kind not in (b"0", b"\x00", b"5"):
            raise Unusual  # links, long names, pax headers, devices: tarfile decides
        try:
            name = header[:100].split(b"\x00", 1)[0].decode()
            prefix = header[345:500].split(b"\x00", 1)[0].decode()  # tarfile joins it always
        except UnicodeDecodeError as exc:
            raise Unusual from exc
        if name.endswith("/") != (kind == b"5"):
            raise Unusual  # old-style directories, or ones without a slash
        name = name.rstrip("/") if kind == b"5" else name
        if prefix:
            name = f"{prefix}/{name}"
        size = _octal(header[124:136]) if kind != b"5" else 0
        if count >= max_members:
            raise too_many_members()
        count += 1
        inflated += size
        if inflated > max_inflated:
            raise tar_inflates_too_far()
        if not safe_member_name(name):
            raise unsafe_name(name)
        body_at = pos + _BLOCK
        if found is None and kind != b"5" and pick(name):
            if size > max_member:
                return name, None  # refused at once, as the tarfile path does
            body = tar[body_at : body_at + size]
            if len(body) != size:
                raise Unusual
            found = (name, read(body))
        pos = body_at + -(-size // _BLOCK) * _BLOCK


# ------------------------------------------------------------------------- header block

# Header lines as email.feedparser recognises them (its headerRE, without continuations).
_HEADER_BLOCK = re.compile(r"(?:[\041-\071\073-\176]+:[^\n]*(?:\n|\Z))*")


def header_fields(raw: bytes) -> dict[str, list[str]]:
    """Lower-cased field names and their values, from the header block of a core metadata
    file (up to the first empty line); what email's compat32 parser would give."""
    text = raw.decode("utf-8", "replace")
    if "\r" in text or text.startswith("From "):
        raise Unusual
    head = text.split("\n\n", 1)[0]
    if not _HEADER_BLOCK.fullmatch(head):
        raise Unusual  # continuation lines, or a line that ends the headers
    fields: dict[str, list[str]] = {}
    for line in head.split("\n"):
        if line:  # only the last line of a file without a body is empty
            name, _, value = line.partition(":")
            fields.setdefault(name.lower(), []).append(value.lstrip(" \t"))  # as compat32
    return fields
