"""Two real server processes on one directory: concurrent uploads, and one winner per name."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .archives import Dist, make_wheel
from .checks import check_manifests, parse_page
from .servers import HttpReply, ServerProcess

pytestmark = pytest.mark.integration

Servers = Callable[..., ServerProcess]


def two_servers(tmp_path: Path, servers: Servers) -> tuple[Path, list[ServerProcess]]:
    root = tmp_path / "root"
    root.mkdir()
    return root, [servers(root), servers(root)]


def listed_everywhere(nodes: list[ServerProcess], dists: list[Dist]) -> None:
    """Every server lists exactly these files with their hashes, and serves their bytes."""
    want: dict[str, dict[str, str]] = {}
    for dist in dists:
        want.setdefault(dist.name, {})[dist.filename] = dist.sha256
    for node in nodes:
        for project, files in want.items():
            assert node.listing(project) == files, (node.port, project)
            page = node.get(f"/simple/{project}/")
            anchors = {text: href for href, text, _ in parse_page(page.body).anchors}
            assert {n: h.partition("#sha256=")[2] for n, h in anchors.items()} == files
        for dist in dists:
            got = node.get(f"/packages/{dist.filename}")
            assert (got.status, got.body == dist.data) == (200, True), (node.port, dist.filename)


def test_distinct_uploads_through_two_servers(tmp_path: Path, servers: Servers) -> None:
    root, nodes = two_servers(tmp_path, servers)
    dists = [
        make_wheel(f"race-{p}", f"{v}.0", payload=os.urandom(2048))
        for p in range(4)
        for v in range(10)
    ]

    def send(index: int) -> HttpReply:
        return nodes[index % 2].upload(dists[index])

    done = threading.Event()

    def read(node: ServerProcess) -> int:
        """Pages read meanwhile: each makes the server look for files the other one wrote."""
        count = 0
        while not done.is_set():
            for project in ("race-0", "race-1", "race-2", "race-3"):
                assert node.get(f"/simple/{project}/").status in (200, 404)
                count += 1
        return count

    with ThreadPoolExecutor(16) as pool, ThreadPoolExecutor(4) as readers:
        reads = [readers.submit(read, node) for node in nodes + nodes]
        replies = list(pool.map(send, range(len(dists))))
        done.set()
        pages = sum(r.result() for r in reads)
    assert [r.status for r in replies] == [200] * len(dists), [(r.status, r.body) for r in replies]
    listed_everywhere(nodes, dists)
    check_manifests(root, {d.filename: d.data for d in dists})
    assert not list((root / ".cheesecellar" / "tmp").iterdir())
    print(
        f"\n{len(dists)} concurrent uploads through 2 servers ({pages} page reads meanwhile)"
        ": all listed on both"
    )


def contest(nodes: list[ServerProcess], contenders: list[Dist]) -> list[HttpReply]:
    """Send every contender at the same moment, alternating between the servers."""
    barrier = threading.Barrier(len(contenders))

    def send(index: int) -> HttpReply:
        barrier.wait()
        return nodes[index % 2].upload(contenders[index])

    with ThreadPoolExecutor(len(contenders)) as pool:
        return list(pool.map(send, range(len(contenders))))


def judge(
    root: Path, nodes: list[ServerProcess], contenders: list[Dist], replies: list[HttpReply]
) -> Dist:
    """Exactly one 200, every other a 409 naming the winner's hash; the winner's bytes stored."""
    statuses = [r.status for r in replies]
    assert sorted(statuses) == [200] + [409] * (len(replies) - 1), [
        (r.status, r.body) for r in replies
    ]
    winner = contenders[statuses.index(200)]
    for reply in replies:
        if reply.status == 409:
            text = reply.body.decode()
            assert text.startswith("File already exists"), text
            assert re.search(rf"sha256 hash '{winner.sha256}'", text), (text, winner.sha256)
    assert (root / winner.filename).read_bytes() == winner.data
    return winner


def test_one_filename_many_contenders(tmp_path: Path, servers: Servers) -> None:
    root, nodes = two_servers(tmp_path, servers)
    winners = []
    for round_ in range(1, 6):
        contenders = [
            make_wheel(
                "contest", f"{round_}.0", payload=f"contender {i} ".encode() + os.urandom(512)
            )
            for i in range(8)
        ]
        winners.append(judge(root, nodes, contenders, contest(nodes, contenders)))
        listed_everywhere(nodes, winners)
    check_manifests(root)
    assert not list((root / ".cheesecellar" / "tmp").iterdir())
    print("\n5 rounds of 8 contenders for one filename: one winner each")


def test_one_distribution_many_spellings(tmp_path: Path, servers: Servers) -> None:
    """The same release under different spellings is one file (a canonical key), in a race too."""
    root, nodes = two_servers(tmp_path, servers)
    spellings = [
        ("spelt", "1.0"),
        ("Spelt", "1.0"),
        ("SPELT", "1.0"),
        ("spelt", "1.0.0"),
        ("Spelt", "1.00"),
        ("spelt", "01.0"),
        ("sPelt", "1.0.0.0"),
        ("SpElT", "1.0.0"),
    ]
    for round_ in range(3):
        contenders = [
            make_wheel(
                name,
                version.replace("1", str(round_ + 1), 1),
                payload=f"{round_} {i} ".encode() + os.urandom(256),
            )
            for i, (name, version) in enumerate(spellings)
        ]
        statuses = [r.status for r in contest(nodes, contenders)]
        assert sorted(statuses) == [200] + [409] * 7, statuses
    for node in nodes:
        assert len(node.listing("spelt")) == 3, node.listing("spelt")
    assert len([p for p in root.iterdir() if p.name != ".cheesecellar"]) == 3
