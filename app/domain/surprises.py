"""Surprise rewards: points for a random sample of a segment's members, reproducible for an audit.

The draw is a pure function of the seed and the eligible member ids: each id is ranked by SHA-256 of
"<seed>:<id>" and the `sample_size` lowest win. It depends on no library's random generator or on the order the
database returns rows, so the same seed over the same eligible set picks the same members, anywhere, for ever;
the seed, the eligible count and a digest of the eligible ids are stored and returned with the winners.
Each winner gets a `bonus` entry (rule `surprise:<id>`, reason naming the surprise) through the ledger, and a
line on the card whose change message makes Wallet announce it."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import segments
from app.domain.errors import InvalidInput, NotFound
from app.domain.ledger import earn_points, lock_member_id
from app.models import LedgerEntry, Member, Program, Reward, Surprise
from passes.storecard import CardNotice

MAX_SAMPLE = 1000  # winners credited in one request
SHOWN_FOR = timedelta(days=7)  # the surprise's line stays on the card this long
_LABEL = {"en": "Surprise!", "ja": "サプライズ特典", "ko": "깜짝 선물"}
_TEXT = {"en": "{points} bonus points, just for you", "ja": "あなただけに{points}ポイントをプレゼント",
         "ko": "회원님께만 {points}포인트를 드려요"}


def draw(seed: str, eligible: list[int], size: int) -> list[int]:
    """The sample: the `size` ids with the lowest SHA-256("<seed>:<id>"), ascending by id."""
    ranked = sorted(eligible, key=lambda member_id: hashlib.sha256(f"{seed}:{member_id}".encode()).digest())
    return sorted(ranked[:size])


def eligible_digest(eligible: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(eligible))).encode()).hexdigest()


def give_surprise(session: Session, program: Program, data: dict, now: datetime) -> Surprise:
    segment = segments.program_segment(session, program, data["segment_id"])
    reward = _reward(session, program, data.get("reward_id"))
    points = reward.points_cost if reward is not None else data.get("points")
    if not points:
        raise InvalidInput("points", "Give points or a reward_id.")
    seed = data.get("seed") or secrets.token_hex(16)
    eligible = segments.member_ids(session, segment, now)
    winners = draw(seed, eligible, data["sample_size"])
    surprise = Surprise(merchant_id=program.merchant_id, program_id=program.id, segment_id=segment.id, seed=seed,
                        sample_size=data["sample_size"], points=points, reward_id=reward.id if reward else None,
                        eligible_count=len(eligible), eligible_digest=eligible_digest(eligible), member_ids=winners,
                        created_at=now)
    session.add(surprise)
    session.flush()
    reason = f"Surprise #{surprise.id}" + (f": {reward.name}" if reward else "")
    for member_id in winners:  # ascending ids: locks are always taken in the same order
        earn_points(session, lock_member_id(session, member_id), points, kind="bonus", reason=reason[:200],
                    rule=f"surprise:{surprise.id}")
    return surprise


def _reward(session: Session, program: Program, reward_id: int | None) -> Reward | None:
    if reward_id is None:
        return None
    reward = session.get(Reward, reward_id)
    if reward is None or reward.program_id != program.id or reward.retired_at is not None:
        raise InvalidInput("reward_id", f"No reward {reward_id} in this program.")
    return reward


def get_surprise(session: Session, merchant_id: int, surprise_id: int) -> Surprise:
    surprise = session.get(Surprise, surprise_id)
    if surprise is None or surprise.merchant_id != merchant_id:
        raise NotFound(f"No surprise {surprise_id}.")
    return surprise


def surprise_notices(session: Session, member: Member, now: datetime) -> list[CardNotice]:
    """The member's latest surprise of the last SHOWN_FOR, as a line Wallet announces."""
    entry = session.scalar(select(LedgerEntry).where(
        LedgerEntry.member_id == member.id, LedgerEntry.kind == "bonus", LedgerEntry.rule.like("surprise:%"),
        LedgerEntry.created_at > now - SHOWN_FOR).order_by(LedgerEntry.id.desc()).limit(1))
    if entry is None:
        return []
    locale = member.locale if member.locale in _LABEL else "en"
    return [CardNotice(key=f"surprise_{entry.rule.split(':', 1)[1]}", label=_LABEL[locale], change_message="%@",
                       text=_TEXT[locale].format(points=f"{entry.points:,}"))]
