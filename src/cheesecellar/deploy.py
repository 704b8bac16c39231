"""Render and write the Apache httpd + mod_wsgi deployment: a ``.wsgi`` entry point and a vhost.

Pure text rendering plus file writing for ``cheesecellar deploy-apache``; the templates here are
the ones shipped in the repository's ``deploy/`` folder (a test keeps the two identical).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import pathlib
import re
import socket
import sys
import tempfile

from cheesecellar.errors import ConfigError

#: The ``.wsgi`` entry point. mod_wsgi does not copy Apache's ``SetEnv`` into ``os.environ``,
#: so the file names its paths itself.
WSGI_TEMPLATE = '''\
"""mod_wsgi entry point of cheesecellar, written by `cheesecellar deploy-apache`."""

PACKAGES = {PACKAGES}
PASSWORD_FILE = {PASSWORD_FILE}

import gc  # noqa: E402

from cheesecellar import app  # noqa: E402

application = app(
    root=PACKAGES,
    password_file=PASSWORD_FILE,
    authenticate=["update"],
    redirect_to_fallback=False,
)
# What start-up loaded (the list of files on disk, the records kept) lives as long as the
# process: keep the cyclic garbage collector's full passes from walking it all (long pauses
# with many files).
gc.freeze()
'''

_VHOST_DOC = """\
# Apache httpd virtual host for cheesecellar under mod_wsgi: the template.
#
# `cheesecellar deploy-apache` fills in the placeholders and writes NAME.conf and NAME.wsgi;
# deploy/README.md has the steps. Placeholders and the options that set them:
#   {NAME}                name of the mod_wsgi process group and of both files (--name)
#   {LISTEN}              address of the virtual host, * for all (--listen)
#   {PORT}                TCP port; Apache must also `Listen` on it (--port)
#   {SERVER_NAME}         host name clients use (--server-name)
#   {DAEMON_USER}         unprivileged user that runs the app and owns the packages (--user)
#   {DAEMON_GROUP}        its group (--group)
#   {PROCESSES}           number of daemon processes (--processes)
#   {THREADS}             threads per daemon process (--threads)
#   {VENV}                virtualenv made with the Python that mod_wsgi embeds (--venv)
#   {APP_DIR}             absolute directory that holds NAME.wsgi (--output-dir)
#   {WSGI_FILE}           absolute path of NAME.wsgi
#   {PREFIX}              URL path the index is served under, / or e.g. /pypi (--prefix)
#   {LIMIT_REQUEST_BODY}  largest request body (upload) in bytes (--limit-request-body)
#   {REQUIRE}             who may connect, an Apache `Require` rule (--require, repeatable)
# %{GLOBAL} and %{GROUP} are mod_wsgi's own variables, not placeholders.

"""

_VHOST_BODY = """\
<VirtualHost {LISTEN}:{PORT}>
    ServerName {SERVER_NAME}

    # The app runs in its own daemon processes, as an unprivileged user, on the venv's Python.
    WSGIDaemonProcess {NAME} user={DAEMON_USER} group={DAEMON_GROUP} \\
        processes={PROCESSES} threads={THREADS} \\
        python-home={VENV} home={APP_DIR} display-name=%{GROUP}
    WSGIProcessGroup {NAME}
    # One interpreter per process: bcrypt and cryptography (PyO3) fail in sub-interpreters.
    WSGIApplicationGroup %{GLOBAL}
    # mod_wsgi drops the Authorization header unless told otherwise: every upload would get 401.
    WSGIPassAuthorization On
    WSGIScriptAlias {PREFIX} {WSGI_FILE}
    # Largest request body in bytes (the largest upload); Apache answers 413 above it.
    LimitRequestBody {LIMIT_REQUEST_BODY}

    <Directory {APP_DIR}>
        <Files {NAME}.wsgi>
            Require {REQUIRE}
            # Require all granted
        </Files>
    </Directory>
