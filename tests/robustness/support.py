"""What every robustness test shares: paths, credentials, and small helpers."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = ".cheesecellar"
USER = "robust"
PASSWORD = "c0rrect-Horse"
OPEN = {"password_file": ".", "authenticate": "."}  # pypiserver's "-P . -a .": no logins


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
