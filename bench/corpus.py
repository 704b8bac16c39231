"""Write a deterministic benchmark corpus: valid wheels and sdists, flat in one directory.

    python bench/corpus.py --files 100000 /tmp/corpus-100k

P projects x V versions x 2 files (one wheel, one sdist). Names mix case, dots, dashes and
underscores (``Proj.Name_00042-x``) so normalization is exercised. Archives are stored
uncompressed with a fixed timestamp and written by several processes, so 100,000 files take
well under a minute on two cores and the same arguments always give byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import time
import zipfile
from base64 import urlsafe_b64encode
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ZIP_TIME = (2024, 1, 1, 0, 0, 0)
TAR_TIME = 1704067200  # 2024-01-01T00:00:00Z
MARKER = ".corpus.json"
_SEPARATORS = (".", "-", "_")


def project_name(index: int, seed: int) -> str:
    """A valid, unnormalized project name: mixed case, dots, dashes, underscores."""
    rng = random.Random(seed * 1_000_003 + index)
    words = ["Proj", "name", "Data", "kit", "Lib", "tool", "Py", "core", "Web", "io"]
    first, second = rng.choice(words), rng.choice(words)
    sep1, sep2 = rng.choice(_SEPARATORS), rng.choice(_SEPARATORS)
    tail = rng.choice(["x", "X", "ext", "Z9"])
    return f"{first}{sep1}{second.title() if index % 2 else second}{sep2}{index:05d}-{tail}"


def version_string(index: int) -> str:
    return f"{1 + index // 10}.{index % 10}.0"


def _record_line(path: str, data: bytes) -> str:
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _payload(name: str, version: str, size: int) -> bytes:
    # Incompressible and deterministic, so hashing reads realistic byte counts.
    return random.Random(f"{name}=={version}").randbytes(size)


def _metadata(name: str, version: str, metadata_version: str) -> bytes:
    return (
        f"Metadata-Version: {metadata_version}\n"
        f"Name: {name}\n"
        f"Version: {version}\n"
        f"Summary: benchmark project {name}\n"
        "Requires-Python: >=3.8\n"
        "Requires-Dist: packaging>=20\n"
        "\n"
        f"Long description of {name} {version}.\n"
    ).encode()


def write_wheel(directory: Path, name: str, version: str, payload_size: int) -> str:
    """A PEP 427 wheel with METADATA, WHEEL and a correct RECORD; returns the filename."""
    dist = name.replace("-", "_").replace(".", "_")  # PEP 427 escaping keeps the case
    module = dist.lower()
    info = f"{dist}-{version}.dist-info"
    members = [
        (f"{module}/__init__.py", f'__version__ = "{version}"\n'.encode()),
        (f"{module}/data.bin", _payload(name, version, payload_size)),
        (f"{info}/METADATA", _metadata(name, version, "2.1")),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: cheesecellar-bench\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        ),
    ]
    record = "\n".join(_record_line(p, d) for p, d in members) + f"\n{info}/RECORD,,\n"
    members.append((f"{info}/RECORD", record.encode()))
    filename = f"{dist}-{version}-py3-none-any.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path, data in members:
            zf.writestr(zipfile.ZipInfo(path, ZIP_TIME), data)
    (directory / filename).write_bytes(buf.getvalue())
    return filename


def write_sdist(directory: Path, name: str, version: str, payload_size: int) -> str:
    """A PEP 625 sdist (``{name}-{ver}.tar.gz``) with a Metadata 2.2 PKG-INFO."""
    dist = name.replace("-", "_").replace(".", "_").lower()
    base = f"{dist}-{version}"
    pkg_info = _metadata(name, version, "2.2")
    members = [
        (f"{base}/PKG-INFO", pkg_info),
        (
            f"{base}/pyproject.toml",
            f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode(),
        ),
        (f"{base}/src/data.bin", _payload(name, version, payload_size)),
    ]
    buf = io.BytesIO()
    # compresslevel=1: gzip is the slow part of writing a corpus; mtime=0 keeps it reproducible.
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for path, data in members:
                ti = tarfile.TarInfo(path)
                ti.size, ti.mtime, ti.mode = len(data), TAR_TIME, 0o644
                tf.addfile(ti, io.BytesIO(data))
    filename = f"{base}.tar.gz"
    (directory / filename).write_bytes(buf.getvalue())
    return filename


def _write_projects(args: tuple[str, list[int], int, int, int]) -> int:
    directory, indexes, versions, seed, payload = args
    out = Path(directory)
    count = 0
    for index in indexes:
        name = project_name(index, seed)
        for v in range(versions):
            version = version_string(v)
            write_wheel(out, name, version, payload)
            write_sdist(out, name, version, payload)
            count += 2
    return count


def plan(files: int, versions: int) -> tuple[int, int]:
    """(projects, versions) giving *files* files: 2 files per version."""
    versions = max(1, min(versions, files // 2))
    projects = max(1, files // (2 * versions))
    return projects, versions


def generate(
    directory: Path,
    files: int,
    *,
    versions: int = 5,
    seed: int = 42,
    payload: int = 4096,
    jobs: int | None = None,
) -> dict[str, object]:
    """Write the corpus unless *directory* already holds the same one; returns its description."""
    projects, versions = plan(files, versions)
    spec = {
        "files": projects * versions * 2,
        "projects": projects,
        "versions": versions,
        "seed": seed,
        "payload": payload,
        "format": 2,
    }
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return spec
    jobs = jobs or os.cpu_count() or 1
    chunks = [list(range(i, projects, jobs * 8)) for i in range(min(projects, jobs * 8))]
    with ProcessPoolExecutor(jobs) as pool:
        written = sum(
            pool.map(
                _write_projects,
                [(str(directory), c, versions, seed, payload) for c in chunks],
            )
        )
    if written != spec["files"]:
        raise RuntimeError(f"wrote {written} files, expected {spec['files']}")
    marker.write_text(json.dumps(spec))
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--files", type=int, default=1000, help="total files (default 1000)")
    parser.add_argument("--versions", type=int, default=5, help="versions per project")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--payload", type=int, default=4096, help="bytes of data per archive")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    spec = generate(
        args.directory,
        args.files,
        versions=args.versions,
        seed=args.seed,
        payload=args.payload,
        jobs=args.jobs,
    )
    took = time.perf_counter() - start
    print(
        f"{spec['files']} files ({spec['projects']} projects x {spec['versions']} versions x 2)"
        f" in {args.directory} [{took:.1f} s]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
