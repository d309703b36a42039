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
from urllib.parse import urlsplit

from flask import Flask
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


def fan_out(app: Flask, session: Session, event: OutboxEvent) -> None:
    """WEBHOOK_EVENT: one delivery per webhook that wants it, each with its first attempt's outbox row."""
    webhooks.fan_out(session, event.payload["merchant_id"], event.payload["event"])
    event.delivered_at = utcnow()
    session.commit()


def attempt(app: Flask, session: Session, event: OutboxEvent) -> None:
    """WEBHOOK_DELIVERY: one POST, recorded with its outcome and the next attempt (if any) in one commit."""
    found = webhooks.delivery_to_attempt(session, event.payload["delivery_id"])
    session.commit()  # no transaction stays open while the receiver takes its time
    if found is None:
        return
    delivery, webhook = found
    try:
        secret = secret_box(app.config["SECRET_KEY"], webhooks.SECRET_PURPOSE).open(
            webhook.sealed_secret, webhooks.secret_owner(webhook.merchant_id))
    except UnsealError:
        webhooks.record_attempt(session, delivery, status_code=None, duration_ms=0, now=utcnow(), give_up=True,
                                error="The signing secret cannot be read: SECRET_KEY changed since the webhook was "
                                      "created. Create the webhook again.")
        session.commit()
        return
    body = delivery.body.encode()
    headers = {SIGNATURE_HEADER: signature(secret, body, int(time.time())), EVENT_ID_HEADER: delivery.event_id,
               EVENT_TYPE_HEADER: delivery.event_type}
    answer = sender(services(app).config.webhooks_allow_private_targets).post(webhook.url, body, headers)
    outcome = webhooks.record_attempt(session, delivery, status_code=answer.status_code, error=answer.error,
                                      duration_ms=answer.duration_ms, now=utcnow())
    event.delivered_at = utcnow()
    session.commit()
    if answer.error:
        log.info("webhook %s delivery %s: %s; next attempt %s", webhook.id, delivery.id, answer.error,
                 outcome.next_retry_at.isoformat() if outcome.next_retry_at else "none (dead)")


HANDLERS = {webhooks.WEBHOOK_EVENT: fan_out, webhooks.WEBHOOK_DELIVERY: attempt}
