"""The embedded worker for `make run` (no Redis): a thread in the web process woken by the relay after each
commit, delivering whatever is due in batches, and looking every second for retries (and every few seconds for
scheduled jobs that came due). Same batch and job functions as `punchpass worker`."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from app.services import services
from workers.jobs import deliver_everything_due
from workers.queue import SWEEP_INTERVAL
from workers.scheduled import run_due

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, app: Flask, poll_interval: float = 1.0):
        self.app, self.poll_interval = app, poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-worker", daemon=True)
        self._next_schedule_check = 0.0  # time.monotonic() of the next look for due scheduled jobs

    def dispatch(self, event_ids: list[int]) -> None:
        """The relay's target: wake the thread, which delivers everything due (these ids and any others)."""
        self._wake.set()

    def start(self) -> "EmbeddedWorker":
        services(self.app).relay.connect(self.dispatch)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(timeout=self.poll_interval)
            self._wake.clear()
            if woken:
                self._deliver()
            else:
                self._sweep()

    def _deliver(self) -> None:
        try:
            deliver_everything_due(self.app)
        except Exception:
            log.exception("delivering outbox events failed; the next sweep will retry them")

    def _sweep(self) -> None:
        """Retries that came due and events the relay missed; scheduled jobs every SWEEP_INTERVAL."""
        self._deliver()
        if time.monotonic() >= self._next_schedule_check:
            self._next_schedule_check = time.monotonic() + SWEEP_INTERVAL
            try:
                run_due(self.app)  # logs a failed job itself
            except Exception:
                log.exception("looking for due scheduled jobs failed")


def start_embedded_worker(app: Flask) -> EmbeddedWorker:
    return EmbeddedWorker(app).start()
