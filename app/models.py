"""Tables. Balances are derived from `ledger_entries`; `members.points_balance` is a cache updated in the same
transaction and checked against the ledger by `punchpass ledger verify`."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.expression import false

from app.db import Base
from passes.strings import FALLBACK_LOCALE, LOCALES

MAX_FCM_TOKEN_LENGTH = 1024  # fcm_devices.token; FCM registration tokens are about 160 to 250 characters
MAX_PUSH_TOKEN_LENGTH = 200  # device_registrations.push_token; app/domain/devices.py checks tokens against it
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes everywhere. PostgreSQL keeps the zone; SQLite has none, so values are converted to
    UTC before they are stored and marked as UTC when they are read back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """Only the SHA-256 of the key is stored; keys are 256-bit random, so a slow hash buys nothing."""
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    store: Mapped[str | None] = mapped_column(String(120), nullable=True)  # which shop's till holds it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class User(Base):
    """A dashboard login. Only the argon2 hash of the password is kept. `session_generation` is copied into every
    session cookie at sign-in; "sign out everywhere" (or a password change) increments it, and a cookie carrying
    an older number no longer signs anyone in. `failed_sign_ins` and `locked_until` lock the account for a while
    after too many wrong passwords, whichever address they come from."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lowercased: one login, whatever the case
    role: Mapped[str] = mapped_column(String(16))  # owner | staff
    password_hash: Mapped[str] = mapped_column(String(200))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)  # a one-time password was issued
    session_generation: Mapped[int] = mapped_column(Integer, default=1)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PairingCode(Base):
    """A short-lived, single-use code an admin hands a till: entered (or scanned) on /checkout it creates a POS key
    for that till and signs it in, so nobody types a 50-character key. Only the code's SHA-256 is stored."""
    __tablename__ = "pairing_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    store: Mapped[str | None] = mapped_column(String(120), nullable=True)  # the POS key it makes gets this store
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)  # made when used
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MemberLink(Base):
    """A magic link mailed to a member who lost their card: single use, short-lived, only its SHA-256 stored."""
    __tablename__ = "member_links"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Program(Base):
    __tablename__ = "programs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # The public name in `/join/<slug>` (app/domain/slugs.py): lowercase letters, digits and hyphens, unique.
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    points_per_unit: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=Decimal(1))
    rounding: Mapped[str] = mapped_column(String(8), default="down")
    background_color: Mapped[str] = mapped_column(String(7), default="#1F2937")
    foreground_color: Mapped[str] = mapped_column(String(7), default="#FFFFFF")
    label_color: Mapped[str] = mapped_column(String(7), default="#FBBF24")
    logo_text: Mapped[str | None] = mapped_column(String(60), nullable=True)
    barcode_format: Mapped[str] = mapped_column(String(8), default="qr")
    locales: Mapped[list] = mapped_column(JSON, default=lambda: list(LOCALES))
    terms: Mapped[str | None] = mapped_column(Text, nullable=True)
    program_info: Mapped[str | None] = mapped_column(Text, nullable=True)
    # IANA zone: month and year ends, days of the week and "this month" are the program's (app/domain/calendar.py)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    type: Mapped[str] = mapped_column(String(8), default="points")  # "points" or "stamps"
    stamps_required: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a full stamp card
    stamp_reward: Mapped[str | None] = mapped_column(String(120), nullable=True)  # what a full card's voucher gives
    stamp_milestones: Mapped[list] = mapped_column(JSON, default=list)  # [{"stamps", "reward"}] before a full card
    stamps_expire_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # after the last stamp
    # When earned points expire (app/domain/expiry.py): never, rolling_days, end_of_month, end_of_year; `days`
    # is the rolling period, or for month/year ends how far after the earn the period ends.
    expiry_policy: Mapped[str] = mapped_column(String(16), default="never")
    expiry_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expiry_warn_days: Mapped[int] = mapped_column(Integer, default=14)  # "points expiring" this many days ahead
    pending_days: Mapped[int] = mapped_column(Integer, default=0)  # earned points spendable after (returns window)
    # Money-to-points rules (app/domain/earnrules.py): minimum_spend, category_multipliers, excluded_categories
    earn_rules: Mapped[dict] = mapped_column(JSON, default=dict)
    promotions: Mapped[list] = mapped_column(JSON, default=list)  # [{name, multiplier, starts_at?, ends_at?, days?}]
    # The promotion the cards show ("Double weekend x2"): set when one starts or ends (a design change, so every
    # card updates), not read from the clock while building a card.
    shown_promotion: Mapped[str | None] = mapped_column(String(80), nullable=True)
    bonus_actions: Mapped[dict] = mapped_column(JSON, default=dict)  # kind -> {"points", "cap"}
    # Referral rewards (app/domain/referrals.py): trigger, points for both sides, tiered incentives, caps; {}: off
    referral_settings: Mapped[dict] = mapped_column(JSON, default=dict)
    # A running survey is offered after N purchases (app/domain/surveys.py): only then does an earn look for it
    purchase_surveys: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the program's challenges run (app/domain/challenges.py): from the earliest start to the latest end
    # (None: open-ended) of those not retired; `challenges_from` None: no challenge. Outside, an earn sends no
    # challenge query at all. Written whenever a challenge is saved.
    challenges_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    challenges_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Which challenges the cards show as running (a digest of their ids): the `show_challenges` job re-issues the
    # cards when a challenge starts or ends by the clock.
    challenges_shown: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Tiers qualify on points earned (or money spent) within the last `tier_window_months`; a member falling
    # short keeps the tier until the review date plus `tier_grace_days` (app/domain/tiers.py).
    tier_basis: Mapped[str] = mapped_column(String(8), default="points")
    tier_window_months: Mapped[int] = mapped_column(Integer, default=12)
    tier_grace_days: Mapped[int] = mapped_column(Integer, default=30)
    design_version: Mapped[int] = mapped_column(Integer, default=1)
    # A design change is one row update here, not a rewrite of every member: a card's update tag and
    # Last-Modified are the later of its own and its program's.
    design_update_tag: Mapped[int] = mapped_column(BigInteger, default=0)
    # Every tag up to this had finished when the design changed (passupdates.unchanged_since).
    design_update_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    design_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    design_previous_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Where the card surfaces on the lock screen (app/domain/relevance.py): [{name, latitude, longitude,
    # relevant_text: {locale: text}}] and [{proximity_uuid, major?, minor?, relevant_text}], at most 10 each.
    locations: Mapped[list] = mapped_column(JSON, default=list)
    beacons: Mapped[list] = mapped_column(JSON, default=list)
    # The program has active offer templates: an earn then re-chooses the member's offer (app/domain/offers.py);
    # read from the row the earn already locked, so programs without offers pay no extra statement.
    offers_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A new random value at every edit of the program, its tiers or rewards (`_new_config_versions`, at flush):
    # the per-process cache of program configuration is keyed by it (app/domain/program_config.py). Random, not
    # +1: a version written by a transaction that rolled back is never reused for other content.
    config_version: Mapped[int] = mapped_column(BigInteger, default=lambda: new_config_version(), server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    tiers: Mapped[list["Tier"]] = relationship(order_by="Tier.threshold", cascade="all, delete-orphan")
    rewards: Mapped[list["Reward"]] = relationship(order_by="Reward.points_cost", cascade="all, delete-orphan")


def new_config_version() -> int:
    return secrets.randbits(62)


@event.listens_for(Session, "before_flush")
def _new_config_versions(session: Session, _context, _instances) -> None:
    """Every flush that changes a program, one of its tiers or rewards gives the program a new config_version,
    so every process's cached configuration of it is stale from that commit on."""
    changed = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, Program) and row not in session.new and row not in session.deleted \
                and session.is_modified(row):
            changed.add(row)
        elif isinstance(row, (Tier, Reward)) and row.program_id is not None:
            program = session.get(Program, row.program_id)  # a tier added to `program.tiers` has no id yet: the
            if program is not None and program not in session.deleted:  # program is then modified itself
                changed.add(program)
    for program in changed:
        program.config_version = new_config_version()


class ProgramImage(Base):
    """Resized PNGs ready for the pass (`icon.png`, `icon@2x.png`, ...), made once at upload."""
    __tablename__ = "program_images"
    __table_args__ = (UniqueConstraint("program_id", "filename"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Tier(Base):
    """A member qualifies on lifetime points earned, not on the spendable balance (as Square Loyalty and Open
    Loyalty do: spending must never cost a member their status)."""
    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("program_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    threshold: Mapped[int] = mapped_column(Integer)
    multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal(1))  # on points earned by money
    perks: Mapped[str | None] = mapped_column(Text, nullable=True)  # shown on the card and the member


class Reward(Base):
    __tablename__ = "rewards"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    points_cost: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Retired (DELETE): kept for the ledger entries that name it, never redeemable or shown again.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Member(Base):
    """Tokens are random and never change: the serial and the Apple token must stay stable across updates.

    On PostgreSQL the table keeps 15 % of each page free (fillfactor 85, migration 0027): an earn's UPDATE then
    finds room beside the old row and writes no index (a HOT update), as none of the columns it changes is indexed."""
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("program_id", "external_id"),
                      Index("ix_members_merchant_email", "merchant_id", "email"),
                      Index("ix_members_merchant_phone", "merchant_id", "phone"),
                      Index("ix_members_merchant_created", "merchant_id", "created_at"))  # dashboard charts
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)  # E.164 when given, for the counter's search
    external_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    locale: Mapped[str] = mapped_column(String(8), default=FALLBACK_LOCALE)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    points_balance: Mapped[int] = mapped_column(Integer, default=0)
    held_points: Mapped[int] = mapped_column(Integer, default=0)
    lifetime_points: Mapped[int] = mapped_column(Integer, default=0)
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"), nullable=True)
    # A tier set by hand (an import's `tier_override`), not reached by points.
    tier_override_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"), nullable=True)
    tier_override_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # None: no end
    # The tier the member's points reached and hold until `tier_review_at` (`tier_id` is the tier shown: the
    # override while it lasts, else the higher of this and a paid membership's).
    earned_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"), nullable=True)
    tier_review_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When the earned tier was reached: reviews fall on its anniversaries (a window apart), so one reached on
    # 31 Jan is reviewed on the last day of shorter months without drifting to the 28th for good.
    tier_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The paid membership in force (app/domain/memberships.py): its tier and when it lapses.
    membership_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"), nullable=True)
    membership_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Points earned (or money spent) in the tier window as of the last earn or review: an upper bound between
    # them (old earns leave the window), so an earn queries the exact figure only when it may reach a tier.
    qualifying_total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    pending_points: Mapped[int] = mapped_column(Integer, default=0)  # earned, not yet spendable (pending lots)
    stamps: Mapped[int] = mapped_column(Integer, default=0)  # on the current stamp card (app/domain/stamps.py)
    last_stamp_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The soonest-expiring open lots, kept with the lots so the card and the member need no extra query.
    next_expiry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_expiry_points: Mapped[int] = mapped_column(Integer, default=0)
    expiry_warned_through: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # lots up to it
    serial_number: Mapped[str] = mapped_column(String(64), unique=True)
    auth_token: Mapped[str] = mapped_column(String(64))
    barcode_token: Mapped[str] = mapped_column(String(64), unique=True)
    download_token: Mapped[str] = mapped_column(String(64), unique=True)
    pass_version: Mapped[int] = mapped_column(Integer, default=1)
    # Not indexed: the serials query reaches members through the device's registrations, and an index on a
    # column every earn changes would make each of its UPDATEs write every index of the table (no HOT update).
    pass_update_tag: Mapped[int] = mapped_column(BigInteger, default=0)
    # Every tag up to this had finished when the card changed (passupdates.unchanged_since).
    pass_update_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    pass_updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The version before: when both share a second, If-Modified-Since cannot tell them apart (passupdates.py).
    pass_previous_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    personalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Apple Wallet registrations of the card now (app/domain/devices.py keeps it): `wallets.apple` without a count
    # query on every member answer
    apple_devices: Mapped[int] = mapped_column(Integer, default=0)
    # Google's save/delete callbacks say whether the card is in someone's Google Wallet (app/google/callbacks.py)
    google_saved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The card has a Google Wallet object (googlewallet.start_object sets it): with apple_devices, whom a change
    # must reach, read by the earn's locking statement (passupdates.locked_members)
    google_object: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Whether the card was ever in an Apple / Google wallet: with the two above, a segment tells "removed" (had
    # it, no longer) from "never added" (app/domain/segments.py).
    apple_ever_installed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    google_ever_saved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Badges won by challenges, in the order won (kept here so the member and the card need no query).
    badges: Mapped[list] = mapped_column(JSON, default=list)
    # The monthly leaderboard shows only members who opted in, under the name they chose (never their own).
    leaderboard_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    leaderboard_name: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Deleted on request (GDPR, APPI, PIPA): personal data anonymised, the ledger kept, the pass voided.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    program_row: Mapped[Program] = relationship(lazy="joined")
    tier_row: Mapped[Tier | None] = relationship(lazy="joined", foreign_keys=[tier_id])
    # The program's cached configuration (app/domain/program_config.py), when `ledger._lock` loaded the member
    program_config = None

    @property
    def program(self) -> Program:
        """The program as the domain reads it: its cached configuration (read-only values) once the member is
        locked for a change, else the ORM row."""
        return self.program_config or self.program_row

    @program.setter
    def program(self, program: Program) -> None:
        self.program_row = program

    @property
    def tier(self) -> Tier | None:
        """The tier shown: from the cached configuration once the member is locked for a change, else the row."""
        if self.program_config is None:
            return self.tier_row
        return next((tier for tier in self.program_config.tiers if tier.id == self.tier_id), None) \
            if self.tier_id is not None else None

    @property
    def available_points(self) -> int:
        """What the member can spend now: the balance less points held for a checkout."""
        return self.points_balance - self.held_points


class LedgerEntry(Base):
    """Append-only: `points` never changes. `points` is signed: earn/adjust-up positive, redeem/expire negative,
    a reversal the opposite of what it reverses. `balance_after` makes the statement readable without re-summing.

    A credit is also a *lot* (app/domain/lots.py): `lot_remaining` is what is left of it to spend (None on debits),
    falling as it is spent or expires (each taking recorded in `lot_consumptions`); `expires_at` when what is left
    expires; `pending_until` set while it is not spendable yet."""
    __tablename__ = "ledger_entries"
    # Every earn writes a row into each index: the ones on columns most rows leave empty hold only the rows that
    # set them (a query's `col = x` or `col <= x` implies `col IS NOT NULL`, so it still uses them).
    __table_args__ = (Index("ix_ledger_member_created", "member_id", "id"),
                      Index("ix_ledger_merchant_created", "merchant_id", "created_at"),  # charts; also by merchant
                      *(Index(name, column, postgresql_where=text(f"{column} IS NOT NULL"),
                              sqlite_where=text(f"{column} IS NOT NULL"))
                        for name, column in (("ix_ledger_lots_expiry", "expires_at"),
                                             ("ix_ledger_lots_pending", "pending_until"),
                                             ("ix_ledger_entries_reverses_id", "reverses_id"),
                                             ("ix_ledger_entries_hold_id", "hold_id"))))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"), nullable=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    shortfall: Mapped[int] = mapped_column(Integer, default=0)  # reversed points the member had already spent
    # Change of the member's held points: +N when a hold is placed, -N when it is captured, voided or expires.
    # The sum over a member's entries is `members.held_points`, as the sum of `points` is the balance.
    held: Mapped[int] = mapped_column(Integer, default=0)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"), nullable=True)
    # Who made it: the API key (and the store its till is in); None for the system (expiry, a CLI command).
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    store: Mapped[str | None] = mapped_column(String(120), nullable=True)
    rule: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the rules that made it ("why?")
    stamps: Mapped[int] = mapped_column(Integer, default=0)  # stamps it added to a stamp card
    lot_remaining: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LotConsumption(Base):
    """Which lots an entry took points from (a redemption, an expiry, a reversal) or gave back to (`points`
    negative: a reversed redemption restores the lots it spent, with their dates)."""
    __tablename__ = "lot_consumptions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)

    entry: Mapped[LedgerEntry] = relationship(foreign_keys=[entry_id])
    lot: Mapped[LedgerEntry] = relationship(foreign_keys=[lot_id])


class Voucher(Base):
    """A reward a full stamp card issued: redeemable once, at the till, with its id."""
    __tablename__ = "vouchers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(120))
    issued_by_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"))  # the stamp that filled the card
    redeemed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    issued_by: Mapped[LedgerEntry] = relationship(foreign_keys=[issued_by_id])
    redeemed_by: Mapped[LedgerEntry | None] = relationship(foreign_keys=[redeemed_by_id])


class Challenge(Base):
    """A goal over a window (app/domain/challenges.py): `visits` (purchases), `spend` (money) or `category`
    (items of one category) reaching `target` within the last `window_days` days, this calendar month or the
    challenge's whole run; the reward is bonus points and/or a badge. Retired (DELETE) challenges are kept for
    their completions."""
    __tablename__ = "challenges"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(80))
    goal: Mapped[str] = mapped_column(String(16))  # visits | spend | category
    target: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    category: Mapped[str | None] = mapped_column(String(60), nullable=True)
    window: Mapped[str] = mapped_column(String(16))  # days | month | challenge
    window_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reward_points: Mapped[int] = mapped_column(Integer, default=0)
    badge: Mapped[str | None] = mapped_column(String(40), nullable=True)
    repeatable: Mapped[bool] = mapped_column(Boolean, default=False)
    clawback: Mapped[bool] = mapped_column(Boolean, default=False)  # a refund that undoes the goal takes it back
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChallengeCompletion(Base):
    """A member reached a challenge's goal: the bonus entry it granted; `revoked_at` when a refund took it back
    (only for a challenge with `clawback`)."""
    __tablename__ = "challenge_completions"
    __table_args__ = (Index("ix_challenge_completions_member", "member_id", "challenge_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenges.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    bonus_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    badge: Mapped[str | None] = mapped_column(String(40), nullable=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ChallengeProgress(Base):
    """What one qualifying earn added to one challenge (1 visit, its amount, its items of the category). The
    progress is the sum of a member's rows in the window not yet used by a completion (`completion_id`), so a
    reversal withdraws its row and the sum is right again without a scan of history."""
    __tablename__ = "challenge_progress"
    __table_args__ = (Index("ix_challenge_progress_member", "member_id", "challenge_id", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenges.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    completion_id: Mapped[int | None] = mapped_column(ForeignKey("challenge_completions.id"), nullable=True,
                                                      index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MembershipPeriod(Base):
    """A paid membership the merchant recorded: it grants `tier_id` from `starts_at` until `ends_at`."""
    __tablename__ = "membership_periods"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id", ondelete="SET NULL"),
                                                nullable=True)  # None: the tier was removed
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    remind_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # the renewal reminder is due
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # its tier took effect
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Hold(Base):
    """Points set aside at a checkout (two-phase redeem): `held` until captured (charged once), voided or past
    `expires_at`. While held they count in `members.held_points`; a hold past its expiry stops counting at
    once (app/domain/holds.py), and the sweep records its release."""
    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_status_expires", "status", "expires_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"), nullable=True)
    points: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="held")
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # captured/voided/expired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    reward: Mapped[Reward | None] = relationship(lazy="joined")


class IdempotencyRecord(Base):
    """The first response to (merchant, endpoint, key), replayed verbatim on a retry."""
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("merchant_id", "endpoint", "key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    endpoint: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)  # retention deletes by age


class Counter(Base):
    """Named numbers. SQLite: `pass_updates` tags every card change (writers are serialised there, so tags become
    visible in commit order). PostgreSQL: `update_tag_base` is added to a transaction id to make a tag, and is
    never incremented by a change (app/domain/passupdates.py)."""
    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class DeviceRegistration(Base):
    """A device (Apple's deviceLibraryIdentifier) that asked for updates to one member's pass."""
    __tablename__ = "device_registrations"
    __table_args__ = (UniqueConstraint("device_library_id", "member_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_library_id: Mapped[str] = mapped_column(String(128), index=True)
    push_token: Mapped[str] = mapped_column(String(MAX_PUSH_TOKEN_LENGTH))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SignedPass(Base):
    """The signed .pkpass of a member's current pass version: several devices fetching after one push cost
    one signature."""
    __tablename__ = "signed_passes"
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(128))  # hash of the unsigned content + signing certificate
    data: Mapped[bytes] = mapped_column(LargeBinary)


class OutboxEvent(Base):
    """Something that must reach the outside (an APNs push, a program-wide refresh), written in the same
    transaction as the change that caused it and delivered by a worker after commit."""
    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "dead_at", "available_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True, index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"), nullable=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The worker delivering it (hostname:pid) and since when; its lease runs until available_at.
    leased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class DeviceLog(Base):
    """Lines devices send to `/v1/log` (Apple's only channel for telling us why an update failed)."""
    __tablename__ = "device_logs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InstanceState(Base):
    """Facts about this installation that outlive a process, e.g. the card settings the cards were built with."""
    __tablename__ = "instance_state"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class GoogleClass(Base):
    """A program's LoyaltyClass in Google Wallet. Logo, colours and texts live on the class, so a design change is
    one class update, never an update of every member's object."""
    __tablename__ = "google_classes"
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    class_id: Mapped[str] = mapped_column(String(220), unique=True)
    sent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # design_version sent; None: not yet
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GoogleObject(Base):
    """A member's LoyaltyObject in Google Wallet: made when the member first opens their save link. `sent` is the
    object as Google last accepted it (None: not inserted yet), so an update patches only what changed;
    `notified_at` the notifying messages of the last 24 hours (Google allows 3); `message_ids` those on it."""
    __tablename__ = "google_objects"
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(220), unique=True)
    sent: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    notified_at: Mapped[list] = mapped_column(JSON, default=list)
    message_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GoogleCallbackNonce(Base):
    """Google delivers a callback at least once: its nonce, so a repeat changes nothing."""
    __tablename__ = "google_callback_nonces"
    nonce: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class FcmDevice(Base):
    """A merchant app's FCM registration token, on the member signed in to the app. A token is one app install:
    registered again for another member of the merchant, it moves (the unique constraint), never duplicates."""
    __tablename__ = "fcm_devices"
    __table_args__ = (UniqueConstraint("merchant_id", "token"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    token: Mapped[str] = mapped_column(String(MAX_FCM_TOKEN_LENGTH))
    platform: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class FcmCredentials(Base):
    """A merchant's own Firebase service-account key, sealed (app/encryption.py); the project and account are
    kept in clear to show what is configured without opening the key."""
    __tablename__ = "fcm_credentials"
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(128))
    client_email: Mapped[str] = mapped_column(String(254))
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
class WebhookEndpoint(Base):
    """A merchant's receiver for events (`events`: the types it subscribed to). The signing secret is stored
    sealed with a key derived from SECRET_KEY (app/encryption.py): HMAC needs it in clear to sign, so it cannot be
    hashed, but a copy of the database alone does not give it away. Ids never repeat (AUTOINCREMENT on SQLite
    too): the per-process subscription map detects changes by the count and the highest id."""
    __tablename__ = "webhook_endpoints"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(JSON)
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: the exact body sent (the signature covers its bytes, so every attempt and a
    replay send the same), its state (`pending`, `delivered`, `dead`) and when its retry window opened (its
    creation, or the last replay)."""
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "event_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookAttempt(Base):
    """One POST of a delivery: the receiver's status code (None when no answer came), or why it failed, and the
    retry it caused. `webhook_id` is repeated here so a webhook's attempts page with one index."""
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_webhook", "webhook_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScheduledJob(Base):
    """When each periodic job (workers/scheduled.py lists them) runs next. A worker runs a due job only after
    claiming it with one conditional UPDATE (`leased_by`, `leased_until`), so of several workers one runs it."""
    __tablename__ = "scheduled_jobs"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # real time it finished
    last_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # the instant it ran for
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Referral(Base):
    """A member who joined with another's code: `pending` until the program's trigger (sign-up, first purchase,
    purchases within N days), then `completed`; `rejected` with a `reason` by a fraud control, a cap, the window
    passing or the qualifying purchase being refunded. `ip` is the address the enrollment came from."""
    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_referrer_created", "referrer_id", "created_at"),
                      Index("ix_referrals_program_ip_created", "program_id", "ip", "created_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    referee_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)  # one referrer per member
    state: Mapped[str] = mapped_column(String(16))  # pending | completed | rejected
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)  # why rejected
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    # The referrer's how-many-th completed referral this is: what the tiered incentives look at
    ordinal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    rewards: Mapped[list["ReferralReward"]] = relationship(order_by="ReferralReward.id")


class ReferralReward(Base):
    """One payout of a referral: the ledger entries crediting the referrer and the referee and the purchase that
    qualified (None for a sign-up trigger). Refunding that purchase reverses both (`reversed_at`)."""
    __tablename__ = "referral_rewards"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    qualifying_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True,
                                                            index=True)
    referrer_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    referee_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    referrer_points: Mapped[int] = mapped_column(Integer, default=0)
    referee_points: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Survey(Base):
    """A program's questionnaire (`questions`: [{"id", "kind": rating|choice|text, "text", "choices"?,
    "translations"?}]), offered on the card after `after_purchases` purchases or sent on demand; an answer
    earns `bonus_points` once."""
    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    title_translations: Mapped[dict] = mapped_column(JSON, default=dict)
    questions: Mapped[list] = mapped_column(JSON)
    bonus_points: Mapped[int] = mapped_column(Integer, default=0)
    after_purchases: Mapped[int | None] = mapped_column(Integer, nullable=True)
    open_days: Mapped[int] = mapped_column(Integer, default=30)  # how long an invitation stays open
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SurveyInvitation(Base):
    """A survey offered to one member: its link is on their card until they answer or it closes."""
    __tablename__ = "survey_invitations"
    __table_args__ = (UniqueConstraint("survey_id", "member_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    survey: Mapped[Survey] = relationship(lazy="joined")


class SurveyResponse(Base):
    """A member's answers (question id -> 1..5, a choice, or text); one per survey and member, so the bonus
    (`bonus_entry_id`) is paid once."""
    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("survey_id", "member_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    answers: Mapped[dict] = mapped_column(JSON)
    bonus_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MemberTag(Base):
    """A merchant's label on a member ("vip", "staff", "wholesale"), for segments."""
    __tablename__ = "member_tags"
    __table_args__ = (UniqueConstraint("member_id", "tag"), Index("ix_member_tags_tag", "tag", "member_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    tag: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Segment(Base):
    """A stored rule over members (app/domain/segments.py), evaluated as one SQL query when asked."""
    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    rules: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # kept for its campaigns


class Campaign(Base):
    """A message and/or a time-limited offer to a segment (app/domain/campaigns.py). `status`: scheduled, sending,
    sent, cancelled or expired. `cursor` is the last member id a batch handled: a batch whose starting point is
    not the cursor is a retry of one that already committed, and does nothing."""
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status_send_at", "status", "send_at"),
                      Index("ix_campaigns_offer_ends", "offer_ends_at", "offer_cleared_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"))
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # locale -> text
    body: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    offer_text: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    offer_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    offer_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # cards re-issued
    cap_count: Mapped[int | None] = mapped_column(Integer, nullable=True)  # at most this many campaigns ...
    cap_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # ... per member in this many days
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    targeted: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the segment's count when sending began
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CampaignRecipient(Base):
    """One member a campaign reached (`status` delivered) or skipped for the frequency cap (`capped`). Unique per
    campaign and member: a retried batch inserts nothing twice and sends nothing twice."""
    __tablename__ = "campaign_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "member_id"),
                      Index("ix_campaign_recipients_member", "member_id", "created_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(16))
    card_updated: Mapped[bool] = mapped_column(Boolean, default=False)  # an Apple device or a Google object
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Surprise(Base):
    """Points given to a random sample of a segment. The sample is a function of `seed` and the eligible member
    ids (app/domain/surprises.py), both recorded, so an auditor can draw it again."""
    __tablename__ = "surprises"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"))
    seed: Mapped[str] = mapped_column(String(64))
    sample_size: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"), nullable=True)
    eligible_count: Mapped[int] = mapped_column(Integer)
    eligible_digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the sorted eligible ids
    member_ids: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PurchaseItem(Base):
    """A line item of a purchase earned with `items` (its category feeds personalised offers and segments): one
    row per item line, with the member and time copied from its ledger entry so a member's recent categories are
    one index range, and "who bought coffee this month" another."""
    __tablename__ = "purchase_items"
    __table_args__ = (Index("ix_purchase_items_member_created", "member_id", "created_at"),
                      Index("ix_purchase_items_category_created", "category", "created_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    sku: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str | None] = mapped_column(String(60), nullable=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))  # unit price
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OfferTemplate(Base):
    """A merchant's personalised offer with a rule the merchant can read (app/domain/offers.py): `kind` is
    top_category, we_miss_you, next_tier or default; `settings` its numbers; `texts`/`labels` per locale, with
    placeholders. Members get the first template that fits, by `priority` then id."""
    __tablename__ = "offer_templates"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    texts: Mapped[dict] = mapped_column(JSON)  # locale -> text with {category}, {days}, {points}, {tier}
    labels: Mapped[dict] = mapped_column(JSON, default=dict)  # locale -> the line's label (default: "Your offer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class MemberOffer(Base):
    """The offer a member's card shows now: its template and the values its text is filled with (`shown`), so
    the card renders it in the member's language and a re-evaluation updates only cards whose offer changed."""
    __tablename__ = "member_offers"
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("offer_templates.id", ondelete="CASCADE"), index=True)
    shown: Mapped[dict] = mapped_column(JSON, default=dict)
    chosen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    template: Mapped[OfferTemplate] = relationship(lazy="joined")
