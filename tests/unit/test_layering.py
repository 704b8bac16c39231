"""One-way dependencies (STYLE 2): Bottle only in web/, passlib only in auth.py, boto3 only in
storage/s3.py. Checked on the source with ``ast``, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cheesecellar

PACKAGE = Path(cheesecellar.__file__).resolve().parent

# library -> the package-relative paths (or folders, ending in "/") allowed to import it
ALLOWED = {
    "bottle": "web/",
    "passlib": "auth.py",
    "boto3": "storage/s3.py",
}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in *path*, wherever it appears."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def sources() -> dict[str, set[str]]:
    return {
        path.relative_to(PACKAGE).as_posix(): imported_modules(path)
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _allowed(relpath: str, rule: str) -> bool:
    return relpath.startswith(rule) if rule.endswith("/") else relpath == rule


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_library_imported_only_where_allowed(library: str) -> None:
    offenders = sorted(
        rel for rel, modules in sources().items()
        if library in modules and not _allowed(rel, ALLOWED[library])
    )  # fmt: skip
    assert offenders == []


@pytest.mark.parametrize(("library", "where"), [("bottle", "web/app.py"), ("passlib", "auth.py")])
def test_the_scan_sees_the_real_imports(library: str, where: str) -> None:
    # Guards against a vacuous pass (a wrong package path, a parser that finds nothing).
    assert library in sources()[where]


def test_importing_the_package_does_not_import_bottle_or_passlib() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cheesecellar, cheesecellar.config, cheesecellar.catalog, cheesecellar.auth; "
        "print(sorted(m for m in ('bottle', 'passlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
