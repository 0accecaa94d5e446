"""The pipeline bench's trade watcher: a trade row counts as seen when its commit is notified."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

from cdb.bench.pipeline import _TradeWatcher
from cdb.projections import db

_SIGNAL = "INSERT INTO signals (id) VALUES ('sig-1')"
_ORDER = "INSERT INTO orders (order_id, signal_id) VALUES ('ord-1', 'sig-1')"
_TRADE = (
    "INSERT INTO trades (id, order_id, symbol, side, price, size, status, execution_price,"
    " timestamp) VALUES ('trade-1', 'ord-1', 'BTC_USDT', 'BUY', 100, 1, 'FILLED', 100, now())"
)


def _wait_for(check: Callable[[], bool], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_trade_row_is_seen_when_its_transaction_commits_not_before(
    fresh_database: str,
) -> None:
    db.upgrade(fresh_database)
    stop = threading.Event()
    watcher = _TradeWatcher(fresh_database, stop)
    watcher.start()  # returns once the watcher listens
    try:
        with psycopg.connect(fresh_database) as conn:
            conn.execute(_SIGNAL)
            conn.execute(_ORDER)
            conn.execute(_TRADE)
            # Inserted but not committed: a notification waits for the commit.
            assert not _wait_for(lambda: "ord-1" in watcher.seen, 0.3)
            committed = time.perf_counter()
            conn.commit()
        assert _wait_for(lambda: "ord-1" in watcher.seen, 10.0), watcher.error
        assert watcher.seen["ord-1"] >= committed
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert watcher.error is None
