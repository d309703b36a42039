"""Periodic jobs: the list of them (SCHEDULE, one line each) and the runner that runs whichever are due.

`punchpass worker` looks every few seconds for due jobs and enqueues each as an rq job (workers/queue.py); the
embedded worker runs them in its thread; `punchpass jobs run-due [--as-of]` runs them at once, as of any
instant (how an operator catches up, and how tests move through time). Whoever runs a job first claims it
(app/domain/schedule.py), so several workers run a due job once. A job takes the session and the instant it
runs *as of*, never reads the clock itself, and is idempotent: run twice as of the same instant, the second run
changes nothing. The runner commits its work together with the schedule's next run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy.orm import Session

from app.config import Config
from app.domain import campaigns, challenges, sweeps
from app.domain.holds import expire_due_holds
from app.domain.offer_templates import refresh_all
from app.domain.retention import prune_expired
from app.domain.schedule import add_missing_jobs, claim_job, due_jobs, fail_job, finish_job
from app.models import utcnow
from app.services import services
from workers.jobs import WORKER_ID, worker_app

log = logging.getLogger(__name__)

# (session, as_of, config) -> a summary for the log (counts), or None
JobFunction = Callable[[Session, datetime, Config], object]


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: timedelta
    run: JobFunction
    lease: timedelta = timedelta(minutes=15)  # a worker that dies mid-job gives it back after this


def prune_retention(session: Session, as_of: datetime, config: Config) -> dict[str, int]:
    """Idempotency records, delivered outbox events and device logs past their retention periods."""
    return prune_expired(session, config.retention, as_of)


def expire_holds(session: Session, as_of: datetime, config: Config) -> int:
    """Record the release of every checkout hold past its expiry (each card updates). An expired hold already
    counts for nothing when read (app/domain/holds.py): this writes down what already holds."""
    return expire_due_holds(session, as_of)


SCHEDULE: tuple[PeriodicJob, ...] = (
    PeriodicJob("prune_retention", timedelta(minutes=5), prune_retention),
    PeriodicJob("expire_holds", timedelta(seconds=30), expire_holds),
    PeriodicJob("release_pending_points", timedelta(minutes=15),
                lambda session, as_of, _: sweeps.release_pending_points(session, as_of)),
    PeriodicJob("expire_points", timedelta(minutes=15), lambda session, as_of, _: sweeps.expire_points(session, as_of)),
    PeriodicJob("warn_expiring_points", timedelta(hours=1),
                lambda session, as_of, _: sweeps.warn_expiring_points(session, as_of)),
    PeriodicJob("show_promotions", timedelta(minutes=1),
                lambda session, as_of, _: sweeps.show_promotions(session, as_of)),
    PeriodicJob("review_tiers", timedelta(hours=1), lambda session, as_of, _: sweeps.review_tiers(session, as_of)),
    PeriodicJob("expire_stamp_cards", timedelta(hours=1),
                lambda session, as_of, _: sweeps.expire_stamp_cards(session, as_of)),
    PeriodicJob("update_memberships", timedelta(minutes=15),
                lambda session, as_of, _: sweeps.update_memberships(session, as_of)),
    PeriodicJob("start_campaigns", timedelta(minutes=1),
                lambda session, as_of, _: campaigns.start_due_campaigns(session, as_of)),
    PeriodicJob("clear_ended_offers", timedelta(minutes=1),
                lambda session, as_of, _: campaigns.clear_ended_offers(session, as_of)),
    PeriodicJob("choose_offers", timedelta(days=1), lambda session, as_of, _: refresh_all(session, as_of),
                lease=timedelta(hours=1)),
    PeriodicJob("show_challenges", timedelta(minutes=1),
                lambda session, as_of, _: challenges.show_challenges(session, as_of)),
)


def run_due(app: Flask, as_of: datetime | None = None, schedule: tuple[PeriodicJob, ...] = SCHEDULE,
            worker: str = WORKER_ID) -> dict[str, object]:
    """Run every job due at `as_of` (default now), one after another. Returns name -> the job's summary (the
    exception, for a job that failed: it is logged and the others still run), for the jobs this call ran; a
    job another worker holds or has just run is left out."""
    results: dict[str, object] = {}
    for name in due_job_names(app, as_of, schedule):
        job = next(job for job in schedule if job.name == name)
        try:
            ran, result = run_job(app, job, as_of, worker)
        except Exception as error:
            log.exception("scheduled job %s failed; it is tried again shortly", name)
            ran, result = True, error
        if ran:
            results[name] = result
    return results


def due_job_names(app: Flask, as_of: datetime | None = None,
                  schedule: tuple[PeriodicJob, ...] = SCHEDULE) -> list[str]:
    """The jobs due at `as_of` and held by nobody (missing rows are added first: a new job is due at once)."""
    now = utcnow()
    names = [job.name for job in schedule]
    with services(app).sessions() as session:
        add_missing_jobs(session, names, min(as_of or now, now))
        session.commit()
        return due_jobs(session, names, as_of or now, now)


def run_job(app: Flask, job: PeriodicJob, as_of: datetime | None = None,
            worker: str = WORKER_ID) -> tuple[bool, object]:
    """Claim the job and run it; (False, None) when it was not due or another worker holds it. A failure is
    recorded on the job's row (`punchpass jobs status`) and raised."""
    now = utcnow()
    as_of = as_of or now
    with services(app).sessions() as session:
        if not claim_job(session, job.name, as_of, now, worker, job.lease):
            session.rollback()
            return False, None
        session.commit()
        try:
            with app.app_context():
                result = job.run(session, as_of, services(app).config)
            finish_job(session, job.name, as_of, utcnow(), worker, job.every)
            session.commit()
        except Exception as error:
            session.rollback()
            fail_job(session, job.name, utcnow(), worker, job.every, f"{type(error).__name__}: {error}")
            session.commit()
            raise
    log.info("scheduled job %s as of %s: %s", job.name, as_of.isoformat(), result)
    return True, result


def run_scheduled_job(name: str) -> None:
    """rq entry point: run one job of SCHEDULE now, if it is still due (another worker may have run it)."""
    job = next((job for job in SCHEDULE if job.name == name), None)
    if job is None:
        log.warning("no scheduled job %r (a worker of another version enqueued it?)", name)
        return
    run_job(worker_app(), job)
