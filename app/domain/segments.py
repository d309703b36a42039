"""Segments: a stored rule over a program's members, compiled to ONE SQL statement (no loop over members), so
a count over 100,000 members is one query and a campaign reads its members a batch at a time.

A rule is `{"match": "all" | "any", "conditions": [...]}`; each condition `{"field", "op", "value"?, "window"?}`:

| field | op | value |
| --- | --- | --- |
| tier | in, not_in | tier names; null is "no tier" |
| points_balance, lifetime_points | gte, gt, lte, lt, eq | an integer |
| purchase_count | gte, gt, lte, lt, eq | an integer; in `window` (all time without one) |
| purchase_value | gte, gt, lte, lt, eq | money ("25.00"); in `window` |
| last_purchase | in_window, not_in_window | (none) the last purchase falls in `window` / no purchase in it |
| category | bought, not_bought | category names (any of them); in `window` |
| tag | has, has_not | tags (any of them) |
| locale | in, not_in | locales |
| enrolled | in_window, not_in_window | (none) the member joined in `window` |
| apple_wallet | is | installed, removed (had it, no longer), never |
| google_wallet | is | saved, removed, never |

A purchase is an earn entry that carried money (`amount` or line items); points given without money are not.
A `window` is in the program's time zone: `{"days": N}` the last N local calendar days including today,
`{"month": "this" | "last"}` a calendar month, or `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}` local days
(both inclusive, either may be left out). Windows are read as of the instant the segment is evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, false, func, not_, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from app.domain.calendar import period_start, program_zone
from app.domain.errors import InvalidInput, NotFound
from app.domain.ledger import MAX_POINTS
from app.models import LedgerEntry, Member, MemberTag, Program, PurchaseItem, Segment, Tier, utcnow
from passes.strings import LOCALES

MAX_CONDITIONS = 20
MAX_VALUES = 50
MAX_WINDOW_DAYS = 3660
COMPARISONS = {"gte": "__ge__", "gt": "__gt__", "lte": "__le__", "lt": "__lt__", "eq": "__eq__"}
FIELDS = {
    "tier": ("in", "not_in"), "points_balance": tuple(COMPARISONS), "lifetime_points": tuple(COMPARISONS),
    "purchase_count": tuple(COMPARISONS), "purchase_value": tuple(COMPARISONS),
    "last_purchase": ("in_window", "not_in_window"), "category": ("bought", "not_bought"),
    "tag": ("has", "has_not"), "locale": ("in", "not_in"), "enrolled": ("in_window", "not_in_window"),
    "apple_wallet": ("is",), "google_wallet": ("is",),
}
WALLET_STATES = {"apple_wallet": ("installed", "removed", "never"), "google_wallet": ("saved", "removed", "never")}
_NEEDS_WINDOW = ("last_purchase", "enrolled")
_TAKES_WINDOW = ("purchase_count", "purchase_value", "last_purchase", "category", "enrolled")


# ---- validation -------------------------------------------------------------------------------------------------

def validate_rules(rules) -> dict:
    """The rule as stored (normalised), or InvalidInput naming the bad part ("rules.conditions[1].value")."""
    if not isinstance(rules, dict):
        raise InvalidInput("rules", "Must be an object with `match` and `conditions`.")
    match = rules.get("match", "all")
    if match not in ("all", "any"):
        raise InvalidInput("rules.match", "Must be all or any.")
    conditions = rules.get("conditions")
    if not isinstance(conditions, list) or not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise InvalidInput("rules.conditions", f"Must be a list of 1 to {MAX_CONDITIONS} conditions.")
    unknown = sorted(set(rules) - {"match", "conditions"})
    if unknown:
        raise InvalidInput(f"rules.{unknown[0]}", "Unknown key.")
    return {"match": match,
            "conditions": [_condition(item, f"rules.conditions[{index}]") for index, item in enumerate(conditions)]}


def _condition(item, where: str) -> dict:
    if not isinstance(item, dict):
        raise InvalidInput(where, "Must be an object with field and op.")
    field, op = item.get("field"), item.get("op")
    if field not in FIELDS:
        raise InvalidInput(f"{where}.field", f"Must be one of {', '.join(FIELDS)}.")
    if op not in FIELDS[field]:
        raise InvalidInput(f"{where}.op", f"For {field}, must be one of {', '.join(FIELDS[field])}.")
    unknown = sorted(set(item) - {"field", "op", "value", "window"})
    if unknown:
        raise InvalidInput(f"{where}.{unknown[0]}", "Unknown key.")
    out = {"field": field, "op": op}
    if field in _NEEDS_WINDOW or "window" in item and item["window"] is not None:
        if field not in _TAKES_WINDOW:
            raise InvalidInput(f"{where}.window", f"{field} takes no window.")
        out["window"] = _window(item.get("window"), f"{where}.window")
    if field not in _NEEDS_WINDOW:
        out["value"] = _value(field, item.get("value"), f"{where}.value")
    return out


def _value(field: str, value, where: str):
    if field in ("points_balance", "lifetime_points", "purchase_count"):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
            raise InvalidInput(where, f"Must be a whole number from 0 to {MAX_POINTS}.")
        return value
    if field == "purchase_value":
        try:
            amount = Decimal(str(value)) if isinstance(value, int | str) and not isinstance(value, bool) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or not 0 <= amount < Decimal(10) ** 12:
            raise InvalidInput(where, 'Must be an amount of money, such as "25.00".')
        return str(amount.quantize(Decimal("0.01")))
    if field in WALLET_STATES:
        if value not in WALLET_STATES[field]:
            raise InvalidInput(where, f"Must be one of {', '.join(WALLET_STATES[field])}.")
        return value
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_VALUES:
        raise InvalidInput(where, f"Must be a list of 1 to {MAX_VALUES} values.")
    for item in value:
        allowed_none = field == "tier" and item is None
        if not allowed_none and (not isinstance(item, str) or not 1 <= len(item) <= 60):
            raise InvalidInput(where, "Each value must be a text of 1 to 60 characters" +
                               (" (or null: no tier)." if field == "tier" else "."))
        if field == "locale" and item not in LOCALES:
            raise InvalidInput(where, f"Locales are {', '.join(LOCALES)}.")
    return list(dict.fromkeys(value))


def _window(window, where: str) -> dict:
    if not isinstance(window, dict) or len(window) == 0:
        raise InvalidInput(where, 'Must be {"days": N}, {"month": "this" | "last"} or {"from", "to"} dates.')
    if "days" in window:
        days = window["days"]
        if set(window) != {"days"} or isinstance(days, bool) or not isinstance(days, int) \
                or not 1 <= days <= MAX_WINDOW_DAYS:
            raise InvalidInput(f"{where}.days", f"Must be a whole number of days from 1 to {MAX_WINDOW_DAYS}.")
        return {"days": days}
    if "month" in window:
        if set(window) != {"month"} or window["month"] not in ("this", "last"):
            raise InvalidInput(f"{where}.month", "Must be this or last.")
        return {"month": window["month"]}
    if not set(window) <= {"from", "to"}:
        raise InvalidInput(where, "Use days, month, or from and to.")
    out = {key: _date(window[key], f"{where}.{key}") for key in ("from", "to") if window.get(key) is not None}
    if not out:
        raise InvalidInput(where, "Give from, to or both.")
    if len(out) == 2 and out["from"] > out["to"]:
        raise InvalidInput(f"{where}.to", "Must not be before from.")
    return out


def _date(value, where: str) -> str:
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) and len(value) == 10 else _bad(where)
    except ValueError:
        return _bad(where)


def _bad(where: str):
    raise InvalidInput(where, "Must be a date, YYYY-MM-DD.")


# ---- windows ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bounds:
    start: datetime | None  # inclusive
    end: datetime | None  # exclusive


def window_bounds(program: Program, window: dict | None, as_of: datetime) -> Bounds:
    """The instants a window covers, from local midnights in the program's zone."""
    if window is None:
        return Bounds(None, None)
    zone = program_zone(program)
    if "days" in window:
        today = period_start(zone, as_of, "day").date()
        return Bounds(_midnight(zone, today - timedelta(days=window["days"] - 1)), None)
    if "month" in window:
        this_month = period_start(zone, as_of, "month")
        if window["month"] == "this":
            return Bounds(this_month, None)
        return Bounds(period_start(zone, this_month - timedelta(days=1), "month"), this_month)
    start = _midnight(zone, date.fromisoformat(window["from"])) if "from" in window else None
    end = _midnight(zone, date.fromisoformat(window["to"]) + timedelta(days=1)) if "to" in window else None
    return Bounds(start, end)


