"""Nobody in: every guarded action on every route needs valid credentials, from this site.

401 without credentials, 403 with wrong ones, success with the right ones; the htpasswd file
is re-read when it changes; cross-site POSTs cannot change anything; an unknown user costs a
hash check like a known one.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

from .archives import Dist, make_wheel
from .conftest import build_app
from .support import PASSWORD, STATE, USER, basic
from .wsgi import Form, Reply, Wsgi, action_form, upload_form

PROJECT = "guarded-pkg"
ACTIONS = ["file_upload", "remove_pkg", "yank", "unyank", "set_status"]
UPDATE_ROUTES = ["/", "/legacy/"]
LIST_ROUTES = [
    "/simple/",
    f"/simple/{PROJECT}/",
    "/packages/",
    f"/pypi/{PROJECT}/json",
    f"/pypi/{PROJECT}/1.0/json",
    f"/{PROJECT}/json",
]
FIRST = make_wheel(PROJECT, "1.0", payload=b"first")
DOWNLOAD_ROUTES = [f"/packages/{FIRST.filename}", f"/packages/{FIRST.filename}.metadata"]
CREDENTIALS = {
    "none": None,
    "wrong-password": basic(USER, "not-" + PASSWORD),
    "unknown-user": basic("mallory", PASSWORD),
}
WANT = {"none": 401, "wrong-password": 403, "unknown-user": 403}


def write_htpasswd(path: Path, users: dict[str, str], rounds: int = 4) -> None:
    """bcrypt entries as `htpasswd -B -C <rounds>` writes them."""
    from passlib.hash import bcrypt

    lines = [f"{u}:{bcrypt.using(rounds=rounds, ident='2y').hash(p)}\n" for u, p in users.items()]
    path.write_text("".join(lines))


def guarded_app(tmp_path: Path, actions: str = "update,download,list") -> tuple[Wsgi, Path]:
    root = tmp_path / "root"
    root.mkdir()
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {USER: PASSWORD})
    app = Wsgi(build_app(root=str(root), password_file=str(htpasswd), authenticate=actions))
    reply = app.upload(FIRST, headers={"Authorization": basic(USER, PASSWORD)})
    assert reply.status == 200, reply.body
    return app, root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the root and its state, except the lock and the temp folder."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "lock" and (STATE + "/tmp") not in str(p.relative_to(root))
    }


def action_request(action: str) -> tuple[Form, Dist | None]:
    if action == "file_upload":
        dist = make_wheel(PROJECT, "2.0", payload=b"second")
        return upload_form(dist), dist
    fields = {"name": PROJECT, "version": "1.0"}
    if action == "yank":
        fields["reason"] = "broken"
    if action == "set_status":
        fields = {"name": PROJECT, "status": "deprecated", "reason": "use something else"}
    return action_form(action, **fields), None


def project_json(app: Wsgi) -> dict[str, object]:
    reply = app.get(
        f"/simple/{PROJECT}/",
        headers={
            "Authorization": basic(USER, PASSWORD),
            "Accept": "application/vnd.pypi.simple.v1+json",
        },
    )
    if reply.status == 404:
        return {"files": []}
    assert reply.status == 200, reply.body
    doc: dict[str, object] = json.loads(reply.body)
    return doc


@pytest.mark.parametrize("route", UPDATE_ROUTES)
@pytest.mark.parametrize("action", ACTIONS)
def test_update_actions_need_credentials(tmp_path: Path, route: str, action: str) -> None:
    app, root = guarded_app(tmp_path)
    before = snapshot(root)
    form, dist = action_request(action)
    for label, header in CREDENTIALS.items():
        headers = {"Authorization": header} if header else {}
        reply = app.post(form, route, headers)
        assert reply.status == WANT[label], (label, reply.status, reply.body)
        if reply.status == 401:
            assert (reply.header("WWW-Authenticate") or "").startswith("Basic realm="), (
                reply.headers
            )
        assert snapshot(root) == before, f"{action} via {route} changed the index ({label})"
    reply = app.post(form, route, {"Authorization": basic(USER, PASSWORD)})
    assert reply.status == 200, (reply.status, reply.body)
    files = {f["filename"]: f for f in project_json(app)["files"]}  # type: ignore[attr-defined]
    if action == "file_upload":
        assert dist is not None and (root / dist.filename).read_bytes() == dist.data
    elif action == "remove_pkg":
        assert FIRST.filename not in files and not (root / FIRST.filename).exists()
    elif action == "yank":
        assert files[FIRST.filename]["yanked"] == "broken"
    elif action == "unyank":
        assert files[FIRST.filename]["yanked"] is False
    else:
        assert project_json(app)["project-status"] == {
            "status": "deprecated",
            "reason": "use something else",
        }


@pytest.mark.parametrize("path", LIST_ROUTES + DOWNLOAD_ROUTES)
def test_reads_need_credentials(tmp_path: Path, path: str) -> None:
    app, _ = guarded_app(tmp_path)
    for label, header in CREDENTIALS.items():
        reply = app.get(path, headers={"Authorization": header} if header else {})
        assert reply.status == WANT[label], (label, reply.status, reply.body)
        assert PROJECT.encode() not in reply.body and b"PK" not in reply.body
    reply = app.get(path, headers={"Authorization": basic(USER, PASSWORD)})
    assert reply.status == 200, (reply.status, reply.body)
    if path == DOWNLOAD_ROUTES[0]:
        assert reply.body == FIRST.data
    elif path == DOWNLOAD_ROUTES[1]:
        assert reply.body.startswith(b"Metadata-Version: 2.1\nName: guarded-pkg\n")
    else:
        assert PROJECT.encode() in reply.body or FIRST.filename.encode() in reply.body


@pytest.mark.parametrize("route", UPDATE_ROUTES)
@pytest.mark.parametrize(
    "header",
    [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", "http://127.0.0.1:8080.evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ],
)
@pytest.mark.parametrize("action", ACTIONS)
def test_cross_site_posts_change_nothing(
    tmp_path: Path, route: str, header: tuple[str, str], action: str
) -> None:
    app, root = guarded_app(tmp_path, "update")
    before = snapshot(root)
    form, _ = action_request(action)
    reply = app.post(form, route, {"Authorization": basic(USER, PASSWORD), header[0]: header[1]})
    assert reply.status == 403, (reply.status, reply.body)
    assert snapshot(root) == before
    # The same request from the index's own pages goes through.
    same_site = {
        "Authorization": basic(USER, PASSWORD),
        "Origin": "http://127.0.0.1:8080",
        "Sec-Fetch-Site": "same-origin",
    }
    assert app.post(form, route, same_site).status == 200


def test_password_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    from passlib.apache import HtpasswdFile

    app, root = guarded_app(tmp_path, "update")
    htpasswd = tmp_path / "htpasswd"
    old = basic(USER, PASSWORD)
    new_password = "N3w-" + PASSWORD

    def post(version: str, authorization: str) -> Reply:
        dist = make_wheel(PROJECT, version, payload=version.encode())
        return app.upload(dist, headers={"Authorization": authorization})

    assert post("3.0", old).status == 200
    before = htpasswd.stat().st_mtime_ns
    passwords = HtpasswdFile(str(htpasswd))
    passwords.set_password(USER, new_password)
    passwords.set_password("bob", "b0b-pass")
    passwords.save()
    if htpasswd.stat().st_mtime_ns == before:
        os.utime(htpasswd, ns=(before + 1_000_000_000, before + 1_000_000_000))
    assert post("4.0", old).status == 403
    assert post("4.0", basic(USER, new_password)).status == 200
    assert post("5.0", basic("bob", "b0b-pass")).status == 200
    passwords.delete("bob")
    passwords.save()
    os.utime(htpasswd, ns=(before + 2_000_000_000, before + 2_000_000_000))
    assert post("6.0", basic("bob", "b0b-pass")).status == 403
    assert not (root / f"{PROJECT.replace('-', '_')}-6.0-py3-none-any.whl").exists()


@pytest.mark.parametrize(
    ("label", "rounds"), [("htpasswd -B default cost", 5), ("passlib default cost", 12)]
)
def test_unknown_user_costs_a_hash_check(tmp_path: Path, label: str, rounds: int) -> None:
    """Timing must not tell whether a user exists: both paths verify a bcrypt hash."""
    root = tmp_path / "root"
    root.mkdir()
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {USER: PASSWORD}, rounds=rounds)
    app = Wsgi(build_app(root=str(root), password_file=str(htpasswd), authenticate="list"))
    known, unknown = basic(USER, "wrong"), basic("nobody-here", "wrong")
    for header in (known, unknown):  # warm up: file read, dummy hash made
        assert app.get("/simple/", {"Authorization": header}).status == 403
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(5):
        for name, header in (("known", known), ("unknown", unknown)):
            started = time.perf_counter()
            assert app.get("/simple/", {"Authorization": header}).status == 403
            times[name].append(time.perf_counter() - started)
    mean = {k: statistics.mean(v) for k, v in times.items()}
    print(
        f"\n{label} ({rounds}): known user {mean['known'] * 1000:.1f} ms, "
        f"unknown user {mean['unknown'] * 1000:.1f} ms"
    )
    assert mean["unknown"] >= mean["known"] / 4, mean
