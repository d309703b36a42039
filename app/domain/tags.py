"""Member tags: the merchant's own labels ("vip", "staff"), which segments can select on."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import Member, MemberTag

MAX_TAGS = 50


def member_tags(session: Session, member: Member) -> list[str]:
    return list(session.scalars(select(MemberTag.tag).where(MemberTag.member_id == member.id)
                                .order_by(MemberTag.tag)))


def set_tags(session: Session, member: Member, tags: list[str]) -> list[str]:
    """Replace the member's tags with `tags` (duplicates and case-variants kept once, lowercased)."""
    wanted = sorted({tag.strip().lower() for tag in tags if tag.strip()})
    current = set(member_tags(session, member))
    session.execute(delete(MemberTag).where(MemberTag.member_id == member.id, MemberTag.tag.not_in(wanted)))
    session.add_all(MemberTag(member_id=member.id, tag=tag) for tag in wanted if tag not in current)
    session.flush()
    return wanted
