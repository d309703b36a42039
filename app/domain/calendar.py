"""Days, months and years as a program's customers live them: in the program's IANA time zone (`timezone`,
default UTC). Expiry at the end of the month, "this month", days of the week are all local to the program.

Instants stay aware datetimes; the bounds come back in the program's zone (compare or store them as they are:
the database keeps UTC). A local midnight that a daylight-saving jump skips is read as zoneinfo reads it (the
wall time before the jump), so a period never loses its first hour."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from app.models import Program

PERIODS = ("day", "month", "year")


@lru_cache(maxsize=1)
def time_zone_names() -> list[str]:
    """Every IANA zone name this system knows, sorted (what /openapi.json lists)."""
    return sorted(available_timezones())


def is_time_zone(name: str) -> bool:
    """An IANA zone name this system knows ("Asia/Tokyo", "UTC"); never a file path or an abbreviation."""
    return name in _zone_set()


@lru_cache(maxsize=1)
def _zone_set() -> frozenset[str]:
    return frozenset(time_zone_names())


def program_zone(program: Program) -> ZoneInfo:
    return ZoneInfo(program.timezone or "UTC")


def period_start(zone: ZoneInfo, instant: datetime, period: str) -> datetime:
    """The local midnight that begins the day, month or year `instant` falls in, in `zone`."""
    local = instant.astimezone(zone)
    if period == "day":
        return datetime(local.year, local.month, local.day, tzinfo=zone)
    if period == "month":
        return datetime(local.year, local.month, 1, tzinfo=zone)
    if period == "year":
        return datetime(local.year, 1, 1, tzinfo=zone)
    raise ValueError(f"period must be one of {PERIODS}")


def period_end(zone: ZoneInfo, instant: datetime, period: str) -> datetime:
    """The local midnight that begins the next day, month or year: the end of the period (exclusive), so
    `start <= t < end` holds for every instant in it."""
    start = period_start(zone, instant, period)
    if period == "day":
        following = start.replace(tzinfo=None) + timedelta(days=1)
        return following.replace(tzinfo=zone)
    if period == "month":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return datetime(year, month, 1, tzinfo=zone)
    return datetime(start.year + 1, 1, 1, tzinfo=zone)


def local_weekday(zone: ZoneInfo, instant: datetime) -> int:
    """Monday 0 ... Sunday 6, on the program's calendar."""
    return instant.astimezone(zone).weekday()


def add_months(zone: ZoneInfo, instant: datetime, months: int) -> datetime:
    """The same local wall time `months` later, on the program's calendar; a day the month lacks becomes its last
    day (31 Jan + 1 month = 28 or 29 Feb; 29 Feb + 12 months = 28 Feb)."""
    local = instant.astimezone(zone)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = datetime(year + (month == 12), month % 12 + 1, 1)
    last_day = (following - timedelta(days=1)).day
    return local.replace(year=year, month=month, day=min(local.day, last_day), tzinfo=zone)


def last_day(zone: ZoneInfo, end: datetime) -> date:
    """The last local day of a period that ends (exclusive) at `end`: a lot expiring at midnight on 1 Jul is
    good through 30 Jun; one expiring at 15:00 on 30 Jun, through 30 Jun too."""
    return (end - timedelta(microseconds=1)).astimezone(zone).date()
