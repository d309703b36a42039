"""The HTTP/2 engine behind `workers.apns`: the h2 state machine driven on an asyncio TLS transport, as
aioapns does, with lean per-push work (httpx costs ~1.2 ms CPU per push; this about 0.07 ms).

Apple (Wallet, "Adding a Web Service to Update Passes"): an update is POST /3/device/<pushToken> with
apns-topic = the pass type id and an empty JSON dictionary as body."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from app.domain.devices import is_push_token
from workers.apns_codec import LiteralEncoder, read_body, read_headers
from workers.apns_results import CONNECTION_FAILED, TIMED_OUT, TLS_REJECTED, PushResult

logger = logging.getLogger(__name__)

_BODY = b"{}"  # Apple: the payload is an empty JSON dictionary; Wallet ignores any content
_METHOD = (b":method", b"POST")
_SCHEME = (b":scheme", b"https")
# No apns-push-type and no apns-priority. Apple ("Sending notification requests to APNs"): apns-priority
# defaults to 10, send immediately; 5 lets APNs group, delay or drop the push to save the device's power.
# Wallet ("Updating a pass") asks only for apns-topic and an empty JSON body; django-walletpass and
# edutap.wallet_apple send neither header. A card update must not wait: the customer is at the till.
_LAST_STREAM_ID = 2**31 - 1
_PRUNE_EVERY = 1024  # new streams between sweeps of h2's closed-stream table
_SLICE = 8192  # bytes of input parsed before refilling streams
_MIN_CONNECT_INTERVAL = 1.0  # Apple: rapid reconnects may be treated as a denial-of-service attack
_CONNECT_ATTEMPTS = 3
_RESENDS = 2  # times a push whose connection died unanswered is sent again
_H2_CONFIG = h2.config.H2Configuration(
    client_side=True, header_encoding=None,
    validate_outbound_headers=False, normalize_outbound_headers=False,
    validate_inbound_headers=False, normalize_inbound_headers=False,
)


def _is_certificate_error(exc: BaseException | None) -> bool:
    """True for TLS failures that retrying cannot fix: a rejected or untrusted certificate."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    reason = getattr(exc, "reason", None) or ""
    return isinstance(exc, ssl.SSLError) and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason)


class _H2Connection(h2.connection.H2Connection):
    """h2 with literal headers, counting its open streams itself (h2 walks all of them per new one)."""

    def __init__(self) -> None:
        super().__init__(config=_H2_CONFIG)
        self.encoder = LiteralEncoder()
        self.requests: dict[int, tuple[_Batch, int]] = {}  # open stream id -> (batch, index)

    @property
    def open_outbound_streams(self) -> int:
        return len(self.requests)

    def forget_closed_streams(self) -> None:
        """Drop closed streams from h2's stream table, so it does not grow with every push ever sent.

        h2 has no public call for this: its `open_outbound_streams` property prunes closed streams as a side
        effect of counting. We call h2's own property (ours above only counts) and throw the count away.
        This relies on h2 internals as of the pinned range in pyproject.toml, h2>=4.1,<5; recheck on upgrade.
        """
        h2.connection.H2Connection.open_outbound_streams.fget(self)


