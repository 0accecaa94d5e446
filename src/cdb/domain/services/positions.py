"""Position arithmetic shared by risk and portfolio: fills in, positions and realised PnL out.

A :class:`Position` holds a *signed* quantity (long > 0, short < 0), the average entry price of
what is open, and the realised PnL so far. Realised PnL is net of fees: every fill's fee is
charged when it is paid, and closing a quantity realises ``closed x (exit - entry)`` (signed for
shorts). So ``equity = balance + sum(realised) + sum(unrealised)`` holds exactly.

Order results are cumulative per order (:class:`~cdb.domain.contracts.OrderResultV1`), so a
:class:`FillLedger` remembers what each order has contributed and turns a report into the
*new* part only: a redelivered or repeated report adds nothing, a later cumulative report adds
its difference. That is what makes a redelivered fill harmless to every fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from cdb.domain.contracts import OrderResultV1, PositionSide, Side
from cdb.domain.services.events import ZERO, q_money, q_price, q_qty
from cdb.domain.services.recent import RecentMap


@dataclass(frozen=True, slots=True)
class Position:
    quantity: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realised_pnl: Decimal = ZERO

    @property
    def side(self) -> PositionSide:
        if self.quantity > 0:
            return PositionSide.LONG
        if self.quantity < 0:
            return PositionSide.SHORT
        return PositionSide.FLAT

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0

    def unrealised(self, mark: Decimal) -> Decimal:
        return q_money(self.quantity * (mark - self.avg_entry)) if self.quantity else ZERO

    def notional(self, mark: Decimal) -> Decimal:
        return abs(self.quantity) * mark


@dataclass(frozen=True, slots=True)
class Fill:
    """The new part of an order's fills: quantity (> 0), average price and fee of that part."""

    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What one fill did; on a flip, ``flipped_at`` is the FLAT position between the phases."""

    before: Position
    after: Position
    closed: Decimal  # quantity closed (>= 0)
    opened: Decimal  # quantity opened or added (>= 0)
    realised: Decimal  # realised PnL of this fill, net of its fee
    flipped_at: Position | None = None  # the FLAT position between close and open on a flip


def apply_fill(pos: Position, fill: Fill) -> FillOutcome:
    """The position after ``fill``: add, reduce, close, or close and open the other way."""
    signed = fill.signed_quantity
    if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
        new_qty = q_qty(pos.quantity + signed)
        avg = q_price(
            (abs(pos.quantity) * pos.avg_entry + fill.quantity * fill.price) / abs(new_qty)
        )
        realised = -fill.fee
        after = Position(new_qty, avg, q_money(pos.realised_pnl + realised))
        return FillOutcome(pos, after, ZERO, fill.quantity, q_money(realised))
    direction = Decimal(1) if pos.quantity > 0 else Decimal(-1)
    closing = min(fill.quantity, abs(pos.quantity))
    gross = closing * (fill.price - pos.avg_entry) * direction
    realised = q_money(gross - fill.fee)
    total = q_money(pos.realised_pnl + realised)
    remaining = fill.quantity - closing
    if remaining == 0:
        new_qty = q_qty(pos.quantity + signed)
        after = Position(new_qty, pos.avg_entry if new_qty else ZERO, total)
        return FillOutcome(pos, after, closing, ZERO, realised)
    flat = Position(ZERO, ZERO, total)
    after = Position(-direction * remaining, q_price(fill.price), total)
    return FillOutcome(pos, after, closing, remaining, realised, flipped_at=flat)


@dataclass(frozen=True, slots=True)
class OrderFills:
    """What one order has contributed so far (cumulative, as its results report it)."""

    quantity: Decimal = ZERO
    cost: Decimal = ZERO  # quantity x average price
    fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class FillLedger:
    """Per order id, the cumulative fill already applied (idempotency of every fill fold)."""

    orders: RecentMap[OrderFills] = field(default_factory=RecentMap)

    def new_part(self, result: OrderResultV1) -> tuple[FillLedger, Fill | None]:
        """The ledger after ``result`` and the fill it adds (None: nothing new)."""
        seen = self.orders.get(result.order_id) or OrderFills()
        if result.filled_quantity <= seen.quantity or result.price is None:
            return self, None
        cost = result.filled_quantity * result.price
        delta_qty = result.filled_quantity - seen.quantity
        delta_price = q_price((cost - seen.cost) / delta_qty)
        delta_fee = q_money(max(ZERO, result.fee - seen.fee))
        now = OrderFills(result.filled_quantity, cost, max(result.fee, seen.fee))
        fill = Fill(result.side, q_qty(delta_qty), delta_price, delta_fee)
        return FillLedger(self.orders.put(result.order_id, now)), fill

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.orders
