"""The services layer reads no wall clock, draws no random ids and reads no environment either.

The same AST check as for the pure logic (tests/unit/domain/services/test_purity.py), over every
module of :mod:`cdb.services`: a replay that read the clock could not reproduce a recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb import services
from tests.unit.domain.services.test_purity import offences

PACKAGE = Path(services.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_replay_modules_are_checked() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in SOURCES}
    assert {"replay/topic.py", "replay/runners.py", "replay/positions.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_wall_clock_random_ids_or_environment(path: Path) -> None:
    assert offences(path.read_text()) == []
