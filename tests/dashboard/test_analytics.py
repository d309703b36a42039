"""The overview's days are the program's days: an earn at 01:00 in Tokyo is that Tokyo day's, not the UTC day
before; Google saves count on the platforms chart."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from app.domain import analytics
from app.models import LedgerEntry, Member
from app.services import services
from tests.factories import make_member, make_merchant, make_program


def test_days_are_the_programs_and_google_saves_are_counted(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, timezone="Asia/Tokyo")
    early = make_member(client, admin, program["id"], points=40)  # earned at 01:00 on 1 Feb in Tokyo
    late = make_member(client, admin, program["id"], points=7)  # earned at 23:30 on 31 Jan in Tokyo
    moments = {early["id"]: datetime(2026, 1, 31, 16, 0, tzinfo=UTC), late["id"]: datetime(2026, 1, 31, 14, 30,
                                                                                          tzinfo=UTC)}
    with app.app_context():
        session = services(app).sessions()
        for member_id, moment in moments.items():
            session.execute(update(LedgerEntry).where(LedgerEntry.member_id == member_id).values(created_at=moment))
            session.execute(update(Member).where(Member.id == member_id).values(created_at=moment))
        session.execute(update(Member).where(Member.id == early["id"]).values(google_saved=True))
        session.commit()
        figures = analytics.overview(session, merchant_id, now=datetime(2026, 1, 31, 16, 30, tzinfo=UTC))
        session.close()

    issued = dict(zip(figures.points.labels, figures.points.columns["issued"], strict=True))
    assert issued["2026-02-01"] == 40 and issued["2026-01-31"] == 7  # UTC would put both on 31 Jan
    assert figures.points.labels[-1] == "2026-02-01"  # today in Tokyo, while it is still 31 Jan in UTC
    enrolled = dict(zip(figures.enrollments.labels, figures.enrollments.columns["members"], strict=True))
    assert enrolled["2026-02-01"] == 1 and enrolled["2026-01-31"] == 1
    assert figures.platforms.columns["cards"] == [0, 1]
