"""The legacy upload API's actions (``POST /``): upload, remove, yank, project status."""

from __future__ import annotations

from urllib.parse import urlsplit

import bottle
from bottle import HTTPResponse, request

from ..catalog import Catalog, Upload
from ..config import UPLOAD_FORM_OVERHEAD
from ..errors import BadRequest, Forbidden, Gone, TooLarge
from .responses import TEXT, header, text_response
from .upload import optional_field, read_action, read_upload, required_field

_FORM_TEXT_MAX = 8 * 1024 * 1024


def perform(catalog: Catalog, max_upload_bytes: int, user: str | None) -> HTTPResponse:
    """Run the action a ``POST /`` asks for, as *user*; temp files are released after."""
    try:
        return _perform(catalog, max_upload_bytes, user)
    finally:
        _close_request_files()


def _perform(catalog: Catalog, max_upload_bytes: int, user: str | None) -> HTTPResponse:
    _refuse_cross_site()
    length = request.content_length
    if length > max_upload_bytes + UPLOAD_FORM_OVERHEAD:
        raise TooLarge(f"File too large. The limit is {max_upload_bytes} bytes.")
    try:
        post = _UploadRequest(request.environ).POST
    except bottle.HTTPError as exc:  # MultipartError and body read errors
        raise BadRequest(f"Malformed request body: {exc.body}") from exc
    except (ValueError, UnicodeError, LookupError) as exc:  # LookupError: unknown charset
        raise BadRequest(f"Malformed form data: {exc}") from exc
    action = read_action(post)
    if action == "file_upload":
        form = read_upload(post)
        stored = catalog.upload(
            Upload(form.filename, form.name, form.version, form.stream, form.digests, user)
        )
        message = "" if stored else f"{form.filename} is already stored with identical content."
        return HTTPResponse(body=message, headers={"Content-Type": TEXT})
    if action == "remove_pkg":
        removed = catalog.remove(required_field(post, "name"), required_field(post, "version"))
        return text_response("Removed " + ", ".join(removed))
    if action in ("yank", "unyank"):
        name, version = required_field(post, "name"), required_field(post, "version")
        filename = optional_field(post, "filename")
        if action == "yank":
            changed = catalog.yank(
                name, version, optional_field(post, "reason") or "", filename=filename
            )
        else:
            changed = catalog.unyank(name, version, filename=filename)
        return text_response(f"{action.capitalize()}ed " + ", ".join(changed))
    if action == "set_status":
        project = catalog.set_status(
            required_field(post, "name"),
            required_field(post, "status"),
            optional_field(post, "reason") or "",
        )
        return text_response(f"{project.normalized} is {project.status}")
    if action == "doc_upload":
        raise Gone("Documentation uploads are not supported; host docs elsewhere.")
    if action in ("submit", "submit_pkg_info", "verify"):
        raise Gone("Project pre-registration is not needed: upload files directly.")
    raise BadRequest(f"Unsupported ':action' field: {action}")


def _close_request_files() -> None:
    """Bottle spools big bodies and file parts to temp files; release them now, not at GC."""
    post = request.environ.get("bottle.request.post")
    if post is not None:
        for value in post.allitems():
            if isinstance(value[1], bottle.FileUpload):
                value[1].file.close()
    body = request.environ.get("bottle.request.body")
    if body is not None:
        body.close()


class _UploadRequest(bottle.BaseRequest):  # type: ignore[misc]
    """Reads upload forms: text fields (a long description among them) may take 8 MiB of
    memory in all, where Bottle's default of 100 KiB refuses real uploads."""

    MEMFILE_MAX = _FORM_TEXT_MAX


def _refuse_cross_site() -> None:
    """A browser form on another site must not upload or remove with cached credentials."""
    if (header("Sec-Fetch-Site") or "").lower() == "cross-site":
        raise Forbidden("Cross-site requests cannot change this index.")
    origin = header("Origin")
    if origin is None:
        return  # twine, uv, pip and other non-browser clients send no Origin
    try:
        same_site = urlsplit(origin).netloc.lower() == request.urlparts.netloc.lower()
    except ValueError:  # a malformed Origin is certainly not this site
        same_site = False
    if not same_site:
        raise Forbidden("Cross-site requests cannot change this index.")
