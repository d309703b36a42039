"""Tables. Balances are derived from `ledger_entries`; `members.points_balance` is a cache updated in the same
transaction and checked against the ledger by `punchpass ledger verify`."""

from __future__ import annotations

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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

from app.db import Base
from passes.strings import FALLBACK_LOCALE, LOCALES

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


class Program(Base):
    __tablename__ = "programs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
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
    design_version: Mapped[int] = mapped_column(Integer, default=1)
    # A design change is one row update here, not a rewrite of every member: a card's update tag and
    # Last-Modified are the later of its own and its program's.
    design_update_tag: Mapped[int] = mapped_column(BigInteger, default=0)
    # Every tag up to this had finished when the design changed (passupdates.unchanged_since).
    design_update_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    design_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    design_previous_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    tiers: Mapped[list["Tier"]] = relationship(order_by="Tier.threshold", cascade="all, delete-orphan")
    rewards: Mapped[list["Reward"]] = relationship(order_by="Reward.points_cost", cascade="all, delete-orphan")


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


class Reward(Base):
    __tablename__ = "rewards"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    points_cost: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Member(Base):
    """Tokens are random and never change: the serial and the Apple token must stay stable across updates."""
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("program_id", "external_id"),
                      Index("ix_members_merchant_email", "merchant_id", "email"),
                      Index("ix_members_merchant_phone", "merchant_id", "phone"))
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
    serial_number: Mapped[str] = mapped_column(String(64), unique=True)
    auth_token: Mapped[str] = mapped_column(String(64))
    barcode_token: Mapped[str] = mapped_column(String(64), unique=True)
    download_token: Mapped[str] = mapped_column(String(64), unique=True)
    pass_version: Mapped[int] = mapped_column(Integer, default=1)
    pass_update_tag: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # Every tag up to this had finished when the card changed (passupdates.unchanged_since).
    pass_update_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    pass_updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The version before: when both share a second, If-Modified-Since cannot tell them apart (passupdates.py).
    pass_previous_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    personalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Google's save/delete callbacks say whether the card is in someone's Google Wallet (app/google/callbacks.py)
    google_saved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    program: Mapped[Program] = relationship(lazy="joined")
    tier: Mapped[Tier | None] = relationship(lazy="joined")

    @property
    def available_points(self) -> int:
        """What the member can spend now: the balance less points held for a checkout."""
        return self.points_balance - self.held_points


class LedgerEntry(Base):
    """Append-only. `points` is signed: earn/adjust-up positive, redeem/expire negative, a reversal the opposite
    of what it reverses. `balance_after` makes the statement readable without re-summing."""
    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_member_created", "member_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"), nullable=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True, index=True)
    shortfall: Mapped[int] = mapped_column(Integer, default=0)  # reversed points the member had already spent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


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
