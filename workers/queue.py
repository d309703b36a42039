"""rq on REDIS_URL: the dispatcher the entry points connect to the outbox relay, and `punchpass worker` (an rq
worker plus the outbox sweep).

The worker uses rq's SimpleWorker (no fork per job) so the app, its signer and the APNs connection live for the
whole process instead of being rebuilt for every job."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker

from app import create_app
from app.config import Config
from app.domain.outbox import due_event_ids
from app.domain.retention import prune_expired
from app.models import utcnow
from app.services import app_config, db_session, services
from workers import jobs

log = logging.getLogger(__name__)
QUEUE_NAME = "punchpass"
SWEEP_INTERVAL = 5.0  # seconds between looks for events the relay missed and retries that came due
PRUNE_INTERVAL = 300.0  # seconds between deletions of rows past their retention period (one process does it)
PRUNE_LOCK = "punchpass:prune-lock"


class RQDispatcher:
    """Enqueue `workers.jobs.deliver(event_id)` on Redis. When Redis is down the request still succeeds: the
    error is logged, further attempts pause briefly, and the sweep delivers the rows later."""

    def __init__(self, redis_url: str, pause_after_failure: float = 2.0):
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=2)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)
        self.pause_after_failure = pause_after_failure
        self._paused_until = 0.0

    def __call__(self, event_ids: list[int]) -> None:
        if time.monotonic() < self._paused_until:
            return
        try:
            self.queue.enqueue_many([_job_data(self.queue, event_id) for event_id in event_ids])
        except Exception as error:  # redis.ConnectionError and friends: the sweep is the safety net
            self._paused_until = time.monotonic() + self.pause_after_failure
            log.warning("could not enqueue %d outbox event(s), the sweep will retry: %s", len(event_ids), error)


def _job_data(queue: Queue, event_id: int):
    """One rq job per event; the job id makes a re-enqueue of the same event replace, not duplicate, it."""
    return queue.prepare_data("workers.jobs.deliver", args=(event_id,), job_id=f"outbox-{event_id}",
                              result_ttl=0, failure_ttl=86400)


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


def prune_expired_rows(app: Flask) -> dict[str, int]:
    """Delete what is past its retention period (idempotency records, delivered events, device logs)."""
    with app.app_context():
        session = db_session()
        counts = prune_expired(session, app_config().retention, utcnow())
        session.commit()
    if any(counts.values()):
        log.info("retention: deleted %s", ", ".join(f"{count} {name}" for name, count in counts.items()))
    return counts


def prune_when_due(app: Flask, redis: Redis) -> bool:
    """At most once per PRUNE_INTERVAL across every worker sharing Redis; True when this call pruned."""
    if not redis.set(PRUNE_LOCK, "1", nx=True, ex=int(PRUNE_INTERVAL)):
        return False
    prune_expired_rows(app)
    return True


def run_worker(config: Config) -> None:
    if not config.redis_url:
        raise SystemExit("punchpass worker needs REDIS_URL (without it, `punchpass serve` runs an embedded worker)")
    app = create_app(config)
    jobs.use_app(app)
    dispatcher = connect_rq(app)
    stop = threading.Event()
    threading.Thread(target=_sweep_forever, args=(app, dispatcher, stop), name="outbox-sweep", daemon=True).start()
    try:
        SimpleWorker([QUEUE_NAME], connection=dispatcher.redis).work(with_scheduler=False)
    finally:
        stop.set()


def _sweep_forever(app: Flask, dispatcher: RQDispatcher, stop: threading.Event) -> None:
    """One sweeper at a time across all workers (a short Redis lock), every SWEEP_INTERVAL seconds; the
    retention pruning rides along every PRUNE_INTERVAL."""
    while not stop.wait(SWEEP_INTERVAL):
        try:
            if dispatcher.redis.set("punchpass:sweep-lock", "1", nx=True, ex=int(SWEEP_INTERVAL)):
                count = sweep_outbox(app, dispatcher)
                if count:
                    log.info("sweep re-enqueued %d outbox event(s)", count)
        except Exception:
            log.exception("outbox sweep failed; trying again in %.0f s", SWEEP_INTERVAL)
        try:
            prune_when_due(app, dispatcher.redis)
        except Exception:
            log.exception("retention pruning failed; trying again in %.0f s", PRUNE_INTERVAL)