</VirtualHost>
"""

#: The vhost template exactly as shipped in ``deploy/apache/cheesecellar.conf``.
VHOST_TEMPLATE = _VHOST_DOC + _VHOST_BODY

DEFAULT_REQUIRE = "ip 127.0.0.1 ::1"

# `%{GLOBAL}` and `%{GROUP}` belong to mod_wsgi and are left alone.
_PLACEHOLDER = re.compile(r"(?<!%)\{([A-Z][A-Z_]*)\}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.?")
# Apache config arguments are split on blanks and expand ${VAR}; keep paths to plain characters.
_PATH = re.compile(r"/[\w.+@,~/-]*")
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)*/?")
# LimitRequestBody accepts 0 (no limit) up to 2 GiB - 1.
_MAX_BODY = 2_147_483_647


@dataclasses.dataclass(frozen=True)
class ApacheSite:
    """Everything the vhost needs; validated on creation, paths absolute."""

    app_dir: pathlib.Path
    venv: pathlib.Path
    server_name: str
    name: str = "cheesecellar"
    listen: str = "*"
    port: int = 80
    user: str = "www-data"
    group: str = "www-data"
    processes: int = 2
    threads: int = 8
    prefix: str = "/"
    limit_request_body: int = 104_857_600
    require: tuple[str, ...] = (DEFAULT_REQUIRE,)

    def __post_init__(self) -> None:
        _check_path("--output-dir", self.app_dir)
        _check_path("--venv", self.venv)
        _check(_NAME.fullmatch(self.name) is not None, "--name", self.name)
        _check(_HOSTNAME.fullmatch(self.server_name) is not None, "--server-name", self.server_name)
        object.__setattr__(self, "listen", _listen_address(self.listen))
        _check(1 <= self.port <= 65535, "--port", self.port)
        for option, account in (("--user", self.user), ("--group", self.group)):
            _check(_ACCOUNT.fullmatch(account) is not None, option, account)
            # mod_wsgi refuses to run a daemon process as root.
            _check(account != "root", option, account, "mod_wsgi refuses to run as root")
        _check(1 <= self.processes <= 256, "--processes", self.processes)
        _check(1 <= self.threads <= 1024, "--threads", self.threads)
        _check(
            _PREFIX.fullmatch(self.prefix) is not None and not re.search(r"/\.+(/|$)", self.prefix),
            "--prefix",
            self.prefix,
        )
        object.__setattr__(self, "prefix", self.prefix.rstrip("/") or "/")
        _check(
            0 <= self.limit_request_body <= _MAX_BODY,
            "--limit-request-body",
            self.limit_request_body,
        )
        _check(bool(self.require), "--require", self.require, "give at least one rule")
        for rule in self.require:
            ok = bool(rule.strip()) and rule.isprintable() and not rule.startswith("Require ")
            _check(ok, "--require", rule, "give the rule without the word Require")

    @property
    def wsgi_file(self) -> pathlib.Path:
        return self.app_dir / f"{self.name}.wsgi"

    @property
    def conf_file(self) -> pathlib.Path:
        return self.app_dir / f"{self.name}.conf"


def render_wsgi(packages: pathlib.Path, password_file: pathlib.Path) -> str:
    """The ``.wsgi`` entry point serving ``packages`` with uploads checked against the htpasswd."""
    _check_absolute("PACKAGES", packages)
    _check_absolute("--passwords", password_file)
    # JSON string literals are valid Python string literals, in double quotes.
    return _fill(
        WSGI_TEMPLATE,
        PACKAGES=json.dumps(str(packages)),
        PASSWORD_FILE=json.dumps(str(password_file)),
    )


def render_vhost(site: ApacheSite) -> str:
    """The Apache ``<VirtualHost>`` for ``site``, with a short header saying how to install it."""
    header = (
        f"# cheesecellar under Apache httpd + mod_wsgi, written by `cheesecellar deploy-apache`.\n"
        f"# Install: cp {site.conf_file} /etc/apache2/sites-available/ && a2ensite {site.name}\n"
        f"# Apache must `Listen` on port {site.port}: Debian's /etc/apache2/ports.conf has\n"
        f"# `Listen 80`; for another port add `Listen {site.port}` there.\n\n"
    )
    require = "\n            Require ".join(site.require)
    body = _fill(
        _VHOST_BODY,
        NAME=site.name,
        LISTEN=site.listen,
        PORT=str(site.port),
        SERVER_NAME=site.server_name,
        DAEMON_USER=site.user,
        DAEMON_GROUP=site.group,
        PROCESSES=str(site.processes),
        THREADS=str(site.threads),
        VENV=str(site.venv),
        APP_DIR=str(site.app_dir),
        WSGI_FILE=str(site.wsgi_file),
        PREFIX=site.prefix,
        LIMIT_REQUEST_BODY=str(site.limit_request_body),
        REQUIRE=require,
    )
    return header + body


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cheesecellar deploy-apache`` to ``parser``."""
    parser.description = (
        "Write NAME.wsgi and NAME.conf (an Apache virtual host) for serving PACKAGES under "
        "Apache httpd + mod_wsgi. Copy NAME.conf to /etc/apache2/sites-available/; "
        "NAME.wsgi stays in the output directory, which Apache serves it from."
    )
    add = parser.add_argument
    add(
        "packages",
        metavar="PACKAGES",
        type=pathlib.Path,
        help="package directory; the --user account must be able to write it",
    )
    add(
        "-P",
        "--passwords",
        required=True,
        type=pathlib.Path,
        metavar="HTPASSWD",
        help="htpasswd file checked for uploads (make it with `htpasswd -cB -C 10`)",
    )
    add(
        "-o",
        "--output-dir",
        type=pathlib.Path,
        default=pathlib.Path("."),
        metavar="DIR",
        help="directory to write NAME.wsgi and NAME.conf to, and that Apache serves NAME.wsgi "
        "from (default: the current directory)",
    )
    add(
        "--venv",
        type=pathlib.Path,
        default=pathlib.Path(sys.prefix),
        metavar="DIR",
        help="virtualenv with cheesecellar installed, made with the Python that mod_wsgi "
        "embeds (Debian: /usr/bin/python3) (default: this Python's, %(default)s)",
    )
    add(
        "--name",
        default="cheesecellar",
        help="mod_wsgi process group and file name stem; must be unique per Apache "
        "(default: %(default)s)",
    )
    add(
        "--server-name",
        default=None,
        metavar="HOST",
        help="ServerName of the virtual host (default: this machine's FQDN)",
    )
    add(
        "--listen",
        default="*",
        metavar="ADDRESS",
        help="address of the <VirtualHost>, * for every address (default: %(default)s)",
    )
    add("-p", "--port", type=int, default=80, help="TCP port (default: %(default)s)")
    add(
        "--prefix",
        default="/",
        metavar="PATH",
        help="URL path to serve the index under, e.g. /pypi; clients then use "
        "http://HOST/pypi/simple/ (default: %(default)s)",
    )
    add(
        "--require",
        action="append",
        default=None,
        metavar="RULE",
        help="Apache `Require` rule for who may connect, without the word Require, e.g. "
        "'ip 10.0.0.0/8' or 'all granted'; repeat to allow several (any one suffices) "
        f"(default: '{DEFAULT_REQUIRE}', this machine only)",
    )
    add("--user", default="www-data", help="user the app runs as (default: %(default)s)")
    add("--group", default="www-data", help="group the app runs as (default: %(default)s)")
    add("--processes", type=int, default=2, help="mod_wsgi daemon processes (default: %(default)s)")
    add("--threads", type=int, default=8, help="threads per daemon process (default: %(default)s)")
    add(
        "--limit-request-body",
        type=int,
        default=104_857_600,
        metavar="BYTES",
        help="largest request body, so the largest upload, in bytes; 0 for no limit "
        "(default: %(default)s, 100 MiB)",
    )


