"""The pipeline logic reads no wall clock, draws no random ids and reads no environment.

Time comes from the events, ids from what caused them, settings from a mapping the caller
passes: that is what makes a replay reproduce every event byte for byte (DESIGN §8).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cdb.domain import services

PACKAGE = Path(services.__file__).parent
SOURCES = sorted(PACKAGE.glob("*.py"))

FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("uuid", "uuid1"),
    ("uuid", "uuid4"),
    ("os", "getenv"),
}
FORBIDDEN_IMPORTS = {
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "localtime"},
    "uuid": {"uuid1", "uuid4"},
    "os": {"environ", "getenv"},
}


def offences(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name | ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            if (owner, node.attr) in FORBIDDEN_CALLS or (owner, node.attr) == ("os", "environ"):
                found.append(f"line {node.lineno}: {owner}.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module in FORBIDDEN_IMPORTS:
            for alias in node.names:
                if alias.name in FORBIDDEN_IMPORTS[node.module]:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    return found


def test_the_package_has_modules_to_check() -> None:
    names = {p.name for p in SOURCES}
    assert {"clock.py", "signal.py", "risk.py", "execution.py", "portfolio.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_wall_clock_random_ids_or_environment(path: Path) -> None:
    assert offences(path.read_text()) == []


def test_the_check_catches_what_it_looks_for() -> None:
    bad = (
        "import datetime, time, uuid\n"
        "from time import monotonic\n"
        "a = datetime.datetime.now()\n"
        "b = time.time()\n"
        "c = uuid.uuid4()\n"
        "d = datetime.date.today()\n"
    )
    assert len(offences(bad)) == 5
