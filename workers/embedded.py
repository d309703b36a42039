"""The embedded worker for `make run` (no Redis): a thread in the web process woken by the relay after each
commit, delivering whatever is due in batches, and looking every second for retries and expired checkout holds
(and rows past their retention period every few minutes). Same batch functions as `punchpass worker`."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from app.services import services
from workers.jobs import deliver_everything_due
from workers.queue import PRUNE_INTERVAL, prune_expired_rows, release_expired_holds

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, app: Flask, poll_interval: float = 1.0):
        self.app, self.poll_interval = app, poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-worker", daemon=True)
        self._next_prune = 0.0  # time.monotonic() of the next retention pruning

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
        """Holds past their expiry, retries that came due and events the relay missed; retention pruning every
        PRUNE_INTERVAL."""
        try:
            release_expired_holds(self.app)
        except Exception:
            log.exception("releasing expired holds failed; the next sweep will retry")
        self._deliver()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL
            try:
                prune_expired_rows(self.app)
            except Exception:
                log.exception("retention pruning failed")


def start_embedded_worker(app: Flask) -> EmbeddedWorker:
    return EmbeddedWorker(app).start()
