"""Serve one port from several forked processes (``pypi-server run --workers N``).

Each process gets its own listening socket on the same port (SO_REUSEPORT), so the kernel
spreads connections over them; processes share nothing but the storage, as Apache's daemon
processes do. The parent only supervises: it restarts a process that dies and stops them all
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

# A process that dies this soon after it started is failing, not crashing now and then.
_QUICK_DEATH_S = 2.0


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """*count* sockets listening on one port (the first picks it when *port* is 0)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:  # one socket alone must not share its port with another server
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(1024)
            address = sock.getsockname()  # the port the first one got
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def serve_forked(
    serve: Callable[[socket.socket], None],
    sockets: list[socket.socket],
    started: Callable[[], None] = lambda: None,
) -> int:
    """Run ``serve(sock)`` in one forked process per socket until SIGTERM or SIGINT;
    ``started()`` runs in this process once the first ones are forked.

    Returns 0 after a requested stop, 1 when a process kept dying right after it started.
    """
    children: dict[int, tuple[int, float]] = {}  # pid -> (socket index, start time)
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                for other, sock in enumerate(sockets):
                    if other != index:
                        sock.close()
                serve(sockets[index])
                code = 0
            except BaseException:
                log.exception("server process %d failed", os.getpid())
            finally:
                os._exit(code)
        children[pid] = (index, time.monotonic())

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    failed = False
    try:
        for index in range(len(sockets)):
            spawn(index)
        started()
        while children:
            pid, status = os.wait()
            index, born = children.pop(pid, (-1, 0.0))
            if stopping or index < 0:
                continue
            log.error("server process %d exited (status %d); starting another", pid, status)
            if time.monotonic() - born < _QUICK_DEATH_S:
                failed = True
                stop(signal.SIGTERM, None)
                continue
            spawn(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in sockets:
            sock.close()
    return 1 if failed else 0
