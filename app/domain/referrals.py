"""Referrals: a member who joins with another's code is the referee, the code's owner the referrer. The program's
`referral_settings` say when both are rewarded (`trigger`: at sign-up, on the referee's first purchase, or on
each purchase within `within_days` of joining), how much (tiered: more for the referrer from their 3rd, 5th...
completed referral) and the caps. Every payout is a pair of `referral` ledger entries whose reason names the
referral, recorded in `referral_rewards` with the purchase that qualified.

Fraud controls, each a `rejected` referral with its reason (the member still joins; only the reward is refused):
the same email or phone as the referrer (`self_referral`) or as another member already in the program
(`already_member`: one person using a code twice), the same Apple device as the referrer or as a friend they
were already rewarded for, when the reward falls due (`same_device`), more referrals than allowed per referrer
or per enrollment address on one calendar day of the program (`referrer_velocity`, `ip_velocity`), the
referrer's cap of completed referrals (`referrer_cap`), a purchase after the window (`window_passed`).
Refunding the qualifying purchase in full reverses the payout (as any reversal: never below zero, the rest a
shortfall); a referral whose every payout was reversed is rejected (`refunded`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.domain.calendar import period_start, program_zone
from app.domain.errors import Conflict
from app.domain.events import emit
from app.domain.ledger import SYSTEM, earn_points, lock_member, reverse_entry
from app.models import DeviceRegistration, LedgerEntry, Member, Program, Referral, ReferralReward
from passes.storecard import CardNotice

TRIGGERS = ("signup", "first_purchase", "every_purchase")
PENDING, COMPLETED, REJECTED = "pending", "completed", "rejected"
DEFAULT_PER_REFERRER_PER_DAY = 10
DEFAULT_PER_IP_PER_DAY = 5
# The card's line with the member's link, in their language (`{code}`: their referral code)
NOTICE_LABEL = {"en": "Invite a friend", "ja": "友だちを招待", "ko": "친구 초대"}
NOTICE_TEXT = {"en": "Share your link (code {code}): you both earn points",
               "ja": "紹介リンクを送ってください（コード {code}）。お二人にポイントを差し上げます",
               "ko": "추천 링크를 공유하세요(코드 {code}). 두 분 모두 포인트를 받습니다"}


def referral_settings(data: dict | None) -> dict:
    """The settings as stored from a PATCH (already validated by the API schema); None or {} turns referrals off."""
    if not data:
        return {}
    return {"trigger": data["trigger"], "within_days": data.get("within_days"),
            "referrer_points": data.get("referrer_points", 0), "referee_points": data.get("referee_points", 0),
            "tiers": sorted(({"from": t["from_"], "referrer_points": t["referrer_points"]}
                             for t in data.get("tiers") or ()), key=lambda t: t["from"]),
            "max_referrals": data.get("max_referrals"),
            "max_per_referrer_per_day": data.get("max_per_referrer_per_day", DEFAULT_PER_REFERRER_PER_DAY),
            "max_per_ip_per_day": data.get("max_per_ip_per_day", DEFAULT_PER_IP_PER_DAY)}


def active_settings(program: Program) -> dict | None:
    settings = program.referral_settings or {}
    return settings if settings.get("trigger") else None


def referrer_points_for(settings: dict, ordinal: int) -> int:
    """What the referrer earns for their `ordinal`-th completed referral: the highest tier it reached, else the
    base points."""
    reached = [tier["referrer_points"] for tier in settings.get("tiers") or () if tier["from"] <= ordinal]
    return reached[-1] if reached else settings.get("referrer_points", 0)


def record_referral(session: Session, referee: Member, referrer: Member, ip: str | None,
                    now: datetime) -> Referral:
    """At enrollment with `referrer`'s code: the referral, rejected by a fraud control or pending (and paid at
    once when the program rewards sign-ups). The referrer's row is locked: their daily count is exact."""
    referrer = lock_member(session, referrer)
    referral = Referral(merchant_id=referee.merchant_id, program_id=referee.program_id, referrer_id=referrer.id,
                        referee_id=referee.id, state=PENDING, ip=ip, created_at=now)
    reason = _enrollment_rejection(session, referee, referrer, ip, now)
    session.add(referral)
    session.flush()
    if reason:
        referral.state, referral.reason = REJECTED, reason
        return referral
    settings = active_settings(referee.program)
    if settings and settings["trigger"] == "signup":
        _pay(session, referral, referrer, referee, None, settings, now)
    return referral


