"""The outbox relay: after a commit, hand the ids of the outbox rows it wrote to whoever delivers them (rq, or
the embedded worker). A failed hand-over loses nothing: the rows stay pending and the periodic sweep finds them."""

from __future__ import annotations

import logging
import time

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from app.models import OutboxEvent

log = logging.getLogger("punchpass.relay")
QUEUE_NAME = "punchpass"


def watch_outbox(sessions: sessionmaker, state: dict) -> None:
    """After each commit, call `state["dispatch"](ids)` (when set) for the outbox rows that commit wrote."""

    @event.listens_for(sessions, "after_flush")
    def collect(session: Session, _context) -> None:
        ids = [obj.id for obj in session.new if isinstance(obj, OutboxEvent)]
        if ids:
            session.info.setdefault("outbox_ids", []).extend(ids)

    @event.listens_for(sessions, "after_commit")
    def relay(session: Session) -> None:
        ids = session.info.pop("outbox_ids", None)
        dispatch = state.get("dispatch")
        if ids and dispatch is not None:
            dispatch(ids)

    @event.listens_for(sessions, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop("outbox_ids", None)


class RQDispatcher:
    """Enqueue `workers.jobs.deliver(event_id)` on Redis. When Redis is down the request still succeeds: the
    error is logged, further attempts pause briefly, and the sweep delivers the rows later."""

    def __init__(self, redis_url: str, pause_after_failure: float = 2.0):
        from redis import Redis
        from rq import Queue
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


def _job_data(queue, event_id: int):
    """One rq job per event; the job id makes a re-enqueue of the same event replace, not duplicate, it."""
    return queue.prepare_data("workers.jobs.deliver", args=(event_id,), job_id=f"outbox-{event_id}",
                              result_ttl=0, failure_ttl=86400)
