"""A loopback APNs for tests and benchmarks: HTTP/2 over TLS that demands a pass certificate.

Like Apple it trusts its own WWDR intermediate (pass both root-ca.pem and wwdr.pem as
client_ca), so clients send only the pass certificate, and it takes the allowed topic
from that certificate's UID. Stricter than Apple: apns-topic is required and the body
must be exactly {}. Run it alone, e.g. for bench/apns.py:

    python -m tests.fakes.apns --cert server.pem --key server.key --ca root-ca.pem --ca wwdr.pem --count-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

_TOKEN = re.compile(rb"[0-9A-Fa-f]{16,256}")
_PRUNE_EVERY = 1024
_SLICE = 16384
_H2_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None)


@dataclass(frozen=True)
class RecordedPush:
    """One request as the fake saw it."""

    token: str
    topic: str | None
    headers: dict[str, str]
    body: bytes
    connection: int  # 1 for the first TLS connection the fake accepted, 2 for the next...
    status: int | None  # the answer given; None: left unanswered
    at: float = field(default_factory=time.time)


class FakeAPNs:
    """Real HTTP/2 + TLS server on 127.0.0.1 in a background thread; answers as programmed."""

    def __init__(self, server_cert, server_key, client_ca, *, host: str = "127.0.0.1", port: int = 0,
                 record: bool = True, max_concurrent_streams: int = 1000) -> None:
        self.context = _server_context(server_cert, server_key, client_ca)
        self.host, self.port = host, port
        self.record = record
        self.max_concurrent_streams = max_concurrent_streams
        self._lock = threading.Lock()
        self._rules: dict[str, list] = {}  # token -> [status, reason, times left or None]
        self._pushes: list[RecordedPush] = []
        self._count = 0
        self._connection_count = 0
        self._links: set[_TLSServerConnection] = set()  # open sockets; touched on the loop only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> FakeAPNs:
        """Listen (port 0 picks a free one) and serve from a daemon thread."""
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(self._loop.create_server(
            lambda: _TLSServerConnection(self), self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-apns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then the loop."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        self._abort_all()
        await asyncio.sleep(0)  # let connection_lost callbacks run

    def __enter__(self) -> FakeAPNs:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def respond(self, token: str, status: int | None, reason: str | None = None,
                times: int | None = None) -> None:
        """Answer pushes to token with status/reason, `times` times (None: always); status None: never answer."""
        with self._lock:
            self._rules[token] = [status, reason, times]

    @property
    def pushes(self) -> list[RecordedPush]:
        """Every recorded request so far (a copy)."""
        with self._lock:
            return list(self._pushes)

    @property
    def push_count(self) -> int:
        """Requests so far, answered or not."""
        with self._lock:
            return self._count

    @property
    def connection_count(self) -> int:
        """TLS connections accepted so far (handshake done, certificate accepted)."""
        with self._lock:
            return self._connection_count

    def close_connections(self) -> None:
        """Drop every open connection, as a network failure would."""
        self._call(self._abort_all)

    def goaway(self, reason: str = "Shutdown") -> None:
        """Send GOAWAY with {"reason"} on every open connection and close it, as Apple does."""
        self._call(lambda: [link.app.goaway(reason) for link in list(self._links) if link.app])

    def wait_for_pushes(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until at least `count` pushes arrived."""
        deadline = time.monotonic() + timeout
        while self.push_count < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.push_count >= count

    def _call(self, function) -> None:
        """Run function on the fake's loop and wait for it."""
        async def run():
            function()
            await asyncio.sleep(0)
        asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def _abort_all(self) -> None:
        for link in list(self._links):
            link.transport.abort()

    def _accepted(self) -> int:
        """Count a connection whose certificate was accepted; its number."""
        with self._lock:
            self._connection_count += 1
            return self._connection_count

    def _answer(self, request: tuple, connection: int, checked: tuple) -> tuple[int | None, str | None]:
        """Count and record a request; answer with the check's error, else as programmed, else 200."""
        token, topic, headers, body = request
        status, reason = checked
        with self._lock:
            rule = self._rules.get(token) if status == 200 else None
            if rule is not None:
                status, reason = rule[0], rule[1]
                if rule[2] is not None:
                    rule[2] -= 1
                    if rule[2] <= 0:
                        del self._rules[token]
            self._count += 1
            if self.record:
                self._pushes.append(RecordedPush(token, topic, headers, body, connection, status))
        return status, reason


