"""Starting and stopping runtime worker processes in system tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def start_worker(config: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.system.runtime_worker", json.dumps(config)],
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
