"""The one module that talks to Firebase Cloud Messaging, through firebase-admin: one firebase App per service-
account key (the merchant's own or the instance's), kept while the key stays the same, so its OAuth token is
cached until it expires. The OAuth endpoint is the key's `token_uri`. Both go through requests, so TLS trust is
requests' own: `REQUESTS_CA_BUNDLE` (then `CURL_CA_BUNDLE`), e.g. a local fake's CA.

FCM_BASE_URL: firebase-admin has no setting for the FCM host (its maintainers decline one), so for another host
the messaging service's URL attribute is replaced here, and nowhere else. This reaches into firebase-admin 7's
private `_MessagingService` (pinned `<8` in pyproject.toml); tests/workers/test_fcm.py fails if that changes."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass

import firebase_admin
import requests
from firebase_admin import _http_client, credentials, exceptions, messaging
from google.auth.exceptions import RefreshError, TransportError

from app.config import FCM_GOOGLE_URL
from app.domain.notifications import Notice
from passes.google import ServiceAccount

SEND_LIMIT = 500  # FCM's: send_each takes at most 500 messages
TIMEOUT = 30  # seconds per request (firebase-admin's default is 120)
SENT, GONE, RETRY, REFUSED = "sent", "gone", "retry", "refused"


@dataclass(frozen=True)
class Outcome:
    """What became of one token's message: SENT; GONE (FCM says the token is dead: forget it); RETRY (429, 5xx,
    network: try again later); REFUSED (FCM will not take it from these credentials, e.g. another project's
    token). `error` is FCM's message, never the key."""
    status: str
    error: str | None = None


class CredentialsRefused(Exception):
    """The token endpoint rejected the service account (a revoked or deleted key): no send can succeed."""


class FcmUnreachable(Exception):
    """The token endpoint could not be reached or failed for now: try the whole batch again later."""


class FcmSender:
    """Sends with one service-account key, to FCM or to the host FCM_BASE_URL names."""

    def __init__(self, account: ServiceAccount, base_url: str = FCM_GOOGLE_URL):
        self.project_id = account.project_id
        self.app = firebase_admin.initialize_app(
            credentials.Certificate(account.info), options={"projectId": account.project_id, "httpTimeout": TIMEOUT},
            name=f"punchpass-fcm-{uuid.uuid4().hex}")
        if base_url != FCM_GOOGLE_URL:
            _point_at(messaging._get_messaging_service(self.app), base_url, account.project_id)

    def send(self, tokens: list[str], notice: Notice, data: dict[str, str]) -> dict[str, Outcome]:
        """The same notification to every token, SEND_LIMIT per `send_each`; an outcome per token."""
        outcomes: dict[str, Outcome] = {}
        for start in range(0, len(tokens), SEND_LIMIT):
            batch = tokens[start:start + SEND_LIMIT]
            try:
                answers = messaging.send_each([_message(token, notice, data) for token in batch], app=self.app)
            except exceptions.UnknownError as error:  # firebase-admin wraps what escaped a sending thread
                raise _token_endpoint_failure(error.cause or error) from None
            for token, answer in zip(batch, answers.responses, strict=True):
                outcomes[token] = Outcome(SENT) if answer.success else _outcome(answer.exception)
        return outcomes

    def close(self) -> None:
        firebase_admin.delete_app(self.app)


def _point_at(service, base_url: str, project_id: str) -> None:
    """The v1 send URL on another host, with the connection pool and retries firebase-admin mounts for Google's
    host only (send_each runs a thread per message)."""
    service._fcm_url = f"{base_url}/v1/projects/{project_id}/messages:send"
    service._client.session.mount(base_url, requests.adapters.HTTPAdapter(
        pool_connections=100, pool_maxsize=100, max_retries=_http_client.DEFAULT_RETRY_CONFIG))


def _message(token: str, notice: Notice, data: dict[str, str]) -> messaging.Message:
    message = messaging.Message(notification=messaging.Notification(title=notice.title, body=notice.body),
                                data=data)
    # Set after construction: firebase-admin 7.5+ warns that `token=` is deprecated for `fid`, but an app's
    # registration token is still FCM v1's `message.token` (an installation id is something else).
    message.token = token
    return message


def _outcome(error: Exception) -> Outcome:
    text = f"{type(error).__name__}: {error}"[:300]
    if isinstance(error, exceptions.NotFoundError):  # UnregisteredError included: the app is gone
        return Outcome(GONE, text)
    if isinstance(error, exceptions.InvalidArgumentError):
        return Outcome(GONE if _about_the_token(error) else REFUSED, text)
    if isinstance(error, (exceptions.ResourceExhaustedError, exceptions.UnavailableError, exceptions.InternalError,
                          exceptions.DeadlineExceededError, exceptions.UnknownError)):
        return Outcome(RETRY, text)
    return Outcome(REFUSED, text)  # SenderIdMismatch, ThirdPartyAuth, PermissionDenied, Unauthenticated


def _about_the_token(error: exceptions.InvalidArgumentError) -> bool:
    """FCM answers INVALID_ARGUMENT both for a malformed token and for a bad message; only the first names the
    token (`BadRequest.fieldViolations[].field == "message.token"`, or the message says so)."""
    response = getattr(error, "http_response", None)
    try:
        details = response.json()["error"].get("details", []) if response is not None else []
    except (ValueError, KeyError, TypeError, AttributeError):
        details = []
    fields = {violation.get("field") for detail in details if isinstance(detail, dict)
              for violation in detail.get("fieldViolations", []) if isinstance(violation, dict)}
    return "message.token" in fields or "registration token" in str(error).lower()


def _token_endpoint_failure(cause: BaseException) -> Exception:
    if isinstance(cause, RefreshError) and not getattr(cause, "retryable", False):
        return CredentialsRefused(f"the token endpoint refused the service account: {cause}"[:500])
    if isinstance(cause, (RefreshError, TransportError, requests.RequestException)):
        return FcmUnreachable(f"the token endpoint failed: {cause}"[:500])
    return FcmUnreachable(f"{type(cause).__name__}: {cause}"[:500])


_senders: dict[str, tuple[str, FcmSender]] = {}  # who ("merchant:3", "instance") -> (key fingerprint, sender)
_senders_lock = threading.Lock()


def sender_for(owner: str, account: ServiceAccount, base_url: str) -> FcmSender:
    """The cached sender of `owner`, made anew when its key (or the base URL) changed."""
    fingerprint = hashlib.sha256(json.dumps([account.info, base_url], sort_keys=True).encode()).hexdigest()
    with _senders_lock:
        cached = _senders.get(owner)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if cached is not None:
            cached[1].close()
        sender = FcmSender(account, base_url)
        _senders[owner] = (fingerprint, sender)
        return sender


def close_senders() -> None:
    """Forget every cached sender (tests; a worker shutting down)."""
    with _senders_lock:
        for _, sender in _senders.values():
            sender.close()
        _senders.clear()
