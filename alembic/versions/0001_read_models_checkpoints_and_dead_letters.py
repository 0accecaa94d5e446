"""read models, checkpoints and dead letters

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_level"), "alerts", ["level"], unique=False)
    op.create_index(op.f("ix_alerts_timestamp"), "alerts", ["timestamp"], unique=False)
    op.create_table(
        "portfolio_snapshots",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_equity", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("available_balance", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("margin_used", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("daily_pnl", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("total_unrealized_pnl", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("total_realized_pnl", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("total_exposure_pct", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("max_drawdown_pct", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("open_positions", sa.Integer(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolio_snapshots")),
    )
    op.create_index(
        op.f("ix_portfolio_snapshots_timestamp"), "portfolio_snapshots", ["timestamp"], unique=False
    )
    op.create_table(
        "positions",
        sa.Column("position_id", sa.Text(), nullable=False),
        sa.Column("strategy_id", sa.String(length=64), nullable=True),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("side", sa.String(length=10), nullable=False),
        sa.Column(
            "size", sa.Numeric(precision=18, scale=8), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("entry_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("current_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("unrealized_pnl", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("realized_pnl", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("stop_loss_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("take_profit_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("liquidation_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("sequence_number", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("position_id", name=op.f("pk_positions")),
    )
    op.create_index(
        op.f("ix_positions_strategy_id_symbol"),
        "positions",
        ["strategy_id", "symbol"],
        unique=False,
    )
    op.create_index(op.f("ix_positions_symbol"), "positions", ["symbol"], unique=False)
    op.create_table(
        "projection_checkpoints",
        sa.Column("projection", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("last_entry_id", sa.String(length=40), nullable=False),
        sa.Column("events_applied", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "projection", "generation", "topic", "partition", name=op.f("pk_projection_checkpoints")
        ),
    )
    op.create_table(
        "projection_dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("projection", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("event_type", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projection_dead_letters")),
        sa.UniqueConstraint(
            "projection",
            "generation",
            "topic",
            "partition",
            "entry_id",
            name=op.f("uq_projection_dead_letters_entry"),
        ),
    )
    op.create_index(
        op.f("ix_projection_dead_letters_projection_failed_at"),
        "projection_dead_letters",
        ["projection", "failed_at"],
        unique=False,
    )
    op.create_table(
        "projection_state",
        sa.Column("projection", sa.String(length=64), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("active_generation", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("building_generation", sa.Integer(), nullable=True),
        sa.Column("parked_generation", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'live'"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("projection", name=op.f("pk_projection_state")),
    )
    op.create_table(
        "signals",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=True),
        sa.Column("signal_type", sa.String(length=10), nullable=True),
        sa.Column("price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("confidence", sa.Numeric(precision=5, scale=4), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=50), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("block_reason", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("sequence_number", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    op.create_index(op.f("ix_signals_symbol"), "signals", ["symbol"], unique=False)
    op.create_index(op.f("ix_signals_timestamp"), "signals", ["timestamp"], unique=False)
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("signal_id", sa.Text(), nullable=True),
        sa.Column("symbol", sa.String(length=20), nullable=True),
        sa.Column("side", sa.String(length=10), nullable=True),
        sa.Column("order_type", sa.String(length=20), nullable=True),
        sa.Column("price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("size", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column(
            "filled_size",
            sa.Numeric(precision=18, scale=8),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("avg_fill_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column(
            "fees", sa.Numeric(precision=18, scale=8), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("filled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("sequence_number", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_orders_signal_id_signals"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    op.create_index(op.f("ix_orders_signal_id"), "orders", ["signal_id"], unique=False)
    op.create_index(op.f("ix_orders_status"), "orders", ["status"], unique=False)
    op.create_index(op.f("ix_orders_symbol"), "orders", ["symbol"], unique=False)
    op.create_table(
        "trades",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("side", sa.String(length=10), nullable=False),
        sa.Column("price", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("size", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("execution_price", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("target_price", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("slippage_bps", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column(
            "fees", sa.Numeric(precision=18, scale=8), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exchange", sa.String(length=20), nullable=True),
        sa.Column("exchange_trade_id", sa.String(length=100), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name=op.f("fk_trades_order_id_orders"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
    )
    op.create_index(op.f("ix_trades_order_id"), "trades", ["order_id"], unique=False)
    op.create_index(op.f("ix_trades_symbol"), "trades", ["symbol"], unique=False)
    op.create_index(op.f("ix_trades_timestamp"), "trades", ["timestamp"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_trades_timestamp"), table_name="trades")
    op.drop_index(op.f("ix_trades_symbol"), table_name="trades")
    op.drop_index(op.f("ix_trades_order_id"), table_name="trades")
    op.drop_table("trades")
    op.drop_index(op.f("ix_orders_symbol"), table_name="orders")
    op.drop_index(op.f("ix_orders_status"), table_name="orders")
    op.drop_index(op.f("ix_orders_signal_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_signals_timestamp"), table_name="signals")
    op.drop_index(op.f("ix_signals_symbol"), table_name="signals")
    op.drop_table("signals")
    op.drop_table("projection_state")
    op.drop_index(
        op.f("ix_projection_dead_letters_projection_failed_at"),
        table_name="projection_dead_letters",
    )
    op.drop_table("projection_dead_letters")
    op.drop_table("projection_checkpoints")
    op.drop_index(op.f("ix_positions_symbol"), table_name="positions")
    op.drop_index(op.f("ix_positions_strategy_id_symbol"), table_name="positions")
    op.drop_table("positions")
    op.drop_index(op.f("ix_portfolio_snapshots_timestamp"), table_name="portfolio_snapshots")
    op.drop_table("portfolio_snapshots")
    op.drop_index(op.f("ix_alerts_timestamp"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_level"), table_name="alerts")
    op.drop_table("alerts")
