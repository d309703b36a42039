"""rq on REDIS_URL: the dispatcher the entry points connect to the outbox relay, and `punchpass worker` (an rq
worker plus the outbox sweep, which also enqueues the scheduled jobs that are due).

The worker uses rq's SimpleWorker (no fork per job) so the app, its signer and the APNs connection live for the
whole process instead of being rebuilt for every job."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker, get_current_job
from rq.job import Job
from sqlalchemy import select

from app import create_app
from app.config import Config
from app.domain.campaigns import CAMPAIGN_BATCH, CAMPAIGN_CARDS
from app.domain.fcm import FCM
from app.domain.googlewallet import GOOGLE_CLASS, GOOGLE_MESSAGE, GOOGLE_OBJECT
from app.domain.outbox import due_event_ids
from app.domain.passupdates import PROGRAM_REFRESH
from app.domain.webhooks import WEBHOOK_DELIVERY, WEBHOOK_EVENT
from app.models import OutboxEvent
from app.services import db_session, services
from workers import jobs
from workers.scheduled import due_job_names

log = logging.getLogger(__name__)
QUEUE_NAME = "punchpass"
FANOUT_QUEUE_NAME = "punchpass-fanout"  # program fan-outs: listened to after QUEUE_NAME, so card pushes go first
BATCH_JOB = "workers.queue.deliver_due_job"
# Set while a batch job waits: a burst of commits enqueues one. (Not rq's job id: a commit during the job's run
# must enqueue the next one, and a reused id would be deleted with the running job's result.)
BATCH_QUEUED = "punchpass:outbox-batch-queued"
BATCH_QUEUED_TTL = 30  # seconds; should a flag outlive its job (a failed enqueue), the next commit enqueues again
SWEEP_INTERVAL = 5.0  # seconds between looks for events the relay missed and retries that came due
WEBHOOK_JOB_ID = "outbox-webhooks"  # the one job delivering webhooks in batches (jobs.deliver_due_webhooks)
SCHEDULED_QUEUE_NAME = "punchpass-scheduled"  # periodic jobs (workers/scheduled.py): taken after everything else
INLINE_KINDS = frozenset({GOOGLE_OBJECT, GOOGLE_CLASS, GOOGLE_MESSAGE, FCM})  # delivered inside the batch job
INLINE_BUDGET = 1.0  # seconds of such deliveries per batch job; what is left goes out as one job each


class RQDispatcher:
    """Enqueue one `deliver_due_job` for a burst of commits: the job delivers whatever is due when it runs, so
    while one waits in the queue further commits enqueue nothing (the BATCH_QUEUED flag, cleared by the job as
    it starts). When Redis is down the request still succeeds: the error is logged, further attempts pause
    briefly, and the sweep delivers the rows later."""

    def __init__(self, redis_url: str, pause_after_failure: float = 2.0):
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=2)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)
        self.pause_after_failure = pause_after_failure
        self._paused_until = 0.0

    def __call__(self, event_ids: list[int]) -> None:
        if time.monotonic() < self._paused_until:
            return
        try:
            if self.redis.set(BATCH_QUEUED, "1", nx=True, ex=BATCH_QUEUED_TTL):
                self.queue.enqueue_call(BATCH_JOB, result_ttl=0, failure_ttl=86400)
        except Exception as error:  # redis.ConnectionError and friends: the sweep is the safety net
            self._paused_until = time.monotonic() + self.pause_after_failure
            log.warning("could not enqueue %d outbox event(s), the sweep will retry: %s", len(event_ids), error)


def deliver_due_job() -> None:
    """rq entry point: clear the flag first (a commit from now on enqueues another job), then deliver every due
    card push in batches and hand due program fan-outs and campaign batches to their own queue."""
    redis = get_current_job().connection
    redis.delete(BATCH_QUEUED)
    app = jobs.worker_app()
    outcomes = jobs.deliver_due_pushes(app)
    if outcomes:
        log.info("card pushes: %s", dict(outcomes))
    with app.app_context():
        session = db_session()
        fanouts = [event_id for kind in (PROGRAM_REFRESH, CAMPAIGN_BATCH, CAMPAIGN_CARDS)  # the lower priority
                   for event_id in due_event_ids(session, kind=kind)]
        due = set(due_event_ids(session, exclude_kind=jobs.BATCHED_KINDS)) - set(fanouts)
        others = session.execute(select(OutboxEvent.id, OutboxEvent.kind).where(OutboxEvent.id.in_(due))
                                 .order_by(OutboxEvent.id)).all()
        webhooks_due = bool(due_event_ids(session, 1, kind=WEBHOOK_EVENT)
                            or due_event_ids(session, 1, kind=WEBHOOK_DELIVERY))
        session.commit()
    enqueue_fanouts(Queue(FANOUT_QUEUE_NAME, connection=redis), fanouts)
    left = deliver_inline(app, others)
    enqueue_fanouts(Queue(QUEUE_NAME, connection=redis), left)  # mail, what the inline budget left: one job each
    if webhooks_due:  # one job drains them all in batches; while it waits or runs, none more
        enqueue_once(Queue(QUEUE_NAME, connection=redis), WEBHOOK_JOB_ID, "workers.jobs.deliver_webhooks",
                     jobs.WEBHOOK_BATCH)


def deliver_inline(app: Flask, events: list[tuple[int, str]], budget: float = INLINE_BUDGET) -> list[int]:
    """Deliver the Google Wallet and FCM events here, in this job, while `budget` seconds last, the card pushes
    that came due meanwhile first before each: a card's Google update then costs no second rq job (the hop
    that made earn -> PATCH take a job's overhead twice). Their endpoints are Google's, paced and quick.
    Returns the ids left to enqueue."""
    deadline, left = time.monotonic() + budget, []
    for event_id, kind in events:
        if kind not in INLINE_KINDS or time.monotonic() >= deadline:
            left.append(event_id)
            continue
        jobs.deliver_event(app, event_id)
        jobs.deliver_due_pushes(app)
    return left


_LIVE_JOB_STATES = {"queued", "started", "scheduled", "deferred"}


def enqueue_fanouts(queue: Queue, event_ids: list[int]) -> None:
    """One job per program fan-out on the lower-priority queue. No rq timeout: a fan-out to a million devices
    outlasts rq's default 180 s, and the outbox lease and cursor already bound and resume it."""
    for event_id in event_ids:
        enqueue_once(queue, f"outbox-{event_id}", "workers.jobs.deliver", event_id)


