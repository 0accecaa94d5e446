"""The shipped recording, read once, and the in-memory pipeline run over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb.domain.contracts import MarketDataV1
from cdb.domain.services.marketdata import read_market_data
from cdb.domain.services.marketgen import RECORDING, iter_csv_lines
from cdb.domain.services.sim import Pipeline, simulate

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def shipped_ticks() -> list[MarketDataV1]:
    return list(read_market_data(iter_csv_lines((REPO / RECORDING).read_bytes())))


@pytest.fixture(scope="session")
def shipped_run(shipped_ticks: list[MarketDataV1]) -> Pipeline:
    return simulate(shipped_ticks)