def _enrollment_rejection(session: Session, referee: Member, referrer: Member, ip: str | None,
                          now: datetime) -> str | None:
    if referrer.deleted_at is not None:
        return "referrer_deleted"
    if _same_contact(referee, referrer):
        return "self_referral"
    contacts = [column == value for column, value in ((Member.email, referee.email), (Member.phone, referee.phone))
                if value]
    if contacts and session.scalar(select(Member.id).where(
            Member.program_id == referee.program_id, Member.id != referee.id, Member.deleted_at.is_(None),
            or_(*contacts)).limit(1)):
        return "already_member"
    settings = referee.program.referral_settings or {}
    day_start = period_start(program_zone(referee.program), now, "day")
    today = (Referral.program_id == referee.program_id, Referral.created_at >= day_start)
    per_referrer = settings.get("max_per_referrer_per_day", DEFAULT_PER_REFERRER_PER_DAY)
    if per_referrer is not None and session.scalar(select(func.count()).select_from(Referral).where(
            *today, Referral.referrer_id == referrer.id)) >= per_referrer:
        return "referrer_velocity"
    per_ip = settings.get("max_per_ip_per_day", DEFAULT_PER_IP_PER_DAY)
    if ip and per_ip is not None and session.scalar(select(func.count()).select_from(Referral).where(
            *today, Referral.ip == ip)) >= per_ip:
        return "ip_velocity"
    return None


def _same_contact(one: Member, other: Member) -> bool:
    """Emails are stored lowercased and phones as "+" and digits, so equal means the same person's."""
    return bool(one.email and one.email == other.email or one.phone and one.phone == other.phone)


def _same_device(session: Session, referee: Member, referrer: Member) -> bool:
    """The referee's card is registered on an Apple device (Apple's deviceLibraryIdentifier) that also holds the
    referrer's card, or the card of another friend the referrer was already rewarded for (one phone, many
    sign-ups). FCM tokens cannot tell: a token moves to whoever signs in to the app last."""
    devices = select(DeviceRegistration.device_library_id).where(DeviceRegistration.member_id == referee.id)
    rewarded = select(Referral.referee_id).where(Referral.referrer_id == referrer.id, Referral.state == COMPLETED)
    return session.scalar(select(DeviceRegistration.id).where(
        DeviceRegistration.device_library_id.in_(devices), DeviceRegistration.member_id != referee.id,
        or_(DeviceRegistration.member_id == referrer.id, DeviceRegistration.member_id.in_(rewarded))).limit(1)) \
        is not None


def after_purchase(session: Session, member: Member, purchase: LedgerEntry, now: datetime) -> ReferralReward | None:
    """A referee's purchase (an `earn` with points, or a stamp card's visit) may complete their referral or pay it
    again; the payout, if any. Costs nothing for a member nobody referred."""
    if member.referred_by_id is None or purchase.kind != "earn" or purchase.points <= 0 and not purchase.stamps:
        return None
    settings = active_settings(member.program)
    if settings is None or settings["trigger"] == "signup":
        return None
    referral = session.scalar(select(Referral).where(Referral.referee_id == member.id,
                                                     Referral.state.in_((PENDING, COMPLETED))))
    if referral is None or settings["trigger"] == "first_purchase" and referral.state == COMPLETED:
        return None
    if settings.get("within_days") is not None and now > member.created_at + timedelta(days=settings["within_days"]):
        if referral.state == PENDING:
            referral.state, referral.reason = REJECTED, "window_passed"
        return None
    referrer = session.get(Member, referral.referrer_id)
    return _pay(session, referral, referrer, member, purchase, settings, now)


