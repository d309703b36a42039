"""Webhook delivery: POST the event's body, signed, to the merchant's URL, and record what came back.

`Punchpass-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>` (README, "Webhooks").
Before every connection the URL's host is resolved and every address checked (app/domain/webhook_targets.py);
the connection then goes to the checked address, with the URL's name in `Host` and in TLS (SNI and certificate
check), so a DNS answer that changes between check and connect cannot redirect the POST. Redirects are never
followed (http.client does not), and a 3xx counts as a failure. Connections are kept alive per (scheme, host,
port, address) and thread."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.domain import webhooks
from app.domain.webhook_targets import TargetRefused, check_address
from app.encryption import UnsealError, secret_box
from app.models import OutboxEvent, utcnow
from app.services import services
from app.untrusted import scrub

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "Punchpass-Signature"
EVENT_ID_HEADER = "Punchpass-Event-Id"
EVENT_TYPE_HEADER = "Punchpass-Event-Type"
TIMEOUT = 10.0  # seconds, for connecting and for each read: well inside the outbox lease
MAX_RESPONSE_BYTES = 64 * 1024  # read (and forget) at most this much of an answer
USER_AGENT = "Punchpass-Webhooks/1"
BUDGET = 5.0  # seconds in which a batch starts POSTs: bounds the wait of the card pushes queued behind it, and
# (with TIMEOUT per connect and read) keeps the batch well inside the outbox lease
TARGET_PAUSE = timedelta(seconds=30)  # a target silent once in a batch: its other deliveries wait this long
UNREADABLE_SECRET = ("The signing secret cannot be read: SECRET_KEY changed since the webhook was created. "
                     "Create the webhook again.")


class LeasedEvent(Protocol):
    """An outbox row a worker leased (workers/jobs.py): its id and payload."""
    id: int
    payload: dict


def signature(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no HTTP answer (refused address, DNS, connection, timeout)
    error: str | None
    duration_ms: int


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `address`, speaking as `host` (the Host header)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = _connect(self.address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to `address`, with `host` as SNI, certificate name and Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address

    def connect(self) -> None:
        sock = _connect(self.address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _connect(address: str, port: int, timeout: float) -> socket.socket:
    """TCP to the checked address; no Nagle delay (a request is written in one go anyway)."""
    sock = socket.create_connection((address, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def tls_context() -> ssl.SSLContext:
    """The system's trust, which OpenSSL reads from SSL_CERT_FILE / SSL_CERT_DIR when set, plus
    REQUESTS_CA_BUNDLE (the other standard variable)."""
    context = ssl.create_default_context()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if bundle:
        context.load_verify_locations(cafile=bundle)
    return context


class WebhookSender:
    def __init__(self, allow_private: bool, timeout: float = TIMEOUT):
        self.allow_private, self.timeout = allow_private, timeout
        self.context = tls_context()
        self._local = threading.local()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        started = time.monotonic()
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = self.resolve(parts.hostname, port)
        except (TargetRefused, OSError, UnicodeError) as error:
            return Answer(None, f"{type(error).__name__}: {error}", _ms(started))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (parts.scheme, parts.hostname, port, address)
        for reused in (True, False):
            connection, was_open = self._connection(key, fresh=not reused)
            try:
                connection.request("POST", path, body=body, headers={**headers, "User-Agent": USER_AGENT,
                                                                      "Content-Type": "application/json"})
                response = connection.getresponse()
                content = response.read(MAX_RESPONSE_BYTES + 1)
                if len(content) > MAX_RESPONSE_BYTES or response.will_close:
                    self._drop(key)
                return Answer(response.status, _describe(response, content), _ms(started))
            except (OSError, http.client.HTTPException) as error:
                self._drop(key)
                if not (reused and was_open and isinstance(error, _STALE)):  # a kept-alive one the server closed
                    return Answer(None, f"{type(error).__name__}: {error}"[:500], _ms(started))
        raise AssertionError("unreachable")

    def resolve(self, host: str, port: int) -> str:
        """The first address `host` resolves to, once every address it resolves to is allowed."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))
        for address in addresses:
            check_address(address, self.allow_private)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        return addresses[0]

    def close(self) -> None:
        """Close this thread's kept-alive connections."""
        for key in list(self._pool()):
            self._drop(key)

    def _connection(self, key: tuple, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._pool()
        if not fresh and key in pool:
            return pool[key], True
        scheme, host, port, address = key
        connection = (_PinnedHTTPSConnection(host, port, address, self.timeout, self.context)
                      if scheme == "https" else _PinnedHTTPConnection(host, port, address, self.timeout))
        pool[key] = connection
        return connection, False

    def _drop(self, key: tuple) -> None:
        connection = self._pool().pop(key, None)
        if connection is not None:
            connection.close()

    def _pool(self) -> dict:
        if not hasattr(self._local, "pool"):
            self._local.pool = {}
        return self._local.pool


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(response: http.client.HTTPResponse, content: bytes) -> str | None:
    """None for a 2xx; otherwise the status, where a redirect pointed, and the start of the answer."""
    if 200 <= response.status < 300:
        return None
    text = f"HTTP {response.status}"
    if 300 <= response.status < 400:
        text += f" (redirect to {response.getheader('Location', '?')[:200]} not followed)"
    snippet = " ".join(content[:300].decode("utf-8", "replace").split())
    return scrub(f"{text}: {snippet}" if snippet else text)[:500]


_senders: dict[bool, WebhookSender] = {}


def sender(allow_private: bool) -> WebhookSender:
    """One per process (and setting), so its kept-alive connections serve every delivery."""
    if allow_private not in _senders:
        _senders[allow_private] = WebhookSender(allow_private)
    return _senders[allow_private]


def close_senders() -> None:
    """Close the calling thread's kept-alive connections (tests, before their receivers go away)."""
    for each in _senders.values():
        each.close()


def fan_out_events(app: Flask, session: Session, events: list[LeasedEvent]) -> dict[int, str]:
    """Leased WEBHOOK_EVENT rows: their deliveries, each with its attempt's row due at once (the same batch job
    attempts them next), and the rows marked delivered, in one commit."""
    webhooks.fan_out(session, [(event.payload["merchant_id"], event.payload["event"]) for event in events])
    ids = [event.id for event in events]
    session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids))
                    .values(delivered_at=utcnow(), last_error=None, leased_at=None, leased_by=None))
    session.commit()
    return dict.fromkeys(ids, "delivered")


