"""evolve(): the same record dataclasses.replace gives, and no silent skipping of checks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cdb.domain.services.evolve import evolve
from cdb.domain.services.portfolio import PortfolioState
from cdb.domain.services.risk import RiskState
from cdb.domain.services.signal import SymbolWindow


@dataclass(frozen=True, slots=True)
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@dataclass(frozen=True, slots=True)
class Derived:
    value: int
    twice: int = field(init=False, default=0)


@dataclass(frozen=True)
class Unslotted:
    value: int


def test_equals_replace_for_the_state_records() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    portfolio = PortfolioState(cash_flow=Decimal("-12.5"))
    assert evolve(portfolio, last_slot=ts) == replace(portfolio, last_slot=ts)
    window = SymbolWindow(points=((ts, Decimal(1)),))
    assert evolve(window, points=()) == replace(window, points=())
    risk = RiskState()
    changed = evolve(risk, marks={"BTC_USDT": (ts, Decimal(2))})
    assert changed == replace(risk, marks={"BTC_USDT": (ts, Decimal(2))})
    assert risk.marks == {}  # the original is untouched


def test_no_change_gives_an_equal_copy() -> None:
    state = PortfolioState(cash_flow=Decimal(3))
    copy = evolve(state)
    assert copy == state
    assert copy is not state


def test_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="no field\\(s\\) nope"):
        evolve(PortfolioState(), nope=1)


@pytest.mark.parametrize("record", [Checked(1), Derived(1), Unslotted(1)])
def test_records_whose_init_does_more_are_refused(record: object) -> None:
    with pytest.raises(TypeError, match=type(record).__name__):
        evolve(record, value=2)