def _pay(session: Session, referral: Referral, referrer: Member, referee: Member, purchase: LedgerEntry | None,
         settings: dict, now: datetime) -> ReferralReward | None:
    """Credit both sides; the first payout completes the referral (unless a cap or a shared device refuses it)
    and emits `referral.completed`."""
    referrer = lock_member(session, referrer)  # serialises the referrer's count of completed referrals
    first = referral.state == PENDING
    if first:
        completed = session.scalar(select(func.count()).select_from(Referral).where(
            Referral.referrer_id == referrer.id, Referral.state == COMPLETED))
        cap = settings.get("max_referrals")
        reason = "referrer_cap" if cap is not None and completed >= cap else \
            "same_device" if _same_device(session, referee, referrer) else None
        if reason:
            referral.state, referral.reason = REJECTED, reason
            return None
        referral.state, referral.ordinal, referral.completed_at = COMPLETED, completed + 1, now
    reward = ReferralReward(referral_id=referral.id, qualifying_entry_id=purchase.id if purchase else None,
                            referrer_points=referrer_points_for(settings, referral.ordinal),
                            referee_points=settings.get("referee_points", 0), created_at=now)
    what = "joined" if purchase is None else f"purchase #{purchase.id}"
    rule, reference = f"referral #{referral.id}: {settings['trigger']}", f"referral-{referral.id}"
    if reward.referrer_points:
        reward.referrer_entry_id = earn_points(
            session, referrer, reward.referrer_points, kind="referral", rule=rule, reference=reference,
            reason=f"Referral #{referral.id}: the friend you invited ({what})").id
    if reward.referee_points:
        reward.referee_entry_id = earn_points(
            session, referee, reward.referee_points, kind="referral", rule=rule, reference=reference,
            reason=f"Referral #{referral.id}: you joined with a friend's code ({what})").id
    session.add(reward)
    session.flush()
    if first:
        emit(session, merchant_id=referral.merchant_id, type="referral.completed", member_id=referrer.id,
             program_id=referral.program_id, data={**referral_json(referral), "trigger": settings["trigger"],
                                                   "qualifying_transaction_id": reward.qualifying_entry_id,
                                                   "referrer_points": reward.referrer_points,
                                                   "referee_points": reward.referee_points})
    return reward


def after_refund(session: Session, original_id: int, now: datetime) -> list[ReferralReward]:
    """Once the purchase `original_id` is reversed in full, reverse the payouts it qualified for (the reward
    entries' own reversals: never below zero, any shortfall reported on them). The payouts reversed."""
    rewards = list(session.scalars(select(ReferralReward).where(ReferralReward.qualifying_entry_id == original_id,
                                                               ReferralReward.reversed_at.is_(None))))
    if not rewards or not _fully_reversed(session, original_id):
        return []
    for reward in rewards:
        for entry_id in (reward.referrer_entry_id, reward.referee_entry_id):
            if entry_id is not None:
                _reverse_quietly(session, entry_id, f"referral-{reward.referral_id}-refunded")
        reward.reversed_at = now
    session.flush()
    for referral_id in {reward.referral_id for reward in rewards}:
        referral = session.get(Referral, referral_id)
        if all(reward.reversed_at is not None for reward in referral.rewards):
            referral.state, referral.reason = REJECTED, "refunded"
    return rewards


def _fully_reversed(session: Session, entry_id: int) -> bool:
    original = session.get(LedgerEntry, entry_id)
    taken = session.scalar(select(func.coalesce(func.sum(func.abs(LedgerEntry.points) + LedgerEntry.shortfall), 0))
                           .where(LedgerEntry.reverses_id == entry_id))
    return int(taken) >= original.points


def _reverse_quietly(session: Session, entry_id: int, reference: str) -> None:
    """A reward the merchant already reversed by hand stays as it is."""
    entry = session.get(LedgerEntry, entry_id)
    try:
        reverse_entry(session, entry.merchant_id, entry_id, reference=reference, by=SYSTEM)
    except Conflict:
        pass


def referral_json(referral: Referral) -> dict:
    return {"id": referral.id, "program_id": referral.program_id, "referrer_id": referral.referrer_id,
            "referee_id": referral.referee_id, "state": referral.state, "reason": referral.reason,
            "ordinal": referral.ordinal, "created_at": referral.created_at.isoformat(),
            "completed_at": referral.completed_at.isoformat() if referral.completed_at else None}


