"""Database rows to the JSON shapes of the API (the schemas in `schemas.py` describe them)."""

from __future__ import annotations

from datetime import datetime

from app.domain.earnrules import promotion_runs
from app.domain.holds import status_at
from app.domain.members import next_goals
from app.domain.stamps import open_vouchers
from app.domain.tiers import tier_by_id
from app.google_cards import google_save_url
from app.models import Hold, LedgerEntry, Member, MembershipPeriod, Program, utcnow
from app.receipts import receipt_line
from app.services import app_config, db_session


def member_json(member: Member) -> dict:
    upcoming_tier, upcoming_reward = next_goals(member)
    return {
        "id": member.id, "program_id": member.program_id, "name": member.name, "email": member.email,
        "phone": member.phone, "external_id": member.external_id, "locale": member.locale,
        "points_balance": member.points_balance, "held_points": member.held_points,
        "available_points": member.available_points,
        "lifetime_points": member.lifetime_points, "pending_points": member.pending_points,
        "stamps": member.stamps,
        "vouchers": open_vouchers(db_session(), member.id) if member.program.type == "stamps" else [],
        "expiring": {"points": member.next_expiry_points, "expires_at": member.next_expiry_at}
        if member.next_expiry_at else None,
        "tier": member.tier.name if member.tier else None,
        "tier_benefits": {"multiplier": member.tier.multiplier, "perks": member.tier.perks} if member.tier else None,
        "tier_qualifying": member.qualifying_total, "tier_review_at": member.tier_review_at,
        "tier_override": _override(member), "membership": _membership(member),
        "next_tier": upcoming_tier._asdict() if upcoming_tier else None,
        "next_reward": upcoming_reward._asdict() if upcoming_reward else None,
        "serial_number": member.serial_number, "barcode_value": member.barcode_token,
        "referral_code": member.referral_code, "apple_pass_url": apple_pass_url(member),
        "google_save_url": google_save_url(app_config(), member), "created_at": member.created_at,
        "wallets": {"apple": {"installed": member.apple_devices > 0, "devices": member.apple_devices},
                    "google": {"saved": member.google_saved}},
        "badges": list(member.badges or []),
        "leaderboard": {"opt_in": member.leaderboard_opt_in, "display_name": member.leaderboard_name},
    }


def _override(member: Member) -> dict | None:
    tier = tier_by_id(member.program, member.tier_override_id)
    return {"tier": tier.name, "until": member.tier_override_until} if tier else None


def _membership(member: Member) -> dict | None:
    tier = tier_by_id(member.program, member.membership_tier_id)
    return {"tier": tier.name, "ends_at": member.membership_ends_at} if tier else None


def membership_json(period: MembershipPeriod, member: Member) -> dict:
    tier = tier_by_id(member.program, period.tier_id)
    now = utcnow()
    return {"id": period.id, "member_id": period.member_id, "tier": tier.name if tier else None,
            "starts_at": period.starts_at, "ends_at": period.ends_at, "amount": period.amount,
            "currency": period.currency, "active": period.starts_at <= now < period.ends_at}


def apple_pass_url(member: Member) -> str:
    """Public and unguessable: the customer's phone opens it without an API key."""
    return card_link(app_config().public_base_url, member)


def card_link(public_base_url: str, member: Member) -> str:
    return f"{public_base_url}/cards/{member.download_token}.pkpass"


def enroll_url(program: Program) -> str:
    return f"{app_config().public_base_url}/join/{program.slug}"


def program_json(program: Program, image_names: list[str]) -> dict:
    return {
        "id": program.id, "name": program.name, "slug": program.slug, "enroll_url": enroll_url(program),
        "currency": program.currency,
        "points_per_unit": program.points_per_unit, "rounding": program.rounding,
        "branding": {"background_color": program.background_color, "foreground_color": program.foreground_color,
                     "label_color": program.label_color, "logo_text": program.logo_text},
        "tiers": program.tiers, "rewards": [r for r in program.rewards if r.active], "locales": program.locales,
        "barcode_format": program.barcode_format, "terms": program.terms, "program_info": program.program_info,
        "timezone": program.timezone, "type": program.type, "stamps_required": program.stamps_required,
        "stamp_reward": program.stamp_reward, "stamp_milestones": program.stamp_milestones or [],
        "stamps_expire_days": program.stamps_expire_days,
        "expiry": {"policy": program.expiry_policy, "days": program.expiry_days, "warn_days": program.expiry_warn_days},
        "pending_days": program.pending_days,
        "earn_rules": {"minimum_spend": None, "category_multipliers": {}, "excluded_categories": [],
                       **(program.earn_rules or {})},
        "promotions": [{**promotion, "active": promotion_runs(program, promotion, utcnow())}
                       for promotion in program.promotions or ()],
        "bonus_actions": program.bonus_actions or {},
        "tier_rules": {"basis": program.tier_basis, "window_months": program.tier_window_months,
                       "grace_days": program.tier_grace_days},
        "referrals": program.referral_settings or None,
        "images": sorted(image_names), "created_at": program.created_at,
    }


def transaction_json(entry: LedgerEntry, member: Member, shortfall: int = 0, rules: list[dict] | None = None) -> dict:
    return {"transaction": entry, "member": member_json(member), "shortfall": shortfall,
            "rules": rules if rules is not None else _entry_rules(entry), "receipt": receipt(entry, member)}


def _entry_rules(entry: LedgerEntry) -> list[dict]:
    return [{"rule": entry.kind, "detail": entry.rule, "multiplier": None}] if entry.rule else []


def receipt(entry: LedgerEntry, member: Member) -> str:
    """The till's printable line for this entry, in the member's language."""
    reward = next((r.name for r in member.program.rewards if r.id == entry.reward_id), None) \
        if entry.reward_id else None
    return receipt_line(member.locale, entry.kind, entry.points, member.available_points, next_goals(member)[1],
                        reward_name=reward)


def hold_json(hold: Hold, member: Member, now: datetime, capture: LedgerEntry | None = None) -> dict:
    """A hold as the checkout endpoints answer it; `capture` is its capture entry once captured."""
    return {**hold_summary(hold, now), "member_id": hold.member_id, "reference": hold.reference,
            "created_at": hold.created_at, "finished_at": hold.finished_at, "member": member_json(member),
            "transaction": capture, "receipt": receipt(capture, member) if capture else None}


def hold_summary(hold: Hold, now: datetime) -> dict:
    return {"id": hold.id, "status": status_at(hold, now), "points": hold.points, "reward": hold.reward,
            "expires_at": hold.expires_at}
