"""The schedule of periodic jobs (table `scheduled_jobs`; the jobs themselves are listed in
workers/scheduled.py): which are due at an instant, and the lease a worker takes before running one.

Claiming is one conditional UPDATE: of several workers claiming the same due job at once, PostgreSQL lets one
UPDATE match and re-checks the others after it commits, when the lease is taken, so they match nothing. A worker
that dies mid-job leaves a lease that runs out, and the job is due again. Nothing here commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import ScheduledJob

RETRY_AFTER_FAILURE = timedelta(minutes=1)  # at most; a failing job is not retried on every tick


def add_missing_jobs(session: Session, names: list[str], now: datetime) -> None:
    """A row for every registered job, due at once; rows already there are left alone (several workers may
    start together, so it is an insert that ignores conflicts)."""
    known = set(session.scalars(select(ScheduledJob.name)))
    missing = [name for name in names if name not in known]
    if not missing:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(ScheduledJob).values([{"name": name, "next_run_at": now} for name in missing])
                    .on_conflict_do_nothing(index_elements=[ScheduledJob.name]))


def due_jobs(session: Session, names: list[str], as_of: datetime, now: datetime) -> list[str]:
    """Registered jobs whose time has come at `as_of` and which no worker holds (by the real clock, `now`)."""
    return list(session.scalars(select(ScheduledJob.name).where(
        ScheduledJob.name.in_(names), ScheduledJob.next_run_at <= as_of, _lease_free(now))
        .order_by(ScheduledJob.name)))


def claim_job(session: Session, name: str, as_of: datetime, now: datetime, worker: str, lease: timedelta) -> bool:
    """Take the job's lease if it is due at `as_of` and free; True when this worker got it (commit at once)."""
    claimed = session.execute(update(ScheduledJob).where(
        ScheduledJob.name == name, ScheduledJob.next_run_at <= as_of, _lease_free(now))
        .values(leased_by=worker, leased_until=now + lease)).rowcount
    return claimed == 1


def finish_job(session: Session, name: str, as_of: datetime, now: datetime, worker: str, every: timedelta) -> None:
    """Record the run and schedule the next, in the job's own transaction (so the two commit together). The next
    run is `every` after this one by the real clock, never later: a run as of a future instant (a test, an
    operator running a sweep ahead) does not put off the regular runs."""
    session.execute(update(ScheduledJob).where(ScheduledJob.name == name, ScheduledJob.leased_by == worker)
                    .values(next_run_at=min(as_of, now) + every, last_run_at=now, last_as_of=as_of,
                            last_error=None, leased_by=None, leased_until=None))


def fail_job(session: Session, name: str, now: datetime, worker: str, every: timedelta, error: str) -> None:
    """Give the lease back with the error; the job is tried again after a short pause."""
    session.execute(update(ScheduledJob).where(ScheduledJob.name == name, ScheduledJob.leased_by == worker)
                    .values(next_run_at=now + min(every, RETRY_AFTER_FAILURE), last_error=error[:2000],
                            leased_by=None, leased_until=None))


def schedule_summary(session: Session) -> list[dict]:
    """Every job's row, for `punchpass jobs status`."""
    rows = session.scalars(select(ScheduledJob).order_by(ScheduledJob.name))
    return [{"name": row.name, "next_run_at": row.next_run_at, "last_run_at": row.last_run_at,
             "last_as_of": row.last_as_of, "leased_by": row.leased_by, "leased_until": row.leased_until,
             "last_error": row.last_error} for row in rows]


def _lease_free(now: datetime):
    return or_(ScheduledJob.leased_until.is_(None), ScheduledJob.leased_until <= now)
