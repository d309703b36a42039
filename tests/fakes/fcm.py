"""A loopback Google for FCM tests: the OAuth token endpoint a service account's `token_uri` names, and FCM's v1
`messages:send`, over TLS (HTTP/1.1, what firebase-admin's `send_each` speaks through requests).

The token endpoint checks the RS256 assertion against the public key of the account it names (made by
`new_account`) and hands out a bearer token per account, so each recorded message says which account sent it.
Per registration token it answers as programmed (`fail`), with the bodies FCM sends."""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# FCM's answers (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode), by the name tests use
ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found.",
                     [{"@type": _FCM_ERROR, "errorCode": "UNREGISTERED"}]),
    "INVALID_TOKEN": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token",
                      [{"@type": _FCM_ERROR, "errorCode": "INVALID_ARGUMENT"},
                       {"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}]),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'.",
                       [{"@type": _FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}]),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch",
                           [{"@type": _FCM_ERROR, "errorCode": "SENDER_ID_MISMATCH"}]),
}
_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")


@dataclass(frozen=True)
class SentMessage:
    project_id: str
    client_email: str  # the service account whose bearer token came with it
    token: str
    title: str | None
    body: str | None
    data: dict
    message: dict  # as FCM received it


def new_service_account(token_uri: str, project_id: str = "punchpass-test") -> dict:
    """A service-account key file's content with a fresh RSA-2048 key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": project_id, "private_key_id": uuid.uuid4().hex,
            "private_key": pem, "client_email": f"fcm-{uuid.uuid4().hex[:8]}@{project_id}.iam.gserviceaccount.com",
            "client_id": "1234567890", "token_uri": token_uri}


class FakeFCM:
    def __init__(self, server_cert, server_key):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(server_cert, server_key)
        self._lock = threading.Lock()
        self._public_keys: dict[str, rsa.RSAPublicKey] = {}  # client_email -> key
        self._refused: set[str] = set()  # client_emails whose assertions get invalid_grant
        self._bearers: dict[str, str] = {}  # access token -> client_email
        self._rules: dict[str, list] = {}  # registration token -> [error name, times left or None]
        self.messages: list[SentMessage] = []
        self.token_requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def new_account(self, project_id: str = "punchpass-test") -> dict:
        info = new_service_account(self.base_url + "/token", project_id)
        key = serialization.load_pem_private_key(info["private_key"].encode(), None)
        with self._lock:
            self._public_keys[info["client_email"]] = key.public_key()
        return info

    def refuse(self, client_email: str) -> None:
        """The token endpoint answers invalid_grant for this account from now on (a deleted key)."""
        with self._lock:
            self._refused.add(client_email)

    def fail(self, token: str, error: str, times: int | None = None) -> None:
        """Answer the messages to `token` with one of ERRORS (`times` times, or always)."""
        with self._lock:
            self._rules[token] = [error, times]

    def sent_to(self, token: str) -> list[SentMessage]:
        with self._lock:
            return [message for message in self.messages if message.token == token]

    def __enter__(self) -> FakeFCM:
        threading.Thread(target=self.server.serve_forever, name="fake-fcm", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what the handler calls

    def issue_token(self, form: dict) -> tuple[int, dict]:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        claims = self._verified_claims(form.get("assertion", ""))
        if claims is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if "firebase.messaging" not in claims.get("scope", "") and "cloud-platform" not in claims.get("scope", ""):
            return 400, {"error": "invalid_scope"}
        access_token = f"fake-{uuid.uuid4().hex}"
        with self._lock:
            self.token_requests += 1
            self._bearers[access_token] = claims["iss"]
        return 200, {"access_token": access_token, "expires_in": 3600, "token_type": "Bearer"}

    def _verified_claims(self, assertion: str) -> dict | None:
        try:
            header, claims, signature = assertion.split(".")
            claims_json = json.loads(_unb64(claims))
            with self._lock:
                key = self._public_keys.get(claims_json["iss"])
                refused = claims_json["iss"] in self._refused
            if key is None or refused or json.loads(_unb64(header)).get("alg") != "RS256":
                return None
            key.verify(_unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return None
        return claims_json if claims_json.get("exp", 0) > time.time() else None

    def send(self, project_id: str, authorization: str, body: dict) -> tuple[int, dict]:
        with self._lock:
            sender = self._bearers.get(authorization.removeprefix("Bearer "))
        if sender is None:
            return 401, _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", [])
        message = body.get("message") or {}
        token = message.get("token")
        if not token:
            return 400, _error(400, "INVALID_ARGUMENT", "Exactly one of token, topic or condition is required", [])
        with self._lock:
            rule = self._rules.get(token)
            if rule is not None and rule[1] is not None:
                rule[1] -= 1
                if rule[1] < 0:
                    rule = None
            if rule is None:
                notification = message.get("notification") or {}
                self.messages.append(SentMessage(project_id, sender, token, notification.get("title"),
                                                 notification.get("body"), message.get("data") or {}, message))
        if rule is not None:
            status, name, text, details = ERRORS[rule[0]]
            return status, _error(status, name, text, details)
        return 200, {"name": f"projects/{project_id}/messages/{uuid.uuid4().hex[:16]}"}


def _error(code: int, status: str, message: str, details: list) -> dict:
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _handler(fake: FakeFCM):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            match = _SEND_PATH.match(self.path)
            if self.path == "/token":
                status, answer = fake.issue_token({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            elif match:
                status, answer = fake.send(match[1], self.headers.get("Authorization", ""), json.loads(raw))
            else:
                status, answer = 404, _error(404, "NOT_FOUND", "no such route in the fake", [])
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler
