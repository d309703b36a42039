"""Which event types each merchant's webhooks want, for `events.emit`: it asks on every earn, so the answer comes
from a per-process map and costs no SQL statement (tests/app/test_statements.py holds the earn path to its count).

The map is per database. A poller thread re-reads it within POLL_SECONDS of a change made by any process: it
compares the version (the count and the highest id of `webhook_endpoints`; ids never repeat, so any creation or
deletion changes it) and reloads only when it moved. The process that creates or deletes a webhook re-reads in
its own next emits until a read shows the new version (a poller's read that began before the change committed
does not count), so its own next request is heard at once; other processes hear it within about a second.
Should the poller stop (idle for IDLE_SECONDS, or the database away), a map older than STALE_SECONDS is re-read
in the caller's own session before it answers."""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from app.models import WebhookEndpoint

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
STALE_SECONDS = 10.0
IDLE_SECONDS = 600.0


class Subscriptions:
    """merchant id -> the event types its webhooks want, for one database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.types: dict[int, frozenset[str]] = {}
        self.version: tuple | None = None
        self.checked_at = float("-inf")  # time.monotonic() of the last read
        self.used_at = 0.0
        self.awaiting: tuple[tuple | None, float] | None = None  # (version before our change, when) until it shows
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._poller_pid: int | None = None

    def wants(self, session: Session, merchant_id: int, type: str) -> bool:
        self.used_at = now = time.monotonic()
        if now - self.checked_at > STALE_SECONDS or self._awaiting_change(now):  # first use, no poller, or ours
            self.refresh(session.connection())
        self._start_poller()
        return type in self.types.get(merchant_id, ())

    def changed(self) -> None:
        """A webhook was created or deleted in this process: read again before each answer until a read shows
        the new version (for at most STALE_SECONDS, should the change have rolled back)."""
        self.awaiting = (self.version, time.monotonic())

    def _awaiting_change(self, now: float) -> bool:
        awaiting = self.awaiting
        if awaiting is None:
            return False
        version_before, since = awaiting
        if self.version != version_before or now - since > STALE_SECONDS:
            self.awaiting = None
            return False
        return True

    def refresh(self, connection: Connection | Session) -> None:
        version = tuple(connection.execute(select(func.count(), func.max(WebhookEndpoint.id))).one())
        if version != self.version:
            rows = connection.execute(select(WebhookEndpoint.merchant_id, WebhookEndpoint.events)).all()
            types: dict[int, set[str]] = {}
            for merchant_id, events in rows:
                types.setdefault(merchant_id, set()).update(events)
            self.types = {merchant_id: frozenset(events) for merchant_id, events in types.items()}
            self.version = version
        self.checked_at = time.monotonic()

    def _start_poller(self) -> None:
        if self._poller is not None and self._poller_pid == os.getpid():
            return
        with self._lock:
            if self._poller is None or self._poller_pid != os.getpid():  # none yet, or a fork left it behind
                self._poller_pid = os.getpid()
                self._poller = threading.Thread(target=self._poll, name="webhook-subscriptions", daemon=True)
                self._poller.start()

    def _poll(self) -> None:
        failing = False
        while time.monotonic() - self.used_at < IDLE_SECONDS:
            time.sleep(POLL_SECONDS)
            try:
                with self.engine.connect() as connection:
                    self.refresh(connection)
                failing = False
            except Exception as error:  # the database is away: callers re-read themselves once the map is stale
                if not failing:
                    log.warning("webhook subscriptions could not be re-read: %s", type(error).__name__)
                failing = True
        with self._lock:
            self._poller = None


_by_engine: dict[Engine, Subscriptions] = {}  # one per database a process uses (tests use several)
_registry_lock = threading.Lock()


def subscriptions(session: Session) -> Subscriptions:
    engine = session.get_bind().engine
    found = _by_engine.get(engine)
    if found is None:
        with _registry_lock:
            found = _by_engine.setdefault(engine, Subscriptions(engine))
    return found