def enqueue_due_scheduled_jobs(app: Flask, queue: Queue) -> list[str]:
    """One rq job per scheduled job due now; the job claims its schedule row before running, so two workers
    enqueuing the same due job still run it once."""
    names = due_job_names(app)
    for name in names:
        enqueue_once(queue, f"scheduled-{name}", "workers.scheduled.run_scheduled_job", name)
    return names


def enqueue_once(queue: Queue, job_id: str, function: str, argument) -> None:
    """Enqueue unless the job of this id is already waiting or running. A failed or finished job of the same id
    (a killed worker leaves one for `failure_ttl`) is replaced, or the sweep could never hand it over again."""
    if Job.exists(job_id, connection=queue.connection):
        job = Job.fetch(job_id, connection=queue.connection)
        if job.get_status(refresh=False) in _LIVE_JOB_STATES:
            return
        job.delete()
    queue.enqueue_call(function, args=(argument,), job_id=job_id, result_ttl=0, failure_ttl=86400, timeout=-1)


def connect_rq(app: Flask) -> RQDispatcher | None:
    """Hand the app's committed outbox rows to rq when REDIS_URL is set (gunicorn, `punchpass worker`)."""
    redis_url = services(app).config.redis_url
    dispatcher = RQDispatcher(redis_url) if redis_url else None
    services(app).relay.connect(dispatcher)
    return dispatcher


def sweep_outbox(app: Flask, dispatch: Callable[[list[int]], None]) -> int:
    """Hand every due event to `dispatch`; returns how many. Safe to run from several workers at once."""
    with app.app_context():
        ids = due_event_ids(db_session())
    if ids:
        dispatch(ids)
    return len(ids)


def run_worker(config: Config) -> None:
    if not config.redis_url:
        raise SystemExit("punchpass worker needs REDIS_URL (without it, `punchpass serve` runs an embedded worker)")
    app = create_app(config)
    jobs.use_app(app)
    dispatcher = connect_rq(app)
    stop = threading.Event()
    threading.Thread(target=_sweep_forever, args=(app, dispatcher, stop), name="outbox-sweep", daemon=True).start()
    try:
        SimpleWorker([QUEUE_NAME, FANOUT_QUEUE_NAME, SCHEDULED_QUEUE_NAME],
                     connection=dispatcher.redis).work(with_scheduler=False)
    finally:
        stop.set()


def _sweep_forever(app: Flask, dispatcher: RQDispatcher, stop: threading.Event) -> None:
    """One sweeper at a time across all workers (a short Redis lock), every SWEEP_INTERVAL seconds: events the
    relay missed, and the scheduled jobs that came due."""
    scheduled = Queue(SCHEDULED_QUEUE_NAME, connection=dispatcher.redis)
    while not stop.wait(SWEEP_INTERVAL):
        try:
            if dispatcher.redis.set("punchpass:sweep-lock", "1", nx=True, ex=int(SWEEP_INTERVAL)):
                count = sweep_outbox(app, dispatcher)
                if count:
                    log.info("sweep re-enqueued %d outbox event(s)", count)
                enqueue_due_scheduled_jobs(app, scheduled)
        except Exception:
            log.exception("outbox sweep failed; trying again in %.0f s", SWEEP_INTERVAL)
