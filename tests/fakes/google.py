"""A loopback Google for tests and benchmarks: the OAuth token endpoint of a service account and the Wallet REST
API for loyalty classes and objects (insert, get, patch, update, addMessage), over TLS with HTTP/1.1 keep-alive.

Like Google it checks the JWT-bearer assertion against the service account's public key, demands the access token
it handed out, answers 409 to a duplicate insert, 404 to an unknown id, and 403 quotaExceeded to a fourth
notifying message on one object within 24 hours. Stricter than Google: every class and object body must fit the
walletobjects v1 discovery document (`walletobjects_schema`), and a class must always be sent UNDER_REVIEW. It
also serves callback root keys at /keys. Run it alone, e.g. for bench/google.py:

    python -m tests.fakes.google --cert server.pem --key server.key --port 8443 --no-validate
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from passes.google_callbacks import length_value
from tests.fakes.walletobjects_schema import schema_errors

API_PREFIX = "/walletobjects/v1/"
NOTIFY_CAP = 3  # TEXT_AND_NOTIFY messages per object per 24 h
_SCHEMAS = {"loyaltyClass": "LoyaltyClass", "loyaltyObject": "LoyaltyObject"}


def make_service_account(token_uri: str, client_email: str = "punchpass@test-project.iam.gserviceaccount.com"
                         ) -> dict:
    """A service-account key file's contents with a fresh RSA key, pointing its token_uri at the fake."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "test-project", "private_key_id": "test-key-1",
            "private_key": pem, "client_email": client_email, "client_id": "1", "token_uri": token_uri}


@dataclass
class Recorded:
    method: str
    path: str  # without the query
    body: dict | None
    status: int
    at: float = field(default_factory=time.time)


