"""How money becomes points, and why: the program's rate and rounding, a minimum spend, per-category multipliers
and excluded categories on line items, the member's tier multiplier and the best promotion running now. The
result lists every rule that applied, in the order applied; the ledger entry keeps their summary (`rule`).

Pure functions of the program, the tier and the instant: no database, no clock of their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from app.domain.calendar import program_zone
from app.models import Program, Tier

ROUNDING = {"down": ROUND_DOWN, "nearest": ROUND_HALF_UP, "up": ROUND_UP}  # a program's money-to-points rule
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class Earned:
    points: int
    amount: Decimal  # the money spent, every line item included
    rules: list[dict] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """What the ledger entry records as its `rule` (at most 200 characters)."""
        return "; ".join(rule["detail"] for rule in self.rules)[:200]


def _rule(kind: str, detail: str, multiplier: Decimal | None = None) -> dict:
    return {"rule": kind, "detail": detail, "multiplier": plain(multiplier) if multiplier is not None else None}


def plain(value: Decimal) -> str:
    """2, 1.5, 100: no exponent, no trailing zeros."""
    return format(Decimal(value).normalize(), "f")


def points_for_purchase(program: Program, tier: Tier | None, now: datetime, *, amount: Decimal | None = None,
                        items: list[dict] | None = None) -> Earned:
    """Points for a purchase given as a total `amount` or as line `items` ({sku?, category?, amount, quantity?}:
    `amount` is the unit price)."""
    rate = Decimal(program.points_per_unit)
    rules = [_rule("base_rate", f"{plain(rate)} points per {program.currency}")]
    if items is None:
        spent, raw = Decimal(amount), Decimal(amount) * rate
    else:
        spent, raw = _items(program, items, rate, rules)
    minimum = (program.earn_rules or {}).get("minimum_spend")
    if minimum is not None and spent < Decimal(minimum):
        rules.append(_rule("minimum_spend", f"below the minimum spend of {minimum} {program.currency}: no points"))
        return Earned(0, spent, rules)
    if tier is not None and Decimal(tier.multiplier) != 1:
        raw *= Decimal(tier.multiplier)
        rules.append(_rule("tier_multiplier", f"{tier.name} tier x{plain(tier.multiplier)}",
                           Decimal(tier.multiplier)))
    promotion = best_promotion(program, now)
    if promotion is not None:
        multiplier = Decimal(promotion["multiplier"])
        raw *= multiplier
        rules.append(_rule("promotion", f"{promotion['name']} x{plain(multiplier)}", multiplier))
    points = int(raw.quantize(Decimal(1), ROUNDING[program.rounding]))
    rules.append(_rule("rounding", f"{plain(raw)} rounded {program.rounding} to {points}"))
    return Earned(points, spent, rules)


def _items(program: Program, items: list[dict], rate: Decimal, rules: list[dict]) -> tuple[Decimal, Decimal]:
    """(money spent, unrounded points) of line items under the category rules."""
    settings = program.earn_rules or {}
    multipliers = {name: Decimal(value) for name, value in (settings.get("category_multipliers") or {}).items()}
    excluded = set(settings.get("excluded_categories") or ())
    spent = raw = Decimal(0)
    for item in items:
        money = Decimal(item["amount"]) * item.get("quantity", 1)
        spent += money
        category = item.get("category")
        if category in excluded:
            rules.append(_rule("excluded_category", f"{category} earns no points ({item.get('sku') or 'item'})"))
            continue
        multiplier = multipliers.get(category, Decimal(1))
        if multiplier != 1:
            rules.append(_rule("category_multiplier", f"{category} x{plain(multiplier)}",
                               multiplier))
        raw += money * rate * multiplier
    return spent, raw


def best_promotion(program: Program, now: datetime) -> dict | None:
    """The running promotion with the highest multiplier (promotions do not stack), or None."""
    running = [promotion for promotion in program.promotions or () if promotion_runs(program, promotion, now)]
    return max(running, key=lambda promotion: Decimal(promotion["multiplier"])) if running else None


def promotion_runs(program: Program, promotion: dict, now: datetime) -> bool:
    """Within its window (`starts_at` inclusive, `ends_at` exclusive, either optional) and on one of its
    `days_of_week` (every day when absent), on the program's calendar."""
    if promotion.get("starts_at") and now < datetime.fromisoformat(promotion["starts_at"]):
        return False
    if promotion.get("ends_at") and now >= datetime.fromisoformat(promotion["ends_at"]):
        return False
    days = promotion.get("days_of_week")
    return not days or WEEKDAYS[now.astimezone(program_zone(program)).weekday()] in days


def promotion_label(program: Program, now: datetime) -> str | None:
    """What the cards show while a promotion runs ("Double weekend x2"), or None."""
    promotion = best_promotion(program, now)
    return f"{promotion['name']} x{plain(promotion['multiplier'])}" if promotion else None
