"""Upload rules over real HTTP: logins, duplicates, removal and htpasswd hash schemes.

Requests are made by hand (http.client, multipart bodies as twine sends them) where the
exact status and body matter, and with twine where the client's reaction matters.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ..needs import require_tool
from .servers import (
    Server,
    ServerFactory,
    expected_link,
)
from .support import (
    NORMALIZED,
    PASSWORD,
    PROJECT,
    USER,
    Builder,
    Dist,
    TwineUpload,
    snapshot,
)

pytestmark = pytest.mark.integration

CHALLENGE = 'Basic realm="cheesecellar"'


def test_upload_without_credentials_is_401_and_writes_nothing(server: Server, dist01: Dist) -> None:
    before = snapshot(server.root)
    resp = server.upload(dist01.wheel, auth=None)
    assert resp.status == 401, (resp.status, resp.body)
    assert resp.headers["WWW-Authenticate"] == CHALLENGE
    assert snapshot(server.root) == before
    assert server.get(f"/simple/{NORMALIZED}/").status == 404


def test_upload_with_wrong_password_is_403_and_writes_nothing(server: Server, dist01: Dist) -> None:
    before = snapshot(server.root)
    for auth in [(USER, PASSWORD + "x"), ("mallory", PASSWORD), (USER, "")]:
        resp = server.upload(dist01.wheel, auth=auth)
        assert resp.status == 403, (auth, resp.status, resp.body)
        assert "WWW-Authenticate" not in resp.headers
    assert snapshot(server.root) == before
    assert server.get(f"/simple/{NORMALIZED}/").status == 404


def test_twine_with_wrong_password_fails(
    server: Server, dist01: Dist, twine_upload: TwineUpload
) -> None:
    before = snapshot(server.root)
    out = twine_upload(server, dist01.wheel, password="wrong", check=False)
    assert out.returncode != 0
    assert "403" in out.stdout, out.stdout
    assert snapshot(server.root) == before


def test_upload_by_hand_with_credentials(server: Server, dist01: Dist) -> None:
    resp = server.upload(dist01.wheel)
    assert resp.status == 200, (resp.status, resp.body)
    assert (server.root / dist01.wheel.name).read_bytes() == dist01.wheel.read_bytes()
    assert server.links() == [expected_link(dist01.wheel)]


def test_reupload_identical_bytes_is_a_no_op(
    server: Server, dist01: Dist, twine_upload: TwineUpload
) -> None:
    twine_upload(server, dist01.wheel)
    stored = server.root / dist01.wheel.name
    before = snapshot(server.root)
    stat = stored.stat()

    twine_upload(server, dist01.wheel)
    resp = server.upload(dist01.wheel)
    assert resp.status == 200, (resp.status, resp.body)

    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        stat.st_ino,
        stat.st_mtime_ns,
        stat.st_size,
    )
    assert stored.read_bytes() == dist01.wheel.read_bytes()
    assert snapshot(server.root) == before
    assert server.links() == [expected_link(dist01.wheel)]


def test_different_bytes_same_filename_is_409(
    server: Server, build: Builder, dist01: Dist, twine_upload: TwineUpload
) -> None:
    other = build("0.1", marker="other-bytes")
    assert other.wheel.name == dist01.wheel.name
    assert other.wheel.read_bytes() != dist01.wheel.read_bytes()
    twine_upload(server, dist01.wheel)
    stored = server.root / dist01.wheel.name
    stat = stored.stat()

    out = twine_upload(server, other.wheel, check=False)
    assert out.returncode != 0, out.stdout
    assert "409" in out.stdout, out.stdout
    assert "File already exists" in out.stdout, out.stdout
    assert server.answered("POST", "/", 409), server.log_text()

    resp = server.upload(other.wheel)
    assert resp.status == 409, (resp.status, resp.body)
    assert resp.text.startswith("File already exists"), resp.body
    assert dist01.wheel.name in resp.text

    assert stored.read_bytes() == dist01.wheel.read_bytes()
    assert (stored.stat().st_ino, stored.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert server.links() == [expected_link(dist01.wheel)]


def test_remove_pkg_removes_a_release(
    server: Server, build: Builder, dist01: Dist, twine_upload: TwineUpload
) -> None:
    dist02 = build("0.2")
    twine_upload(server, dist01.wheel, dist01.sdist, dist02.wheel)
    fields = [(":action", "remove_pkg"), ("name", PROJECT), ("version", "0.1")]

    denied = server.post_form(fields, auth=None)
    assert denied.status == 401, (denied.status, denied.body)
    assert (server.root / dist01.wheel.name).exists()

    resp = server.post_form(fields, auth=(USER, PASSWORD))
    assert resp.status == 200, (resp.status, resp.body)
    assert not (server.root / dist01.wheel.name).exists()
    assert not (server.root / dist01.sdist.name).exists()
    assert (server.root / dist02.wheel.name).read_bytes() == dist02.wheel.read_bytes()
    assert server.links() == [expected_link(dist02.wheel)]
    assert server.get(f"/packages/{dist01.wheel.name}").status == 404

    fields_02 = [(":action", "remove_pkg"), ("name", PROJECT), ("version", "0.2")]
    assert server.post_form(fields_02, auth=(USER, PASSWORD)).status == 200
    assert server.get(f"/simple/{NORMALIZED}/").status == 404


def test_htpasswd_tool_hashes(server_factory: ServerFactory, dist01: Dist, tmp_path: Path) -> None:
    """Users written by Apache's own htpasswd with bcrypt (-B), SHA1 (-s) and apr1 (-m)."""
    tool = shutil.which("htpasswd")
    require_tool(tool is not None, "htpasswd (apache2-utils)")
    assert tool is not None
    path = tmp_path / "htpasswd-apache"
    users = {"-B": ("bob", "b-secret-1"), "-s": ("carol", "c-secret-2"), "-m": ("dave", "d-3")}
    for i, (flag, (user, password)) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([tool, *create, "-b", flag, str(path), user, password], check=True)
    lines = path.read_text().splitlines()
    assert [line.split(":", 1)[1][:4] for line in lines] == ["$2y$", "{SHA", "$apr"]

    server = server_factory(["-P", path, "-a", "update"])
    for user, password in users.values():
        wrong = server.upload(dist01.wheel, auth=(user, password + "!"))
        assert wrong.status == 403, (user, wrong.status, wrong.body)
        # The first good login stores the file; the others re-send identical bytes (200).
        resp = server.upload(dist01.wheel, auth=(user, password))
        assert resp.status == 200, (user, resp.status, resp.body)
    assert (server.root / dist01.wheel.name).read_bytes() == dist01.wheel.read_bytes()
    assert server.upload(dist01.wheel, auth=(USER, PASSWORD)).status == 403


def test_auth_disabled_with_dots(server_factory: ServerFactory, dist01: Dist) -> None:
    """`-P . -a .` turns logins off: an upload without credentials is stored."""
    server = server_factory(["-P", ".", "-a", "."])
    resp = server.upload(dist01.sdist, auth=None)
    assert resp.status == 200, (resp.status, resp.body)
    assert (server.root / dist01.sdist.name).read_bytes() == dist01.sdist.read_bytes()
    assert server.links() == [expected_link(dist01.sdist)]
