"""The command line (``pypi-server``, ``cheesecellar``): the only place that prints or exits."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import re
import signal
import socket
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .config import (
    DEFAULT_MAX_UPLOAD,
    PYPI_SIMPLE_URL,
    UPLOAD_FORM_OVERHEAD,
    Config,
    check_auth_pair,
    parse_actions,
    parse_hash_algo,
    password_file_of,
)
from .errors import CheesecellarError
from .records import PROJECT_STATUSES

log = logging.getLogger("cheesecellar")

COMMANDS = ("run", "update", "deploy-apache", "reindex", "migrate", "yank", "unyank", "status")
_VALUED_COMMON = ("--log-file", "--log-stream", "--log-frmt")
# pypiserver's per-request log formats: accepted so its command lines keep working, and
# reported as having no effect (cheesecellar's access log has one fixed format).
_IGNORED_LOG_FORMATS = ("--log-req-frmt", "--log-res-frmt", "--log-err-frmt")
_SIZE_RE = re.compile(r"^(\d+)([kmg]i?b?)?\Z", re.IGNORECASE)


def _size(text: str) -> int:
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 100M")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[(match.group(2) or "")[:1].lower()]
    return int(match.group(1)) * factor


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (DEBUG)")
    parser.add_argument("--log-file", help="also write the log to this file")
    parser.add_argument(
        "--log-stream", choices=("stdout", "stderr", "none"), default="stderr",
        help="where the log goes (default: stderr)",
    )  # fmt: skip
    parser.add_argument(
        "--log-frmt", default="%(asctime)s %(levelname)s %(name)s: %(message)s",
        help="log line format (Python logging syntax)",
    )  # fmt: skip


def _s3_options(parser: argparse.ArgumentParser, *, serving: bool) -> None:
    s3 = parser.add_argument_group("object storage (pip install 'cheesecellar[s3]')")
    s3.add_argument(
        "--storage",
        metavar="s3://BUCKET/PREFIX",
        help="keep files and records in an S3-compatible bucket instead of DIR",
    )
    s3.add_argument("--s3-endpoint", metavar="URL", help="the S3 API endpoint (default: AWS)")
    s3.add_argument("--s3-region", help="the bucket's region")
    if not serving:
        return
    s3.add_argument(
        "--s3-public-endpoint",
        metavar="URL",
        help="endpoint clients reach for presigned downloads (default: --s3-endpoint)",
    )
    s3.add_argument(
        "--s3-download",
        choices=("redirect", "proxy"),
        default="redirect",
        help="redirect clients to a short-lived presigned URL (default), or stream "
        "files through the server for stores clients cannot reach",
    )


def _run_parser(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    for option in _IGNORED_LOG_FORMATS:
        parser.add_argument(option, metavar="FORMAT", help="accepted from pypiserver; no effect")
    parser.add_argument(
        "roots",
        nargs="*",
        metavar="DIR",
        help="package directories; uploads go to the first (default: ~/packages)",
    )
    parser.add_argument("-p", "--port", type=int, default=8080, help="port (default: 8080)")
    parser.add_argument(
        "-i",
        "-H",
        "--interface",
        "--host",
        dest="host",
        default="0.0.0.0",
        help="address to listen on (default: 0.0.0.0, all interfaces)",
    )
    parser.add_argument(
        "-P",
        "--passwords",
        dest="passwords",
        metavar="HTPASSWD",
        help="htpasswd file with the users who may upload; '.' for none",
    )
    parser.add_argument(
        "-a",
        "--authenticate",
        default="update",
        help="comma list of actions that need a login: update, download, list; "
        "'.' for none, together with -P . (default: update)",
    )
    parser.add_argument(
        "--fallback-url",
        help="redirect unknown projects to this index "
        f"(off unless given; pypiserver used {PYPI_SIMPLE_URL})",
    )
    parser.add_argument(
        "--disable-fallback",
        action="store_true",
        help="unknown projects get 404 (the default; kept for pypiserver users)",
    )
    parser.add_argument(
        "-o",
        "--overwrite",
        action="store_true",
        help="an upload may replace a file with different bytes",
    )
    parser.add_argument(
        "--hash-algo", default="sha256", help="hash in page links: sha256, or off (default: sha256)"
    )
    parser.add_argument(
        "--max-upload-size",
        type=_size,
        default=DEFAULT_MAX_UPLOAD,
        help="largest upload, e.g. 100M or 2G (default: 100M)",
    )
    parser.add_argument(
        "--page-max-age",
        type=int,
        default=0,
        help="Cache-Control max-age of index pages in seconds (default: 0)",
    )
    parser.add_argument(
        "--cache-control",
        type=int,
        metavar="AGE",
        help="Cache-Control max-age of file downloads (default: a year, immutable)",
    )
    parser.add_argument("--health-endpoint", default="/health", help="default: /health")
    parser.add_argument("--welcome", metavar="FILE", help="HTML file for the welcome page")
    parser.add_argument(
        "--server",
        default="auto",
        choices=("auto", "builtin", "waitress"),
        help="HTTP server: builtin (asyncio; the default, also 'auto') or waitress",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "simple-dir", "cached-dir"),
        help="accepted for pypiserver compatibility; cheesecellar keeps its own recorded state",
    )
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, each with --threads threads (default: 1)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with these options under their app() names (roots, port, host, "
        "password_file, authenticate, storage, s3_endpoint, ...); options given here win",
    )
    _s3_options(parser, serving=True)
    parser.add_argument(
        "--server-base-url",
        default="/",
        help="serve under this path prefix, e.g. /pypi (default: /)",
    )


# Keys of a --config TOML file (the app(...) keyword names) and the run options they set.
_CONFIG_KEYS = {
    "roots": "roots", "port": "port", "host": "host", "password_file": "passwords",
    "authenticate": "authenticate", "fallback_url": "fallback_url", "overwrite": "overwrite",
    "hash_algo": "hash_algo", "max_upload_size": "max_upload_size",
    "page_max_age": "page_max_age", "cache_control": "cache_control",
    "health_endpoint": "health_endpoint", "welcome": "welcome", "threads": "threads",
    "workers": "workers",
    "server_base_url": "server_base_url", "storage": "storage", "s3_endpoint": "s3_endpoint",
    "s3_public_endpoint": "s3_public_endpoint", "s3_region": "s3_region",
    "s3_download": "s3_download",
}  # fmt: skip


def _config_defaults(path: str) -> dict[str, Any]:
    """The run options a TOML config file sets; command-line options override them."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CheesecellarError(f"config file {path!r}: {exc}") from exc
    table = data.get("cheesecellar", data)
    unknown = sorted(set(table) - set(_CONFIG_KEYS))
    if unknown:
        raise CheesecellarError(
            f"config file {path!r}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_CONFIG_KEYS))}"
        )
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        if key == "roots" and isinstance(value, str):
            value = [value]
        elif key == "authenticate" and isinstance(value, list):
            value = ",".join(map(str, value)) or "."
        elif key == "max_upload_size" and isinstance(value, str):
            value = _size(value)
        defaults[_CONFIG_KEYS[key]] = value
    return defaults


