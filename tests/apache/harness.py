"""Helpers for running a real, self-contained Apache httpd + mod_wsgi serving cheesecellar.

Follows shared/reference/apache-mod-wsgi.md §5-§7: nothing under /etc/apache2 or /run is read or
written; Apache runs as `apache2 -f ABS/httpd.conf -DFOREGROUND` from a world-readable work dir.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import http.client
import io
import os
import pathlib
import signal
import subprocess
import time
import zipfile
from collections.abc import Sequence

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
MODULES = pathlib.Path("/usr/lib/apache2/modules")
SYSTEM_PYTHON = pathlib.Path("/usr/bin/python3")
USER, PASSWORD = "alice", "s3cret"
# Apache and its daemons get a clean environment: a PYTHONPATH or PYTHONHOME of the test run
# must not leak into the embedded interpreter.
APACHE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
AS_ROOT = os.geteuid() == 0

HTTPD_CONF = """\
ServerRoot "{run}"
DefaultRuntimeDir "{run}"
PidFile "{run}/httpd.pid"
ErrorLog "{run}/error.log"
LogLevel warn wsgi:info
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
Mutex file:{run} default
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_host_module {modules}/mod_authz_host.so
LoadModule reqtimeout_module {modules}/mod_reqtimeout.so
LoadModule wsgi_module {modules}/mod_wsgi.so
User www-data
Group www-data
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 8
MaxSpareThreads 32
LogFormat "%h %u %t \\"%r\\" %>s %b %Dus" timed
CustomLog "{run}/access.log" timed
WSGISocketPrefix "{run}/wsgi"
WSGIRestrictEmbedded On
<Directory />
    AllowOverride None
    Require all denied
</Directory>
Include "{vhost}"
"""


def write_httpd_conf(run_dir: pathlib.Path, port: int, vhost: pathlib.Path) -> pathlib.Path:
    """A self-contained httpd.conf: nothing under /etc/apache2 or /run is read or written."""
    conf = run_dir / "httpd.conf"
    conf.write_text(HTTPD_CONF.format(run=run_dir, port=port, modules=MODULES, vhost=vhost))
    return conf


def run(
    cmd: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with umask 022 (www-data reads what it writes); a failure shows its output."""
    done = subprocess.run(cmd, capture_output=True, text=True, umask=0o022, env=env)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def has_venv() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv"]).returncode == 0


def pip_install_isolated(venv: pathlib.Path, index_url: str, *requirements: str) -> None:
    """Install from ``index_url`` only: the machine's pip config adds other package sources."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    run(
        [
            venv / "bin" / "pip",
            "--isolated",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            index_url,
            *requirements,
        ],
        env=env,
    )


def build_wheel(dest: pathlib.Path, name: str, version: str) -> pathlib.Path:
    """A minimal valid pure-Python wheel for import package ``name`` (PEP 427)."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n',
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
            "Summary: A probe package for the Apache deployment test\n"
        ),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: cheesecellar-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), text)
    return wheel


@dataclasses.dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def pid(self) -> int:
        """The daemon process that answered (X-Served-By-Pid from the test-only wrapper)."""
        return int(self.headers["X-Served-By-Pid"])


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    source: str | None = None,
) -> Response:
    """One HTTP request on a fresh connection, optionally from loopback address ``source``."""
    assert url.startswith("http://")
    hostport, _, path = url[len("http://") :].partition("/")
    host, _, port = hostport.partition(":")
    all_headers = dict(headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        all_headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection(
        host, int(port), timeout=30, source_address=(source, 0) if source else None
    )
    try:
        conn.request(method, "/" + path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def upload_form(wheel: pathlib.Path, name: str, version: str) -> tuple[bytes, str]:
    """A legacy-API (``:action=file_upload``) multipart body, as twine sends it."""
    content = wheel.read_bytes()
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }
    boundary = "cheesecellar-apache-test-boundary"
    out = io.BytesIO()
    for key, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    out.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{wheel.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
    )
    out.write(content + f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# Test-only: wraps the rendered entry point to say which daemon process answered.
PID_WRAPPER = """\
import os
import runpy

_app = runpy.run_path({rendered!r}, run_name="cheesecellar_rendered_wsgi")["application"]


def application(environ, start_response):
    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Served-By-Pid", str(os.getpid()))], exc_info)

    return _app(environ, start)
"""


@dataclasses.dataclass
class Apache:
    """One running Apache instance serving the rendered deployment."""

    run_dir: pathlib.Path
    conf: pathlib.Path
    port: int
    prefix: str
    packages: pathlib.Path
    vhost: pathlib.Path
    wsgi: pathlib.Path
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False

    @property
    def url(self) -> str:
        """Base URL of the index, ending in a slash."""
        return f"http://127.0.0.1:{self.port}{self.prefix.rstrip('/')}/"

    def logs(self) -> str:
        parts = []
        for name in ("error.log", "access.log", "apache.out"):
            path = self.run_dir / name
            if path.exists():
                parts.append(f"--- {name} (tail) ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def start(self, apache2: str) -> None:
        run([apache2, "-f", self.conf, "-t"], env=APACHE_ENV)
        with open(self.run_dir / "apache.out", "wb") as out:
            self.proc = subprocess.Popen(
                [apache2, "-f", str(self.conf), "-DFOREGROUND"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=APACHE_ENV,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"apache2 exited {self.proc.returncode}\n{self.logs()}"
            with contextlib.suppress(OSError):
                if request(self.url + "simple/").status < 500:
                    return
            assert time.monotonic() < deadline, f"Apache not serving {self.url}\n{self.logs()}"
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop Apache and make sure that it and every daemon process are gone."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        family = _descendants(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        family |= _by_cmdline(str(self.conf))
        deadline = time.monotonic() + 10
        while (left := {p for p in family if alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"Apache processes outlived the server: {sorted(left)}\n{self.logs()}"
        assert self.proc.returncode == 0, f"apache2 exited {self.proc.returncode}\n{self.logs()}"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, or None when it is gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rpartition(")")[2].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        if (stat := _proc_stat(pid)) is not None:
            children.setdefault(stat[1], []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _by_cmdline(needle: str) -> set[int]:
    found = set()
    for pid in _all_pids():
        with contextlib.suppress(OSError):
            if needle.encode() in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
    return found