class FakeGoogle:
    def __init__(self, server_cert, server_key, service_account: dict | None = None, *, validate: bool = True,
                 record: bool = True, host: str = "127.0.0.1", port: int = 0):
        self.validate, self.record = validate, record
        self.public_key = (serialization.load_pem_private_key(service_account["private_key"].encode(), None)
                           .public_key() if service_account else None)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(server_cert, server_key)
        self.host, self.port = host, port
        self.lock = threading.Lock()
        self.classes: dict[str, dict] = {}
        self.objects: dict[str, dict] = {}
        self.requests: list[Recorded] = []
        self.request_count = 0
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.token_lifetime = 3600
        self.notified: dict[str, list[float]] = {}
        self.patched: dict[str, list[tuple[float, int | None]]] = {}  # object id -> (arrival, balance) per PATCH
        self.callback_keys: dict = {"keys": []}
        self._failures: list[list] = []  # [method, path part, status, body, times left]
        self._counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def wallet_url(self) -> str:
        return self.base_url + "/walletobjects/v1"

    @property
    def token_uri(self) -> str:
        return self.base_url + "/token"

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(_Handler):
            google = fake

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._server.socket = self.context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="fake-google", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def fail(self, method: str, path_part: str, status: int, body: dict | None = None, times: int = 1) -> None:
        """Answer the next `times` requests of `method` whose path contains `path_part` with `status`."""
        with self.lock:
            self._failures.append([method, path_part, status, body or _error(status, f"fake {status}"), times])

    def expire_tokens(self) -> None:
        """Every access token handed out so far is refused from now on (401)."""
        with self.lock:
            self.tokens.clear()

    def calls(self, method: str | None = None, path_part: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and path_part in r.path]

    # -- request handling (called from the server's threads) --

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict]:
        failure = self._programmed_failure(method, path)
        if failure is not None:
            return failure
        if path == "/keys" and method == "GET":
            return 200, self.callback_keys
        if path == "/stats" and method == "GET":  # for benchmarks in another process
            with self.lock:
                return 200, {"requests": self.request_count, "tokens_issued": self.tokens_issued}
        if path == "/patches" and method == "GET":  # for the earn -> PATCH latency benchmark
            with self.lock:
                return 200, self.patched
        if path == "/token" and method == "POST":
            return self._token(body)
        if not self._authorized(headers.get("Authorization", "")):
            return 401, _error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return 400, _error(400, "Invalid JSON payload received.")
        if not path.startswith(API_PREFIX):
            return 404, _error(404, f"no route {path}", "NOT_FOUND")
        parts = [unquote(part) for part in path[len(API_PREFIX):].split("/")]
        with self.lock:
            return self._wallet(method, parts, data)

    def _token(self, body: bytes) -> tuple[int, dict]:
        form = parse_qs(body.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        try:  # google-auth always names Google's token endpoint as the audience, whatever token_uri says
            claims = jwt.decode(form["assertion"][0], self.public_key, algorithms=["RS256"],
                                options={"verify_aud": False})
        except (KeyError, jwt.PyJWTError) as error:
            return 400, {"error": "invalid_grant", "error_description": str(error)}
        if "wallet_object.issuer" not in claims.get("scope", ""):
            return 400, {"error": "invalid_scope"}
        with self.lock:
            self.tokens_issued += 1
            token = f"fake-token-{self.tokens_issued}"
            self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def _authorized(self, header: str) -> bool:
        with self.lock:
            return header.startswith("Bearer ") and header[7:] in self.tokens

    def _programmed_failure(self, method: str, path: str) -> tuple[int, dict] | None:
        with self.lock:
            for rule in self._failures:
                if rule[0] == method and rule[1] in path and rule[4] > 0:
                    rule[4] -= 1
                    return rule[2], rule[3]
        return None

    def _wallet(self, method: str, parts: list[str], data) -> tuple[int, dict]:
        kind = parts[0]
        if kind not in _SCHEMAS:
            return 404, _error(404, f"no resource {kind}", "NOT_FOUND")
        store = self.classes if kind == "loyaltyClass" else self.objects
        if len(parts) == 1 and method == "POST":
            return self._insert(kind, store, data)
        resource_id = parts[1] if len(parts) > 1 else ""
        if resource_id not in store:
            return 404, _error(404, f"Requested entity was not found: {resource_id}", "NOT_FOUND")
        if len(parts) == 3 and parts[2] == "addMessage" and method == "POST":
            return self._add_message(kind, store[resource_id], data)
        if len(parts) != 2:
            return 404, _error(404, "no such method", "NOT_FOUND")
        if method == "GET":
            return 200, store[resource_id]
        if method in ("PATCH", "PUT"):
            invalid = self._invalid(kind, data)
            if invalid:
                return invalid
            store[resource_id] = {**store[resource_id], **data} if method == "PATCH" else dict(data)
            if kind == "loyaltyObject":
                balance = ((data.get("loyaltyPoints") or {}).get("balance") or {}).get("int")
                self.patched.setdefault(resource_id, []).append((time.time(), balance))
            return 200, store[resource_id]
        return 405, _error(405, "method not allowed")

    def _insert(self, kind: str, store: dict, data) -> tuple[int, dict]:
        invalid = self._invalid(kind, data)
        if invalid:
            return invalid
        if not isinstance(data.get("id"), str):
            return 400, _error(400, "Resource id is required.")
        if data["id"] in store:
            return 409, _error(409, f"Resource already exists: {data['id']}", "ALREADY_EXISTS")
        if kind == "loyaltyObject" and data.get("classId") not in self.classes:
            return 404, _error(404, f"Class not found: {data.get('classId')}", "NOT_FOUND")
        store[data["id"]] = dict(data)
        return 200, store[data["id"]]

    def _add_message(self, kind: str, resource: dict, data) -> tuple[int, dict]:
        invalid = self._invalid("addMessage", data)
        if invalid:
            return invalid
        message = data["message"]
        if message.get("messageType") == "TEXT_AND_NOTIFY":
            now = time.time()
            recent = [t for t in self.notified.get(resource["id"], []) if t > now - 86400]
            if len(recent) >= NOTIFY_CAP:
                return 403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": (
                    f"Quota exceeded for issuer {resource['id'].split('.')[0]} when adding TEXT_AND_NOTIFY message"),
                    "errors": [{"reason": "quotaExceeded", "domain": "global"}]}}
            self.notified[resource["id"]] = [*recent, now]
        resource["messages"] = [*resource.get("messages", []), message]
        return 200, {"resource": resource}

    def _invalid(self, kind: str, data) -> tuple[int, dict] | None:
        if not isinstance(data, dict):
            return 400, _error(400, "a JSON object is required")
        if not self.validate:
            return None
        errors = schema_errors(data, {"addMessage": "AddMessageRequest", **_SCHEMAS}[kind])
        if kind == "loyaltyClass" and data.get("reviewStatus") != "UNDER_REVIEW":
            errors.append("reviewStatus must be UNDER_REVIEW on every insert and update")
        return (400, _error(400, "; ".join(errors))) if errors else None


