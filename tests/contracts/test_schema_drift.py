"""The committed schemas under streams/schemas still describe what the models accept.

A breaking change to a registered contract (field removed or retyped, new required field,
tightened rule) fails here; add a new contract version instead. Compatible additions pass,
and ``cdb schema export`` refreshes the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdb.domain.schemas import INDEX_FILE, current_schemas, drift

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "streams" / "schemas"


def _committed() -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n"), f"{path.name}: not written by `cdb schema export`"
        files[path.name] = json.loads(text)
    return files


def test_committed_schemas_have_no_breaking_drift() -> None:
    committed = _committed()
    assert committed, f"no schemas in {SCHEMA_DIR}: run `cdb schema export`"
    result = drift(committed, current_schemas())
    report = "\n".join(
        f"  {c.path}: {c.rule} (committed {c.committed!r}, now {c.current!r})"
        for c in result.breaking
    )
    assert result.ok, (
        "breaking change to a registered contract schema; add a new contract version "
        f"instead of changing it:\n{report}"
    )


@pytest.mark.parametrize("name", sorted(current_schemas()))
def test_every_contract_version_has_a_committed_schema(name: str) -> None:
    assert (SCHEMA_DIR / name).is_file(), f"{name} missing: run `cdb schema export`"


def test_the_committed_index_names_only_committed_files() -> None:
    index = _committed()[INDEX_FILE]["registrations"]
    missing = sorted({file for file in index.values() if not (SCHEMA_DIR / file).is_file()})
    assert missing == []
