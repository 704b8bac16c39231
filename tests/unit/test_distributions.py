"""Project names and distribution filenames (PEP 503, 508, 427, 440, 625, 527, 715)."""

from __future__ import annotations

import pytest
from packaging.version import InvalidVersion, Version

from cheesecellar import distributions
from cheesecellar.distributions import (
    Distribution,
    check_upload_filename,
    is_valid_name,
    normalize_name,
    parse_filename,
)
from cheesecellar.errors import InvalidFilename


# PEP 503: re.sub(r"[-_.]+", "-", name).lower()
@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("FrIeNdLy-._.-bArD", "friendly-bard"),
        ("friendly-bard", "friendly-bard"),
        ("Friendly.Bard", "friendly-bard"),
        ("friendly_bard", "friendly-bard"),
        ("FRIENDLY--BARD", "friendly-bard"),
        ("friendly__._bard", "friendly-bard"),
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("a", "a"),
        ("A1", "a1"),
    ],
)
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


# Core metadata "Name" / PEP 508: ^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$ (case-insensitive),
# anchored with \Z so that a trailing newline is not accepted.
@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("Z", True),
        ("0", True),
        ("demo-pkg", True),
        ("Demo.Pkg_2", True),
        ("FrIeNdLy-._.-bArD", True),
        ("", False),
        ("-demo", False),
        ("demo-", False),
        ("demo.", False),
        ("_demo", False),
        ("demo pkg", False),
        ("demo!", False),
        ("bang!", False),
        ("démo", False),
        ("demo\n", False),
        ("demo\r\n", False),
        ("\ndemo", False),
        ("demo/pkg", False),
    ],
)
def test_is_valid_name(name: str, valid: bool) -> None:
    assert is_valid_name(name) is valid


# PEP 427: {dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl; tags are '.'-joined sets.
@pytest.mark.parametrize(
    ("filename", "name", "version", "tags"),
    [
        ("demo_pkg-1.0-py3-none-any.whl", "demo_pkg", "1.0", "py3-none-any"),
        ("demo_pkg-1.0-py2.py3-none-any.whl", "demo_pkg", "1.0", "py2.py3-none-any"),
        ("demo_pkg-1.0-1-py3-none-any.whl", "demo_pkg", "1.0", "1-py3-none-any"),
        ("demo_pkg-2.0.1-12abc-cp312-cp312-linux_x86_64.whl", "demo_pkg", "2.0.1",
         "12abc-cp312-cp312-linux_x86_64"),
        ("Demo.Pkg-1.0-py3-none-any.whl", "Demo.Pkg", "1.0", "py3-none-any"),
        # PEP 440 normalization of the version part.
        ("demo_pkg-1.0.0RC1-py3-none-any.whl", "demo_pkg", "1.0.0rc1", "py3-none-any"),
        ("demo_pkg-1.0+local.7-py3-none-any.whl", "demo_pkg", "1.0+local.7", "py3-none-any"),
    ],
)  # fmt: skip
def test_parse_wheel_filename(filename: str, name: str, version: str, tags: str) -> None:
    assert parse_filename(filename) == Distribution(filename, name, version, "wheel", ".whl", tags)


# PEP 625 (.tar.gz, one '-') and the legacy sdist spellings still found on disk.
@pytest.mark.parametrize(
    ("filename", "name", "version", "extension"),
    [
        ("demo_pkg-1.0.tar.gz", "demo_pkg", "1.0", ".tar.gz"),
        ("demo_pkg-1.0.zip", "demo_pkg", "1.0", ".zip"),
        ("demo_pkg-1.0.tgz", "demo_pkg", "1.0", ".tgz"),
        ("demo_pkg-1.0.tar.bz2", "demo_pkg", "1.0", ".tar.bz2"),
        ("demo_pkg-1.0.tar.xz", "demo_pkg", "1.0", ".tar.xz"),
        ("Demo_Pkg-1.0.TAR.GZ", "Demo_Pkg", "1.0", ".tar.gz"),
        ("Foo.Bar_baz-1.0.0.tar.gz", "Foo.Bar_baz", "1.0.0", ".tar.gz"),
        ("demo-pkg-2.0.tar.gz", "demo-pkg", "2.0", ".tar.gz"),
    ],
)
def test_parse_sdist_filename(filename: str, name: str, version: str, extension: str) -> None:
    assert parse_filename(filename) == Distribution(filename, name, version, "sdist", extension)


