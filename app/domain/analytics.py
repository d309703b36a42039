"""The dashboard's figures for one merchant, over the last `DAYS` days, days as the merchant's customers live them
(the time zone of the merchant's first program: a café's Monday starts at its own midnight). Each is one
aggregate query on an index: members and ledger entries by (merchant_id, created_at), registrations through
members' ids.

A chart is a `Series`: labels, and one or more named columns of numbers; the same object feeds the SVG, the
table under it and the CSV download, so the three can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Date, case, cast, distinct, func, select
from sqlalchemy.orm import Session

from app.models import DeviceRegistration, LedgerEntry, Member, Program, Tier, utcnow

DAYS = 30
ACTIVE_DAYS = 30  # a member with a ledger entry this recent is active
ISSUING_KINDS = ("earn", "adjust")  # positive points of these count as issued
REDEEMING_KINDS = ("redeem", "capture")  # a captured hold spends its points


@dataclass(frozen=True)
class Series:
    name: str  # the chart's key: its CSV file name and the catalogue key of its title
    labels: list[str]
    columns: dict[str, list[int]]  # column key -> one number per label

    def rows(self) -> list[tuple]:
        return [(label, *(values[i] for values in self.columns.values())) for i, label in enumerate(self.labels)]


@dataclass(frozen=True)
class Overview:
    enrollments: Series
    points: Series
    platforms: Series
    tiers: Series
    active_members: int
    members: int
    redemption_rate: float | None  # redeemed / issued points in the period; None when nothing was issued

    def charts(self) -> dict[str, Series]:
        return {s.name: s for s in (self.enrollments, self.points, self.platforms, self.tiers)}


def overview(session: Session, merchant_id: int, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    zone = merchant_zone(session, merchant_id)
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=zone)
    points = points_per_day(session, merchant_id, since, days, zone)
    issued, redeemed = sum(points.columns["issued"]), sum(points.columns["redeemed"])
    return Overview(enrollments=enrollments_per_day(session, merchant_id, since, days, zone), points=points,
                    platforms=cards_per_platform(session, merchant_id), tiers=tier_distribution(session, merchant_id),
                    active_members=active_members(session, merchant_id, now - timedelta(days=ACTIVE_DAYS)),
                    members=member_count(session, merchant_id),
                    redemption_rate=(redeemed / issued) if issued else None)


def merchant_zone(session: Session, merchant_id: int) -> ZoneInfo:
    name = session.scalar(select(Program.timezone).where(Program.merchant_id == merchant_id)
                          .order_by(Program.id).limit(1))
    return ZoneInfo(name or "UTC")


def enrollments_per_day(session: Session, merchant_id: int, since: datetime, days: list[date],
                        zone: ZoneInfo = UTC) -> Series:
    day = _day(session, Member.created_at, zone)
    rows = session.execute(select(day, func.count()).where(Member.merchant_id == merchant_id,
                                                           Member.created_at >= since).group_by(day)).all()
    counts = {_date(value): int(count) for value, count in rows}
    return Series("enrollments", [d.isoformat() for d in days], {"members": [counts.get(d, 0) for d in days]})


def points_per_day(session: Session, merchant_id: int, since: datetime, days: list[date],
                   zone: ZoneInfo = UTC) -> Series:
    day = _day(session, LedgerEntry.created_at, zone)
    issued = func.sum(case((LedgerEntry.kind.in_(ISSUING_KINDS) & (LedgerEntry.points > 0), LedgerEntry.points),
                           else_=0))
    redeemed = func.sum(case((LedgerEntry.kind.in_(REDEEMING_KINDS), -LedgerEntry.points), else_=0))
    rows = session.execute(select(day, issued, redeemed).where(LedgerEntry.merchant_id == merchant_id,
                                                               LedgerEntry.created_at >= since).group_by(day)).all()
    by_day = {_date(row[0]): (int(row[1] or 0), int(row[2] or 0)) for row in rows}
    return Series("points", [d.isoformat() for d in days],
                  {"issued": [by_day.get(d, (0, 0))[0] for d in days],
                   "redeemed": [by_day.get(d, (0, 0))[1] for d in days]})


def cards_per_platform(session: Session, merchant_id: int) -> Series:
    """Members with the card in Apple Wallet (a device registered for updates) and in Google Wallet (saved, as
    Google's callbacks last said)."""
    apple = session.scalar(select(func.count(distinct(DeviceRegistration.member_id)))
                           .join(Member, Member.id == DeviceRegistration.member_id)
                           .where(Member.merchant_id == merchant_id, Member.deleted_at.is_(None)))
    google = session.scalar(select(func.count()).select_from(Member)
                            .where(Member.merchant_id == merchant_id, Member.deleted_at.is_(None),
                                   Member.google_saved.is_(True)))
    return Series("platforms", ["Apple Wallet", "Google Wallet"], {"cards": [int(apple or 0), int(google or 0)]})


def tier_distribution(session: Session, merchant_id: int) -> Series:
    """Members per tier (a tier set by hand counts as that tier), tiers in order, then those without one."""
    tier_id = func.coalesce(Member.tier_override_id, Member.tier_id)
    counts = dict(session.execute(select(tier_id, func.count()).where(Member.merchant_id == merchant_id,
                                                                      Member.deleted_at.is_(None))
                                  .group_by(tier_id)).all())
    tiers = session.execute(select(Tier.id, Tier.name).where(Tier.id.in_([id_ for id_ in counts if id_]))
                            .order_by(Tier.threshold, Tier.id)).all()
    labels = [name for _id, name in tiers] + ["—"]
    values = [counts.get(id_, 0) for id_, _name in tiers] + [counts.get(None, 0)]
    return Series("tiers", labels, {"members": values})


def active_members(session: Session, merchant_id: int, since: datetime) -> int:
    return int(session.scalar(select(func.count(distinct(LedgerEntry.member_id)))
                              .where(LedgerEntry.merchant_id == merchant_id, LedgerEntry.created_at >= since)) or 0)


def member_count(session: Session, merchant_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Member)
                              .where(Member.merchant_id == merchant_id, Member.deleted_at.is_(None))) or 0)


def _day(session: Session, column, zone: ZoneInfo):
    """The calendar day of a timestamp in `zone`, in SQL. PostgreSQL knows IANA zones; SQLite (the development
    database) only offsets, so it uses the zone's offset now (a day next to a DST change may be off by an hour)."""
    if session.get_bind().dialect.name == "sqlite":
        offset = utcnow().astimezone(zone).utcoffset() or timedelta()
        return func.date(column, f"{int(offset.total_seconds() // 60):+d} minutes")
    return cast(func.timezone(zone.key, column), Date)


def _date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
