"""Read the legacy upload form (``POST /``) into plain values; every defect is a 400."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import BadRequest, InvalidFilename

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}\Z")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}\Z")
_HEX128 = re.compile(r"^[0-9a-fA-F]{128}\Z")
# Fields a well-formed upload sends once; a second copy is ambiguous, so it is refused.
_SINGLE = (":action", "name", "version", "content", "filetype", "pyversion",
           "sha256_digest", "blake2_256_digest", "md5_digest", "protocol_version")  # fmt: skip
_FILETYPES = {"sdist", "bdist_wheel"}
_MAX_NAME, _MAX_VERSION = 200, 128


@dataclass(frozen=True)
class UploadForm:
    action: str
    name: str
    version: str
    filename: str
    stream: BinaryIO
    digests: dict[str, str]


def _single(post: Any, field: str) -> Any:
    values = post.getall(field)
    if len(values) > 1:
        raise BadRequest(f"The field {field!r} was sent more than once.")
    return values[0] if values else None


def _text(post: Any, field: str) -> str:
    value = _single(post, field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"The field {field!r} must be a text field, not a file.")
    if "\x00" in value:
        raise BadRequest(f"The field {field!r} contains a NUL character.")
    return value.strip()


def read_action(post: Any) -> str:
    action = _text(post, ":action")
    if not action:
        raise BadRequest("Missing ':action' field.")
    protocol = _text(post, "protocol_version")
    if protocol and protocol != "1":
        raise BadRequest("Unknown protocol version.")
    return action


def read_upload(post: Any) -> UploadForm:
    """The file_upload form: content, name, version, filetype and digests, all checked."""
    for field in _SINGLE:
        _single(post, field)
    content = _single(post, "content")
    if content is None or isinstance(content, str) or not hasattr(content, "file"):
        raise BadRequest("Upload payload does not have a file.")
    filename = content.raw_filename or ""  # .filename mangles '+' and '!' in versions
    # Bottle drops a Windows-style path ("C:\\x\\f.whl") from the name; the rule is checked on
    # the name as sent.
    sent = str(content.headers.get("Content-Disposition", "")).partition("filename=")[2]
    if "/" in sent or "\\" in sent:
        raise InvalidFilename("Cannot upload a file with '/' or '\\' in the name.")
    name, version = _text(post, "name"), _text(post, "version")
    if not name or not version:
        raise BadRequest("The fields 'name' and 'version' are required.")
    if len(name) > _MAX_NAME or len(version) > _MAX_VERSION:
        raise BadRequest(
            f"The name may have {_MAX_NAME} and the version {_MAX_VERSION} characters at most."
        )
    filetype = _text(post, "filetype")
    if filetype and filetype not in _FILETYPES:
        raise BadRequest("Invalid value for filetype. Error: Use a known file type.")
    digests: dict[str, str] = {}
    for field, algo, pattern in (
        ("sha256_digest", "sha256", _HEX64),
        ("blake2_256_digest", "blake2_256", _HEX64),
        ("md5_digest", "md5", _HEX32),
    ):
        value = _text(post, field)
        if value and field == "blake2_256_digest" and _HEX128.match(value):
            # setuptools' distutils upload (setuptools < 75) sends the full 512-bit blake2b.
            algo, pattern = "blake2b_512", _HEX128
        if value:
            if not pattern.match(value):
                raise BadRequest(f"Use a valid, hex-encoded, {algo} message digest.")
            digests[algo] = value.lower()
    return UploadForm(read_action(post), name, version, filename, content.file, digests)


def optional_field(post: Any, name: str) -> str | None:
    value = post.getall(name)
    if len(value) > 1 or (value and not isinstance(value[0], str)):
        raise BadRequest(f"The field {name!r} may be sent once, as text.")
    return str(value[0]).strip() if value else None


def required_field(post: Any, name: str) -> str:
    value = post.getall(name)
    if len(value) != 1 or not isinstance(value[0], str) or not value[0].strip():
        raise BadRequest(f"The field {name!r} is required, once.")
    return str(value[0]).strip()
