"""Fixtures for the robustness tests: in-process apps over a watched root, real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cheesecellar

from .checks import IndexState
from .servers import ServerProcess
from .support import OPEN
from .wsgi import Wsgi

AppFactory = Callable[..., tuple[Wsgi, IndexState]]


def build_app(**kwargs: Any) -> Any:
    """``cheesecellar.app(**kwargs)``, the pypiserver-compatible factory."""
    return cheesecellar.app(**kwargs)


def _layout(base: Path) -> tuple[Path, Path]:
    """A package root with a sentinel folder beside it that nothing may touch."""
    root = base / "root"
    sentinel = base / "sentinel"
    root.mkdir(parents=True)
    (sentinel / "nested").mkdir(parents=True)
    (sentinel / "secret.txt").write_bytes(b"SENTINEL-SECRET-0xC0FFEE\n")
    (sentinel / "nested" / "x-1.0-py3-none-any.whl").write_bytes(b"SENTINEL-WHEEL\n")
    return root, sentinel


@pytest.fixture
def make_app(tmp_path: Path) -> AppFactory:
    """``make_app(**app_kwargs)``: a fresh in-process app over a new root, and its state."""
    count = [0]

    def factory(**kwargs: Any) -> tuple[Wsgi, IndexState]:
        count[0] += 1
        root, sentinel = _layout(tmp_path / f"site{count[0]}")
        options = {**OPEN, **kwargs}
        app = build_app(root=str(root), **options)
        return Wsgi(app), IndexState(root, sentinel)

    return factory


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``servers(root, *options)`` starts a real server; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(root: Path, *options: str) -> ServerProcess:
        log = tmp_path / f"server-{len(started)}.log"
        server = ServerProcess(root, log, options or ("-P", ".", "-a", "."))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