def attempt_deliveries(app: Flask, session: Session, events: list[LeasedEvent]) -> dict[int, str]:
    """Leased WEBHOOK_DELIVERY rows: one signed POST each (no transaction open meanwhile), then every outcome
    recorded in one commit. A row is done when its delivery is delivered or dead, moved to the retry time
    otherwise. Rows not attempted go back unattempted: past the batch's time BUDGET (so no lease runs out
    mid-batch), or to a target that gave no answer earlier in the batch (they wait TARGET_PAUSE)."""
    pending = webhooks.deliveries_to_attempt(session, [event.payload["delivery_id"] for event in events])
    session.commit()
    started, silent_targets, secrets_by_hook = time.monotonic(), set(), {}
    results, attempted, deferred, seen = [], {}, {}, set()
    post = sender(services(app).config.webhooks_allow_private_targets).post
    for event in events:
        found = pending.get(event.payload["delivery_id"])
        if found is None or found[0].id in seen:  # delivered, dead, deleted, or twice in this batch
            continue
        delivery, webhook = found
        target = urlsplit(webhook.url).netloc
        if time.monotonic() - started > BUDGET or target in silent_targets:
            deferred[event.id] = TARGET_PAUSE if target in silent_targets else timedelta(0)
            continue
        seen.add(delivery.id)
        result = _attempt(app, delivery, webhook, secrets_by_hook, post)
        if result.status_code is None and not result.give_up:
            silent_targets.add(target)
        results.append(result)
        attempted[event.id] = result
    now = utcnow()
    retry_at = webhooks.record_attempts(session, results, now)
    return _reschedule(session, events, attempted, retry_at, deferred, now)


def _attempt(app: Flask, delivery, webhook, secrets_by_hook: dict, post) -> webhooks.AttemptResult:
    """One signed POST of a delivery (its webhook's secret unsealed once per batch)."""
    if webhook.id not in secrets_by_hook:
        try:
            secrets_by_hook[webhook.id] = secret_box(app.config["SECRET_KEY"], webhooks.SECRET_PURPOSE).open(
                webhook.sealed_secret, webhooks.secret_owner(webhook.merchant_id))
        except UnsealError:
            secrets_by_hook[webhook.id] = None
    secret = secrets_by_hook[webhook.id]
    if secret is None:
        return webhooks.AttemptResult(delivery, None, UNREADABLE_SECRET, 0, give_up=True)
    body = delivery.body.encode()
    headers = {SIGNATURE_HEADER: signature(secret, body, int(time.time())), EVENT_ID_HEADER: delivery.event_id,
               EVENT_TYPE_HEADER: delivery.event_type}
    answer = post(webhook.url, body, headers)
    if answer.error:
        log.info("webhook %s delivery %s: %s", webhook.id, delivery.id, answer.error)
    return webhooks.AttemptResult(delivery, answer.status_code, answer.error, answer.duration_ms)


def _reschedule(session: Session, events: list[LeasedEvent], attempted: dict, retry_at: dict, deferred: dict,
                now) -> dict[int, str]:
    """Give the batch's rows back, committed with the attempts: done (one UPDATE), or due again at the
    delivery's retry time or after a deferral (one UPDATE each, rare). What happened to each row."""
    outcomes, done = {}, []
    for event in events:
        if event.id in deferred:
            outcomes[event.id] = "deferred"
            _move(session, event.id, now + deferred[event.id], None)
        elif event.id in attempted and retry_at[attempted[event.id].delivery.id] is not None:
            outcomes[event.id] = "retry"
            _move(session, event.id, retry_at[attempted[event.id].delivery.id], attempted[event.id].error)
        else:
            result = attempted.get(event.id)
            outcomes[event.id] = "skipped" if result is None else "delivered" if result.delivered else "dead"
            done.append(event.id)
    if done:
        session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(done))
                        .values(delivered_at=now, last_error=None, leased_at=None, leased_by=None))
    session.commit()
    return outcomes


def _move(session: Session, event_id: int, when, error: str | None) -> None:
    """Due again at `when`. `attempts` restarts at 1: the row was handled, and the outbox's own limit (for
    handling that fails, jobs.MAX_ATTEMPTS) counts from here, never the webhook's retries within its 24 h."""
    session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                    .values(available_at=when, attempts=1, last_error=error, leased_at=None, leased_by=None))


# Outbox kind -> the batch handler: (app, session, leased rows) -> what happened to each row (workers/jobs.py
# leases and calls them, `deliver_due_webhooks`).
BATCH_HANDLERS = {webhooks.WEBHOOK_EVENT: fan_out_events, webhooks.WEBHOOK_DELIVERY: attempt_deliveries}
