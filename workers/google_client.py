"""The Google Wallet REST client: service-account tokens from google-auth (fetched from the key file's token_uri,
cached until they expire), one requests.Session per process (kept-open connections), every call paced, and
Google's answers turned into what the job runner understands (RetryLater, DeliveryFailed).

TLS trust is requests' own: the standard REQUESTS_CA_BUNDLE, or SSL_CERT_FILE when that is all that is set, so a
loopback fake with a test CA works without code changes."""

from __future__ import annotations

import os
import threading
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter

from app.config import Config, GoogleConfig
from passes.google import WALLET_SCOPE
from workers.errors import DeliveryFailed, RetryLater
from workers.google_pacer import Pacer, make_pacer

TIMEOUT = (5, 30)  # seconds: connect, read


class QuotaExceeded(Exception):
    """403 quotaExceeded: the object had its 3 notifying messages of the last 24 hours. Never retried."""


class WalletClient:
    def __init__(self, google: GoogleConfig, pacer: Pacer, pool_size: int = 8):
        self.base_url, self.pacer = google.wallet_base_url, pacer
        self.issuer_id, self.account_email = google.issuer_id, google.service_account.client_email
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        if not os.environ.get("REQUESTS_CA_BUNDLE") and os.environ.get("SSL_CERT_FILE"):
            self.http.verify = os.environ["SSL_CERT_FILE"]
        self.credentials = service_account.Credentials.from_service_account_info(
            google.service_account.info, scopes=[WALLET_SCOPE])
        self._token_lock = threading.Lock()

    def call(self, method: str, resource: str, resource_id: str | None = None, body: dict | None = None,
             action: str = "") -> tuple[int, dict]:
        """One paced call to `{base}/{resource}[/{id}][/{action}]`: (status, JSON) for a success, 404 or 409;
        raises for the rest. A 401 refreshes the token and tries once more."""
        path = f"/{resource}" + (f"/{quote(resource_id, safe='')}" if resource_id else "") + \
            (f"/{action}" if action else "")
        for fresh_token in (False, True):
            headers = {"Authorization": f"Bearer {self._token(force=fresh_token)}"}
            self.pacer.wait()
            try:
                response = self.http.request(method, self.base_url + path, json=body, headers=headers,
                                             timeout=TIMEOUT)
            except requests.RequestException as error:
                raise RetryLater(f"Google Wallet unreachable ({method} {path}): {error}") from None
            if response.status_code != 401:
                break
        return response.status_code, self._outcome(method, path, response)

    def _token(self, force: bool) -> str:
        with self._token_lock:
            if force or not self.credentials.valid:
                try:
                    self.credentials.refresh(google.auth.transport.requests.Request(self.http))
                except google.auth.exceptions.RefreshError as error:
                    if getattr(error, "retryable", False):
                        raise RetryLater(f"Google's token endpoint failed: {error}") from None
                    raise DeliveryFailed(f"Google refused the service account {self.account_email} a token "
                                         f"(GOOGLE_SERVICE_ACCOUNT_FILE): {error}") from None
                except google.auth.exceptions.TransportError as error:
                    raise RetryLater(f"Google's token endpoint unreachable: {error}") from None
            return self.credentials.token

    def _outcome(self, method: str, path: str, response: requests.Response) -> dict:
        status = response.status_code
        answer = _json(response)
        if status < 300 or status in (404, 409):
            return answer
        message = google_message(answer) or response.reason
        if status == 429 or status >= 500:
            self.pacer.slow_down()
            raise RetryLater(f"Google Wallet answered {status} to {method} {path}: {message}")
        if status == 403 and _is_quota(answer, message):
            raise QuotaExceeded(message)
        if status == 403:
            raise DeliveryFailed(
                f"Google Wallet denied permission ({message}): the service account {self.account_email} is not a "
                f"user of issuer {self.issuer_id}; add it under Users in the Google Pay & Wallet Console")
        if status == 401:
            raise DeliveryFailed(f"Google Wallet refused a fresh token of {self.account_email}: {message}")
        raise DeliveryFailed(f"Google Wallet refused {method} {path} ({status}): {message}")

    def close(self) -> None:
        self.http.close()


def google_message(answer: dict) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error.get("message", "")) if isinstance(error, dict) else ""


def _is_quota(answer: dict, message: str) -> bool:
    error = answer.get("error") if isinstance(answer, dict) else None
    reasons = [item.get("reason") for item in (error or {}).get("errors", []) if isinstance(item, dict)]
    return "quotaExceeded" in reasons or "quota exceeded" in message.lower()


def _json(response: requests.Response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


_shared: dict[tuple, WalletClient] = {}
_shared_lock = threading.Lock()


def wallet_client(config: Config) -> WalletClient:
    """This process's client for these settings, kept (with its connections and token) across jobs."""
    google = config.google
    key = (os.getpid(), google.wallet_base_url, google.issuer_id, google.service_account.client_email,
           google.service_account.private_key_id, google.rate_limit, config.redis_url)
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            client = _shared[key] = WalletClient(google, make_pacer(google.rate_limit, config.redis_url))
        return client


def close_wallet_clients() -> None:
    """Close this process's clients (between tests)."""
    with _shared_lock:
        clients = list(_shared.values())
        _shared.clear()
    for client in clients:
        client.close()
