"""A loopback webhook receiver for tests and benchmarks: a real HTTP/1.1 server (TLS optional) that checks the
`Punchpass-Signature` of every POST, records what it got, and answers as told (say 500 first, then 200).

    python -m tests.fakes.webhooks     # prints its URL; answers 200 to everything and only counts
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None  # None: no secret to check against
    sni: str | None
    status: int  # what the receiver answered
    at: float = field(default_factory=time.time)


def signature_matches(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    """The receiver's side of the scheme, as README.md shows it."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if not parts.get("t", "").isdigit() or abs((now or time.time()) - int(parts["t"])) > tolerance:
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class FakeWebhookReceiver:
    """Answers the statuses in `answers` in turn, then `default_status`; a 3xx carries `Location: redirect_to`.
    A POST whose signature does not check out (once `secret` is set) gets 401, as a careful receiver's would."""

    def __init__(self, *, tls: tuple[str, str] | None = None, record: bool = True) -> None:
        self.secret: str | None = None
        self.answers: list[int] = []
        self.default_status = 200
        self.redirect_to = "http://127.0.0.1:9/elsewhere"
        self.record = record
        self.received: list[Received] = []
        self.count = 0
        self._lock = threading.Lock()
        self._sni = threading.local()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            context.sni_callback = _remember_sni
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, host: str = "127.0.0.1", path: str = "/hooks") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> "FakeWebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str, headers: dict, body: bytes, sni: str | None) -> int:
        with self._lock:
            ok = None if self.secret is None else signature_matches(
                self.secret, headers.get("Punchpass-Signature", ""), body)
            status = self.answers.pop(0) if self.answers else self.default_status
            if ok is False:
                status = 401
            self.count += 1
            if self.record:
                self.received.append(Received(path, headers, body, ok, sni, status))
            return status

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver
            disable_nagle_algorithm = True  # headers and body leave at once, not one delayed ACK apart

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sni = getattr(self.connection, "punchpass_sni", None)
                status = receiver._answer(self.path, dict(self.headers.items()), body, sni)
                answer = b'{"ok": true}' if status < 300 else b'{"error": "told to fail"}'
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args):
                pass

        return Handler


def _remember_sni(sock, name, _context) -> None:
    """The server name the client sent in its TLS hello, kept on the connection for the handler."""
    sock.punchpass_sni = name


def main() -> None:
    with FakeWebhookReceiver(record=False) as receiver:
        print(receiver.url(), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
