"""The bounded stress script, run for a CI-sized moment: it must find nothing wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .support import REPO

pytestmark = pytest.mark.integration


def test_stress_script_finds_no_errors() -> None:
    script = REPO / "scripts" / "stress.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--seconds", "10", "--threads", "8", "--servers", "2"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(proc.stdout[-6000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "stress: OK" in proc.stdout