def build_parser(run_defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cheesecellar" if Path(sys.argv[0]).name == "cheesecellar" else "pypi-server",
        description="cheesecellar: a self-hosted Python package index.",
        epilog="Without a command, 'run' is assumed: pypi-server -p 8080 ~/packages",
    )
    parser.add_argument("--version", action="version", version=f"cheesecellar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="serve package directories over HTTP")
    _run_parser(run)
    if run_defaults:
        run.set_defaults(**run_defaults)
    update = sub.add_parser("update", help="(pypiserver) not supported by cheesecellar")
    update.add_argument("rest", nargs=argparse.REMAINDER)
    reindex = sub.add_parser(
        "reindex",
        help="record every file of the directories (hash, metadata, upload time) without serving",
    )
    _common(reindex)
    reindex.add_argument("roots", nargs="*", metavar="DIR", help="package directories")
    _s3_options(reindex, serving=False)
    migrate = sub.add_parser(
        "migrate", help="copy a package directory, with its records, into an S3 bucket (resumable)"
    )
    _common(migrate)
    migrate.add_argument("root", metavar="DIR", help="the package directory to copy")
    _s3_options(migrate, serving=False)
    for verb, text in (("yank", "mark a release yanked (PEP 592)"), ("unyank", "undo a yank")):
        cmd = sub.add_parser(verb, help=text)
        _common(cmd)
        cmd.add_argument("root", metavar="DIR", help="the package directory (the first one)")
        cmd.add_argument("name", help="project name")
        cmd.add_argument("version", help="release version")
        cmd.add_argument("--filename", help="only this file of the release")
        if verb == "yank":
            cmd.add_argument("--reason", default="", help="shown to installers")
    status = sub.add_parser("status", help="set a project's status (PEP 792)")
    _common(status)
    status.add_argument("root", metavar="DIR", help="the package directory (the first one)")
    status.add_argument("name", help="project name")
    status.add_argument("status", choices=PROJECT_STATUSES)
    status.add_argument("--reason", default="", help="shown to installers")
    from . import deploy

    deploy.configure_parser(
        sub.add_parser("deploy-apache", help="write a .wsgi file and an Apache vhost for mod_wsgi")
    )
    return parser


def _normalize_argv(argv: list[str]) -> list[str]:
    """pypiserver's legacy form has no command: ``pypi-server -p 8080 DIR`` means run."""
    if not argv or argv[0] in ("-h", "--help", "--version"):
        return argv
    # Only the common options may stand before the command (as in pypiserver); the first
    # other word ends the search, so "-a update" is an option value, not the command.
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in COMMANDS:
            return [arg, *argv[:index], *argv[index + 1 :]]
        if arg in _VALUED_COMMON:
            index += 2
        elif arg.startswith("-v") and set(arg[1:]) == {"v"} or arg == "--verbose":
            index += 1
        elif arg.split("=", 1)[0] in _VALUED_COMMON and "=" in arg:
            index += 1
        else:
            break
    return ["run", *argv]


class _Formatter(logging.Formatter):
    """Formats each second's timestamp once: under load the access log is a hot path."""

    _cached: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if self._cached[0] != second:
            self._cached = (second, super().formatTime(record, datefmt).rsplit(",", 1)[0])
        return f"{self._cached[1]},{int(record.msecs):03d}"


class _LineHandler(logging.Handler):
    """Writes each record as one line with one ``os.write``, taking no lock.

    A StreamHandler holds its lock across the write, and under load the server's threads
    queue on it for the access log (a Bottle "hello" behind our access log: 4.9k req/s with
    a StreamHandler, 7.0k with this). One write per line keeps lines whole without the lock:
    appends to a file are atomic, and so are pipe writes up to PIPE_BUF.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(self.fd, data) :]
        except Exception:
            self.handleError(record)


def _setup_logging(args: argparse.Namespace, quiet: bool = False) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO
    handlers: list[logging.Handler] = []
    if args.log_stream != "none":
        stream = sys.stdout if args.log_stream == "stdout" else sys.stderr
        try:
            fd = stream.fileno()
        except (OSError, ValueError):  # a stream without a file (an embedding, a test)
            handlers.append(logging.StreamHandler(stream))
        else:
            stream.flush()
            handlers.append(_LineHandler(fd))
    if args.log_file:
        handlers.append(
            _LineHandler(os.open(args.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        )
    for handler in handlers:
        handler.setFormatter(_Formatter(args.log_frmt))
    logging.basicConfig(level=level, handlers=handlers or [logging.NullHandler()], force=True)
    # waitress warns "Task queue depth is N" whenever a request waits for a free thread: under
    # load that is most requests, and the flood of lines costs as much as serving them.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def config_from_args(args: argparse.Namespace) -> Config:
    actions = parse_actions(args.authenticate)
    check_auth_pair(args.passwords, actions)
    default_roots = [] if args.storage else ["~/packages"]
    roots = [Path(r).expanduser().resolve() for r in (args.roots or default_roots)]
    for root in roots[1:]:
        if not root.is_dir():
            raise CheesecellarError(f"package directory {str(root)!r} does not exist")
    fallback = None if args.disable_fallback else args.fallback_url
    return Config(
        roots=tuple(roots),
        host=args.host,
        port=args.port,
        password_file=password_file_of(args.passwords),
        authenticate=actions,
        fallback_url=fallback,
        overwrite=args.overwrite,
        hash_algo=parse_hash_algo(args.hash_algo),
        max_upload_bytes=args.max_upload_size,
        page_max_age=args.page_max_age,
        file_cache_control=args.cache_control,
        health_endpoint=args.health_endpoint,
        welcome_file=Path(args.welcome) if args.welcome else None,
        verbosity=args.verbose,
        storage=args.storage,
        s3_endpoint=args.s3_endpoint,
        s3_public_endpoint=args.s3_public_endpoint,
        s3_region=args.s3_region,
        s3_download=args.s3_download,
    )


def _serve(args: argparse.Namespace) -> int:
    from .web import create_app, quick_requests, with_access_log
    from .workers import listening_sockets, serve_forked

    config = config_from_args(args)
    for option in _IGNORED_LOG_FORMATS:
        if getattr(args, option[2:].replace("-", "_")) is not None:
            log.warning("%s is accepted for pypiserver compatibility and has no effect", option)
    if config.password_file is not None and not config.password_file.is_file():
        raise CheesecellarError(
            f"password file {str(config.password_file)!r} is not a readable file"
        )
    if config.roots and not config.roots[0].is_dir():
        config.roots[0].mkdir(parents=True)
        log.info("created package directory %s", config.roots[0])
    if isinstance(args.workers, bool) or not isinstance(args.workers, int) or args.workers < 1:
        raise CheesecellarError(f"--workers must be a whole number from 1, not {args.workers!r}")
    application = with_access_log(create_app(config, ProgressBar(), jobs=_jobs()))
    # What start-up loaded (the list of files on disk) lives as long as the server: keep it out
    # of the cyclic collector's full passes, which otherwise walk it all and stall requests.
    gc.freeze()
    prefix = "/" + args.server_base_url.strip("/") if args.server_base_url.strip("/") else ""
    # Bodies over the upload limit are refused (413) before they are read, not after.
    max_body = config.max_upload_bytes + UPLOAD_FORM_OVERHEAD

    def make_server(app: Any, sockets: list[socket.socket] | None = None) -> Any:
        if args.server == "waitress":
            import waitress

            where: dict[str, Any] = (
                {"sockets": sockets} if sockets else {"host": config.host, "port": config.port}
            )
            return waitress.create_server(
                app,
                threads=args.threads,
                url_prefix=prefix,
                max_request_body_size=max_body,
                ident="cheesecellar (waitress)",
                **where,
            )
        from .httpserver import HttpServer

        return HttpServer(
            app,
            host=config.host,
            port=config.port,
            sockets=sockets,
            threads=args.threads,
            url_prefix=prefix,
            max_request_body_size=max_body,
            inline=quick_requests(config),
        )

    if args.threads < 1:
        raise CheesecellarError(f"--threads must be a whole number from 1, not {args.threads!r}")
    if args.workers > 1:
        sockets = listening_sockets(config.host, config.port, args.workers)
        port = sockets[0].getsockname()[1]
    else:
        server = make_server(application)
        port = server.effective_port
    shown = "localhost" if config.host in ("0.0.0.0", "::", "") else config.host
    url = f"http://{shown}:{port}{prefix}/"
    where = config.storage or ", ".join(map(str, config.roots))
    workers = f" with {args.workers} processes" if args.workers > 1 else ""
    print(f"cheesecellar {__version__} serving {where}{workers}", flush=True)
    print(f"  index:   {url}simple/", flush=True)
    print(
        f"  install: pip install --extra-index-url {url}simple/ --trusted-host {shown} NAME",
        flush=True,
    )
    print(f"  upload:  twine upload --repository-url {url} -u USER -p PASSWORD dist/*", flush=True)
    code = 0
    if args.workers > 1:
        # The first processes serve the app built (and the files hashed) here; this process
        # then lets it go, and a process started later to replace one builds its own.
        built = [application]
        del application

        def serve(sock: socket.socket) -> None:
            if built:
                app = built.pop()
            else:
                app = with_access_log(create_app(config))
                gc.freeze()
            _run_until_stopped(make_server(app, [sock]))

        def release() -> None:
            built.clear()
            gc.unfreeze()  # the app's reference cycles must be collectable here
            gc.collect()

        code = serve_forked(serve, sockets, release)
    else:
        _run_until_stopped(server)
    print("cheesecellar stopped", flush=True)
    return code


def _run_until_stopped(server: Any) -> None:
    """Serve until Ctrl-C or SIGTERM."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _jobs() -> int:
    """Processes for hashing many new files at once: one per CPU this process may use."""
    return len(os.sched_getaffinity(0))


class ProgressBar:
    """A one-line progress bar on a terminal; a line per 10% elsewhere."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1
        self._started = time.monotonic()

    def __call__(self, done: int, total: int, name: str) -> None:
        if total <= 0:
            return
        if self.tty:
            width = 30
            filled = width * done // total
            bar = "#" * filled + "-" * (width - filled)
            print(f"\r[{bar}] {done}/{total} {name[:40]:<40}", end="", file=self.stream, flush=True)
            if done == total:
                print(file=self.stream, flush=True)
            return
        tenth = 10 * done // total
        if tenth != self._last:
            self._last = tenth
            print(f"hashing: {done}/{total} files", file=self.stream, flush=True)


def _maintain(args: argparse.Namespace) -> int:
    """The subcommands that work on a package directory directly, without a server."""
    from .catalog import Catalog
    from .scanner import Scanner
    from .storage import FileStorage

    roots = [Path(r).expanduser().resolve() for r in getattr(args, "roots", None) or [args.root]]
    for root in roots:
        if not root.is_dir():
            raise CheesecellarError(f"package directory {str(root)!r} does not exist")
    storage = FileStorage(roots[0])
    storage.prepare()
    catalog = Catalog(storage, roots)
    started = time.monotonic()
    reindex = args.command == "reindex"
    found = Scanner(catalog).start(
        ProgressBar() if reindex else None, jobs=_jobs() if reindex else 1
    )
    if reindex:
        names = catalog.project_names()[1]
        print(
            f"reindexed {len(names)} project(s); {found} file(s) newly recorded "
            f"in {time.monotonic() - started:.1f}s"
        )
    elif args.command == "yank":
        changed = catalog.yank(args.name, args.version, args.reason, filename=args.filename)
        print("yanked " + ", ".join(changed))
    elif args.command == "unyank":
        print(
            "unyanked " + ", ".join(catalog.unyank(args.name, args.version, filename=args.filename))
        )
    else:
        project = catalog.set_status(args.name, args.status, args.reason)
        print(f"{project.normalized} is now {project.status}")
    return 0


def _s3_maintain(args: argparse.Namespace) -> int:
    """``migrate DIR --storage s3://...`` and ``reindex --storage s3://...``."""
    from .s3tools import migrate, rebuild
    from .storage.s3 import S3Storage

    if not args.storage:
        raise CheesecellarError(f"{args.command}: give --storage s3://BUCKET/PREFIX")
    storage = S3Storage.from_url(args.storage, endpoint_url=args.s3_endpoint, region=args.s3_region)
    storage.prepare()
    started = time.monotonic()
    if args.command == "migrate":
        root = Path(args.root).expanduser().resolve()
        if not root.is_dir():
            raise CheesecellarError(f"package directory {str(root)!r} does not exist")
        moved = migrate(root, storage, ProgressBar())
        print(
            f"migrated {moved.files} file(s) in {time.monotonic() - started:.1f}s: "
            f"{moved.copied} copied, {moved.recorded} recorded, {moved.skipped} already there"
        )
        for name in moved.conflicts:
            print(f"conflict: the bucket has other bytes as {name}; skipped", file=sys.stderr)
        return 1 if moved.conflicts else 0
    rebuilt = rebuild(storage, ProgressBar())
    print(
        f"reindexed {rebuilt.projects} project(s), {rebuilt.blobs} file(s) in "
        f"{time.monotonic() - started:.1f}s: {len(rebuilt.added)} recorded, "
        f"{len(rebuilt.removed)} dropped"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    words = _normalize_argv(list(sys.argv[1:] if argv is None else argv))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    config_path = pre.parse_known_args(words[1:])[0].config if words[:1] == ["run"] else None
    try:
        parser = build_parser(_config_defaults(config_path) if config_path else None)
    except CheesecellarError as exc:
        print(f"pypi-server: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(words)
    try:
        if args.command == "run":
            _setup_logging(args)
            return _serve(args)
        if args.command == "update":
            parser.error(
                "'update' (checking PyPI for newer releases) is not supported by cheesecellar"
            )
        if args.command == "migrate" or (args.command == "reindex" and args.storage):
            _setup_logging(args, quiet=True)
            return _s3_maintain(args)
        if args.command == "reindex" and not args.roots:
            parser.error("reindex: give package directories, or --storage s3://BUCKET/PREFIX")
        if args.command in ("reindex", "yank", "unyank", "status"):
            _setup_logging(args, quiet=True)
            return _maintain(args)
        if args.command == "deploy-apache":
            from . import deploy

            for path in deploy.run(args):
                print(f"wrote {path}")
            return 0
        parser.print_help()
        return 2
    except CheesecellarError as exc:
        print(f"pypi-server: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pypi-server: error: {exc}", file=sys.stderr)
        return 1
