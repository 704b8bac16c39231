"""The Bottle application: routes that close over the catalog, scanner and authenticator."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import quote as urlquote

from bottle import Bottle, HTTPResponse, SimpleTemplate, request, static_file

from .. import __version__
from ..auth import Authenticator
from ..catalog import Catalog, same_version
from ..config import Config
from ..distributions import is_valid_name, normalize_name
from ..errors import CheesecellarError, NotFound
from ..records import FileRecord
from ..scanner import Progress, Scanner
from ..storage import FileStorage, open_storage
from . import actions, negotiate, pages, pypi_json
from .responses import (
    TEXT,
    check_range,
    chunks,
    content_type,
    error_page,
    error_response,
    handles_errors,
    header,
)

log = logging.getLogger("cheesecellar.web")


def _base_url() -> str:
    parts = request.urlparts
    return f"{parts.scheme}://{parts.netloc}{request.script_name}"


def create_app(config: Config, progress: Progress | None = None, *, jobs: int = 1) -> Bottle:
    """A new WSGI app for *config*; nothing is shared between apps.

    Files found without a record are hashed before it returns, by *jobs* forked processes
    when there are many (so more than one only while no other thread runs); *progress* hears
    about each.
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
        scanner.start(progress, jobs=jobs)
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
        return auth.authorize(
            action, header("Authorization"), request.environ.get("REMOTE_ADDR", "-")
        )

    def media_type() -> str:
        # A literal '+' in ?format=...v1+json arrives as a space; media types have none.
        format_param = (request.query.get("format") or "").replace(" ", "+") or None
        chosen = negotiate.choose(header("Accept"), format_param)
        if chosen is None:
            raise _NotAcceptable()
        return chosen

    def send_page(page: pages.Page) -> HTTPResponse:
        gzipped = negotiate.accepts_gzip(header("Accept-Encoding"))
        headers = {
            "Content-Type": page.content_type,
            "ETag": page.gzip_etag if gzipped else page.etag,
            "Vary": "Accept, Accept-Encoding",
            "Cache-Control": page_cache_control,
        }
        if headers["ETag"] in (header("If-None-Match") or ""):
            return HTTPResponse(status=304, headers=headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        body = page.gzip if gzipped else page.body
        if request.method == "HEAD":  # the GET's headers, its length included
            return HTTPResponse(body=b"", headers={**headers, "Content-Length": str(len(body))})
        return HTTPResponse(body=body, headers=headers)

    def redirect(location: str, status: int = 301) -> HTTPResponse:
        query = request.query_string
        target = location + (f"?{query}" if query else "")
        return HTTPResponse(
            body="",
            status=status,
            headers={"Location": target, "Content-Type": TEXT, "Vary": "Accept"},
        )

    @app.route("/", method=["GET", "HEAD"])
    @handles_errors
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
    @handles_errors
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
    @handles_errors
    def simple_project(name: str) -> HTTPResponse:
        require("list")
        chosen = media_type()
        normalized = normalize_name(name)
        if normalized != name:
            if not is_valid_name(name):
                raise NotFound(f"Not a valid project name: {name!r}")
            return redirect(f"../{urlquote(normalized, safe='')}/")
        refresh()
        # A page rendered from this very manifest is sent without reading the manifest.
        version = catalog.project_version(normalized)
        page = cache.get((normalized, chosen), version) if version is not None else None
        if page is not None:
            return send_page(page)
        project = catalog.complete(catalog.project(normalized))
        if project is None or not project.files:
            if config.fallback_url:
                target = config.fallback_url.rstrip("/") + f"/{urlquote(normalized)}/"
                return HTTPResponse(status=303, headers={"Location": target, "Content-Type": TEXT})
            raise NotFound(f"No project named {name!r} on this index.")
        page = pages.render_project(project, chosen, config.hash_algo)
        cache.put((normalized, chosen), project.version, page)
        return send_page(page)

    @app.route("/packages", method=["GET", "HEAD"])
    def packages_slash() -> HTTPResponse:
        return redirect("packages/")

    @app.route("/packages/", method=["GET", "HEAD"])
    @handles_errors
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
    @handles_errors
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
            completed = catalog.complete(found[0])
            return send_metadata((completed.file(record.filename) if completed else None) or record)
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
        unsatisfiable = check_range(path)
        if unsatisfiable is not None:
            return unsatisfiable
        response = static_file(
            path.name,
            root=str(path.parent),
            mimetype=content_type(record.filename),
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
        if headers["ETag"] == header("If-None-Match"):
            return HTTPResponse(status=304, headers=headers)
        return HTTPResponse(body=b"" if request.method == "HEAD" else body, headers=headers)

    def stream_file(record: FileRecord, etag: str, headers: dict[str, str]) -> HTTPResponse:
        headers = {**headers, "ETag": etag, "Content-Type": content_type(record.filename)}
        if etag == header("If-None-Match"):
            return HTTPResponse(status=304, headers=headers)
        headers["Content-Length"] = str(record.size)
        if request.method == "HEAD":
            return HTTPResponse(body=b"", headers=headers)
        try:
            stream = catalog.open_file(record)
        except FileNotFoundError as exc:
            raise NotFound(f"No file named {record.filename!r} on this index.") from exc
        return HTTPResponse(body=chunks(stream), headers=headers)

    @app.route("/", method="POST")
    @app.route("/legacy/", method="POST")
    @app.route("/legacy", method="POST")
    @handles_errors
    def upload_action() -> HTTPResponse:
        return actions.perform(catalog, config.max_upload_bytes, require("update"))

    def json_api(name: str, version: str | None, prefix: str) -> HTTPResponse:
        require("list")
        normalized = normalize_name(name)
        if normalized != name:
            if not is_valid_name(name):
                raise NotFound(f"Not a valid project name: {name!r}")
            tail = f"{urlquote(version, safe='')}/json" if version else "json"
            return redirect(f"{prefix}{urlquote(normalized, safe='')}/{tail}")
        refresh()
        project = catalog.complete(catalog.project(normalized))
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
    @handles_errors
    def pypi_project_json(name: str) -> HTTPResponse:
        return json_api(name, None, "../")

    @app.route("/pypi/<name>/<version>/json", method=["GET", "HEAD"])
    @handles_errors
    def pypi_version_json(name: str, version: str) -> HTTPResponse:
        return json_api(name, version, "../../")

    @app.route("/<name>/json", method=["GET", "HEAD"])
    @handles_errors
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
        app.error(code)(error_page)

    log.info("cheesecellar %s serving %s", __version__, storage)
    return app


class _NotAcceptable(CheesecellarError):
    status = 406

    def __init__(self) -> None:
        super().__init__(
            "Not Acceptable. This index serves text/html, "
            f"{negotiate.V1_HTML} and {negotiate.V1_JSON}."
        )