def _server_context(server_cert, server_key, client_ca) -> ssl.SSLContext:
    """TLS server that requires a client certificate chaining to client_ca (file or list of files)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.fspath(server_cert), os.fspath(server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    for ca_file in [client_ca] if isinstance(client_ca, (str, os.PathLike)) else client_ca:
        context.load_verify_locations(cafile=os.fspath(ca_file))
    context.set_alpn_protocols(["h2"])
    return context


class _TLSServerConnection(asyncio.Protocol):
    """TLS on memory BIOs: a refused client certificate gets its alert, as from Apple.

    asyncio's own TLS drops the alert when the server's handshake fails, so the client
    would see a bare EOF instead of "certificate required" / "unknown CA".
    """

    def __init__(self, fake: FakeAPNs) -> None:
        self.fake = fake
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = fake.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.app: _FakeConnection | None = None
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.fake._links.add(self)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if self.app is None and not self.handshake():
            return
        chunks, closing = [], False
        try:
            while chunk := self.tls.read(65536):
                chunks.append(chunk)
            closing = True  # b"": the client's close_notify
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            closing = True
        except ssl.SSLError:
            self.transport.abort()
            return
        if chunks:
            self.app.data_received(b"".join(chunks))
        if closing:
            self.close()

    def handshake(self) -> bool:
        """Advance the handshake; True once done (the HTTP/2 side then starts)."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.flush()
            return False
        except ssl.SSLError:
            self.flush()  # the alert
            self.transport.close()
            return False
        self.flush()
        self.app = _FakeConnection(self.fake)
        self.app.connection_made(self)
        return True

    def connection_lost(self, exc) -> None:
        self.fake._links.discard(self)

    # The transport interface _FakeConnection uses.
    def write(self, data: bytes) -> None:
        if data:
            self.tls.write(data)
            self.flush()

    def flush(self) -> None:
        encrypted = self.outgoing.read()
        if encrypted:
            self.transport.write(encrypted)

    def close(self) -> None:
        try:
            self.tls.unwrap()  # close_notify
        except ssl.SSLError:
            pass
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def get_extra_info(self, name: str):
        return self.tls if name == "ssl_object" else self.transport.get_extra_info(name)


class _ServerH2(h2.connection.H2Connection):
    """h2 counts open streams by walking all of them for each new one; we count."""

    def __init__(self) -> None:
        super().__init__(config=_H2_CONFIG)
        self.requests: dict[int, list] = {}  # open stream id -> [headers, body]

    @property
    def open_inbound_streams(self) -> int:
        return len(self.requests)


