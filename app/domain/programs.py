"""Programs, their tiers, rewards and images."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.earnrules import promotion_label
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.passupdates import design_changed
from app.domain.referrals import referral_settings
from app.domain.tiers import replace_tiers, rules_changed
from app.models import Program, ProgramImage, Reward, utcnow

BRANDING_FIELDS = ("background_color", "foreground_color", "label_color", "logo_text")
# The public slug in /join/<slug>: lowercase ASCII letters and digits, single hyphens between them, 3 to 60 long.
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z"
SLUG_LENGTH = (3, 60)
SLUG_RULE = "3 to 60 lowercase letters, digits and single hyphens, starting and ending with a letter or digit."
PROGRAM_FIELDS = ("name", "currency", "points_per_unit", "rounding", "barcode_format", "locales", "terms",
                  "program_info", "timezone", "pending_days", "type", "stamps_required", "stamp_reward")
ENGINE_NULLABLE = ("stamps_expire_days",)  # may be set back to null


def create_program(session: Session, merchant_id: int, data: dict) -> Program:
    program = Program(merchant_id=merchant_id)
    _apply(program, data)
    program.slug = _free_slug(session, data.get("slug"), program.name)
    session.add(program)
    _flush_checking_slug(session, program.slug)
    replace_tiers(session, program, data.get("tiers", []))
    return program


def update_program(session: Session, program: Program, data: dict) -> Program:
    """Changes to what the card shows bump `design_version` so every member's card gets re-issued. The program's
    row is locked first: concurrent changes apply one after the other, each to what the one before left."""
    program = lock_program(session, program)
    _apply(program, data)
    if data.get("slug") and data["slug"] != program.slug:
        program.slug = _free_slug(session, data["slug"], program.name)
        _flush_checking_slug(session, program.slug)
    if "tiers" in data:
        replace_tiers(session, program, data["tiers"])
    if data.get("tier_rules"):
        rules_changed(session, program)
    design_changed(session, program)
    session.flush()
    return program


def lock_program(session: Session, program: Program) -> Program:
    """SELECT ... FOR UPDATE on PostgreSQL (SQLite serialises writers with BEGIN IMMEDIATE), then read its tiers
    again: another transaction may have replaced them while this one waited."""
    program = session.get(Program, program.id, with_for_update=True, populate_existing=True)
    session.expire(program, ["tiers"])
    return program


def get_program(session: Session, merchant_id: int, program_id: int) -> Program:
    """Another merchant's program is simply not found: never 403, never their data."""
    program = session.get(Program, program_id)
    if program is None or program.merchant_id != merchant_id:
        raise NotFound(f"No program {program_id}.")
    return program


def add_reward(session: Session, program: Program, name: str, points_cost: int) -> Reward:
    reward = Reward(name=name, points_cost=points_cost)
    program.rewards.append(reward)
    design_changed(session, program)  # cards show the next reward to aim for
    session.flush()
    return reward


def find_by_slug(session: Session, slug: str) -> Program | None:
    return session.scalar(select(Program).where(Program.slug == slug.lower()))


def slug_from_name(name: str) -> str:
    """"Café Bleu" -> "cafe-bleu": accents dropped, anything else between words becomes one hyphen. A name with no
    Latin letters (カフェ) gives "program"; `_free_slug` then adds a random suffix."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:48].strip("-")
    return slug if len(slug) >= 3 else "program"


def _free_slug(session: Session, chosen: str | None, name: str) -> str:
    """The slug asked for (409 when another program has it), or one made from the name, with a short random
    suffix when that is taken. The unique constraint settles two programs created at the same moment."""
    if chosen:
        if not (SLUG_LENGTH[0] <= len(chosen) <= SLUG_LENGTH[1]) or not re.match(SLUG_PATTERN, chosen):
            raise InvalidInput("slug", SLUG_RULE)
        if find_by_slug(session, chosen) is not None:
            raise Conflict(f"The slug {chosen!r} is taken by another program.")
        return chosen
    slug = slug_from_name(name)
    while find_by_slug(session, slug) is not None:
        slug = f"{slug_from_name(name)}-{secrets.token_hex(3)}"
    return slug


def _flush_checking_slug(session: Session, slug: str) -> None:
    """Another program took the same slug between the check and now: its unique constraint says so."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"The slug {slug!r} is taken by another program.") from None


