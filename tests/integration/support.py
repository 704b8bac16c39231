"""Helpers for the end-to-end tests: client environments, builds, venvs and tools.

`Builder` builds the example package in temp dirs; `Venv` installs from a server with pip
isolated from the machine's configuration (see shared/reference/apache-mod-wsgi.md §7
"Isolate pip"); `TwineUpload` runs twine against a server's root URL.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .servers import Server

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXAMPLE_PACKAGE = EXAMPLES / "linode_example"
PROJECT = "linode_example"
NORMALIZED = "linode-example"

USER = "alice"
PASSWORD = "s3cret-Pa55"
HELLO = "from linode_example import hello_world; hello_world()"

CLIENT_TIMEOUT = 300.0


# --------------------------------------------------------------------------- tools


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def pypi_server_script() -> Path:
    return Path(sys.executable).parent / "pypi-server"


def client_env(**extra: str) -> dict[str, str]:
    """The environment for client tools with every pip, uv and twine setting removed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_"))
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def pip_env(**extra: str) -> dict[str, str]:
    return client_env(PIP_CONFIG_FILE=os.devnull, **extra)


def uv_env(**extra: str) -> dict[str, str]:
    return client_env(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", **extra)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = CLIENT_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a command, output merged into `.stdout`; fail with that output when `check`."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"command failed with exit code {proc.returncode}: {' '.join(map(str, cmd))}\n"
            f"{proc.stdout}"
        )
    return proc


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under the roots, hidden ones too: inode, size and mtime of files.

    A folder's own mtime is left out: a temp file that came and went changes it, and
    nothing a client can see.
    """
    found: dict[str, tuple[int, int, int]] = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            st = path.lstat()
            found[str(path)] = (
                (st.st_ino, 0, 0) if path.is_dir() else (st.st_ino, st.st_size, st.st_mtime_ns)
            )
    return found


# --------------------------------------------------------------------------- builds


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


class Builder:
    """Builds variants of examples/linode_example with `python -m build`, once each."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache: dict[tuple[str, str], Dist] = {}

    def copy_example(self, dest: Path, version: str = "0.1", marker: str = "") -> Path:
        """A copy of the example project, never the checkout itself, at another version."""
        shutil.copytree(
            EXAMPLE_PACKAGE,
            dest,
            ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
        )
        cfg = dest / "setup.cfg"
        text = cfg.read_text()
        assert "\nversion = 0.1\n" in text
        cfg.write_text(text.replace("\nversion = 0.1\n", f"\nversion = {version}\n"))
        if marker:
            init = dest / PROJECT / "__init__.py"
            init.write_text(init.read_text() + f"\n# build variant: {marker}\n")
        return dest

    def __call__(self, version: str = "0.1", marker: str = "") -> Dist:
        key = (version, marker)
        if key not in self.cache:
            where = self.tmp / f"build-{version}-{marker or 'plain'}"
            src = self.copy_example(where / "src", version, marker)
            out = where / "dist"
            run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, src])
            wheel = out / f"{PROJECT}-{version}-py3-none-any.whl"
            sdist = out / f"{PROJECT}-{version}.tar.gz"
            assert sorted(out.iterdir()) == sorted([wheel, sdist]), list(out.iterdir())
            self.cache[key] = Dist(wheel, sdist)
        return self.cache[key]


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return venv_python(self.path)

    def has_project(self) -> bool:
        found = run(
            [
                self.python,
                "-I",
                "-c",
                f"import importlib.util as u, sys; sys.exit(u.find_spec({PROJECT!r}) is None)",
            ],
            check=False,
        )
        return found.returncode == 0

    def hello(self, cwd: Path) -> str:
        """Run the installed package's hello_world() (isolated mode: not from cwd)."""
        return run([self.python, "-I", "-c", HELLO], env=client_env(), cwd=cwd).stdout

    def pip_install(
        self, server: Server, *args: str, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pip install` from our server only: no config files, no PIP_* variables."""
        return run(
            [
                self.python,
                "-m",
                "pip",
                "--isolated",
                "install",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--index-url",
                server.simple_url,
                *args,
            ],
            env=pip_env(),
            cwd=cwd,
        )


def make_venv(path: Path, *requirements: str) -> Venv:
    """A venv with pip; requirements come from the default index (PyPI), not our server."""
    run([sys.executable, "-m", "venv", path])
    venv = Venv(path)
    if requirements:
        run(
            [
                venv.python,
                "-m",
                "pip",
                "--isolated",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                *requirements,
            ],
            env=pip_env(),
        )
    return venv


def twine_available() -> bool:
    return importlib.util.find_spec("twine") is not None


def uv_command() -> list[str] | None:
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    return [found] if found else None


class TwineUpload:
    """`twine upload` to a server's root URL, with a private HOME and no TWINE_* settings."""

    def __init__(self, twine: list[str], tmp: Path) -> None:
        self.twine = twine
        self.home = tmp / "twine-home"
        self.home.mkdir(exist_ok=True)

    def __call__(
        self,
        server: Server,
        *files: Path,
        user: str = USER,
        password: str = PASSWORD,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [
                *self.twine,
                "upload",
                "--non-interactive",
                "--disable-progress-bar",
                "--repository-url",
                server.url,
                "-u",
                user,
                "-p",
                password,
                *files,
            ],
            env=client_env(HOME=str(self.home)),
            check=check,
        )
