"""Parse and validate distribution filenames and project names (PEP 427, 440, 503, 625)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .errors import InvalidFilename

Kind = Literal["wheel", "sdist"]

# PEP 508 / core metadata: a valid project name. \Z, not $, which accepts a trailing newline.
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)

# Archives we list when found on disk. New uploads are restricted further (UPLOAD_SDIST_EXTENSIONS).
SDIST_EXTENSIONS = (".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz")
# PEP 527/715: only wheels and .tar.gz/.zip sdists may be uploaded.
UPLOAD_SDIST_EXTENSIONS = (".tar.gz", ".zip")


@dataclass(frozen=True)
class Distribution:
    """What a filename says: the project, the version and the kind of archive."""

    filename: str
    name: str  # as spelled in the filename
    version: str
    kind: Kind
    extension: str
    tags: str = ""  # wheel: "python-abi-platform" (with build tag), sdist: ""

    @property
    def project(self) -> str:
        """The normalized project name (PEP 503)."""
        # Cached per name, not per instance: functools.cached_property takes a lock the first
        # time each instance reads it (Python 3.11), which shows over 100,000 files found.
        return _normalize_filename_name(self.name)

    @functools.cached_property
    def key(self) -> str:
        """Identity for duplicate checks: normalized name, canonical version, tags, extension."""
        try:
            version = canonicalize_version(Version(self.version))
        except (InvalidVersion, ValueError):
            version = self.version.lower()
        return f"{self.project}|{version}|{self.tags.lower()}|{self.extension}"


def normalize_name(name: str) -> str:
    """PEP 503 normalization: runs of -_. become one -, lower case."""
    return str(canonicalize_name(name))


def is_valid_name(name: str) -> bool:
    """True when *name* is a valid project name per the core metadata specification."""
    return bool(_NAME_RE.match(name))


def check_safe_filename(filename: str) -> None:
    """Refuse names that could address anything but one file in one directory."""
    if not filename:
        raise InvalidFilename("Upload payload does not have a file name.")
    if "/" in filename or "\\" in filename:
        raise InvalidFilename("Cannot upload a file with '/' or '\\' in the name.")
    if filename.startswith(".") or ".." in filename:
        raise InvalidFilename("Cannot upload a file whose name starts with '.' or contains '..'.")
    if not filename.isprintable():
        raise InvalidFilename("Cannot upload a file with non-printable characters in the name.")
    if len(filename.encode("utf-8", "surrogatepass")) > 255:
        raise InvalidFilename("Cannot upload a file with a name longer than 255 bytes.")


def _split_extension(filename: str, extensions: tuple[str, ...]) -> tuple[str, str] | None:
    lower = filename.lower()
    for ext in extensions:
        if lower.endswith(ext):
            return filename[: -len(ext)], ext
    return None


def _split_sdist_stem(stem: str) -> tuple[str, str]:
    """Split a legacy sdist stem into (name, version).

    Heuristic for names that contain '-': the first '-' after which the rest is a valid
    PEP 440 version wins; failing that, the last '-' followed by a digit; failing that, the
    last '-'. So ``package-v1-8.1.301.ga0df26f`` gives ``package-v1`` / ``8.1.301.ga0df26f``.
    """
    dashes = [i for i, ch in enumerate(stem) if ch == "-"]
    if not dashes:
        raise InvalidFilename(f"Bad filename: {stem!r} has no version part.")
    for i in dashes:
        if _canonical_version(stem[i + 1 :]) is not None:
            return stem[:i], stem[i + 1 :]
    for i in reversed(dashes):
        if stem[i + 1 : i + 2].isdigit():
            return stem[:i], stem[i + 1 :]
    i = dashes[-1]
    return stem[:i], stem[i + 1 :]


def parse_filename(filename: str) -> Distribution:
    """Parse a wheel or sdist filename found on disk; legacy spellings are accepted."""
    check_safe_filename(filename)
    if filename.lower().endswith(".whl"):
        parts = filename[:-4].split("-", 2)
        try:
            if (
                not filename.endswith(".whl")  # packaging refuses ".WHL"
                or len(parts) != 3
                or not _wheel_name_ok(parts[0])
                or not _wheel_tags_ok(parts[2])
            ):
                raise InvalidWheelFilename(filename)
            version = _canonical_version(parts[1])
            if version is None:
                raise InvalidWheelFilename(filename)
        except InvalidWheelFilename as exc:
            raise InvalidFilename(f"Bad filename: {filename!r} is not a valid wheel name.") from exc
        return Distribution(filename, parts[0], version, "wheel", ".whl", parts[2])
    split = _split_extension(filename, SDIST_EXTENSIONS)
    if split is None:
        raise InvalidFilename(
            f"Invalid file extension: {filename!r}. Use .tar.gz, .whl or .zip extension."
        )
    stem, ext = split
    name, version = _split_sdist_stem(stem)
    if not name or not version or not is_valid_name(name):
        raise InvalidFilename(f"Bad filename: {filename!r} is not a valid sdist name.")
    return Distribution(filename, name, version, "sdist", ext.lower())


# A wheel's name and tags are checked as packaging checks them, once per distinct value: a
# project's files repeat them, and discovering 100,000 files shows the cost. So are versions,
# which recur across projects. (A filename is at most 255 bytes: so is what these keep.)
@functools.lru_cache(maxsize=16384)
def _normalize_filename_name(name: str) -> str:
    return normalize_name(name)


def _canonical_version(text: str) -> str | None:
    """The PEP 440 normal form of *text*, None when it is not a version."""
    # Every version starts with a digit, after blanks and a "v": most of a legacy sdist's
    # name parts are refused here, without raising and catching an exception.
    lead = text.lstrip()
    if not (lead[:1].isdigit() or (lead[:1] in ("v", "V") and lead[1:2].isdigit())):
        return None
    return _parse_version(text)


@functools.lru_cache(maxsize=16384)
def _parse_version(text: str) -> str | None:
    try:
        return str(Version(text))
    except (InvalidVersion, ValueError):
        return None


@functools.lru_cache(maxsize=65536)
def _wheel_name_ok(name: str) -> bool:
    return _packaging_accepts(f"{name}-0-py3-none-any.whl")


@functools.lru_cache(maxsize=4096)
def _wheel_tags_ok(tags: str) -> bool:  # build tag and tags: "1-py3-none-any", "py3-none-any"
    return _packaging_accepts(f"x-0-{tags}.whl")


def _packaging_accepts(filename: str) -> bool:
    try:
        parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion, ValueError):
        return False
    return True


def check_upload_filename(filename: str, name: str, version: str) -> Distribution:
    """Validate an upload's filename against the form's ``name`` and ``version`` fields."""
    check_safe_filename(filename)
    if not is_valid_name(name):
        raise InvalidFilename(f"Invalid project name {name!r}.")
    try:
        form_version = Version(version)
    except (InvalidVersion, ValueError) as exc:  # ValueError: huge numbers
        raise InvalidFilename(f"Invalid version {version!r}: not a PEP 440 version.") from exc
    lower = filename.lower()
    if lower.endswith(".whl"):
        # PEP 427: the name part must not contain '-' (uv silently skips such wheels).
        dist = parse_filename(filename)
        file_name = dist.name
        file_version = dist.version
    else:
        split = _split_extension(filename, UPLOAD_SDIST_EXTENSIONS)
        if split is None:
            raise InvalidFilename(
                "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
                "(https://peps.python.org/pep-0527)"
            )
        stem, ext = split
        # The form says where the name ends; the filename must agree with it (PEP 625).
        prefix_len = _matching_name_prefix(stem, name)
        if prefix_len is None:
            raise InvalidFilename(
                f"Start filename for {name!r} with {normalize_name(name).replace('-', '_')!r}."
            )
        file_name, file_version = stem[:prefix_len], stem[prefix_len + 1 :]
        dist = Distribution(filename, file_name, file_version, "sdist", ext.lower())
    if normalize_name(file_name) != normalize_name(name):
        raise InvalidFilename(
            f"Start filename for {name!r} with {normalize_name(name).replace('-', '_')!r}."
        )
    try:
        same = Version(file_version) == form_version
    except (InvalidVersion, ValueError):
        same = False
    if not same:
        raise InvalidFilename(
            f"Version in filename should be {str(form_version)!r} not {file_version!r}."
        )
    return dist


def _matching_name_prefix(stem: str, name: str) -> int | None:
    """Index of the '-' that ends the project name in *stem*, if the prefix matches *name*."""
    wanted = normalize_name(name)
    for i, ch in enumerate(stem):
        if ch == "-" and normalize_name(stem[:i]) == wanted:
            return i
    return None