class _Batch:
    """One push_many call: tokens in, one result per token out, in order."""

    __slots__ = ("tokens", "topic", "paths", "todo", "cursor", "results", "remaining", "resends", "done")

    def __init__(self, tokens: list[str], topic: str, loop: asyncio.AbstractEventLoop) -> None:
        self.tokens = tokens
        self.topic = (b"apns-topic", topic.encode())
        self.results: list[PushResult | None] = [None] * len(tokens)
        self.paths = [b"/3/device/" + t.encode() if is_push_token(t) else None for t in tokens]
        for index, path in enumerate(self.paths):
            if path is None:  # never sent: not a token Apple could have issued
                self.results[index] = PushResult(tokens[index], 400, "BadDeviceToken")
        self.todo = [index for index, path in enumerate(self.paths) if path is not None]
        self.cursor = 0
        self.remaining = len(self.todo)
        self.resends: dict[int, int] = {}
        self.done = loop.create_future()
        if not self.remaining:
            self.done.set_result(None)

    def finish(self, index: int, result: PushResult) -> None:
        """Record the first result for a token (a late answer after a timeout is ignored)."""
        if self.results[index] is None:
            self.results[index] = result
            self.remaining -= 1
            if not self.remaining:
                self.done.set_result(None)

    def fail_unanswered(self, reason: str) -> None:
        """Give every token still waiting a status-0 result."""
        for index, result in enumerate(self.results):
            if result is None:
                self.finish(index, PushResult(self.tokens[index], 0, reason))


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: opens streams from the pusher's queue up to the server's limit."""

    def __init__(self, pusher: Pusher) -> None:
        self.pusher = pusher
        self.h2 = _H2Connection()
        self.requests = self.h2.requests
        self.answers: dict[int, list] = {}  # stream id -> [response headers, body]
        self.authority = (b":authority", pusher.authority)
        self.transport: asyncio.Transport | None = None
        self.ready = pusher.loop.create_future()  # True at the server's first SETTINGS
        self.closed = pusher.loop.create_future()
        self.error: BaseException | None = None
        self.usable = True
        self.limit = 0
        self.next_stream_id = 1

    def connection_made(self, transport) -> None:
        self.transport = transport
        if transport.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            self.error = ConnectionError("APNs server did not agree to HTTP/2 (ALPN h2)")
            transport.abort()
            return
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.usable = False
        self.error = self.error or exc or ConnectionError("APNs closed the connection")
        if not self.ready.done():
            self.ready.set_result(False)
        self.closed.set_result(None)
        self.pusher.connection_lost(self)

    def data_received(self, data: bytes) -> None:
        # In slices: refilling streams after each keeps the server busy while we parse the rest.
        for start in range(0, len(data), _SLICE):
            try:
                events = self.h2.receive_data(data[start:start + _SLICE])
            except h2.exceptions.ProtocolError as exc:
                self.error = exc
                self.transport.abort()
                return
            if not self.handle(events):
                return
            self.send_queued()

    def handle(self, events: list) -> bool:
        """Act on h2 events (answers, settings, resets); False once the server said GOAWAY."""
        answers = self.answers
        for event in events:
            kind = type(event)
            if kind is h2.events.ResponseReceived:
                answers[event.stream_id] = [event.headers, b""]
            elif kind is h2.events.StreamEnded:
                self.answered(event.stream_id)
            elif kind is h2.events.DataReceived:
                answers[event.stream_id][1] += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.RemoteSettingsChanged:
                settings = self.h2.remote_settings
                self.limit = min(settings.max_concurrent_streams, self.pusher.max_in_flight)
                if settings.initial_window_size < len(_BODY):
                    self.limit = 0
                if not self.ready.done():
                    self.ready.set_result(True)
            elif kind is h2.events.StreamReset:
                self.reset(event)
            elif kind is h2.events.ConnectionTerminated:
                self.goaway(event)
                return False
        return True

    def send_queued(self) -> None:
        """Open a stream per queued push while the server's stream limit and window allow."""
        h2c, requests, next_push = self.h2, self.requests, self.pusher.next_push
        while self.usable and len(requests) < self.limit and h2c.outbound_flow_control_window >= 2:
            if self.next_stream_id > _LAST_STREAM_ID:
                self.give_up()
                return
            push = next_push()
            if push is None:
                break
            stream_id = self.next_stream_id
            self.next_stream_id += 2
            batch, index = push
            h2c.send_headers(stream_id, [_METHOD, _SCHEME, (b":path", batch.paths[index]),
                                         self.authority, batch.topic])
            h2c.send_data(stream_id, _BODY, end_stream=True)
            requests[stream_id] = push
            if stream_id % (2 * _PRUNE_EVERY) == 1:
                h2c.forget_closed_streams()
        self.flush()

    def answered(self, stream_id: int) -> None:
        """Turn a finished response into the token's result."""
        push = self.requests.pop(stream_id, None)
        headers, body = self.answers.pop(stream_id, (None, b""))
        if push is None:
            return
        batch, index = push
        status, retry_after = read_headers(headers)
        if status == 200:
            batch.finish(index, PushResult(batch.tokens[index], 200))
        else:
            reason, timestamp = read_body(body)
            batch.finish(index, PushResult(batch.tokens[index], status, reason, retry_after, timestamp))

    def reset(self, event: h2.events.StreamReset) -> None:
        """A stream the server reset: REFUSED_STREAM was never processed, so it is sent again."""
        push = self.requests.pop(event.stream_id, None)
        self.answers.pop(event.stream_id, None)
        if push is None:
            return
        if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
            self.pusher.resend.append(push)
        else:
            batch, index = push
            batch.finish(index, PushResult(batch.tokens[index], 0, f"StreamReset:{event.error_code!r}"))

    def goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """Apple sends GOAWAY with a JSON reason (e.g. BadCertificate, Shutdown) before closing."""
        reason = read_body(event.additional_data or b"")[0]
        logger.warning("APNs GOAWAY: error=%r reason=%s", event.error_code, reason)
        self.give_up(TLS_REJECTED if reason and "Certificate" in reason else None)

    def give_up(self, fail_with: str | None = None) -> None:
        """Close, handing unanswered pushes to the next connection, or failing them all.

        After GOAWAY h2 accepts no more frames, so pushes the server may have processed are
        sent again: for Wallet a duplicate push only makes the device ask once more.
        """
        self.usable = False
        self.pusher.requeue(self)
        if fail_with:
            self.pusher.fail_queue(fail_with)
        self.pusher.retired(self)
        self.transport.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)


