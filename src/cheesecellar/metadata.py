"""Read the core metadata file out of a wheel or sdist, with bounded reads (PEP 658, 643)."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import io
import os
import posixpath
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .distributions import Distribution
from .errors import InvalidDistribution
from .quickread import (
    Unusual,
    header_fields,
    safe_member_name,
    tar_gz_member,
    tar_inflates_too_far,
    too_many_members,
    unsafe_name,
    zip_inflates_too_far,
    zip_member,
)

# A METADATA file is a few KiB; long descriptions can reach a few MiB. Anything larger is hostile.
MAX_METADATA_BYTES = 8 * 1024 * 1024
# Bound the work spent looking for PKG-INFO in a compressed tar stream (PyPI refuses
# compression ratios over 50).
MAX_TAR_MEMBERS = 100_000
MAX_TAR_INFLATED_BYTES = 2 * 1024 * 1024 * 1024
# Fields whose being Dynamic makes sdist metadata unfit to serve (PEP 643).
_RELEVANT_DYNAMIC = {"requires-dist", "requires-python", "provides-extra"}


@dataclass(frozen=True)
class CoreMetadata:
    """The raw core metadata file and the few fields the index uses."""

    raw: bytes
    name: str
    version: str
    metadata_version: str
    requires_python: str | None
    dynamic: tuple[str, ...]

    @property
    def servable_for_sdist(self) -> bool:
        """PEP 643: sdist metadata may be served when it is 2.2+ and nothing relevant is dynamic."""
        try:
            recent = Version(self.metadata_version) >= Version("2.2")
        except (InvalidVersion, ValueError):
            return False
        return recent and not (_RELEVANT_DYNAMIC & {d.lower() for d in self.dynamic})


_FIELDS = ("Name", "Version", "Metadata-Version", "Requires-Python")


def parse_core_metadata(raw: bytes) -> CoreMetadata:
    """Parse the RFC 822 style core metadata; raise InvalidDistribution when unusable."""
    try:
        fields = header_fields(raw)  # plain headers: the same answers, far quicker
        first = {f: fields[f.lower()][0] if f.lower() in fields else "" for f in _FIELDS}
        dynamic = fields.get("dynamic", [])
    except Unusual:
        text = raw.decode("utf-8", "replace")
        msg = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
        first = {f: msg.get(f) or "" for f in _FIELDS}
        dynamic = msg.get_all("Dynamic") or []
    name, version = first["Name"].strip(), first["Version"].strip()
    if not name or not version:
        raise InvalidDistribution("Invalid distribution file. Metadata has no Name or Version.")
    requires_python = first["Requires-Python"].strip() or None
    if requires_python == "UNKNOWN":
        requires_python = None
    return CoreMetadata(
        raw=raw,
        name=name,
        version=version,
        metadata_version=(first["Metadata-Version"] or "1.0").strip(),
        requires_python=requires_python,
        dynamic=tuple(v.strip() for v in dynamic),
    )


def _read_bounded(stream: IO[bytes], what: str) -> bytes:
    data = stream.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidDistribution(f"Invalid distribution file. {what} is larger than 8 MiB.")
    return data


def _inflation_limit(size: int) -> int:
    # PyPI refuses archives that inflate more than 50 times; small archives get some room.
    return min(MAX_TAR_INFLATED_BYTES, max(64 * 1024 * 1024, 50 * size))


def _open(path: str | Path, data: bytes | None) -> tuple[IO[bytes], int]:
    """The archive as a binary stream and its size: *data* when the caller has read it."""
    if data is not None:
        return io.BytesIO(data), len(data)
    fh = open(path, "rb")
    return fh, os.fstat(fh.fileno()).st_size


def _check_zip(zf: zipfile.ZipFile, size: int) -> None:
    """Refuse zip bombs (declared sizes, overlapping entries) and names leaving the archive."""
    infos = zf.infolist()
    if len(infos) > MAX_TAR_MEMBERS:
        raise too_many_members()
    if sum(info.file_size for info in infos) > _inflation_limit(size):
        raise zip_inflates_too_far()
    for info in infos:
        if not safe_member_name(info.filename):
            raise unsafe_name(info.filename)


def read_wheel_metadata(
    path: str | Path, dist: Distribution, data: bytes | None = None
) -> CoreMetadata:
    """The ``{name}-{version}.dist-info/METADATA`` of a wheel (PEP 427)."""
    try:
        stream, size = _open(path, data)
        with stream, zipfile.ZipFile(stream) as zf:
            _check_zip(zf, size)
            infos = {info.filename: info for info in zf.infolist()}
            wanted = canonicalize_name(dist.name)
            found = next((infos[name] for name in infos if _is_wheel_metadata(name, wanted)), None)
            if found is None:
                raise InvalidDistribution(
                    "Invalid distribution file. The wheel has no .dist-info/METADATA "
                    f"for {dist.name!r}."
                )
            if found.file_size > MAX_METADATA_BYTES:
                raise InvalidDistribution("Invalid distribution file. METADATA is too large.")
            with zf.open(found) as member:
                raw = _read_bounded(member, "METADATA")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, InvalidDistribution):
            raise
        raise InvalidDistribution(f"Invalid distribution file. Not a valid zip: {exc}") from exc
    return parse_core_metadata(raw)


def _is_top_pkg_info(member_name: str) -> bool:
    parts = member_name.split("/")  # an absolute "/x/PKG-INFO" is not a top-level member
    return len(parts) == 2 and parts[1] == "PKG-INFO" and parts[0] not in ("", ".", "..")


def read_sdist_metadata(
    path: str | Path, dist: Distribution, data: bytes | None = None
) -> CoreMetadata:
    """The top-level ``PKG-INFO`` of an sdist (.tar.* or .zip)."""
    try:
        stream, size = _open(path, data)
        if dist.extension == ".zip":
            with stream, zipfile.ZipFile(stream) as zf:
                _check_zip(zf, size)
                for info in zf.infolist():
                    if _is_top_pkg_info(info.filename):
                        if info.file_size > MAX_METADATA_BYTES:
                            raise InvalidDistribution(
                                "Invalid distribution file. PKG-INFO is too large."
                            )
                        with zf.open(info) as member:
                            return parse_core_metadata(_read_bounded(member, "PKG-INFO"))
        else:
            # Stream mode: member headers are read in order and skipped members are inflated
            # only as far as their declared sizes, which _scan_tar adds up and bounds.
            with stream, tarfile.open(fileobj=stream, mode="r|*") as tf:
                return _scan_tar(tf, _inflation_limit(size))
    except InvalidDistribution:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InvalidDistribution(
            f"Invalid distribution file. Cannot read the archive: {exc}"
        ) from exc
    raise InvalidDistribution("Invalid distribution file. The sdist has no top-level PKG-INFO.")


def _check_tar_member(member: tarfile.TarInfo) -> None:
    """Nothing is ever extracted, but an sdist whose members could escape is refused."""
    if not safe_member_name(member.name):
        raise unsafe_name(member.name)
    if member.issym() or member.islnk():
        base = posixpath.dirname(member.name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise InvalidDistribution(
                f"Invalid distribution file. {member.name!r} links outside the archive."
            )
    elif not (member.isfile() or member.isdir()):
        raise InvalidDistribution(
            f"Invalid distribution file. {member.name!r} is not a file or directory."
        )


def _scan_tar(tf: tarfile.TarFile, limit: int) -> CoreMetadata:
    """Check every member (bounded in count and inflated size); the top-level PKG-INFO."""
    inflated = 0
    found: CoreMetadata | None = None
    for count, member in enumerate(tf):
        if count >= MAX_TAR_MEMBERS:
            raise too_many_members()
        inflated += member.size
        if inflated > limit:
            raise tar_inflates_too_far()
        _check_tar_member(member)
        if found is None and member.isfile() and _is_top_pkg_info(member.name):
            if member.size > MAX_METADATA_BYTES:
                raise InvalidDistribution("Invalid distribution file. PKG-INFO is too large.")
            stream = tf.extractfile(member)
            if stream is not None:
                found = parse_core_metadata(_read_bounded(stream, "PKG-INFO"))
    if found is None:
        raise InvalidDistribution("Invalid distribution file. The sdist has no top-level PKG-INFO.")
    return found


def _is_wheel_metadata(member_name: str, wanted: str) -> bool:
    top, _, rest = member_name.partition("/")
    if rest != "METADATA" or not top.endswith(".dist-info"):
        return False
    return canonicalize_name(top[: -len(".dist-info")].rpartition("-")[0]) == wanted


def _quick_metadata(dist: Distribution, data: bytes) -> CoreMetadata:
    """The in-memory readers of quickread; raises Unusual to leave it to the stdlib path."""
    limits = {
        "max_members": MAX_TAR_MEMBERS,
        "max_inflated": _inflation_limit(len(data)),
        "max_member": MAX_METADATA_BYTES,
    }
    read = parse_core_metadata
    if dist.kind == "wheel":
        wanted = canonicalize_name(dist.name)
        got = zip_member(data, lambda n: _is_wheel_metadata(n, wanted), read, **limits)
        what, missing = "METADATA", f"The wheel has no .dist-info/METADATA for {dist.name!r}."
    else:
        reader = {".zip": zip_member, ".tar.gz": tar_gz_member}.get(dist.extension)
        if reader is None:
            raise Unusual
        got = reader(data, _is_top_pkg_info, read, **limits)
        what, missing = "PKG-INFO", "The sdist has no top-level PKG-INFO."
    if got is None:
        raise InvalidDistribution(f"Invalid distribution file. {missing}")
    if got[1] is None:
        raise InvalidDistribution(f"Invalid distribution file. {what} is too large.")
    return got[1]


def read_metadata(path: str | Path, dist: Distribution, data: bytes | None = None) -> CoreMetadata:
    """Core metadata of the wheel or sdist at *path* (whose bytes are *data* when the caller
    has read them already); checks it names the same project."""
    meta = None
    if data is not None:
        with contextlib.suppress(Unusual):
            meta = _quick_metadata(dist, data)
    if meta is None:
        read = read_wheel_metadata if dist.kind == "wheel" else read_sdist_metadata
        meta = read(path, dist, data)
    if canonicalize_name(meta.name) != dist.project:
        raise InvalidDistribution(
            f"Invalid distribution file. Its metadata names {meta.name!r}, "
            f"the filename {dist.name!r}."
        )
    return meta
