"""Tiers qualify on points earned (or money spent, `tier_basis`) within a rolling window of the last
`tier_window_months`, never on the spendable balance (spending must never cost a member their status).

- Upgrades happen at once, on the earn that reaches the threshold.
- Downgrades happen only at the member's review date (a window after the tier was reached or last confirmed)
  plus the program's grace period: then the window ending at that moment decides (`review_tiers`, a sweep).
- A rule change never downgrades anyone; a reversed earn takes back the tier its points reached.
- The tier shown (`tier_id`) is a manual override while it lasts, else the higher of the earned tier
  (`earned_tier_id`) and the tier a paid membership grants while it runs (app/domain/memberships.py).

Every change of the tier shown emits `tier.changed`."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.domain.calendar import add_months, program_zone
from app.domain.errors import InvalidInput
from app.domain.event_data import member_event
from app.domain.events import emit
from app.domain.passupdates import card_changed
from app.models import LedgerEntry, Member, Program, Tier, utcnow

QUALIFYING_KINDS = ("earn", "bonus", "promotion", "referral")  # credits that count towards a tier


def tier_for(program: Program, total: Decimal | int) -> Tier | None:
    """The highest tier whose threshold `total` (points earned or money spent in the window) reaches."""
    reached = [t for t in program.tiers if t.threshold <= total]
    return max(reached, key=lambda t: t.threshold) if reached else None


def next_tier(program: Program, total: Decimal | int, held: Tier | None = None) -> tuple[Tier, int] | None:
    """The next tier above both the member's total and the tier they hold (which a rule change may have put
    above their total), and what is still to earn for it (rounded up)."""
    floor = max(total, held.threshold if held else -1)
    ahead = sorted((t for t in program.tiers if t.threshold > floor), key=lambda t: t.threshold)
    return (ahead[0], math.ceil(ahead[0].threshold - total)) if ahead else None


def window_start(program: Program, until: datetime) -> datetime:
    return add_months(program_zone(program), until, -program.tier_window_months)


def qualifying_total(session: Session, member: Member, until: datetime) -> Decimal:
    """Points earned (or money spent) in the window ending at `until`, net of reversals."""
    program = member.program
    return Decimal(session.scalar(select(_window_sum(program, member.id, window_start(program, until), until))))


def _window_sum(program: Program, member_id, since: datetime, until: datetime):
    """Qualifying credits in (since, until], less what reversals of them took back (points taken plus
    shortfall); for money, the amount of earns less the amount reversals record."""
    original = aliased(LedgerEntry)
    if program.tier_basis == "spend":
        value = case((LedgerEntry.kind == "earn", func.coalesce(LedgerEntry.amount, 0)),
                     (original.kind == "earn", func.coalesce(LedgerEntry.amount, 0)), else_=0)
    else:
        value = case((LedgerEntry.kind.in_(QUALIFYING_KINDS), LedgerEntry.points),
                     (original.kind.in_(QUALIFYING_KINDS), -(func.abs(LedgerEntry.points) + LedgerEntry.shortfall)),
                     else_=0)
    return (select(func.coalesce(func.sum(value), 0)).select_from(LedgerEntry)
            .outerjoin(original, original.id == LedgerEntry.reverses_id)
            .where(LedgerEntry.member_id == member_id, LedgerEntry.created_at > since,
                   LedgerEntry.created_at <= until).scalar_subquery())


def tier_by_id(program: Program, tier_id: int | None) -> Tier | None:
    return next((tier for tier in program.tiers if tier.id == tier_id), None) if tier_id else None


def start_tier(member: Member, now: datetime) -> None:
    """A new member holds the tier a total of 0 reaches (a threshold-0 tier), reviewed a window later."""
    tier = tier_for(member.program, 0)
    member.earned_tier_id = tier.id if tier else None
    member.tier_review_at = add_months(program_zone(member.program), now, member.program.tier_window_months) \
        if tier else None
    member.tier_since = now if tier else None
    _show(member, tier)


def _show(member: Member, tier: Tier | None) -> None:
    """The tier shown is stored as its id. A member locked for a change reads `tier` from the program's cached
    configuration (values, not rows); otherwise the relationship is kept in step with the id."""
    member.tier_id = tier.id if tier else None
    if member.program_config is None:
        member.tier_row = tier


def after_credit(session: Session, member: Member, value: Decimal | int, now: datetime) -> bool:
    """A qualifying credit of `value` (points, or money for a spend-based program): upgrade at once when the
    window now reaches a higher tier. The exact window is read only when the cached upper bound could reach one,
    so most earns cost no query. True when the tier shown changed."""
    program = member.program
    if not program.tiers:
        return False
    member.qualifying_total = Decimal(member.qualifying_total or 0) + Decimal(value)
    held = tier_by_id(program, member.earned_tier_id)
    upcoming = next_tier(program, -1, held)
    if upcoming is None or member.qualifying_total < upcoming[0].threshold:
        return False
    member.qualifying_total = qualifying_total(session, member, now)
    reached = tier_for(program, member.qualifying_total)
    if reached is None or (held is not None and reached.threshold <= held.threshold):
        return False
    member.earned_tier_id, member.tier_since = reached.id, now
    member.tier_review_at = add_months(program_zone(program), now, program.tier_window_months)
    return show_tier(session, member, now)


def after_reversal(session: Session, member: Member, now: datetime) -> bool:
    """A reversed credit takes back the tier its points reached (if the window no longer reaches it)."""
    program = member.program
    if not program.tiers:
        return False
    member.qualifying_total = qualifying_total(session, member, now)
    held = tier_by_id(program, member.earned_tier_id)
    reached = tier_for(program, member.qualifying_total)
    if held is None or (reached is not None and reached.threshold >= held.threshold):
        return False
    member.earned_tier_id = reached.id if reached else None
    return show_tier(session, member, now)


def show_tier(session: Session, member: Member, now: datetime, shown_before: Tier | None | bool = False) -> bool:
    """Set the tier shown: the override while it lasts, else the higher of the earned tier and a paid
    membership's. Emits `tier.changed` and returns True when it changed. `shown_before` is the tier the member
    saw when a rule edit removed it (`member.tier` no longer says); False: `member.tier` is what they saw."""
    program = member.program
    override_lasts = member.tier_override_id and (member.tier_override_until is None
                                                  or member.tier_override_until > now)
    if override_lasts:
        shown = tier_by_id(program, member.tier_override_id)
    else:
        paid = tier_by_id(program, member.membership_tier_id) \
            if member.membership_ends_at is not None and member.membership_ends_at > now else None
        shown = max(filter(None, (tier_by_id(program, member.earned_tier_id), paid)), key=lambda t: t.threshold,
                    default=None)
    # A removed tier is gone, so whatever is shown now differs from it (SQLite may even reuse its id).
    if shown_before is False and (shown.id if shown else None) == member.tier_id:
        return False
    previous = member.tier if shown_before is False else shown_before
    _show(member, shown)
    if member.id is not None:  # enrolment sets the first tier: no change to tell
        upgrade = shown is not None and (previous is None or shown.threshold > previous.threshold)
        emit(session, **member_event("tier.changed", member, previous_tier=previous.name if previous else None,
                                     upgrade=upgrade))
    return True


def set_override(session: Session, member: Member, tier_id: int | None, until: datetime | None,
                 now: datetime) -> None:
    """An explicit tier until `until` (then the earned tier again); `tier_id` None ends an override now."""
    if tier_id is not None and tier_by_id(member.program, tier_id) is None:
        raise InvalidInput("tier_id", f"No tier {tier_id} in this program.")
    if tier_id is not None and until is not None and until <= now:
        raise InvalidInput("until", "Must be in the future.")
    member.tier_override_id, member.tier_override_until = tier_id, (until if tier_id else None)
    show_tier(session, member, now)


def review_member(session: Session, member: Member, as_of: datetime) -> bool:
    """The member's review(s) due by `as_of`: a lapsed override ends; at each review date plus the grace
    period, the window ending then decides: still qualifying confirms the tier for another window, falling
    short moves the member to the tier the window reaches. Idempotent. True when the tier shown changed."""
    program, zone = member.program, program_zone(member.program)
    grace = timedelta(days=program.tier_grace_days)
    while member.tier_review_at is not None and member.tier_review_at + grace <= as_of:
        decided_at = member.tier_review_at + grace
        total = qualifying_total(session, member, decided_at)
        held, reached = tier_by_id(program, member.earned_tier_id), tier_for(program, total)
        if held is not None and (reached is None or reached.threshold < held.threshold):
            member.earned_tier_id, member.tier_since = (reached.id, decided_at) if reached else (None, None)
            member.tier_review_at = add_months(zone, decided_at, program.tier_window_months) if reached else None
        else:
            member.tier_review_at = _anniversary_after(zone, member.tier_since or member.tier_review_at,
                                                       program.tier_window_months, member.tier_review_at)
    if member.tier_override_until is not None and member.tier_override_until <= as_of:
        member.tier_override_id = member.tier_override_until = None
    member.qualifying_total = qualifying_total(session, member, as_of)
    return show_tier(session, member, as_of)


def _anniversary_after(zone, since: datetime, months: int, after: datetime) -> datetime:
    """The first date a whole number of windows after `since` that is later than `after`."""
    windows = 1
    while (moment := add_months(zone, since, months * windows)) <= after:
        windows += 1
    return moment


def members_due_for_review(session: Session, as_of: datetime, limit: int = 500) -> list[int]:
    """Ids of members whose review (plus their program's grace) or override end has come by `as_of`."""
    due = []
    for program_id, grace_days in session.execute(select(Program.id, Program.tier_grace_days)):
        due += session.scalars(select(Member.id).where(
            Member.program_id == program_id,
            or_(Member.tier_review_at <= as_of - timedelta(days=grace_days), Member.tier_override_until <= as_of))
            .order_by(Member.id).limit(limit - len(due)))
        if len(due) >= limit:
            break
    return due


def replace_tiers(session: Session, program: Program, items: list[dict]) -> None:
    """The program's tiers become exactly `items`: one with an `id` changes that tier in place, one without is
    new, a tier not listed is removed and its members move to the tier they qualify for. The caller holds the
    program's row lock, so concurrent replacements never mix."""
    current = {tier.id: tier for tier in program.tiers}
    _check_items(items, current)
    kept = [current[item["id"]] for item in items if "id" in item]
    removed = [tier.id for tier in program.tiers if tier not in kept]
    shown_removed = _shown_removed_tiers(session, program, removed)
    if removed:  # before the rows go: members.tier_id points at them
        session.execute(_off_removed_tiers(removed))
    renamed = {item["id"] for item in items if "id" in item and current[item["id"]].name != item["name"]}
    for tier in kept:  # (program_id, name) is unique row by row: free the names that change first, so they can swap
        if tier.id in renamed:
            tier.name = uuid.uuid4().hex
    program.tiers = kept
    session.flush()
    for item in items:
        tier = current[item["id"]] if "id" in item else Tier()
        tier.name, tier.threshold = item["name"], item["threshold"]
        tier.multiplier = Decimal(item.get("multiplier", tier.multiplier or 1)).quantize(Decimal("0.01"))
        tier.perks = item.get("perks", tier.perks)
        if "id" not in item:
            program.tiers.append(tier)
    session.flush()
    session.expire(program, ["tiers"])  # read back in threshold order
    upgrade_members(session, program, shown_removed)


def _shown_removed_tiers(session: Session, program: Program, removed: list[int]) -> dict[int, Tier]:
    """Member id -> the soon removed tier they are shown (a detached copy: its name and threshold outlive the
    row), so the change they see can be told."""
    if not removed:
        return {}
    rows = session.execute(select(Member.id, Tier.id, Tier.name, Tier.threshold).join(Tier, Tier.id == Member.tier_id)
                           .where(Member.program_id == program.id, Member.tier_id.in_(removed),
                                  Member.deleted_at.is_(None)))
    return {member_id: Tier(id=tier_id, name=name, threshold=threshold)
            for member_id, tier_id, name, threshold in rows}


def _off_removed_tiers(removed: list[int]):
    """One UPDATE: every tier reference to a removed tier is cleared; a member who was shown one (or held it by
    override) is shown their earned tier, if that one stays. (Membership periods naming it lose their tier by the
    foreign key's ON DELETE SET NULL.)"""
    columns = (Member.earned_tier_id, Member.tier_override_id, Member.membership_tier_id)
    earned = case((Member.earned_tier_id.in_(removed), None), else_=Member.earned_tier_id)
    shown = case((or_(Member.tier_id.in_(removed), Member.tier_override_id.in_(removed)), earned),
                 else_=Member.tier_id)
    return (update(Member).where(or_(Member.tier_id.in_(removed), *(column.in_(removed) for column in columns)))
            .values({**{column.key: case((column.in_(removed), None), else_=column) for column in columns},
                     "tier_id": shown})
            .execution_options(synchronize_session=False))


def upgrade_members(session: Session, program: Program, shown_removed: dict[int, Tier] | None = None) -> None:
    """After a rule change, everyone whose window reaches a tier above the one they earned (or who earned none)
    moves up now; nobody moves down. One query per tier, highest first, finds them; each is then locked and
    moved like an earn's upgrade: the tier shown follows unless an override or a higher paid membership lasts,
    `tier.changed` is emitted and the card updates (Apple and the Google object, which shows the tier).
    Members who were shown a removed tier (`shown_removed`) are told what they see now as well."""
    now = utcnow()
    since = window_start(program, now)
    review_at = add_months(program_zone(program), now, program.tier_window_months)
    shown_removed = dict(shown_removed or {})
    for tier in sorted(program.tiers, key=lambda t: t.threshold, reverse=True):
        lower = select(Tier.id).where(Tier.program_id == program.id, Tier.threshold < tier.threshold)
        below = or_(Member.earned_tier_id.is_(None), Member.earned_tier_id.in_(lower))
        reaches = _window_sum(program, Member.id, since, now) >= tier.threshold
        for member_id in session.scalars(select(Member.id).where(
                Member.program_id == program.id, Member.deleted_at.is_(None), below,
                Member.qualifying_total >= tier.threshold, reaches).order_by(Member.id)).all():
            member = _locked(session, member_id)
            member.earned_tier_id, member.tier_review_at, member.tier_since = tier.id, review_at, now
            _tell_tier(session, member, now, shown_removed.pop(member_id, False))
        session.flush()  # the next (lower) tier's query sees these members above it
    for member_id, was in sorted(shown_removed.items()):
        _tell_tier(session, _locked(session, member_id), now, was)


def rules_changed(session: Session, program: Program) -> None:
    """A new window or basis: every member's cached total is recomputed by it (one UPDATE; the total is what
    earns compare against to skip the exact query), then whoever now reaches a higher tier moves up. A shorter
    window or a stricter basis downgrades nobody here: the review date decides, as always."""
    now = utcnow()
    session.execute(update(Member).where(Member.program_id == program.id)
                    .values(qualifying_total=_window_sum(program, Member.id, window_start(program, now), now))
                    .execution_options(synchronize_session=False))
    upgrade_members(session, program)


def _locked(session: Session, member_id: int) -> Member:
    return session.get(Member, member_id, with_for_update={"of": Member}, populate_existing=True)


def _tell_tier(session: Session, member: Member, now: datetime, shown_before: Tier | None | bool) -> None:
    if show_tier(session, member, now, shown_before):
        card_changed(session, member)


def _check_items(items: list[dict], current: dict[int, Tier]) -> None:
    names = [item["name"] for item in items]
    if len(set(names)) != len(names):
        raise InvalidInput("tiers", "Tier names must be unique.")
    seen: set[int] = set()
    for n, item in enumerate(items):
        if "id" in item and (item["id"] not in current or item["id"] in seen):
            raise InvalidInput(f"tiers.{n}.id", f"No tier {item['id']} in this program (or it is listed twice).")
        seen.add(item.get("id", 0))