def get_reward(session: Session, program_id: int, reward_id: int, field: str = "reward_id") -> Reward:
    reward = session.get(Reward, reward_id)
    if reward is None or reward.program_id != program_id or not reward.active:
        raise InvalidInput(field, f"No active reward {reward_id} in this program.")
    return reward


def set_program_images(session: Session, program: Program, kind: str, files: dict[str, bytes]) -> None:
    """Replace one kind of image (`logo`, `icon`, `strip`) with its already-resized @1x/@2x/@3x files. Under the
    program's row lock: two uploads at once would both delete, then both insert the same file names."""
    program = lock_program(session, program)
    session.execute(delete(ProgramImage).where(ProgramImage.program_id == program.id, ProgramImage.kind == kind))
    session.add_all(ProgramImage(program_id=program.id, kind=kind, filename=name, data=data)
                    for name, data in files.items())
    design_changed(session, program)
    session.flush()


def program_images(session: Session, program_id: int) -> dict[str, bytes]:
    rows = session.execute(select(ProgramImage.filename, ProgramImage.data)
                           .where(ProgramImage.program_id == program_id)).all()
    return {name: data for name, data in rows}


def _apply(program: Program, data: dict) -> None:
    for name in PROGRAM_FIELDS:
        if name in data and data[name] is not None:
            setattr(program, name, data[name])
    _apply_engine_rules(program, data)
    for name, value in (data.get("branding") or {}).items():
        if name in BRANDING_FIELDS:
            setattr(program, name, value)
    if program.type == "stamps" and not program.stamps_required:
        raise InvalidInput("stamps_required", "A stamps program needs the number of stamps that fill a card.")
    if any(m["stamps"] >= (program.stamps_required or 0) for m in program.stamp_milestones or ()):
        raise InvalidInput("stamp_milestones", "Milestones come before a full card (fewer than stamps_required).")
    if program.points_per_unit is not None and Decimal(program.points_per_unit) < 0:
        raise InvalidInput("points_per_unit", "Must not be negative.")



def _apply_engine_rules(program: Program, data: dict) -> None:
    """Expiry, earn rules, promotions, bonus actions and tier rules, as given (each replaces the one before).
    Decimals are kept as strings and instants as ISO 8601 with their offset (UTC when none was given)."""
    if data.get("expiry"):
        expiry = data["expiry"]
        program.expiry_policy, program.expiry_days = expiry["policy"], expiry.get("days")
        program.expiry_warn_days = expiry.get("warn_days", program.expiry_warn_days or 14)
    if data.get("earn_rules") is not None:
        rules = data["earn_rules"]
        program.earn_rules = {
            "minimum_spend": _text(rules.get("minimum_spend")),
            "category_multipliers": {name: _text(value) for name, value in
                                     (rules.get("category_multipliers") or {}).items()},
            "excluded_categories": list(rules.get("excluded_categories") or [])}
    if data.get("promotions") is not None:
        program.promotions = [_promotion(n, promotion) for n, promotion in enumerate(data["promotions"])]
        program.shown_promotion = promotion_label(program, utcnow())
    if data.get("bonus_actions") is not None:
        program.bonus_actions = {kind: {"points": action["points"], "cap": action.get("cap"),
                                        "per": action.get("per", "ever")}
                                 for kind, action in data["bonus_actions"].items() if action}
    if "referrals" in data:
        program.referral_settings = referral_settings(data["referrals"])
    for name in ENGINE_NULLABLE:
        if name in data:
            setattr(program, name, data[name])
    if data.get("stamp_milestones") is not None:
        program.stamp_milestones = sorted(({"stamps": m["stamps"], "reward": m["reward"]}
                                           for m in data["stamp_milestones"]), key=lambda m: m["stamps"])
    for name, value in (data.get("tier_rules") or {}).items():
        setattr(program, {"basis": "tier_basis", "window_months": "tier_window_months",
                          "grace_days": "tier_grace_days"}[name], value)


def _promotion(n: int, promotion: dict) -> dict:
    starts, ends = (_instant(promotion.get(name)) for name in ("starts_at", "ends_at"))
    if starts and ends and ends <= starts:
        raise InvalidInput(f"promotions.{n}.ends_at", "Must be after starts_at.")
    return {"name": promotion["name"], "multiplier": _text(promotion["multiplier"]),
            "starts_at": starts.isoformat() if starts else None, "ends_at": ends.isoformat() if ends else None,
            "days_of_week": list(promotion.get("days_of_week") or []) or None}


def _instant(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value).normalize(), "f")