def run(args: argparse.Namespace) -> list[pathlib.Path]:
    """Write NAME.wsgi and NAME.conf for ``args`` and return their paths (wsgi first)."""
    site = ApacheSite(
        app_dir=_absolute(args.output_dir),
        venv=_absolute(args.venv),
        server_name=args.server_name or socket.getfqdn(),
        name=args.name,
        listen=args.listen,
        port=args.port,
        user=args.user,
        group=args.group,
        processes=args.processes,
        threads=args.threads,
        prefix=args.prefix,
        limit_request_body=args.limit_request_body,
        require=tuple(args.require or (DEFAULT_REQUIRE,)),
    )
    wsgi = render_wsgi(_absolute(args.packages), _absolute(args.passwords))
    vhost = render_vhost(site)
    site.app_dir.mkdir(parents=True, exist_ok=True)
    _write(site.wsgi_file, wsgi)
    _write(site.conf_file, vhost)
    return [site.wsgi_file, site.conf_file]


def _fill(template: str, **values: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _PLACEHOLDER.sub(replace, template)


def _absolute(path: pathlib.Path) -> pathlib.Path:
    # abspath also folds `..`, unlike Path.absolute; symlinks are kept as the admin wrote them.
    return pathlib.Path(os.path.abspath(os.path.expanduser(path)))


def _listen_address(listen: str) -> str:
    if listen in ("*", "_default_"):
        return listen
    try:
        address = ipaddress.ip_address(listen.strip("[]"))
    except ValueError:
        _check(_HOSTNAME.fullmatch(listen) is not None, "--listen", listen)
        return listen
    return f"[{address}]" if address.version == 6 else str(address)


def _check_absolute(option: str, path: pathlib.Path) -> None:
    _check(path.is_absolute(), option, path, "give an absolute path")


def _check_path(option: str, path: pathlib.Path) -> None:
    _check_absolute(option, path)
    _check(
        _PATH.fullmatch(str(path)) is not None,
        option,
        path,
        "Apache needs a path of letters, digits and . _ - + @ , ~ /",
    )


def _check(ok: bool, option: str, value: object, why: str = "") -> None:
    if not ok:
        raise ConfigError(f"bad value for {option}: {value!r}" + (f" ({why})" if why else ""))


def _write(path: pathlib.Path, text: str) -> None:
    """Replace ``path`` atomically; mode 0644 so the daemon user can read it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
