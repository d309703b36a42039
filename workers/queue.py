"""`punchpass worker`: an rq worker on REDIS_URL plus the outbox sweep.

It uses rq's SimpleWorker (no fork per job) so the app, its signer and the APNs connection live for the whole
process instead of being rebuilt for every job."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from app.config import Config
from workers.relay import QUEUE_NAME, RQDispatcher

log = logging.getLogger("punchpass.worker")
SWEEP_INTERVAL = 5.0  # seconds between looks for events the relay missed and retries that came due
_app: Flask | None = None


def worker_app() -> Flask:
    """The worker process's app, made on first use."""
    global _app
    if _app is None:
        from app import create_app
        _app = create_app()
    return _app


def sweep_outbox(app: Flask, dispatch) -> int:
    """Hand every due event to `dispatch`; returns how many. Safe to run from several workers at once."""
    from app import db_session
    from workers.jobs import due_event_ids
    with app.app_context():
        ids = due_event_ids(db_session())
    if ids:
        dispatch(ids)
    return len(ids)


def run_worker(config: Config) -> None:
    from rq import SimpleWorker

    from app import create_app
    global _app
    if not config.redis_url:
        raise SystemExit("punchpass worker needs REDIS_URL (without it, `punchpass serve` runs an embedded worker)")
    _app = create_app(config)
    dispatcher = _app.extensions["punchpass"]["dispatch"]  # create_app made the RQDispatcher for REDIS_URL
    stop = threading.Event()
    threading.Thread(target=_sweep_forever, args=(_app, dispatcher, stop), name="outbox-sweep", daemon=True).start()
    try:
        SimpleWorker([QUEUE_NAME], connection=dispatcher.redis).work(with_scheduler=False)
    finally:
        stop.set()


def _sweep_forever(app: Flask, dispatcher: RQDispatcher, stop: threading.Event) -> None:
    """One sweeper at a time across all workers (a short Redis lock), every SWEEP_INTERVAL seconds."""
    while not stop.wait(SWEEP_INTERVAL):
        try:
            if dispatcher.redis.set("punchpass:sweep-lock", "1", nx=True, ex=int(SWEEP_INTERVAL)):
                count = sweep_outbox(app, dispatcher)
                if count:
                    log.info("sweep re-enqueued %d outbox event(s)", count)
        except Exception:
            log.exception("outbox sweep failed; trying again in %.0f s", SWEEP_INTERVAL)
