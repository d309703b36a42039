"""APNs pushes for Wallet pass updates: one kept-open HTTP/2 connection, many pushes in flight.

Apple (Wallet, "Adding a Web Service to Update Passes"): an update is POST /3/device/<pushToken>
with apns-topic = the pass type id and an empty JSON dictionary as body, authenticated by
the Pass Type ID certificate used as TLS client certificate. This drives the h2 state
machine on an asyncio TLS transport (workers/apns_h2.py), as aioapns does: httpx costs ~1.2 ms
CPU per push.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import ssl
import tempfile
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from app.config import APNS_PRODUCTION_URL
from app.metrics import count_push_outcomes
from workers.apns_h2 import Pusher
from workers.apns_results import CONNECTION_FAILED, TIMED_OUT, TLS_REJECTED, PushResult, classify

__all__ = [
    "APNsClient", "PushResult", "classify", "close_shared_clients",
    "make_tls_context", "shared_client",
]

logger = logging.getLogger(__name__)

__all__ += ["CONNECTION_FAILED", "TIMED_OUT", "TLS_REJECTED"]  # reasons of pushes APNs never answered


def make_tls_context(*, cert_path=None, key_path=None, cert_pem: bytes | None = None,
                     key_pem: bytes | None = None, key_password=None, ca_file=None) -> ssl.SSLContext:
    """TLS for APNs: HTTP/2 by ALPN, the pass certificate as client certificate, optional extra trust."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    if ca_file:
        context.load_verify_locations(cafile=os.fspath(ca_file))
    if cert_pem is not None:
        _load_pem_chain(context, cert_pem, key_pem, key_password)
    elif cert_path is not None:
        context.load_cert_chain(cert_path, key_path, key_password)
    else:
        raise ValueError("APNs needs the pass certificate: cert_path or cert_pem")
    return context


def _load_pem_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes | None, password) -> None:
    """ssl loads certificates only from files: write the PEMs to a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="apns-") as directory:  # mode 0700
        cert_file = os.path.join(directory, "cert.pem")
        key_file = os.path.join(directory, "key.pem") if key_pem is not None else None
        for path, pem in ((cert_file, cert_pem), (key_file, key_pem)):
            if path is not None:
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                    handle.write(pem)
        context.load_cert_chain(cert_file, key_file, password)


class APNsClient:
    """Thread-safe synchronous APNs client for rq jobs; its event loop runs in a background thread."""

    def __init__(self, *, cert_path=None, key_path=None, cert_pem: bytes | None = None,
                 key_pem: bytes | None = None, key_password=None, ca_file=None,
                 base_url: str = APNS_PRODUCTION_URL, timeout: float = 30.0, max_in_flight: int = 1000) -> None:
        url = urlsplit(base_url)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"APNs base URL must be https://host[:port], got {base_url!r}")
        self._context = make_tls_context(cert_path=cert_path, key_path=key_path, cert_pem=cert_pem,
                                         key_pem=key_pem, key_password=key_password, ca_file=ca_file)
        self._host, self._port = url.hostname, url.port or 443
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._pusher: Pusher | None = None
        self._thread: threading.Thread | None = None
        self._accepted_topics: set[str] = set()

    def push_many(self, tokens: list[str], topic: str) -> list[PushResult]:
        """Push {} with apns-topic=topic to every token; one result per token, in order."""
        pusher = self._started()
        started = time.monotonic()
        future = asyncio.run_coroutine_threadsafe(pusher.push(list(tokens), topic, self.timeout), pusher.loop)
        results = future.result()
        _log_results(results, topic, time.monotonic() - started)
        if any(result.status == 200 for result in results):
            self._accepted_topics.add(topic)
        return results

    def has_accepted(self, topic: str) -> bool:
        """True once APNs accepted a push for topic from this client: its certificate and topic are right."""
        return topic in self._accepted_topics

    def push(self, token: str, topic: str) -> PushResult:
        """Push to one token."""
        return self.push_many([token], topic)[0]

    def close(self) -> None:
        """Close the connection and stop the loop thread; a later push starts them again."""
        with self._lock:
            pusher, thread = self._pusher, self._thread
            self._pusher = self._thread = None
        if pusher is None:
            return
        asyncio.run_coroutine_threadsafe(pusher.close(), pusher.loop).result()
        pusher.loop.call_soon_threadsafe(pusher.loop.stop)
        thread.join()
        pusher.loop.close()

    def __enter__(self) -> APNsClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _started(self) -> Pusher:
        """The loop thread and its pusher, started on first use."""
        with self._lock:
            if self._pusher is None:
                loop = asyncio.new_event_loop()
                self._pusher = Pusher(self._context, self._host, self._port, self.max_in_flight, loop)
                self._thread = threading.Thread(target=loop.run_forever, name="apns-loop", daemon=True)
                self._thread.start()
            return self._pusher


def _log_results(results: list[PushResult], topic: str, seconds: float) -> None:
    """One line per batch; fatal answers loudly. Tokens appear only truncated."""
    outcomes = Counter(result.outcome for result in results)
    count_push_outcomes(outcomes)
    logger.info("APNs %s: %d pushes in %.3f s: %s", topic, len(results), seconds, dict(outcomes))
    if outcomes["fatal"]:
        first = next(result for result in results if result.outcome == "fatal")
        logger.error("APNs configuration error for topic %s: %d pushes refused, e.g. token %s… -> %s %s",
                     topic, outcomes["fatal"], first.token[:8], first.status, first.reason)


_shared: dict[tuple, APNsClient] = {}
_shared_lock = threading.Lock()


def shared_client(**config) -> APNsClient:
    """This process's one client for a config, kept open across rq jobs (a forked child makes its own)."""
    key = (os.getpid(), tuple(sorted(config.items())))
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            client = _shared[key] = APNsClient(**config)
        return client


def close_shared_clients() -> None:
    """Close this process's shared clients (at exit, and between tests)."""
    pid = os.getpid()
    with _shared_lock:
        keys = [key for key in _shared if key[0] == pid]
        clients = [_shared.pop(key) for key in keys]
    for client in clients:
        client.close()


atexit.register(close_shared_clients)
