"""Checks of what the server produced: the package root against the uploads, and pages."""

from __future__ import annotations

import html.parser
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .archives import Dist
from .support import STATE, sha256


class PageParser(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.anchors: list[tuple[str, str, dict[str, str | None]]] = []
        self._anchor: tuple[str, list[str], dict[str, str | None]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._anchor = (dict(attrs).get("href") or "", [], dict(attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            href, text, attrs = self._anchor
            self.anchors.append((href, "".join(text), attrs))
            self._anchor = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._anchor is not None:
            self._anchor[1].append(data)


# The markup our templates produce; anything else in a page was injected.
ALLOWED_TAGS = {"html", "head", "meta", "title", "body", "h1", "h2", "a", "br", "p", "pre", "code"}
ALLOWED_ATTRS = {
    "charset",
    "name",
    "content",
    "href",
    "data-requires-python",
    "data-core-metadata",
    "data-dist-info-metadata",
    "data-yanked",
}


def parse_page(body: bytes) -> PageParser:
    parser = PageParser()
    parser.feed(body.decode("utf-8"))
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, f"unexpected <{tag}> in page: {body[:2000]!r}"
        assert set(attrs) <= ALLOWED_ATTRS, f"unexpected attributes {attrs} in page"
    return parser


@dataclass
class IndexState:
    """What the package root may hold: the accepted uploads and nothing else."""

    root: Path
    sentinel: Path
    accepted: dict[str, bytes] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    _outside: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.baseline()

    def baseline(self) -> None:
        """Take the current state outside the root as the one that must not change."""
        self._outside = self.outside()

    def outside(self) -> dict[str, Any]:
        """The parent's listing and the sentinel folder's files with their bytes."""
        seen: dict[str, Any] = {"parent": sorted(os.listdir(self.root.parent))}
        for path in sorted(self.sentinel.rglob("*")):
            seen[str(path)] = path.read_bytes() if path.is_file() else "dir"
        return seen

    def accept(self, dist: Dist) -> None:
        self.accepted[dist.filename] = dist.data

    def check(self) -> None:
        """Nothing outside the root, no temp files, no partial files, nothing lost."""
        assert self.outside() == self._outside, "something was written outside the root"
        tmp = self.root / STATE / "tmp"
        leftovers = list(tmp.iterdir()) if tmp.exists() else []
        assert not leftovers, f"temp files left behind: {leftovers}"
        on_disk: dict[str, bytes] = {}
        for path in self.root.rglob("*"):
            rel = path.relative_to(self.root)
            if rel.parts[0] == STATE:
                allowed = (
                    rel.parts
                    in (
                        (STATE,),
                        (STATE, "lock"),
                        (STATE, "tmp"),
                        (STATE, "index"),
                        (STATE, "metadata"),
                    )
                    or (
                        len(rel.parts) == 3
                        and rel.parts[1] == "index"
                        and rel.name.endswith(".json")
                    )
                    or (
                        len(rel.parts) == 3
                        and rel.parts[1] == "metadata"
                        and rel.name.endswith(".metadata")
                    )
                )
                assert allowed, f"unexpected state file {rel}"
                continue
            assert path.is_file() and not path.is_symlink(), f"unexpected entry {rel}"
            on_disk[str(rel)] = path.read_bytes()
        for name, data in on_disk.items():
            assert name in self.accepted, f"{name} is in the root but was never accepted"
            assert data == self.accepted[name], f"{name} differs from the accepted upload"
        missing = set(self.accepted) - set(on_disk) - self.removed
        assert not missing, f"accepted uploads lost: {sorted(missing)}"
        check_manifests(self.root, {n: d for n, d in self.accepted.items() if n in on_disk})


def check_manifests(root: Path, expected: dict[str, bytes] | None = None) -> dict[str, str]:
    """Parse every manifest; each listed file exists with the recorded sha256 and size.

    Returns {filename: sha256} of every listed file; with *expected*, the listing must be
    exactly those files.
    """
    listed: dict[str, str] = {}
    index = root / STATE / "index"
    projects = (
        json.loads((index / "_projects.json").read_text())
        if (index / "_projects.json").exists()
        else {}
    )
    for path in sorted(index.glob("*.json")) if index.exists() else []:
        if path.name == "_projects.json":
            continue
        doc = json.loads(path.read_text())
        if doc["files"]:
            assert path.stem in projects, f"{path.stem} has files but is not in _projects.json"
        for filename, record in doc["files"].items():
            data = (root / record["path"]).read_bytes()
            assert sha256(data) == record["sha256"], f"{filename}: recorded hash is wrong"
            assert len(data) == record["size"], f"{filename}: recorded size is wrong"
            listed[filename] = record["sha256"]
    if expected is not None:
        assert listed == {n: sha256(d) for n, d in expected.items()}, (
            sorted(listed),
            sorted(expected),
        )
    return listed
