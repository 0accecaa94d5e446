"""Valid example payloads for the domain tests: each test changes only what it is about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

T0 = datetime(2024, 11, 1, 6, 40, tzinfo=UTC)


def market_data(**overrides: Any) -> dict[str, Any]:
    return {
        "symbol": "BTC_USDT",
        "price": "35250.5",
        "volume": "184.12",
        "timestamp": T0,
        "interval": "1m",
        **overrides,
    }


def signal(**overrides: Any) -> dict[str, Any]:
    return {
        "signal_id": "sig-1",
        "strategy_id": "momentum",
        "symbol": "BTC_USDT",
        "side": "BUY",
        "confidence": 0.82,
        "reason": "Top mover + RSI oversold",
        "price": "35250.5",
        "timestamp": T0,
        **overrides,
    }


def signal_blocked(**overrides: Any) -> dict[str, Any]:
    return {
        "signal_id": "sig-1",
        "strategy_id": "momentum",
        "symbol": "BTC_USDT",
        "side": "BUY",
        "reason_code": "MAX_EXPOSURE_EXCEEDED",
        "detail": "exposure 5200 > limit 5000",
        "timestamp": T0,
        **overrides,
    }


def order(**overrides: Any) -> dict[str, Any]:
    return {
        "order_id": "ord-1",
        "signal_id": "sig-1",
        "strategy_id": "momentum",
        "symbol": "BTC_USDT",
        "side": "BUY",
        "quantity": "0.05",
        "order_type": "MARKET",
        "timestamp": T0,
        **overrides,
    }


def order_result(**overrides: Any) -> dict[str, Any]:
    return {
        "order_id": "ord-1",
        "signal_id": "sig-1",
        "strategy_id": "momentum",
        "symbol": "BTC_USDT",
        "side": "BUY",
        "status": "FILLED",
        "quantity": "0.05",
        "filled_quantity": "0.05",
        "price": "35260.1",
        "fee": "1.76",
        "fee_asset": "USDT",
        "timestamp": T0,
        **overrides,
    }


def position(**overrides: Any) -> dict[str, Any]:
    return {
        "strategy_id": "momentum",
        "symbol": "BTC_USDT",
        "side": "LONG",
        "quantity": "0.05",
        "avg_entry_price": "35260.1",
        "realised_pnl": "0",
        "timestamp": T0,
        **overrides,
    }


def portfolio(**overrides: Any) -> dict[str, Any]:
    return {
        "equity": "10000",
        "cash": "8237",
        "exposure": "1763",
        "realised_pnl": "0",
        "unrealised_pnl": "0",
        "daily_pnl": "-12.5",
        "drawdown_pct": "0.125",
        "open_positions": 1,
        "timestamp": T0,
        **overrides,
    }


def circuit_breaker(**overrides: Any) -> dict[str, Any]:
    return {
        "trading_day": "2024-11-01",
        "daily_pnl": "-520",
        "threshold": "-500",
        "reason": "daily loss limit crossed",
        "timestamp": T0,
        **overrides,
    }


def alert(**overrides: Any) -> dict[str, Any]:
    return {
        "level": "CRITICAL",
        "code": "RISK_LIMIT",
        "message": "Daily drawdown reached. Trading halted.",
        "context": {"daily_pnl": "-520"},
        "timestamp": T0,
        **overrides,
    }