class _FakeConnection:
    """One client connection: validates each request like APNs and answers it."""

    def __init__(self, fake: FakeAPNs) -> None:
        self.fake = fake
        self.transport = None
        self.h2 = _ServerH2()
        self.requests = self.h2.requests
        self.topic: str | None = None
        self.number = 0
        self.answered = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.topic = _certificate_uid(transport.get_extra_info("ssl_object").getpeercert())
        self.number = self.fake._accepted()
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.fake.max_concurrent_streams})
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for start in range(0, len(data), _SLICE):  # answer early: the client refills meanwhile
            try:
                events = self.h2.receive_data(data[start:start + _SLICE])
            except h2.exceptions.ProtocolError:
                self.transport.write(self.h2.data_to_send())
                self.transport.close()
                return
            self.handle(events)
            self.transport.write(self.h2.data_to_send())

    def handle(self, events: list) -> None:
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                self.requests[event.stream_id] = [event.headers, b""]
            elif kind is h2.events.DataReceived:
                self.requests[event.stream_id][1] += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.StreamEnded:
                self.answer(event.stream_id)
            elif kind is h2.events.StreamReset:
                self.requests.pop(event.stream_id, None)

    def answer(self, stream_id: int) -> None:
        """Check the request as APNs would, then answer 200 or the programmed/error status."""
        raw_headers, body = self.requests[stream_id]
        headers = {name.decode(): value.decode() for name, value in raw_headers}
        path, topic = headers.get(":path", ""), headers.get("apns-topic")
        token = path[len("/3/device/"):] if path.startswith("/3/device/") else ""
        checked = _check(headers.get(":method"), path, token, topic, self.topic, body)
        status, reason = self.fake._answer((token, topic, headers, body), self.number, checked)
        if status is None:
            return  # stays open, as a stuck server would leave it
        self.respond(stream_id, status, reason, headers.get("apns-id"))
        del self.requests[stream_id]
        self.answered += 1
        if self.answered % _PRUNE_EVERY == 0:
            h2.connection.H2Connection.open_inbound_streams.fget(self.h2)

    def respond(self, stream_id: int, status: int, reason: str | None, apns_id: str | None) -> None:
        """Apple: the request's apns-id (or a new one) on every answer; errors carry {"reason"}."""
        apns_id = apns_id.encode() if apns_id else _apns_id(self.number, stream_id)
        headers = [(b":status", str(status).encode()), (b"apns-id", apns_id)]
        if status == 200:
            self.h2.send_headers(stream_id, headers, end_stream=True)
            return
        error = {"reason": reason}
        if status == 410:
            error["timestamp"] = int(time.time() * 1000)
        body = json.dumps(error).encode()
        self.h2.send_headers(stream_id, headers + [(b"content-type", b"application/json"),
                                                   (b"content-length", str(len(body)).encode())])
        self.h2.send_data(stream_id, body, end_stream=True)

    def goaway(self, reason: str) -> None:
        self.h2.close_connection(additional_data=json.dumps({"reason": reason}).encode())
        self.transport.write(self.h2.data_to_send())
        self.transport.close()


def _check(method, path, token, topic, cert_topic, body) -> tuple[int, str | None]:
    """APNs' own checks, in Apple's order of statuses; (200, None) when the request is fine."""
    if method != "POST":
        return 405, "MethodNotAllowed"
    if not path.startswith("/3/device/"):
        return 404, "BadPath"
    if not _TOKEN.fullmatch(token.encode()):
        return 400, "BadDeviceToken"
    if not topic:
        return 400, "MissingTopic"
    if topic != cert_topic:
        return 400, "TopicDisallowed"
    if body != b"{}":  # Wallet: the payload is an empty JSON dictionary
        return 400, "PayloadEmpty" if not body else "BadPayload"
    return 200, None


def _certificate_uid(peer_certificate: dict) -> str | None:
    """The UID (pass type id) in the client certificate's subject."""
    for rdn in peer_certificate.get("subject", ()):
        for name, value in rdn:
            if name == "userId":
                return value
    return None


def _apns_id(connection: int, stream_id: int) -> bytes:
    """A UUID-shaped apns-id, unique per request, without the cost of uuid4."""
    return b"%08X-0000-4000-8000-%012X" % (connection, stream_id)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print the port first and the counts last."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.apns", description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server key (PEM)")
    parser.add_argument("--ca", action="append", required=True, help="trusted client CA; repeatable")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-streams", type=int, default=1000)
    parser.add_argument("--count-only", action="store_true", help="count pushes, keep no records")
    args = parser.parse_args(argv)
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # the server thread inherits the mask
    fake = FakeAPNs(args.cert, args.key, args.ca, port=args.port, record=not args.count_only,
                    max_concurrent_streams=args.max_streams)
    with fake:
        print(fake.port, flush=True)
        signal.sigwait(signals)
    print(f"pushes={fake.push_count} connections={fake.connection_count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