def member_referrals(session: Session, member: Member, limit: int = 100) -> dict:
    """The referrals a member made (newest first), counts by state, the points they earned by them, and who
    referred them."""
    made = list(session.scalars(select(Referral).where(Referral.referrer_id == member.id)
                                .order_by(Referral.id.desc()).limit(limit)))
    counts = dict(session.execute(select(Referral.state, func.count()).where(Referral.referrer_id == member.id)
                                  .group_by(Referral.state)).all())
    earned = session.scalar(select(func.coalesce(func.sum(ReferralReward.referrer_points), 0))
                            .join(Referral, Referral.id == ReferralReward.referral_id)
                            .where(Referral.referrer_id == member.id, ReferralReward.reversed_at.is_(None)))
    referred_by = session.scalar(select(Referral).where(Referral.referee_id == member.id))
    return {"member_id": member.id, "referral_code": member.referral_code,
            "stats": {**{state: counts.get(state, 0) for state in (PENDING, COMPLETED, REJECTED)},
                      "points_earned": int(earned)},
            "data": [{**referral_json(r), "rewards": [_reward_json(w) for w in r.rewards]} for r in made],
            "referred_by": referral_json(referred_by) if referred_by else None}


def _reward_json(reward: ReferralReward) -> dict:
    return {"qualifying_transaction_id": reward.qualifying_entry_id, "referrer_points": reward.referrer_points,
            "referee_points": reward.referee_points, "referrer_transaction_id": reward.referrer_entry_id,
            "referee_transaction_id": reward.referee_entry_id, "created_at": reward.created_at.isoformat(),
            "reversed_at": reward.reversed_at.isoformat() if reward.reversed_at else None}


def program_stats(session: Session, program: Program, top: int = 10) -> dict:
    """Counts by state and by rejection reason, points paid (net of reversed payouts), the share of referrals
    that completed, and the members who referred most."""
    where = Referral.program_id == program.id
    counts = dict(session.execute(select(Referral.state, func.count()).where(where).group_by(Referral.state)).all())
    reasons = dict(session.execute(select(Referral.reason, func.count()).where(where, Referral.state == REJECTED)
                                   .group_by(Referral.reason)).all())
    paid = session.execute(select(func.coalesce(func.sum(ReferralReward.referrer_points), 0),
                                  func.coalesce(func.sum(ReferralReward.referee_points), 0))
                           .join(Referral, Referral.id == ReferralReward.referral_id)
                           .where(where, ReferralReward.reversed_at.is_(None))).one()
    leaders = session.execute(select(Referral.referrer_id, Member.name, func.count().label("n"))
                              .join(Member, Member.id == Referral.referrer_id)
                              .where(where, Referral.state == COMPLETED)
                              .group_by(Referral.referrer_id, Member.name)
                              .order_by(func.count().desc(), Referral.referrer_id).limit(top)).all()
    total = sum(counts.values())
    by_state = {state: counts.get(state, 0) for state in (PENDING, COMPLETED, REJECTED)}
    return {"program_id": program.id, "enabled": active_settings(program) is not None, "total": total, **by_state,
            "rejected_by_reason": reasons,
            "completion_rate": round(by_state[COMPLETED] / total, 4) if total else None,
            "referrer_points": int(paid[0]), "referee_points": int(paid[1]),
            "top_referrers": [{"member_id": member_id, "name": name, "completed": n}
                              for member_id, name, n in leaders]}


def referral_link(base_url: str, member: Member) -> str:
    return f"{base_url}/join/{member.program.slug}?ref={member.referral_code}"


def referral_notices(member: Member, base_url: str) -> list[CardNotice]:
    """The member's referral link on their card, while the program rewards referrals."""
    if active_settings(member.program) is None:
        return []
    locale = member.locale if member.locale in NOTICE_TEXT else "en"
    return [CardNotice(key="referral_link", label=NOTICE_LABEL[locale],
                       text=NOTICE_TEXT[locale].format(code=member.referral_code),
                       link=referral_link(base_url, member))]
