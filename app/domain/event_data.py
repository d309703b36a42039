"""What an event tells the outside about a member and a transaction: `events.emit` keyword arguments built in one
place, so every emit in the domain is one line and every event carries the same member fields."""

from __future__ import annotations

from app.models import LedgerEntry, Member


def member_fields(member: Member) -> dict:
    return {"member_id": member.id, "program_id": member.program_id, "external_id": member.external_id,
            "points_balance": member.points_balance, "available_points": member.available_points,
            "lifetime_points": member.lifetime_points, "tier": member.tier.name if member.tier else None}


def member_event(type: str, member: Member, **extra) -> dict:
    """emit(session, **member_event("pass.installed", member, wallet="apple"))"""
    return {"merchant_id": member.merchant_id, "type": type, "member_id": member.id,
            "program_id": member.program_id, "data": {**member_fields(member), **extra}}


def transaction_event(type: str, entry: LedgerEntry, member: Member, **extra) -> dict:
    """emit(session, **transaction_event("points.earned", entry, member)): the member after the transaction."""
    return member_event(type, member, transaction_id=entry.id, kind=entry.kind, points=entry.points,
                        reference=entry.reference, reason=entry.reason, reward_id=entry.reward_id,
                        reverses_id=entry.reverses_id, created_at=entry.created_at.isoformat(), **extra)
