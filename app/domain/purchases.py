"""What members bought: the line items of purchases earned with `items`, kept so offers (and segments) can ask
which categories a member buys. Written in the earn's transaction, one INSERT for all lines."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, aliased

from app.models import LedgerEntry, PurchaseItem

PURCHASE = "earn"  # a ledger entry of this kind with a money amount is a purchase


def record_items(session: Session, entry: LedgerEntry, items: list[dict]) -> None:
    """Keep the purchase's lines (sku, category, unit price, quantity) against its ledger entry."""
    session.execute(insert(PurchaseItem), [
        {"entry_id": entry.id, "member_id": entry.member_id, "sku": item.get("sku"), "category": item.get("category"),
         "quantity": item.get("quantity", 1), "amount": item["amount"], "created_at": entry.created_at}
        for item in items])


def category_counts(session: Session, member_ids: list[int], since: datetime,
                    until: datetime) -> dict[int, dict[str | None, int]]:
    """Items bought per member and category (None: uncategorised) with `since <= bought at <= until`."""
    rows = session.execute(
        select(PurchaseItem.member_id, PurchaseItem.category, func.sum(PurchaseItem.quantity))
        .where(PurchaseItem.member_id.in_(member_ids), PurchaseItem.created_at >= since,
               PurchaseItem.created_at <= until, PurchaseItem.entry_id.not_in(_refunded_in_full(member_ids)))
        .group_by(PurchaseItem.member_id, PurchaseItem.category))
    counts: dict[int, dict[str | None, int]] = defaultdict(dict)
    for member_id, category, quantity in rows:
        counts[member_id][category] = int(quantity)
    return counts


def _refunded_in_full(member_ids: list[int]):
    """The members' purchases whose reversals took back all their points: a refunded basket no longer says what
    the member buys (a partial refund cannot say which lines went back, so its lines still count)."""
    reversal = aliased(LedgerEntry)
    return (select(LedgerEntry.id).join(reversal, reversal.reverses_id == LedgerEntry.id)
            .where(LedgerEntry.member_id.in_(member_ids), LedgerEntry.kind == PURCHASE)
            .group_by(LedgerEntry.id, LedgerEntry.points).having(-func.sum(reversal.points) >= LedgerEntry.points))


def last_purchases(session: Session, member_ids: list[int], until: datetime) -> dict[int, datetime]:
    """Each member's latest purchase up to `until` (members who never bought are absent)."""
    rows = session.execute(
        select(LedgerEntry.member_id, func.max(LedgerEntry.created_at))
        .where(LedgerEntry.member_id.in_(member_ids), LedgerEntry.kind == PURCHASE,
               LedgerEntry.amount.is_not(None), LedgerEntry.created_at <= until)
        .group_by(LedgerEntry.member_id))
    return dict(rows.all())  # max() keeps the column's type: aware UTC on both databases
