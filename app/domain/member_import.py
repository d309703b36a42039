"""Members in bulk: CSV rows checked one by one, then created a batch at a time, and read back out for export.

An import is idempotent on `external_id`: a row whose external id the program already has is skipped, so
re-running a file after a crash neither duplicates members nor doubles balances (each batch commits its members
together with their opening balances). A row without an external id cannot be recognised again and is created
each time. Opening balances are `adjust` ledger entries with the reason "import"; they are not earned points,
so they do not count towards tiers (a `tier_override` column sets a tier by hand).

Speed: a batch is a handful of statements whatever its size: its ids reserved, one executemany INSERT of the
members that skips the external ids already there (ON CONFLICT DO NOTHING: the unique index answers, never a
scan whose plan depends on how fresh the table's statistics are), one INSERT of their ledger entries. New cards have no
device yet, so nothing is pushed; the batch shares one update tag."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.domain.calendar import add_months, program_zone
from app.domain.errors import InvalidInput
from app.domain.ledger import MAX_POINTS
from app.domain.lots import expiry_for
from app.domain.members import PHONE_PATTERN, new_member_tokens
from app.domain.passupdates import next_update_tag
from app.domain.tiers import tier_for
from app.models import LedgerEntry, Member, Program, Tier
from passes.strings import FALLBACK_LOCALE, LOCALES

COLUMNS = ("external_id", "name", "email", "phone", "locale", "points", "tier_override")
EXPORT_COLUMNS = (*COLUMNS, "id", "points_balance", "tier", "serial_number", "created_at")
IMPORT_REASON = "import"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_LIMITS = {"external_id": 120, "name": 200, "email": 254}


class BadLine(NamedTuple):
    line: int
    reason: str


@dataclass
class NewMember:
    """One checked CSV row."""
    line: int
    name: str
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    locale: str = FALLBACK_LOCALE
    points: int = 0
    tier_override: Tier | None = None


@dataclass
class ImportResult:
    created: int = 0
    skipped: int = 0  # external ids the program already had
    bad: list[BadLine] = field(default_factory=list)

    def add(self, other: "ImportResult") -> None:
        self.created, self.skipped = self.created + other.created, self.skipped + other.skipped
        self.bad.extend(other.bad)


def check_header(header: list[str] | None) -> None:
    """The first row names the columns: `name` is required, any order, unknown columns refused (a typo would
    otherwise drop a column silently)."""
    names = [name.strip() for name in header or []]
    unknown = [name for name in names if name not in COLUMNS]
    if "name" not in names or unknown:
        raise InvalidInput("header", f"The first line must name the columns, among {','.join(COLUMNS)} (name is "
                                     f"required){'; unknown: ' + ', '.join(unknown) if unknown else ''}.")


def parse_row(program: Program, line: int, row: dict[str, str | None]) -> NewMember:
    """A CSV row (column -> text) as a NewMember; InvalidInput names the column that is wrong."""
    values = {name: (row.get(name) or "").strip() for name in COLUMNS}
    if None in row:  # csv.DictReader puts the cells beyond the header under None
        raise InvalidInput("line", "More cells than the header has columns.")
    for name, limit in _LIMITS.items():
        if len(values[name]) > limit:
            raise InvalidInput(name, f"At most {limit} characters.")
    if not values["name"]:
        raise InvalidInput("name", "Required.")
    member = NewMember(line=line, name=values["name"], external_id=values["external_id"] or None,
                       email=values["email"].lower() or None, locale=_locale(program, values["locale"]),
                       points=_points(values["points"]), tier_override=_tier(program, values["tier_override"]))
    if member.email and not _EMAIL.fullmatch(member.email):
        raise InvalidInput("email", "Not an email address.")
    if values["phone"]:
        if re.fullmatch(PHONE_PATTERN, values["phone"]) is None:
            raise InvalidInput("phone", "Must be an international number with its country code, such as +81 90 "
                                        "1234 5678.")
        member.phone = "+" + "".join(char for char in values["phone"] if char.isdigit())
    return member


def import_members(session: Session, program: Program, rows: list[NewMember], now: datetime) -> ImportResult:
    """Create the rows' members and opening balances (the caller commits). Rows whose external id the program
    has are skipped (the unique index decides, so a parallel import of the same file skips them too); a second
    row with an external id already in this batch is a bad line."""
    result, fresh, seen = ImportResult(), [], {}
    for row in rows:
        if row.external_id in seen:
            first = seen[row.external_id]
            result.bad.append(BadLine(row.line, f"external_id: {row.external_id!r} repeats line {first}."))
            continue
        if row.external_id:
            seen[row.external_id] = row.line
        fresh.append(row)
    if not fresh:
        return result
    tag, seen_tag = next_update_tag(session, Program, program.id)
    reached = tier_for(program, 0)  # opening balances are not earned points
    ids = _reserve_member_ids(session, len(fresh))
    expires = expiry_for(program, now)  # each opening balance is a lot, expiring by the program's policy
    values = [{**_member_values(program, member_id, row, row.tier_override or reached, tag, seen_tag, now),
               **_engine_values(program, row, reached, expires, now)}
              for member_id, row in zip(ids, fresh, strict=True)]
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = session.execute(dialect_insert(Member.__table__).on_conflict_do_nothing(
        index_elements=["program_id", "external_id"]), values).rowcount
    if inserted < len(fresh):  # some external ids were there already: which rows went in?
        present = set(session.scalars(select(Member.id).where(Member.id.in_(ids))))
        fresh, ids = [row for row, member_id in zip(fresh, ids, strict=True) if member_id in present], \
            [member_id for member_id in ids if member_id in present]
    opening = [{"member_id": member_id, "merchant_id": program.merchant_id, "kind": "adjust", "points": row.points,
                "balance_after": row.points, "reason": IMPORT_REASON, "shortfall": 0, "created_at": now,
                "rule": IMPORT_REASON, "lot_remaining": row.points, "expires_at": expires}
               for member_id, row in zip(ids, fresh, strict=True) if row.points]
    if opening:
        session.execute(insert(LedgerEntry), opening)
    result.created, result.skipped = len(fresh), len(rows) - len(fresh) - len(result.bad)
    return result


def export_rows(session: Session, program: Program, batch: int = 1000) -> Iterator[dict]:
    """Every live member of the program as EXPORT_COLUMNS, in id order, read `batch` rows at a time (a server-side
    cursor on PostgreSQL): memory stays flat whatever the program's size. `points` is the balance, so the file
    imports into another program as opening balances."""
    tier_names = {tier.id: tier.name for tier in program.tiers}
    statement = (select(Member.id, Member.external_id, Member.name, Member.email, Member.phone, Member.locale,
                        Member.points_balance, Member.tier_id, Member.tier_override_id, Member.serial_number,
                        Member.created_at)
                 .where(Member.program_id == program.id, Member.deleted_at.is_(None)).order_by(Member.id)
                 .execution_options(yield_per=batch))
    for row in session.execute(statement):
        yield {"external_id": row.external_id or "", "name": row.name, "email": row.email or "",
               "phone": row.phone or "", "locale": row.locale, "points": row.points_balance,
               "tier_override": tier_names.get(row.tier_override_id, ""), "id": row.id,
               "points_balance": row.points_balance, "tier": tier_names.get(row.tier_id, ""),
               "serial_number": row.serial_number, "created_at": row.created_at.isoformat()}


def _reserve_member_ids(session: Session, count: int) -> list[int]:
    """Ids for a batch of new members, taken before the INSERT: a multi-row INSERT with RETURNING costs the
    driver more than the database's work (psycopg parses every placeholder of the statement), a plain
    executemany does not. PostgreSQL: the next values of the id sequence. SQLite: the transaction holds the
    write lock from BEGIN IMMEDIATE, so the ids after the highest are free."""
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(text("SELECT nextval(pg_get_serial_sequence('members', 'id')) "
                                         "FROM generate_series(1, :count)"), {"count": count}))
    first = session.scalar(select(func.coalesce(func.max(Member.id), 0))) + 1
    return list(range(first, first + count))


def _member_values(program: Program, member_id: int, row: NewMember, tier: Tier | None, tag: int,
                   seen_tag: int, now: datetime) -> dict:
    """The members row of a new member: version 1 of their card, their opening balance already on it."""
    return {"id": member_id, "program_id": program.id, "merchant_id": program.merchant_id, "name": row.name,
            "email": row.email, "phone": row.phone, "external_id": row.external_id, "locale": row.locale,
            "referred_by_id": None, "points_balance": row.points, "held_points": 0, "lifetime_points": 0,
            "tier_id": tier.id if tier else None, "tier_override_id": row.tier_override.id if row.tier_override
            else None, "pass_version": 1, "pass_update_tag": tag, "pass_update_seen": seen_tag,
            "pass_updated_at": now, "pass_previous_updated_at": None, "personalized_at": None, "deleted_at": None,
            "created_at": now, **new_member_tokens()}


def _engine_values(program: Program, row: NewMember, reached: Tier | None, expires: datetime | None,
                   now: datetime) -> dict:
    """The loyalty engine's columns of a new member: the tier a total of 0 reaches, reviewed a window later (an
    override from the file has no end), and the opening lot's expiry."""
    return {"earned_tier_id": reached.id if reached else None,
            "tier_review_at": add_months(program_zone(program), now, program.tier_window_months) if reached else None,
            "tier_since": now if reached else None,
            "next_expiry_at": expires if row.points else None, "next_expiry_points": row.points if expires else 0}


def _locale(program: Program, text: str) -> str:
    if not text:
        return program.locales[0] if program.locales else FALLBACK_LOCALE
    locale = text.split("-")[0].lower()
    if locale not in LOCALES:
        raise InvalidInput("locale", f"Supported locales are {', '.join(LOCALES)}.")
    return locale


def _points(text: str) -> int:
    if not text:
        return 0
    if not re.fullmatch(r"[0-9]{1,8}", text) or int(text) > MAX_POINTS:
        raise InvalidInput("points", f"Must be a whole number from 0 to {MAX_POINTS}.")
    return int(text)


def _tier(program: Program, name: str) -> Tier | None:
    if not name:
        return None
    tier = next((tier for tier in program.tiers if tier.name == name), None)
    if tier is None:
        raise InvalidInput("tier_override", f"No tier {name!r} in this program "
                                            f"({', '.join(t.name for t in program.tiers) or 'it has none'}).")
    return tier
