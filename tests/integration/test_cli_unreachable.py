"""A server that cannot be reached is one clear line on the CLI, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    # Bind and release: nothing listens on the port afterwards.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _cdb(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdb.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.parametrize("command", [["streams"], ["pending"], ["dlq", "list"]])
def test_unreachable_redis_is_one_line_naming_the_setting(command: list[str]) -> None:
    url = f"redis://:secret-pw@127.0.0.1:{_closed_port()}/0"
    result = _cdb(command, CDB_REDIS_URL=url)
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr
    assert "CDB_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout


def test_unreachable_postgres_is_one_line_naming_the_setting(redis_url: str) -> None:
    url = f"postgresql://cdb:secret-pw@127.0.0.1:{_closed_port()}/cdb"
    result = _cdb(["db", "current"], CDB_REDIS_URL=redis_url, CDB_DATABASE_URL=url)
    assert result.returncode == 2
    assert "cannot reach PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout
