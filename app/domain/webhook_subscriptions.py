"""Which event types each merchant's webhooks want, for `events.emit`: it asks on every earn, so the answer comes
from a per-process map and costs no SQL statement (tests/app/test_statements.py holds the earn path to its count).

The map is per database. A poller thread re-reads it within POLL_SECONDS of a change made by any process: it
compares the version (the count and the highest id of `webhook_endpoints`; ids never repeat, so any creation or
deletion changes it) and reloads only when it moved. The process that creates or deletes a webhook re-reads in
its own next emits until a read that began after the change committed has landed, so its own next request is
heard at once; other processes hear it within about a second. Reads are numbered as they begin: a read that
began before the commit proves nothing, even when the version moved (another process's change moves it too),
and an older read that lands after a newer one is dropped. Should the poller stop (idle for IDLE_SECONDS, or the
database away), a map older than STALE_SECONDS is re-read in the caller's own session before it answers."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time

from sqlalchemy import event, func, select
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
        # (first read number that proves our change, or None before its commit; when changed) until such a read
        self.awaiting: tuple[int | None, float] | None = None
        self._reads = itertools.count(1)  # numbers reads as they begin
        self._landed = 0  # number of the newest read applied to the map
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._poller_pid: int | None = None
        self._stop_poller = threading.Event()
        event.listen(engine, "engine_disposed", self._on_dispose)

    def _on_dispose(self, engine: Engine) -> None:
        """The app shuts down (or a forked child drops its pool): stop polling; the next `wants` starts again."""
        with self._lock:
            self._stop_poller.set()
            self._poller = None

    def wants(self, session: Session, merchant_id: int, type: str) -> bool:
        self.used_at = now = time.monotonic()
        if now - self.checked_at > STALE_SECONDS or self._awaiting_change(now):  # first use, no poller, or ours
            self.refresh(session.connection())
        self._start_poller()
        return type in self.types.get(merchant_id, ())

    def changed(self, session: Session) -> None:
        """A webhook was created or deleted in `session`'s transaction: once it commits, read again before each
        answer until a read begun after the commit lands (for at most STALE_SECONDS, should it roll back)."""
        self.awaiting = (None, time.monotonic())
        event.listen(session, "after_commit", self._committed, once=True)

    def _committed(self, session: Session) -> None:
        if self.awaiting is not None:
            self.awaiting = (next(self._reads), self.awaiting[1])  # reads from this number on began after it

    def _awaiting_change(self, now: float) -> bool:
        awaiting = self.awaiting
        if awaiting is None:
            return False
        proving_read, since = awaiting
        if (proving_read is not None and self._landed >= proving_read) or now - since > STALE_SECONDS:
            self.awaiting = None
            return False
        return True

    def refresh(self, connection: Connection | Session) -> None:
        read = next(self._reads)
        version = tuple(connection.execute(select(func.count(), func.max(WebhookEndpoint.id))).one())
        types = None
        if version != self.version:
            rows = connection.execute(select(WebhookEndpoint.merchant_id, WebhookEndpoint.events)).all()
            by_merchant: dict[int, set[str]] = {}
            for merchant_id, events in rows:
                by_merchant.setdefault(merchant_id, set()).update(events)
            types = {merchant_id: frozenset(events) for merchant_id, events in by_merchant.items()}
        with self._lock:
            if read < self._landed or (types is None and version != self.version):
                return  # a newer read has landed meanwhile: this one's answer is older
            if types is not None:
                self.types, self.version = types, version
            self._landed = read
            self.checked_at = time.monotonic()

    def _start_poller(self) -> None:
        if self._poller is not None and self._poller_pid == os.getpid():
            return
        with self._lock:
            if self._poller is None or self._poller_pid != os.getpid():  # none yet, or a fork left it behind
                self._poller_pid = os.getpid()
                self._stop_poller = threading.Event()
                self._poller = threading.Thread(target=self._poll, args=(self._stop_poller,),
                                                name="webhook-subscriptions", daemon=True)
                self._poller.start()

    def _poll(self, stop: threading.Event) -> None:
        failing = False
        while time.monotonic() - self.used_at < IDLE_SECONDS and not stop.wait(POLL_SECONDS):
            try:
                with self.engine.connect() as connection:
                    self.refresh(connection)
                failing = False
            except Exception as error:  # the database is away: callers re-read themselves once the map is stale
                if not failing:
                    log.warning("webhook subscriptions could not be re-read: %s", type(error).__name__)
                failing = True
        with self._lock:
            if self._stop_poller is stop:  # not replaced meanwhile by a poller started after a dispose
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
