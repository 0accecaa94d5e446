"""SQLAlchemy models of every table cdb keeps in PostgreSQL.

Alembic owns the schema (``alembic/versions``); these models describe the same tables and a test
proves the two agree (no autogenerate diff). The naming convention below gives every constraint
and index a deterministic name, so autogenerate stays stable and blue/green copies of a table
carry the same names as the original.

Read models keep the original system's table and column names (signals, orders, trades,
positions, portfolio_snapshots). Differences, and why:

- keys are the aggregate ids (text) instead of SERIAL ids, so a rebuild gives the same rows;
- no column defaults to ``now()``: every value comes from an event, so the digest is stable;
- descriptive columns of signals and orders are nullable because a child may arrive before its
  parent (different topics): the projection then writes a placeholder parent row holding only
  the key, which the parent's own event fills in later (see ``cdb.projections.trading``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

Price = Numeric(18, 8)
Tstz = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {dict[str, Any]: JSONB, datetime: Tstz, Decimal: Price}


class Signal(Base):
    __tablename__ = "signals"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    symbol: Mapped[str | None] = mapped_column(String(20))
    signal_type: Mapped[str | None] = mapped_column(String(10))
    price: Mapped[Decimal | None]
    confidence: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    timestamp: Mapped[datetime | None]
    source: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str | None] = mapped_column(String(20))
    block_reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    sequence_number: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (
        Index(None, "symbol"),
        Index(None, "timestamp"),
    )


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(Text, primary_key=True)
    signal_id: Mapped[str | None] = mapped_column(
        Text,
        ForeignKey("signals.id", deferrable=True, initially="DEFERRED"),
    )
    symbol: Mapped[str | None] = mapped_column(String(20))
    side: Mapped[str | None] = mapped_column(String(10))
    order_type: Mapped[str | None] = mapped_column(String(20))
    price: Mapped[Decimal | None]
    size: Mapped[Decimal | None]
    approved: Mapped[bool | None] = mapped_column(Boolean)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(20))
    filled_size: Mapped[Decimal] = mapped_column(Price, server_default=text("0"))
    avg_fill_price: Mapped[Decimal | None]
    fees: Mapped[Decimal] = mapped_column(Price, server_default=text("0"))
    created_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    filled_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    # Highest sequence number of the order aggregate applied to the status columns: a result
    # projected before its ORDER_PLACED (other topic) is not overwritten by it.
    sequence_number: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (
        Index(None, "signal_id"),
        Index(None, "symbol"),
        Index(None, "status"),
    )


class Trade(Base):
    __tablename__ = "trades"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    order_id: Mapped[str] = mapped_column(
        Text,
        ForeignKey("orders.order_id", deferrable=True, initially="DEFERRED"),
    )
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(10))
    price: Mapped[Decimal]
    size: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(20))
    execution_price: Mapped[Decimal]
    target_price: Mapped[Decimal | None]
    slippage_bps: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    fees: Mapped[Decimal] = mapped_column(Price, server_default=text("0"))
    timestamp: Mapped[datetime]
    exchange: Mapped[str | None] = mapped_column(String(20))
    exchange_trade_id: Mapped[str | None] = mapped_column(String(100))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)

    __table_args__ = (
        Index(None, "order_id"),
        Index(None, "symbol"),
        Index(None, "timestamp"),
    )


class Position(Base):
    __tablename__ = "positions"

    position_id: Mapped[str] = mapped_column(Text, primary_key=True)
    strategy_id: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(10))
    size: Mapped[Decimal] = mapped_column(Price, server_default=text("0"))
    entry_price: Mapped[Decimal | None]
    current_price: Mapped[Decimal | None]
    unrealized_pnl: Mapped[Decimal | None]
    realized_pnl: Mapped[Decimal | None]
    stop_loss_price: Mapped[Decimal | None]
    take_profit_price: Mapped[Decimal | None]
    liquidation_price: Mapped[Decimal | None]
    status: Mapped[str | None] = mapped_column(String(20))
    opened_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    sequence_number: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (
        Index(None, "symbol"),
        Index(None, "strategy_id", "symbol"),
    )


class PortfolioSnapshot(Base):
    __tablename__ = "portfolio_snapshots"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    timestamp: Mapped[datetime]
    total_equity: Mapped[Decimal]
    available_balance: Mapped[Decimal | None]
    margin_used: Mapped[Decimal | None]
    daily_pnl: Mapped[Decimal | None]
    total_unrealized_pnl: Mapped[Decimal | None]
    total_realized_pnl: Mapped[Decimal | None]
    total_exposure_pct: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    max_drawdown_pct: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    open_positions: Mapped[int | None] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)

    __table_args__ = (Index(None, "timestamp"),)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    timestamp: Mapped[datetime]

    __table_args__ = (Index(None, "timestamp"), Index(None, "level"))


class ProjectionState(Base):
    """One row per projection: which generation serves, and what is being built."""

    __tablename__ = "projection_state"

    projection: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition_version: Mapped[int] = mapped_column(Integer)
    active_generation: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    building_generation: Mapped[int | None] = mapped_column(Integer)
    parked_generation: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), server_default=text("'live'"))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Tstz, server_default=text("now()"))


class ProjectionCheckpoint(Base):
    """What a projection generation has applied: the last entry id per topic partition."""

    __tablename__ = "projection_checkpoints"

    projection: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_entry_id: Mapped[str] = mapped_column(String(40))
    events_applied: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    last_event_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(Tstz, server_default=text("now()"))


class ProjectionDeadLetter(Base):
    """An entry a projection could not apply, with the error; the projection went on."""

    __tablename__ = "projection_dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    projection: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(64))
    partition: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    failed_at: Mapped[datetime] = mapped_column(Tstz, server_default=text("now()"))

    __table_args__ = (
        UniqueConstraint(
            "projection",
            "generation",
            "topic",
            "partition",
            "entry_id",
            name="uq_projection_dead_letters_entry",
        ),
        Index(None, "projection", "failed_at"),
    )
