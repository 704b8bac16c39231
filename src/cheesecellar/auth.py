"""Who may do what: htpasswd logins (via passlib) and the actions that need them."""

from __future__ import annotations

import base64
import logging
import os
import threading
from pathlib import Path
from typing import Any

from .config import Auther
from .errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII header text
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Htpasswd:
    """An htpasswd file, re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._file: Any = None

    def _current(self) -> Any:
        try:
            st = os.stat(self.path)
        except OSError:
            log.error("cannot read the password file %s", self.path)
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                # Imported lazily: a broken password library must not stop reads or --help.
                from passlib.apache import HtpasswdFile

                self._file = HtpasswdFile(str(self.path))
                self._stamp = stamp
            return self._file

    def check(self, user: str, password: str) -> bool:
        htpasswd = self._current()
        if htpasswd is None:
            return False
        try:
            users = htpasswd.users()
            if user in users:
                return bool(htpasswd.check_password(user, password))
            if users:
                # An unknown name costs a check against a real entry (same scheme, same
                # cost), so timing does not reveal who exists; its result is ignored.
                htpasswd.check_password(users[0], password)
        except ValueError:  # bcrypt >= 5 refuses secrets over 72 bytes: a failed login
            pass
        return False


class Authenticator:
    """Decides, per action, whether a request's credentials are good enough."""

    def __init__(
        self,
        actions: frozenset[str],
        password_file: Path | None = None,
        auther: Auther | None = None,
    ) -> None:
        self.actions = actions
        self._auther: Auther | None = auther
        if auther is None and password_file is not None:
            self._auther = Htpasswd(password_file).check

    def needs_login(self, action: str) -> bool:
        return action in self.actions

    def authorize(self, action: str, authorization: str | None, client: str = "-") -> str | None:
        """The user name allowed to do *action*; None when the action is open.

        Raises Unauthorized (401) without credentials and Forbidden (403) with wrong ones.
        """
        if action not in self.actions:
            credentials = parse_basic(authorization)
            return credentials[0] if credentials else None
        credentials = parse_basic(authorization)
        if credentials is None:
            raise Unauthorized(f"Authentication required to {_VERBS[action]}.")
        user, password = credentials
        if self._auther is None or not self._auther(user, password):
            # One line per failure with the client address, for fail2ban and the like.
            log.warning("failed login for %r from %s (%s)", user, client, action)
            raise Forbidden("Invalid username or password.")
        return user


_VERBS = {"update": "upload or change packages", "download": "download", "list": "list packages"}
