"""Personalised offers: the merchant writes offer templates whose rules read plainly ("discount on the member's
most-bought category in the last 90 days", "no purchase for 30 days", "within 100 points of the next tier"), and
each member's card shows the one that fits them, with the reason available to the merchant.

Precedence (deterministic): active templates in order of `priority` (lower first; defaults: we_miss_you 10,
next_tier 20, top_category 30, default 100), then id; the first that fits wins. Within top_category, the
most-bought category is the one with the most items in the window; equal counts go to the alphabetically first
category. A member who fits none gets no offer (a `default` template fits everyone: the merchant's fallback).

When it is chosen again: in the earn's own transaction, for programs with active templates (the program row the
earn already loaded says so: programs without offers pay no extra statement); daily for everyone (time passes:
"no purchase for 30 days", the 90-day window slides, refunds); and after a template changes (an outbox event the
worker handles). Only members whose offer changed get a card update."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.domain import purchases
from app.domain.members import next_goals
from app.domain.relevance import text_for
from app.models import Member, MemberOffer, OfferTemplate
from passes.storecard import CardNotice

TOP_CATEGORY, WE_MISS_YOU, NEXT_TIER, DEFAULT = "top_category", "we_miss_you", "next_tier", "default"
KINDS = (TOP_CATEGORY, WE_MISS_YOU, NEXT_TIER, DEFAULT)
DEFAULT_PRIORITY = {WE_MISS_YOU: 10, NEXT_TIER: 20, TOP_CATEGORY: 30, DEFAULT: 100}
SETTINGS = {TOP_CATEGORY: {"window_days": 90, "min_purchases": 1, "categories": []},  # kind -> settings, defaults
            WE_MISS_YOU: {"days": 30}, NEXT_TIER: {"within_points": 100}, DEFAULT: {}}
PLACEHOLDERS = {TOP_CATEGORY: {"category"}, WE_MISS_YOU: {"days"}, NEXT_TIER: {"points", "tier"}, DEFAULT: set()}
LABELS = {"en": "Your offer", "ja": "あなたへの特典", "ko": "회원님을 위한 혜택"}  # the card line's default label


@dataclass(frozen=True)
class Facts:
    """What the rules read about one member, as of `now`."""
    now: datetime
    counts: dict[int, dict[str | None, int]] = field(default_factory=dict)  # window days -> category -> items
    last_purchase_at: datetime | None = None
    next_tier: tuple[str, int] | None = None  # (tier, points still needed)


@dataclass(frozen=True)
class Fit:
    """A template against one member: whether it fits, why (for the merchant, in English), and the values
    its text is filled with on the card."""
    template: OfferTemplate
    fits: bool
    why: str
    shown: dict = field(default_factory=dict)


def assess(template: OfferTemplate, facts: Facts) -> Fit:
    settings = {**SETTINGS[template.kind], **(template.settings or {})}
    if template.kind == TOP_CATEGORY:
        return _top_category(template, settings, facts)
    if template.kind == WE_MISS_YOU:
        return _we_miss_you(template, settings, facts)
    if template.kind == NEXT_TIER:
        return _next_tier(template, settings, facts)
    return Fit(template, True, "the program's default offer")


def _top_category(template: OfferTemplate, settings: dict, facts: Facts) -> Fit:
    window = settings["window_days"]
    counts = facts.counts.get(window, {})
    allowed = set(settings["categories"])
    candidates = {name: n for name, n in counts.items() if name is not None and (not allowed or name in allowed)}
    if not candidates:
        return Fit(template, False, f"no purchase in {_categories(allowed)} in the last {window} days")
    top, count = min(candidates.items(), key=lambda item: (-item[1], item[0]))
    why = f"most-bought category: {top}, {count} of {sum(counts.values())} items in {window} days"
    if count < settings["min_purchases"]:
        return Fit(template, False, f"{why}; the offer needs {settings['min_purchases']}")
    return Fit(template, True, why, {"category": top})


def _categories(allowed: set) -> str:
    return ", ".join(sorted(allowed)) if allowed else "any category"


def _we_miss_you(template: OfferTemplate, settings: dict, facts: Facts) -> Fit:
    days = settings["days"]
    if facts.last_purchase_at is None:
        return Fit(template, False, "no purchase yet")
    since = (facts.now - facts.last_purchase_at).days
    why = f"last purchase {since} days ago (the offer is for {days} days or more without one)"
    return Fit(template, since >= days, why, {"days": days})


def _next_tier(template: OfferTemplate, settings: dict, facts: Facts) -> Fit:
    if facts.next_tier is None:
        return Fit(template, False, "no higher tier to reach")
    tier, needed = facts.next_tier
    within = settings["within_points"]
    why = f"{needed} points to {tier} (the offer is for {within} or fewer)"
    return Fit(template, 0 < needed <= within, why, {"tier": tier, "points": needed})


def choose(templates: Iterable[OfferTemplate], facts: Facts) -> tuple[Fit | None, list[Fit]]:
    """The first fitting active template in precedence order, and every template's assessment (in that order)."""
    fits = [assess(template, facts) for template in ordered(templates) if template.active]
    return next((fit for fit in fits if fit.fits), None), fits


