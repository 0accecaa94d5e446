"""Starting and stopping runtime worker processes in system tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def calls_key(namespace: str) -> str:
    """The test worker's effect counter (handler calls per event id).

    It lives under the namespace's hash tag like every cdb key, so the namespace fixture's
    cleanup removes it.
    """
    return f"{{{namespace}:test}}:calls"


def start_worker(config: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.system.runtime_worker", json.dumps(config)],
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