class _Handler(BaseHTTPRequestHandler):
    google: FakeGoogle
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    disable_nagle_algorithm = True  # headers and body go as separate writes: no 40 ms delayed-ACK stall

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        status, answer = self.google.handle(self.command, path, self.headers, body)
        google = self.google
        with google.lock:
            google.request_count += path not in ("/stats", "/patches")
            if google.record:
                google.requests.append(Recorded(self.command, path, _json_or_none(body), status))
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = _serve

    def log_message(self, *args) -> None:  # quiet
        pass


class CallbackSigner:
    """Google's side of the save/delete callbacks: a P-256 root key (published at the fake's /keys) signs an
    intermediate key, which signs each message (ECv2SigningOnly)."""

    def __init__(self, sender_id: str = "GooglePayPasses", key_lifetime_ms: int = 86_400_000):
        self.sender_id = sender_id
        self.root = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = ec.generate_private_key(ec.SECP256R1())
        self.key_expiration = int(time.time() * 1000) + key_lifetime_ms

    def keys_document(self) -> dict:
        return {"keys": [{"keyValue": _spki(self.root), "protocolVersion": "ECv2SigningOnly",
                          "keyExpiration": str(self.key_expiration)}]}

    def callback(self, issuer_id: str, message: dict) -> dict:
        signed_key = json.dumps({"keyValue": _spki(self.intermediate), "keyExpiration": str(self.key_expiration)})
        signed_message = json.dumps(message)
        return {
            "signature": _sign(self.intermediate, length_value(self.sender_id, issuer_id, "ECv2SigningOnly",
                                                               signed_message)),
            "intermediateSigningKey": {"signedKey": signed_key, "signatures": [
                _sign(self.root, length_value(self.sender_id, "ECv2SigningOnly", signed_key))]},
            "protocolVersion": "ECv2SigningOnly",
            "signedMessage": signed_message,
        }


def callback_message(class_id: str, object_id: str, event_type: str = "save", nonce: str | None = None) -> dict:
    return {"classId": class_id, "objectId": object_id, "eventType": event_type,
            "expTimeMillis": int(time.time() * 1000) + 60_000, "count": 1, "nonce": nonce or uuid.uuid4().hex}


def _spki(key) -> str:
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _sign(key, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def _json_or_none(body: bytes):
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _error(code: int, message: str, status: str = "INVALID_ARGUMENT") -> dict:
    return {"error": {"code": code, "message": message, "status": status}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--service-account", required=True, help="the key file whose public key signs tokens")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--no-validate", action="store_true", help="skip the schema check (benchmarks)")
    args = parser.parse_args()
    with open(args.service_account, encoding="utf-8") as file:
        account = json.load(file)
    fake = FakeGoogle(args.cert, args.key, account, validate=not args.no_validate, record=False, port=args.port)
    fake.start()
    print(f"fake Google on {fake.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
