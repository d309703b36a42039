"""Periods in a program's time zone: month and year ends, days, across zones, leap days and DST."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from app.domain.calendar import is_time_zone, local_weekday, period_end, period_start

TOKYO, NEW_YORK = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def test_month_end_is_the_next_local_midnight_in_the_programs_zone():
    instant = utc(2024, 1, 31, 16, 0)  # 1 Feb 01:00 in Tokyo

    assert period_start(TOKYO, instant, "month") == datetime(2024, 2, 1, tzinfo=TOKYO)
    assert period_end(TOKYO, instant, "month") == datetime(2024, 3, 1, tzinfo=TOKYO)
    assert period_end(TOKYO, instant, "month").astimezone(timezone.utc) == utc(2024, 2, 29, 15, 0)  # leap year


def test_year_and_day_bounds():
    instant = utc(2025, 1, 1, 3, 0)  # still 31 Dec 2024 in New York

    assert period_start(NEW_YORK, instant, "year") == datetime(2024, 1, 1, tzinfo=NEW_YORK)
    assert period_end(NEW_YORK, instant, "year") == datetime(2025, 1, 1, tzinfo=NEW_YORK)
    assert period_start(NEW_YORK, instant, "day") == datetime(2024, 12, 31, tzinfo=NEW_YORK)
    assert local_weekday(NEW_YORK, instant) == 1 and local_weekday(TOKYO, instant) == 2  # Tue there, Wed here


def test_a_day_across_a_daylight_saving_change_is_23_hours_long():
    start = period_start(NEW_YORK, utc(2024, 3, 10, 12), "day")

    assert (period_end(NEW_YORK, start, "day").astimezone(timezone.utc) - start.astimezone(timezone.utc)
            ).total_seconds() == 23 * 3600


@pytest.mark.parametrize("name, known", [("Asia/Tokyo", True), ("UTC", True), ("Europe/Paris", True),
                                          ("JST", False), ("../../etc/passwd", False), ("", False),
                                          ("asia/tokyo", False)])
def test_only_iana_names_are_time_zones(name, known):
    assert is_time_zone(name) is known


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError):
        period_start(TOKYO, utc(2024, 1, 1), "week")
