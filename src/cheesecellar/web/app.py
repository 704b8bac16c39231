"""The Bottle application: routes that close over the catalog, scanner and authenticator."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit

import bottle
from bottle import Bottle, HTTPResponse, SimpleTemplate, request, static_file

from .. import __version__
from ..auth import Authenticator
from ..catalog import Catalog, Upload, same_version
from ..config import UPLOAD_FORM_OVERHEAD, Config
from ..distributions import is_valid_name, normalize_name
from ..errors import BadRequest, CheesecellarError, Forbidden, Gone, NotFound, TooLarge
from ..records import FileRecord
from ..scanner import Progress, Scanner
from ..storage import FileStorage, open_storage
from . import negotiate, pages, pypi_json
from .upload import read_action, read_upload

log = logging.getLogger("cheesecellar.web")

TEXT = "text/plain; charset=utf-8"
_FORM_TEXT_MAX = 8 * 1024 * 1024


def _reason(message: str) -> str:
    # The reason phrase must be one line of latin-1: no header injection through messages.
    cleaned = "".join(ch if ch.isprintable() and ord(ch) < 256 else "?" for ch in message)
    return cleaned[:200]


def error_response(status: int, message: str, **headers: str) -> HTTPResponse:
    phrase = _reason(message) or HTTPStatus(status).phrase
    return HTTPResponse(
        body=message + "\n", status=f"{status} {phrase}", headers={"Content-Type": TEXT, **headers}
    )


def _handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CheesecellarError as exc:
            headers = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="cheesecellar"'
            return error_response(exc.status, str(exc), **headers)

    return wrapper


def _base_url() -> str:
    parts = request.urlparts
    return f"{parts.scheme}://{parts.netloc}{request.script_name}"


def create_app(config: Config, progress: Progress | None = None) -> Bottle:
    """A new WSGI app for *config*; nothing is shared between apps.

    Files found without a record are hashed before it returns; *progress* hears about each.
    """
    storage = open_storage(config)
    storage.prepare()
    local = isinstance(storage, FileStorage)
    catalog = Catalog(
        storage,
        config.roots if local else (),
        overwrite=config.overwrite,
        max_upload_bytes=config.max_upload_bytes,
    )
    # Hand-copied files exist only on local disks; an object store changes only through the app.
    scanner = Scanner(catalog) if local else None
    if scanner is not None:
        scanner.start(progress)
    refresh: Callable[[], object] = scanner.refresh if scanner is not None else lambda: None
    auth = Authenticator(config.authenticate, config.password_file, config.auther)
    cache = pages.PageCache()
    app = Bottle()
    page_cache_control = f"max-age={config.page_max_age}, public"
    welcome_template = (
        SimpleTemplate(config.welcome_file.read_text(encoding="utf-8"))
        if config.welcome_file is not None
        else None
    )

    def require(action: str) -> str | None:
        return auth.authorize(action, _header("Authorization"))

    def media_type() -> str:
        # A literal '+' in ?format=...v1+json arrives as a space; media types have none.
        format_param = (request.query.get("format") or "").replace(" ", "+") or None
        chosen = negotiate.choose(_header("Accept"), format_param)
        if chosen is None:
            raise _NotAcceptable()
        return chosen

    def send_page(page: pages.Page) -> HTTPResponse:
        headers = {
            "Content-Type": page.content_type,
            "ETag": page.etag,
            "Vary": "Accept",
            "Cache-Control": page_cache_control,
        }
        if page.etag in (_header("If-None-Match") or ""):
            return HTTPResponse(status=304, headers=headers)
        return HTTPResponse(body=b"" if request.method == "HEAD" else page.body, headers=headers)

    def redirect(location: str, status: int = 301) -> HTTPResponse:
        query = request.query_string
        target = location + (f"?{query}" if query else "")
        return HTTPResponse(
            body="",
            status=status,
            headers={"Location": target, "Content-Type": TEXT, "Vary": "Accept"},
        )

    @app.route("/", method=["GET", "HEAD"])
    @_handles_errors
    def welcome() -> HTTPResponse:
        base = _base_url().rstrip("/") + "/"
        names = None if auth.needs_login("list") else catalog.project_names()[1]
        if welcome_template is not None:
            # pypiserver's --welcome variables; the package list only when listing is open.
            body = welcome_template.render(
                URL=base,
                VERSION=__version__,
                NUMPKGS=len(names) if names is not None else "",
                PACKAGES=base + "packages/",
                SIMPLE=base + "simple/",
            )
        else:
            body = pages.template("welcome").render(
                version=__version__,
                url=base,
                simple=base + "simple/",
                host=request.urlparts.hostname,
                count=len(names) if names is not None else None,
            )
        return HTTPResponse(body=body, headers={"Content-Type": "text/html; charset=utf-8"})

    @app.route(config.health_endpoint, method=["GET", "HEAD"])
    def health() -> HTTPResponse:
        return HTTPResponse(body="Ok", headers={"Content-Type": TEXT})

    @app.route("/simple", method=["GET", "HEAD"])
    def simple_slash() -> HTTPResponse:
        return redirect("simple/")

    @app.route("/simple/", method=["GET", "HEAD"])
    @_handles_errors
    def simple_root() -> HTTPResponse:
        require("list")
        chosen = media_type()
        refresh()
        version, names = catalog.project_names()
        page = cache.get(("", chosen), version)
        if page is None:
            page = pages.render_root(names, chosen)
            cache.put(("", chosen), version, page)
        return send_page(page)

    @app.route("/simple/", method="POST")
    def simple_post() -> HTTPResponse:
        return error_response(
            405, "This is the simple index; upload to the server's root URL instead."
        )

    @app.route("/simple/<name>", method=["GET", "HEAD"])
    def simple_project_slash(name: str) -> HTTPResponse:
        return redirect(urlquote(name.split("/")[-1], safe="") + "/")

    @app.route("/simple/<name>/", method=["GET", "HEAD"])
    @_handles_errors
    def simple_project(name: str) -> HTTPResponse:
        require("list")
        chosen = media_type()
        normalized = normalize_name(name)
        if normalized != name:
            if not is_valid_name(name):
                raise NotFound(f"Not a valid project name: {name!r}")
            return redirect(f"../{urlquote(normalized, safe='')}/")
        refresh()
        project = catalog.project(normalized)
        if project is None or not project.files:
            if config.fallback_url:
                target = config.fallback_url.rstrip("/") + f"/{urlquote(normalized)}/"
                return HTTPResponse(status=303, headers={"Location": target, "Content-Type": TEXT})
            raise NotFound(f"No project named {name!r} on this index.")
        page = cache.get((normalized, chosen), project.version)
        if page is None:
            page = pages.render_project(project, chosen, config.hash_algo)
            cache.put((normalized, chosen), project.version, page)
        return send_page(page)

    @app.route("/packages", method=["GET", "HEAD"])
    def packages_slash() -> HTTPResponse:
        return redirect("packages/")

    @app.route("/packages/", method=["GET", "HEAD"])
    @_handles_errors
    def packages_index() -> HTTPResponse:
        require("list")
        refresh()
        _, names = catalog.project_names()
        filenames: list[str] = []
        for normalized in sorted(names):
            project = catalog.project(normalized)
            if project is not None and project.status != "quarantined":
                filenames.extend(r.filename for r in project.files)
        body = pages.template("packages").render(filenames=sorted(filenames), quote=pages.quote)
        return HTTPResponse(body=body, headers={"Content-Type": "text/html; charset=utf-8"})

    @app.route("/packages/<filename:path>", method=["GET", "HEAD"])
    @_handles_errors
    def download(filename: str) -> HTTPResponse:
        require("download")
        filename = filename.rpartition("/")[2]  # pypiserver linked files in sub-folders
        refresh()
        wants_metadata = filename.endswith(".metadata")
        found = catalog.locate(filename[: -len(".metadata")] if wants_metadata else filename)
        if found is None or found[0].status == "quarantined":
            raise NotFound(f"No file named {filename!r} on this index.")
        record = found[1]
        if wants_metadata:
            return send_metadata(record)
        if config.overwrite or config.file_cache_control is not None:
            cache_control = f"public, max-age={config.file_cache_control or 0}"
        else:
            cache_control = "public, max-age=31536000, immutable"
        url = catalog.download_url(record)
        if url is not None:
            return HTTPResponse(status=302, headers={"Location": url, "Content-Type": TEXT})
        headers = {"Cache-Control": cache_control}
        etag = f'"{record.sha256}"'
        path = catalog.file_path(record)
        if path is None:
            return stream_file(record, etag, headers)
        unsatisfiable = _check_range(path)
        if unsatisfiable is not None:
            return unsatisfiable
        response = static_file(
            path.name,
            root=str(path.parent),
            mimetype=_content_type(record.filename),
            etag=etag,
            headers=headers,
        )
        if response.status_code >= 400:
            raise NotFound(f"No file named {filename!r} on this index.")
        return response

    def send_metadata(record: FileRecord) -> HTTPResponse:
        body = catalog.metadata_file(record)
        if body is None:
            raise NotFound(f"No metadata file for {record.filename!r}.")
        headers = {
            "Content-Type": TEXT,
            "ETag": f'"{record.metadata_sha256}"',
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        if headers["ETag"] == _header("If-None-Match"):
            return HTTPResponse(status=304, headers=headers)
        return HTTPResponse(body=b"" if request.method == "HEAD" else body, headers=headers)

    def stream_file(record: FileRecord, etag: str, headers: dict[str, str]) -> HTTPResponse:
        headers = {**headers, "ETag": etag, "Content-Type": _content_type(record.filename)}
        if etag == _header("If-None-Match"):
            return HTTPResponse(status=304, headers=headers)
        headers["Content-Length"] = str(record.size)
        if request.method == "HEAD":
            return HTTPResponse(body=b"", headers=headers)
        try:
            stream = catalog.open_file(record)
        except FileNotFoundError as exc:
            raise NotFound(f"No file named {record.filename!r} on this index.") from exc
        return HTTPResponse(body=_chunks(stream), headers=headers)

    @app.route("/", method="POST")
    @app.route("/legacy/", method="POST")
    @app.route("/legacy", method="POST")
    @_handles_errors
    def upload_action() -> HTTPResponse:
        try:
            return handle_action()
        finally:
            _close_request_files()

    def handle_action() -> HTTPResponse:
        user = require("update")
        _refuse_cross_site()
        length = request.content_length
        if length > config.max_upload_bytes + UPLOAD_FORM_OVERHEAD:
            raise TooLarge(f"File too large. The limit is {config.max_upload_bytes} bytes.")
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
            removed = catalog.remove(_field(post, "name"), _field(post, "version"))
            return _text_response("Removed " + ", ".join(removed))
        if action in ("yank", "unyank"):
            name, version = _field(post, "name"), _field(post, "version")
            filename = _optional(post, "filename")
            if action == "yank":
                changed = catalog.yank(
                    name, version, _optional(post, "reason") or "", filename=filename
                )
            else:
                changed = catalog.unyank(name, version, filename=filename)
            return _text_response(f"{action.capitalize()}ed " + ", ".join(changed))
        if action == "set_status":
            project = catalog.set_status(
                _field(post, "name"), _field(post, "status"), _optional(post, "reason") or ""
            )
            return _text_response(f"{project.normalized} is {project.status}")
        if action == "doc_upload":
            raise Gone("Documentation uploads are not supported; host docs elsewhere.")
        if action in ("submit", "submit_pkg_info", "verify"):
            raise Gone("Project pre-registration is not needed: upload files directly.")
        raise BadRequest(f"Unsupported ':action' field: {action}")

    def json_api(name: str, version: str | None, prefix: str) -> HTTPResponse:
        require("list")
        normalized = normalize_name(name)
        if normalized != name:
            if not is_valid_name(name):
                raise NotFound(f"Not a valid project name: {name!r}")
            tail = f"{urlquote(version, safe='')}/json" if version else "json"
            return redirect(f"{prefix}{urlquote(normalized, safe='')}/{tail}")
        refresh()
        project = catalog.project(normalized)
        if project is None or not project.files or project.status == "quarantined":
            raise NotFound(f"No project named {name!r} on this index.")
        if version is not None:
            matches = [v for v in project.versions if same_version(v, version)]
            if not matches:
                raise NotFound(f"{name} has no version {version!r}.")
            version = matches[0]
        doc = pypi_json.project_json(project, version, _base_url(), catalog.metadata_file)
        return HTTPResponse(body=json.dumps(doc), headers={"Content-Type": "application/json"})

    @app.route("/pypi/<name>/json", method=["GET", "HEAD"])
    @_handles_errors
    def pypi_project_json(name: str) -> HTTPResponse:
        return json_api(name, None, "../")

    @app.route("/pypi/<name>/<version>/json", method=["GET", "HEAD"])
    @_handles_errors
    def pypi_version_json(name: str, version: str) -> HTTPResponse:
        return json_api(name, version, "../../")

    @app.route("/<name>/json", method=["GET", "HEAD"])
    @_handles_errors
    def pypiserver_json(name: str) -> HTTPResponse:
        return json_api(name, None, "../")

    @app.route("/<name>", method=["GET", "HEAD"])
    def project_shortcut(name: str) -> HTTPResponse:
        # pypiserver sends /<project> to its simple page.
        if not is_valid_name(name):
            return error_response(404, "Not found.")
        target = f"simple/{urlquote(normalize_name(name), safe='')}/"
        return HTTPResponse(status=303, headers={"Location": target, "Content-Type": TEXT})

    for code in (400, 404, 405, 413, 500):
        app.error(code)(_error_page)

    log.info("cheesecellar %s serving %s", __version__, storage)
    return app


class _NotAcceptable(CheesecellarError):
    status = 406

    def __init__(self) -> None:
        super().__init__(
            "Not Acceptable. This index serves text/html, "
            f"{negotiate.V1_HTML} and {negotiate.V1_JSON}."
        )


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


def _header(name: str) -> str | None:
    """A request header as the server passed it (latin-1 text): Bottle's get_header decodes
    UTF-8 and fails on other bytes."""
    value = request.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


def _refuse_cross_site() -> None:
    """A browser form on another site must not upload or remove with cached credentials."""
    if (_header("Sec-Fetch-Site") or "").lower() == "cross-site":
        raise Forbidden("Cross-site requests cannot change this index.")
    origin = _header("Origin")
    if origin is None:
        return  # twine, uv, pip and other non-browser clients send no Origin
    try:
        same_site = urlsplit(origin).netloc.lower() == request.urlparts.netloc.lower()
    except ValueError:  # a malformed Origin is certainly not this site
        same_site = False
    if not same_site:
        raise Forbidden("Cross-site requests cannot change this index.")


# RFC 9110 §14.1.2: a byte-range set; anything else in a Range header is ignored (§14.2).
_BYTE_RANGES = re.compile(r"^bytes=\s*\d*-\d*(\s*,\s*\d*-\d*)*\s*\Z")


def _check_range(path: Path) -> HTTPResponse | None:
    """416 for a byte range that is valid but unsatisfiable; other odd ranges are ignored."""
    header = request.environ.get("HTTP_RANGE")
    if header is None:
        return None
    if not _BYTE_RANGES.match(header):
        del request.environ["HTTP_RANGE"]  # an unknown unit or garbage: send the whole file
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None  # static_file answers for a missing file
    if list(bottle.parse_range_header(header, size)):
        return None
    return error_response(416, "Range Not Satisfiable", **{"Content-Range": f"bytes */{size}"})


def _text_response(message: str) -> HTTPResponse:
    return HTTPResponse(body=message + "\n", headers={"Content-Type": TEXT})


def _optional(post: Any, name: str) -> str | None:
    value = post.getall(name)
    if len(value) > 1 or (value and not isinstance(value[0], str)):
        raise BadRequest(f"The field {name!r} may be sent once, as text.")
    return str(value[0]).strip() if value else None


def _field(post: Any, name: str) -> str:
    value = post.getall(name)
    if len(value) != 1 or not isinstance(value[0], str) or not value[0].strip():
        raise BadRequest(f"The field {name!r} is required, once.")
    return str(value[0]).strip()


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(64 * 1024):
            yield chunk


def _content_type(filename: str) -> str:
    if filename.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if filename.endswith(".zip"):
        return "application/zip"
    if filename.endswith(".tar.bz2"):
        return "application/x-bzip2"
    if filename.endswith(".tar.xz"):
        return "application/x-xz"
    return "application/octet-stream"


def _error_page(error: bottle.HTTPError) -> str:
    bottle.response.content_type = TEXT
    if error.status_code >= 500:
        log.error("internal error: %s", error.traceback or error.body)
        return "Internal server error.\n"
    return f"{error.status_line}\n"