# index-standards §8: a legacy sdist stem with '-' in the name is ambiguous; the documented
# heuristic is "the first '-' after which the rest is a PEP 440 version, else the last '-'
# followed by a digit".
@pytest.mark.parametrize(
    ("filename", "name", "version"),
    [
        # No split gives a PEP 440 version; the last '-' before a digit wins (as pypiserver).
        ("package-v1-8.1.301.ga0df26f.zip", "package-v1", "8.1.301.ga0df26f"),
        # "1.0.3.dev-20110405" is a valid PEP 440 dev release: split at the first '-'
        # (as pypiserver). The version is kept as spelled.
        ("flup-1.0.3.dev-20110405.tar.gz", "flup", "1.0.3.dev-20110405"),
        # Ours: "1.2.3" is the first suffix that is a PEP 440 version, so the name keeps
        # "-34_V1X". pypiserver's regex gave ("ABC12", "34_V1X-1.2.3") instead.
        ("ABC12-34_V1X-1.2.3.zip", "ABC12-34_V1X", "1.2.3"),
        # A version may start with "v" or an epoch.
        ("demo-pkg-v2.0.tar.gz", "demo-pkg", "v2.0"),
        ("demo-pkg-2!1.0.tar.gz", "demo-pkg", "2!1.0"),
    ],
)
def test_legacy_sdist_heuristic(filename: str, name: str, version: str) -> None:
    dist = parse_filename(filename)
    assert (dist.name, dist.version, dist.kind) == (name, version, "sdist")


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        # PEP 715 / PEP 527: eggs and installers are not distributions we list.
        ("demo_pkg-1.0-py3.11.egg", "Invalid file extension"),
        ("demo_pkg-1.0.win32.exe", "Invalid file extension"),
        ("demo_pkg-1.0.msi", "Invalid file extension"),
        ("demo_pkg-1.0.tar", "Invalid file extension"),
        ("demo_pkg-1.0.tar.gz.asc", "Invalid file extension"),
        ("noversion.tar.gz", "Bad filename"),
        ("demo_pkg-.tar.gz", "Bad filename"),
        ("-1.0.tar.gz", "Bad filename"),
        ("demo_pkg-1.0-py3-none.whl", "Bad filename"),
        ("demo-pkg-1.0-py3-none-any.whl", "Bad filename"),
        ("demo_pkg-not.a.version-py3-none-any.whl", "Bad filename"),
        ("dir/demo_pkg-1.0.tar.gz", "Cannot upload a file with '/' or '\\' in the name."),
        ("dir\\demo_pkg-1.0.tar.gz", "Cannot upload a file with '/' or '\\' in the name."),
        ("../demo_pkg-1.0.tar.gz", "Cannot upload a file with '/' or '\\' in the name."),
        ("..demo_pkg-1.0.tar.gz", "Cannot upload a file whose name starts with '.'"),
        ("demo_pkg..-1.0.tar.gz", "Cannot upload a file whose name starts with '.'"),
        (".demo_pkg-1.0.tar.gz", "Cannot upload a file whose name starts with '.'"),
        ("demo_pkg-1.0\x00.tar.gz", "Cannot upload a file with non-printable characters"),
        ("demo_pkg-1.0\n.tar.gz", "Cannot upload a file with non-printable characters"),
        ("", "Upload payload does not have a file name."),
    ],
)
def test_parse_filename_rejects(filename: str, message: str) -> None:
    with pytest.raises(InvalidFilename) as excinfo:
        parse_filename(filename)
    assert str(excinfo.value).startswith(message)