def _midnight(zone, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _within(column, bounds: Bounds) -> list[ColumnElement]:
    return [*([column >= bounds.start] if bounds.start else []), *([column < bounds.end] if bounds.end else [])]


# ---- compilation ------------------------------------------------------------------------------------------------

def members_query(session: Session, program: Program, rules: dict, as_of: datetime) -> Select:
    """SELECT members.id of the program's (live) members the rule matches, as one statement."""
    compiled = [_compile(session, program, condition, as_of) for condition in rules["conditions"]]
    combined = and_(*compiled) if rules["match"] == "all" else or_(*compiled)
    return select(Member.id).where(Member.program_id == program.id, Member.deleted_at.is_(None), combined)


def _purchases(program: Program, bounds: Bounds):
    """The program's purchases in the window: money earns, not reversals."""
    return select(LedgerEntry.member_id).where(
        LedgerEntry.merchant_id == program.merchant_id, LedgerEntry.kind == "earn",
        LedgerEntry.amount.is_not(None), *_within(LedgerEntry.created_at, bounds))


def _compare(op: str, left, value):
    return getattr(left, COMPARISONS[op])(value)


def _aggregate(program: Program, op: str, value, aggregate, bounds: Bounds) -> ColumnElement:
    """count/sum per member compared to `value`, where a member without purchases has 0: a test that 0 passes
    is the negation of its opposite over the members who have some, so both are semi-joins on one grouped
    subquery (PostgreSQL hashes them), never a correlated query per member."""
    zero_passes = _compare(op, Decimal(0), value) if isinstance(value, Decimal) else _compare(op, 0, value)
    grouped = _purchases(program, bounds).group_by(LedgerEntry.member_id)
    if not zero_passes:
        return Member.id.in_(grouped.having(_compare(op, aggregate, value)))
    return Member.id.not_in(grouped.having(not_(_compare(op, aggregate, value))))


def _compile(session: Session, program: Program, condition: dict, as_of: datetime) -> ColumnElement:
    field, op, value = condition["field"], condition["op"], condition.get("value")
    bounds = window_bounds(program, condition.get("window"), as_of)
    if field == "tier":
        names = [name for name in value if name is not None]
        test = or_(Member.tier_id.in_(select(Tier.id).where(Tier.program_id == program.id, Tier.name.in_(names))),
                   Member.tier_id.is_(None) if None in value else false())
        return test if op == "in" else not_(test)
    if field in ("points_balance", "lifetime_points"):
        return _compare(op, getattr(Member, field), value)
    if field == "purchase_count":
        if (op, value) in (("gte", 1), ("gt", 0)):  # "bought at all": a plain semi-join, no grouping
            return Member.id.in_(_purchases(program, bounds))
        if (op, value) in (("eq", 0), ("lt", 1), ("lte", 0)):
            return Member.id.not_in(_purchases(program, bounds))
        return _aggregate(program, op, value, func.count(), bounds)
    if field == "purchase_value":
        return _aggregate(program, op, Decimal(value), func.coalesce(func.sum(LedgerEntry.amount), 0), bounds)
    if field == "last_purchase":
        bought = Member.id.in_(_purchases(program, bounds))
        return bought if op == "in_window" else not_(bought)
    if field == "category":
        bought = Member.id.in_(select(PurchaseItem.member_id).where(
            PurchaseItem.category.in_(value), *_within(PurchaseItem.created_at, bounds)))
        return bought if op == "bought" else not_(bought)
    if field == "tag":
        tagged = Member.id.in_(select(MemberTag.member_id).where(MemberTag.tag.in_(value)))
        return tagged if op == "has" else not_(tagged)
    if field == "locale":
        return Member.locale.in_(value) if op == "in" else Member.locale.not_in(value)
    if field == "enrolled":
        joined = and_(true(), *_within(Member.created_at, bounds))
        return joined if op == "in_window" else not_(joined)
    return _wallet(field, value)


def _wallet(field: str, state: str) -> ColumnElement:
    if field == "apple_wallet":
        has, ever = Member.apple_devices > 0, Member.apple_ever_installed.is_(True)
    else:
        has, ever = Member.google_saved.is_(True), Member.google_ever_saved.is_(True)
    if state in ("installed", "saved"):
        return has
    return and_(not_(has), ever if state == "removed" else not_(ever))


# ---- stored segments --------------------------------------------------------------------------------------------

def create_segment(session: Session, program: Program, name: str, rules) -> Segment:
    segment = Segment(merchant_id=program.merchant_id, program_id=program.id, name=name,
                      rules=validate_rules(rules))
    session.add(segment)
    session.flush()
    return segment


def update_segment(session: Session, segment: Segment, data: dict) -> Segment:
    if "name" in data:
        segment.name = data["name"]
    if "rules" in data:
        segment.rules = validate_rules(data["rules"])
    segment.updated_at = utcnow()
    session.flush()
    return segment


def delete_segment(session: Session, segment: Segment) -> None:
    """Kept for the campaigns and surprises that name it; never listed or usable again."""
    segment.deleted_at = utcnow()


def program_segment(session: Session, program: Program, segment_id: int) -> Segment:
    """The segment a campaign or surprise body names: one of this program's, else 422 on `segment_id` (a body's
    reference is bad input; only the path's object answers 404)."""
    segment = session.get(Segment, segment_id)
    if segment is None or segment.program_id != program.id or segment.deleted_at is not None:
        raise InvalidInput("segment_id", "No segment of this program has that id.")
    return segment


def get_segment(session: Session, merchant_id: int, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None or segment.merchant_id != merchant_id or segment.deleted_at is not None:
        raise NotFound(f"No segment {segment_id}.")
    return segment


def program_segments(session: Session, program: Program) -> list[Segment]:
    return list(session.scalars(select(Segment).where(Segment.program_id == program.id,
                                                      Segment.deleted_at.is_(None)).order_by(Segment.id)))


def segment_query(session: Session, segment: Segment, as_of: datetime) -> Select:
    return members_query(session, session.get(Program, segment.program_id), segment.rules, as_of)


def count_members(session: Session, segment: Segment, as_of: datetime) -> int:
    return session.scalar(select(func.count()).select_from(segment_query(session, segment, as_of).subquery()))


def member_ids(session: Session, segment: Segment, as_of: datetime) -> list[int]:
    """Every matching id, ascending (a surprise draws from them)."""
    return list(session.scalars(segment_query(session, segment, as_of).order_by(Member.id)))
