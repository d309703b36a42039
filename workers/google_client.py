"""The Google Wallet REST client: service-account tokens from google-auth (fetched from the key file's token_uri,
cached until they expire), one connection pool per process (kept-open connections), every call paced, and
Google's answers turned into what the job runner understands (RetryLater, DeliveryFailed).

TLS trust honours the standard REQUESTS_CA_BUNDLE (or SSL_CERT_FILE), and an HTTPS_PROXY / NO_PROXY, read when
the client is made: a loopback fake with a test CA works without code changes."""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.urllib3
import requests
import urllib3
from google.oauth2 import service_account

from app.config import Config, GoogleConfig, trusted_ca_file
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
        ca_file = trusted_ca_file()
        # Wallet calls and google-auth's token requests go straight through urllib3 (requests' per-call
        # environment and proxy lookups cost more than the call itself on loopback); the environment is read
        # once, here.
        proxy = requests.utils.get_environ_proxies(self.base_url).get("https")
        options = dict(maxsize=pool_size, block=False, retries=False, ca_certs=ca_file, cert_reqs="CERT_REQUIRED",
                       timeout=urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1]))
        self.pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        self.credentials = service_account.Credentials.from_service_account_info(
            google.service_account.info, scopes=[WALLET_SCOPE])
        self._token_lock = threading.Lock()

    def call(self, method: str, resource: str, resource_id: str | None = None, body: dict | None = None,
             action: str = "") -> tuple[int, dict]:
        """One paced call to `{base}/{resource}[/{id}][/{action}]`: (status, JSON) for a success, 404 or 409;
        raises for the rest. A 401 refreshes the token and tries once more."""
        path = f"/{resource}" + (f"/{quote(resource_id, safe='')}" if resource_id else "") + \
            (f"/{action}" if action else "")
        data = json.dumps(body).encode() if body is not None else None
        for fresh_token in (False, True):
            headers = {"Authorization": f"Bearer {self._token(force=fresh_token)}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            self.pacer.wait()
            try:
                response = self.pool.request(method, self.base_url + path, body=data, headers=headers)
            except urllib3.exceptions.HTTPError as error:
                raise RetryLater(f"Google Wallet unreachable ({method} {path}): {error}") from None
            if response.status != 401:
                break
        return response.status, self._outcome(method, path, response)

    def _token(self, force: bool) -> str:
        with self._token_lock:
            if force or not self.credentials.valid:
                try:
                    self.credentials.refresh(google.auth.transport.urllib3.Request(self.pool))
                except google.auth.exceptions.RefreshError as error:
                    if getattr(error, "retryable", False):
                        raise RetryLater(f"Google's token endpoint failed: {error}") from None
                    raise DeliveryFailed(f"Google refused the service account {self.account_email} a token "
                                         f"(GOOGLE_SERVICE_ACCOUNT_FILE): {error}") from None
                except google.auth.exceptions.TransportError as error:
                    raise RetryLater(f"Google's token endpoint unreachable: {error}") from None
            return self.credentials.token

    def _outcome(self, method: str, path: str, response: urllib3.BaseHTTPResponse) -> dict:
        status = response.status
        answer = _json(response.data)
        if status < 300 or status in (404, 409):
            return answer
        message = google_message(answer) or str(response.reason)
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
        self.pool.clear()


def google_message(answer: dict) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error.get("message", "")) if isinstance(error, dict) else ""


def _is_quota(answer: dict, message: str) -> bool:
    error = answer.get("error") if isinstance(answer, dict) else None
    reasons = [item.get("reason") for item in (error or {}).get("errors", []) if isinstance(item, dict)]
    return "quotaExceeded" in reasons or "quota exceeded" in message.lower()


def _json(data: bytes) -> dict:
    try:
        answer = json.loads(data) if data else {}
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