def test_parse_filename_rejects_over_255_bytes() -> None:
    with pytest.raises(InvalidFilename, match="longer than 255 bytes"):
        parse_filename("a" * 250 + "-1.0.tar.gz")


# ---------------------------------------------------------------- uploads (PEP 625, 527)


@pytest.mark.parametrize(
    ("filename", "name", "version", "kind", "file_name", "file_version"),
    [
        ("demo_pkg-1.0.tar.gz", "demo-pkg", "1.0", "sdist", "demo_pkg", "1.0"),
        ("demo_pkg-1.0.zip", "demo-pkg", "1.0", "sdist", "demo_pkg", "1.0"),
        ("Demo.Pkg-1.0.tar.gz", "demo_pkg", "1.0", "sdist", "Demo.Pkg", "1.0"),
        # The form's name says where the name ends in a legacy stem.
        ("package-v1-8.1.301.tar.gz", "package-v1", "8.1.301", "sdist", "package-v1", "8.1.301"),
        ("demo_pkg-1.0-py3-none-any.whl", "demo-pkg", "1.0", "wheel", "demo_pkg", "1.0"),
        # PEP 440: the same version spelled differently is the same version.
        ("demo_pkg-1.0.0.tar.gz", "demo-pkg", "1.0.0", "sdist", "demo_pkg", "1.0.0"),
        ("demo_pkg-1.0rc1.tar.gz", "demo-pkg", "1.0-rc.1", "sdist", "demo_pkg", "1.0rc1"),
        # Local versions: PyPI refuses them; a private index accepts them (index-standards §8).
        ("demo_pkg-1.0+local.1.tar.gz", "demo-pkg", "1.0+local.1", "sdist", "demo_pkg",
         "1.0+local.1"),
        ("demo_pkg-1.0+abc-py3-none-any.whl", "demo-pkg", "1.0+abc", "wheel", "demo_pkg",
         "1.0+abc"),
    ],
)  # fmt: skip
def test_check_upload_filename_accepts(
    filename: str, name: str, version: str, kind: str, file_name: str, file_version: str
) -> None:
    dist = check_upload_filename(filename, name, version)
    assert (dist.filename, dist.name, dist.version, dist.kind) == (
        filename,
        file_name,
        file_version,
        kind,
    )


