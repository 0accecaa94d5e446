"""The execution service prices a late order at its own tick, however far behind it is."""

from __future__ import annotations

import threading
from decimal import Decimal

from cdb.domain.contracts import MarketDataV1, OrderResultV1, OrderStatus, Side
from cdb.domain.services import execution
from cdb.domain.services.execution import ExecutionParams, ExecutionState
from cdb.runtime.handler import Ack, Retry
from cdb.services.execution import ExecutionService, TickArchive
from tests.unit.domain.services.factories import at, order_event, tick


def _result(outcome: object) -> OrderResultV1:
    assert isinstance(outcome, Ack)
    (request,) = outcome.outputs
    (event,) = request.events
    assert isinstance(event.payload, OrderResultV1)
    return event.payload


def test_an_order_older_than_the_kept_ticks_fills_as_it_would_have_on_time() -> None:
    params = ExecutionParams(history=10)
    service = ExecutionService(params)
    ticks = [tick("BTC_USDT", str(80_000 + m), m, volume="5") for m in range(100)]
    for t in ticks:
        service.fold(t)
    order = order_event("BTC_USDT", Side.BUY, "0.01", 3, target_price="80003")
    late = _result(service.on_order(order))

    on_time_state = ExecutionState()
    for t in ticks[:4]:
        on_time_state = execution.apply(on_time_state, t, params)
    on_time = execution.on_order(on_time_state, order, params)
    (expected,) = on_time.events
    assert late == expected.event.payload
    assert late.status is OrderStatus.FILLED
    assert late.price is not None
    assert late.price > Decimal(80_003)
    # Answered: a redelivery emits nothing.
    again = service.on_order(order)
    assert isinstance(again, Ack)
    assert not again.outputs
    assert late.order_id in service.state.answered


def test_the_archive_finds_the_newest_tick_at_or_before_a_time_and_stays_bounded() -> None:
    archive = TickArchive(size=8)
    for m in range(40):
        payload = tick("ETH_USDT", str(3000 + m), m).payload
        assert isinstance(payload, MarketDataV1)
        archive.add(payload)
        archive.add(payload)  # a redelivery changes nothing
    found = archive.at("ETH_USDT", at(35.5))
    assert found is not None
    assert found.price == Decimal(3035)
    assert archive.at("ETH_USDT", at(1)) is None  # trimmed away
    assert archive.at("BTC_USDT", at(35)) is None


def test_on_threads_an_order_waits_for_its_tick_instead_of_retrying_later() -> None:
    service = ExecutionService(ExecutionParams())
    service.use_threads()
    for m in range(3):
        service.fold(tick("BTC_USDT", str(80_000 + m), m, volume="5"))
    order = order_event("BTC_USDT", Side.BUY, "0.01", 3, target_price="80003")
    late_tick = tick("BTC_USDT", "80003", 3, volume="5")

    def market_data_thread() -> None:
        with service.lock:  # gets the lock only once the order's handler waits
            service.fold(late_tick)

    with service.lock:  # as the runtime's handler wrapper holds it
        folder = threading.Thread(target=market_data_thread)
        folder.start()
        outcome = service.on_order(order)
    folder.join(timeout=10)
    assert _result(outcome).status is OrderStatus.FILLED


def test_on_one_thread_an_order_without_its_tick_is_retried_at_once() -> None:
    service = ExecutionService(ExecutionParams())
    service.fold(tick("BTC_USDT", "80000", 0, volume="5"))
    outcome = service.on_order(order_event("BTC_USDT", Side.BUY, "0.01", 3))
    assert isinstance(outcome, Retry)
