"""Lost card recovery: a member who types their email on the program's page gets a magic link that opens their
member page (and their card again) on this browser.

The request only writes an outbox event per matching member; the worker makes the link and mails it. So the
page answers the same, equally fast, whether or not the email belongs to a member (no enumeration), the link's
token never sits in the database in clear (only its SHA-256), and a slow mail server never holds a request.
A link works once, for `LINK_TTL` (the conditional UPDATE in `use_link` settles two clicks at once)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain.members import normal_email
from app.models import Member, MemberLink, OutboxEvent, Program, utcnow

MEMBER_LINK_MAIL = "member_link_mail"  # outbox kind: mail a magic link to this member (workers/member_mail.py)
LINK_TTL = timedelta(minutes=30)
MAX_MAILS_PER_REQUEST = 3  # members of one program sharing an email (a family): each gets their own link


def request_member_links(session: Session, program: Program, email: str, locale: str) -> None:
    """Queue a magic link for each member of `program` with this email; nothing (and no sign of it) otherwise."""
    matches = session.scalars(select(Member.id).where(
        Member.program_id == program.id, Member.email == normal_email(email), Member.deleted_at.is_(None))
        .order_by(Member.id.desc()).limit(MAX_MAILS_PER_REQUEST))
    for member_id in matches:
        session.add(OutboxEvent(kind=MEMBER_LINK_MAIL, member_id=member_id, program_id=program.id,
                                payload={"locale": locale}))


def issue_link(session: Session, member: Member) -> str:
    """A new single-use token for `member`, in clear (it goes into the mail and nowhere else)."""
    token = secrets.token_urlsafe(32)
    session.add(MemberLink(member_id=member.id, token_hash=_hash(token), expires_at=utcnow() + LINK_TTL))
    session.flush()
    return token


def use_link(session: Session, token: str) -> Member | None:
    """The member a live, unused link belongs to, marking it used; None for an unknown, used or expired one."""
    link = live_link(session, token)
    if link is None:
        return None
    claimed = session.execute(update(MemberLink).where(MemberLink.id == link.id, MemberLink.used_at.is_(None))
                              .values(used_at=utcnow()).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return None
    member = session.get(Member, link.member_id)
    return member if member is not None and member.deleted_at is None else None


def live_link(session: Session, token: str) -> MemberLink | None:
    link = session.scalar(select(MemberLink).where(MemberLink.token_hash == _hash(token)))
    return link if link is not None and link.used_at is None and link.expires_at > utcnow() else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