class Pusher:
    """The event-loop side of APNsClient: the queue, the one live connection, reconnects."""

    def __init__(self, context: ssl.SSLContext, host: str, port: int, max_in_flight: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.context, self.host, self.port, self.loop = context, host, port, loop
        self.authority = (host if port == 443 else f"{host}:{port}").encode()
        self.max_in_flight = max_in_flight
        self.queue: deque[_Batch] = deque()
        self.resend: deque[tuple[_Batch, int]] = deque()
        self.conn: _Connection | None = None  # the one taking new pushes
        self.connections: set[_Connection] = set()  # every open one, including a closing one
        self.connecting: asyncio.Task | None = None
        self.last_connect = -_MIN_CONNECT_INTERVAL

    async def push(self, tokens: list[str], topic: str, timeout: float) -> list[PushResult]:
        """Queue one batch and wait for all its answers, or give the rest a Timeout result."""
        batch = _Batch(tokens, topic, self.loop)
        if batch.remaining:
            self.queue.append(batch)
            self.pump()
            try:
                await asyncio.wait_for(asyncio.shield(batch.done), timeout)
            except asyncio.TimeoutError:
                self.time_out(batch)
        return batch.results

    def next_push(self) -> tuple[_Batch, int] | None:
        """The next (batch, index) to send: resends first, then queued batches in order."""
        while self.resend:
            batch, index = push = self.resend.popleft()
            if batch.results[index] is None:
                return push
        queue = self.queue
        while queue:
            batch = queue[0]
            if batch.cursor < len(batch.todo) and batch.remaining:
                batch.cursor += 1
                return batch, batch.todo[batch.cursor - 1]
            queue.popleft()
        return None

    def pump(self) -> None:
        """Send on the live connection, or start connecting when there is none and work waits."""
        if self.conn is not None:
            self.conn.send_queued()
        elif self.connecting is None and (self.queue or self.resend):
            self.connecting = self.loop.create_task(self.connect())

    async def connect(self) -> None:
        """Open the connection, pausing between attempts; fail the queue if it cannot be opened."""
        reason = CONNECTION_FAILED
        try:
            for _ in range(_CONNECT_ATTEMPTS):
                await asyncio.sleep(self.last_connect + _MIN_CONNECT_INTERVAL - self.loop.time())
                self.last_connect = self.loop.time()
                try:
                    self.conn = await self.open_connection()
                except Exception as exc:  # noqa: BLE001 - every failure is reported on the pushes
                    if _is_certificate_error(exc):
                        logger.error("APNs refused TLS at %s:%s: %s; check the pass certificate, key "
                                     "and CA file", self.host, self.port, exc)
                        reason = TLS_REJECTED
                        break
                    logger.warning("APNs connection to %s:%s failed: %r", self.host, self.port, exc)
                else:
                    self.conn.send_queued()
                    return
            self.fail_queue(reason)
        finally:
            self.connecting = None

    async def open_connection(self) -> _Connection:
        """TLS + HTTP/2 preface, returned once the server's SETTINGS say how many streams it takes."""
        _, conn = await asyncio.wait_for(self.loop.create_connection(
            lambda: _Connection(self), self.host, self.port, ssl=self.context), 10)
        try:
            await asyncio.wait_for(asyncio.shield(conn.ready), 10)
        except BaseException:
            conn.transport.abort()
            raise
        if not conn.usable:
            raise conn.error
        self.connections.add(conn)
        return conn

    def retired(self, conn: _Connection) -> None:
        """A connection that takes no new pushes (GOAWAY, stream ids used up) is replaced."""
        if conn is self.conn:
            self.conn = None
        self.pump()

    def requeue(self, conn: _Connection) -> None:
        """Send a dead connection's unanswered pushes again, a bounded number of times."""
        pushes = list(conn.requests.values())
        conn.requests.clear()
        for push in pushes:
            batch, index = push
            sent_again = batch.resends.get(index, 0)
            if sent_again < _RESENDS:
                batch.resends[index] = sent_again + 1
                self.resend.append(push)
            else:
                batch.finish(index, PushResult(batch.tokens[index], 0, CONNECTION_FAILED))

    def connection_lost(self, conn: _Connection) -> None:
        """Resend what the connection left unanswered, on a new one."""
        if conn in self.connections:
            logger.info("APNs connection closed: %r", conn.error)
            self.connections.discard(conn)
        if conn is self.conn:
            self.conn = None
        self.requeue(conn)
        if _is_certificate_error(conn.error):
            self.fail_queue(TLS_REJECTED)
        self.pump()

    def fail_queue(self, reason: str) -> None:
        """Give every push not in flight a status-0 result."""
        for batch, index in self.resend:
            batch.finish(index, PushResult(batch.tokens[index], 0, reason))
        for batch in self.queue:
            for index in batch.todo[batch.cursor:]:
                batch.finish(index, PushResult(batch.tokens[index], 0, reason))
        self.resend.clear()
        self.queue.clear()

    def time_out(self, batch: _Batch) -> None:
        """Timeout results for a late batch; a connection sitting on its pushes is dropped."""
        for conn in list(self.connections):
            if any(push[0] is batch for push in conn.requests.values()):
                logger.warning("APNs did not answer within the timeout; dropping the connection")
                conn.transport.abort()
        batch.fail_unanswered(TIMED_OUT)

    async def close(self) -> None:
        """Fail waiting pushes, close connections politely (abort after 2 s), stop the executor."""
        if self.connecting is not None:
            self.connecting.cancel()
            await asyncio.gather(self.connecting, return_exceptions=True)
        self.fail_queue(CONNECTION_FAILED)
        for conn in list(self.connections):
            conn.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), 2)
            except asyncio.TimeoutError:
                conn.transport.abort()
                await conn.closed
        await self.loop.shutdown_default_executor()