# PyPI's wording (index-standards §9): "Start filename for '<Project>' with
# '<normalized_with_underscores>'." / "Version in filename should be '<v>' not '<file v>'."
@pytest.mark.parametrize(
    ("filename", "name", "version", "message"),
    [
        ("other-1.0.tar.gz", "demo-pkg", "1.0", "Start filename for 'demo-pkg' with 'demo_pkg'."),
        ("demo-1.0.tar.gz", "Demo.Pkg", "1.0", "Start filename for 'Demo.Pkg' with 'demo_pkg'."),
        ("other-1.0-py3-none-any.whl", "demo-pkg", "1.0",
         "Start filename for 'demo-pkg' with 'demo_pkg'."),
        ("demo_pkg-1.1.tar.gz", "demo-pkg", "1.0",
         "Version in filename should be '1.0' not '1.1'."),
        ("demo_pkg-1.1-py3-none-any.whl", "demo-pkg", "1.0",
         "Version in filename should be '1.0' not '1.1'."),
        ("demo_pkg-1.0.tar.gz", "demo-pkg", "1.0.post1",
         "Version in filename should be '1.0.post1' not '1.0'."),
        ("demo_pkg-garbage.tar.gz", "demo-pkg", "1.0",
         "Version in filename should be '1.0' not 'garbage'."),
        # PEP 527: only .tar.gz and .zip sdists may be uploaded; PEP 715: no eggs.
        ("demo_pkg-1.0.tar.bz2", "demo-pkg", "1.0",
         "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
         "(https://peps.python.org/pep-0527)"),
        ("demo_pkg-1.0.tgz", "demo-pkg", "1.0",
         "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
         "(https://peps.python.org/pep-0527)"),
        ("demo_pkg-1.0-py3.11.egg", "demo-pkg", "1.0",
         "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
         "(https://peps.python.org/pep-0527)"),
        ("demo_pkg-1.0.exe", "demo-pkg", "1.0",
         "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
         "(https://peps.python.org/pep-0527)"),
        # uv skips wheels with '-' in the name part (uv#18049): refused on upload.
        ("demo-pkg-1.0-py3-none-any.whl", "demo-pkg", "1.0",
         "Bad filename: 'demo-pkg-1.0-py3-none-any.whl' is not a valid wheel name."),
        # Invalid form values (pypiserver compat §6.2: 'bang!-1.0.zip' is refused).
        ("bang!-1.0.zip", "bang!", "1.0", "Invalid project name 'bang!'."),
        ("demo_pkg-1.0.tar.gz", "demo-pkg", "one", "Invalid version 'one': not a PEP 440 version."),
        ("../demo_pkg-1.0.tar.gz", "demo-pkg", "1.0",
         "Cannot upload a file with '/' or '\\' in the name."),
    ],
)  # fmt: skip
def test_check_upload_filename_rejects(
    filename: str, name: str, version: str, message: str
) -> None:
    with pytest.raises(InvalidFilename) as excinfo:
        check_upload_filename(filename, name, version)
    assert str(excinfo.value) == message


# The duplicate check compares a canonical key: normalized name, canonical version, tags.
@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("Foo-1.0-py3-none-any.whl", "foo-1.0.0-py3-none-any.whl", True),
        ("Foo.Bar-1.0-py3-none-any.whl", "foo_bar-1-py3-none-any.whl", True),
        ("foo-1.0.tar.gz", "Foo-1.0.0.tar.gz", True),
        ("foo-1.0-py3-none-any.whl", "foo-1.0-py2.py3-none-any.whl", False),
        ("foo-1.0-py3-none-any.whl", "foo-1.0-1-py3-none-any.whl", False),
        ("foo-1.0-py3-none-any.whl", "foo-1.1-py3-none-any.whl", False),
        ("foo-1.0.tar.gz", "foo-1.0.zip", False),
    ],
)
def test_distribution_key(first: str, second: str, same: bool) -> None:
    assert (parse_filename(first).key == parse_filename(second).key) is same


def test_distribution_project_is_normalized() -> None:
    assert parse_filename("Foo.Bar_baz-1.0.0.tar.gz").project == "foo-bar-baz"


@pytest.mark.parametrize(
    ("filename", "version"),
    [("demo_pkg-1.0.tar.gz", "1" * 150_001), ("demo_pkg-" + "9" * 5000 + ".tar.gz", "1.0")],
)
def test_huge_numeric_versions_are_refused_not_crashing(filename: str, version: str) -> None:
    # packaging >= 26.3 raises ValueError (int digit limit) rather than InvalidVersion here.
    with pytest.raises(InvalidFilename):
        check_upload_filename(filename, "demo-pkg", version)


@pytest.mark.parametrize(
    "text",
    ["1.0", " 1.0", "\t1.0 ", "v1", "V1.0", "v 1", "va1", "1.0-1", "1!2.0", "x1", "", "-1",
     ".1", "1.0.dev-20110405", "\u0661.0", "\uff11.0", "1" * 5000],
)  # fmt: skip
def test_canonical_version_agrees_with_packaging(text: str) -> None:
    """The quick refusal before parsing (a version starts with a digit, after blanks and a
    "v") never refuses what packaging accepts."""
    try:
        expected: str | None = str(Version(text))
    except (InvalidVersion, ValueError):
        expected = None
    assert distributions._canonical_version(text) == expected