def ordered(templates: Iterable[OfferTemplate]) -> list[OfferTemplate]:
    return sorted(templates, key=lambda template: (template.priority, template.id))


def facts_for(session: Session, members: list[Member], templates: list[OfferTemplate],
              now: datetime) -> dict[int, Facts]:
    """The facts of several members, one grouped statement per thing the templates read."""
    ids = [member.id for member in members]
    kinds = {template.kind for template in templates}
    windows = {({**SETTINGS[TOP_CATEGORY], **template.settings})["window_days"]
               for template in templates if template.kind == TOP_CATEGORY}
    counts = {window: purchases.category_counts(session, ids, now - timedelta(days=window), now)
              for window in windows}
    last = purchases.last_purchases(session, ids, now) if WE_MISS_YOU in kinds else {}
    return {member.id: Facts(now, {window: counts[window].get(member.id, {}) for window in windows},
                             last.get(member.id), _next_tier_of(member) if NEXT_TIER in kinds else None)
            for member in members}


def _next_tier_of(member: Member) -> tuple[str, int] | None:
    goal = next_goals(member)[0]
    return (goal.name, goal.points_needed) if goal else None


def active_templates(session: Session, program_id: int) -> list[OfferTemplate]:
    return ordered(session.scalars(select(OfferTemplate).where(OfferTemplate.program_id == program_id,
                                                               OfferTemplate.active.is_(True))))


def keep_choice(session: Session, member: Member, fit: Fit | None, now: datetime,
                current: MemberOffer | None) -> bool:
    """Store what the member's card shows; True when that changed (another template or other values)."""
    if fit is None:
        if current is None:
            return False
        session.delete(current)
        return True
    if current is not None and current.template_id == fit.template.id and current.shown == fit.shown:
        return False
    if current is None:
        _insert_choice(session, member, fit, now)
    else:
        current.template_id, current.shown, current.chosen_at = fit.template.id, fit.shown, now
    return True


def _insert_choice(session: Session, member: Member, fit: Fit, now: datetime) -> None:
    """An upsert: the daily job (which does not lock members) and an earn may choose for the same member at once;
    neither fails, the later one's choice stays."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {"program_id": member.program_id, "template_id": fit.template.id, "shown": fit.shown, "chosen_at": now}
    session.execute(insert(MemberOffer).values(member_id=member.id, **values)
                    .on_conflict_do_update(index_elements=[MemberOffer.member_id], set_=values))


def after_purchase(session: Session, member: Member, now: datetime) -> None:
    """In the earn's transaction (which already updates the card): choose the member's offer again. Nothing,
    not even a statement, for programs without active templates."""
    if not member.program.offers_active:
        return
    templates = active_templates(session, member.program_id)
    fit, _ = choose(templates, facts_for(session, [member], templates, now)[member.id])
    keep_choice(session, member, fit, now, session.get(MemberOffer, member.id))
    session.flush()


def explain(session: Session, member: Member, now: datetime) -> dict:
    """The offer that fits the member now and why, every template's verdict, and what the card shows."""
    templates = list(session.scalars(select(OfferTemplate).where(OfferTemplate.program_id == member.program_id)))
    fit, fits = choose(templates, facts_for(session, [member], templates, now)[member.id])
    return {"chosen": fit, "evaluated": fits, "on_card": session.get(MemberOffer, member.id)}


def render(template: OfferTemplate, shown: dict, locale: str, program_locales: list) -> tuple[str, str]:
    """(label, text) of the card line in the member's language (else the program's first that has one)."""
    text = text_for(template.texts or {}, locale, program_locales) or template.name
    label = text_for(template.labels or {}, locale, program_locales) or LABELS.get(locale, LABELS["en"])
    return label, text.format_map({key: shown.get(key, "") for key in PLACEHOLDERS[template.kind]})


def offer_notices(session: Session, member: Member) -> tuple[CardNotice, ...]:
    """The member's offer on the card's back (nothing, and no statement, for programs without offers). Wallet
    shows a notification when the offer changes."""
    if not member.program.offers_active:
        return ()
    chosen = session.get(MemberOffer, member.id)
    if chosen is None or not chosen.template.active:
        return ()
    label, text = render(chosen.template, chosen.shown, member.locale, list(member.program.locales or ()))
    return (CardNotice(key="offer", label=label, text=text, change_message="%@"),)


def describe(template: OfferTemplate) -> str:
    """The template's rule in plain words, as the merchant reads it on the dashboard and in the API."""
    settings = {**SETTINGS[template.kind], **(template.settings or {})}
    if template.kind == TOP_CATEGORY:
        among = f" among {', '.join(settings['categories'])}" if settings["categories"] else ""
        return (f"the member's most-bought category{among} in the last {settings['window_days']} days, "
                f"at least {settings['min_purchases']} items")
    if template.kind == WE_MISS_YOU:
        return f"no purchase for {settings['days']} days or more"
    if template.kind == NEXT_TIER:
        return f"at most {settings['within_points']} points short of the next tier"
    return "every member (the default offer)"
