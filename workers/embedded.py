"""The embedded worker for `make run` (no Redis): a thread in the web process fed by the relay after each
commit, and sweeping the outbox table every second for retries (and rows past their retention period every few
minutes). Same job functions as `punchpass worker`."""

from __future__ import annotations

import logging
import queue
import threading
import time

from flask import Flask

from app.services import services
from workers.jobs import deliver_event
from workers.queue import PRUNE_INTERVAL, prune_expired_rows, sweep_outbox

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, app: Flask, poll_interval: float = 1.0):
        self.app, self.poll_interval = app, poll_interval
        self._ids: queue.Queue[int] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-worker", daemon=True)
        self._next_prune = 0.0  # time.monotonic() of the next retention pruning

    def dispatch(self, event_ids: list[int]) -> None:
        for event_id in event_ids:
            self._ids.put(event_id)

    def start(self) -> "EmbeddedWorker":
        services(self.app).relay.connect(self.dispatch)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event_id = self._ids.get(timeout=self.poll_interval)
            except queue.Empty:
                self._sweep()
                continue
            try:
                deliver_event(self.app, event_id)
            except Exception:
                log.exception("delivering outbox event %s failed; the sweep will retry it", event_id)

    def _sweep(self) -> None:
        try:
            sweep_outbox(self.app, self.dispatch)
        except Exception:
            log.exception("outbox sweep failed")
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL
            try:
                prune_expired_rows(self.app)
            except Exception:
                log.exception("retention pruning failed")


def start_embedded_worker(app: Flask) -> EmbeddedWorker:
    return EmbeddedWorker(app).start()
