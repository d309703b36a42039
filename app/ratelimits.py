"""Rate limits (flask-limiter): per API key on the merchant API, per client address on failed authentication,
the public card link, Apple's web service and its unauthenticated log. Counters live in Redis when REDIS_URL is
set (shared by every process), in memory otherwise; if Redis is down the limits go on in memory instead of
failing requests.

The client address is `request.remote_addr`, which ProxyFix (TRUSTED_PROXIES) has already set to the client
behind trusted proxies; a forged X-Forwarded-For from the client itself is ignored."""

from __future__ import annotations

import hashlib
import math
import time

import limits
from flask import Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

import app.till_sessions as till_sessions
from app.api import blueprints as api_blueprints
from app.api_key_cache import ApiKeyCache
from app.config import Config
from app.dashboard import bp as dashboard_bp
from app.dashboard.sign_in import SIGN_IN_ENDPOINT as DASHBOARD_SIGN_IN_ENDPOINT
from app.dashboard.sign_in import sign_in_throttled as dashboard_sign_in_throttled
from app.domain import users
from app.errors import problem
from app.google import bp as google_bp
from app.pages import bp as pages_bp
from app.pages.checkout import sign_in_throttled
from app.pages.join import join_throttled
from app.wallet import bp as wallet_bp

KEY_PREFIX = "punchpass-limits"
CARD_LINK_ENDPOINTS = ("pages.public_pass", "pages.card_page")
# The customer's forms (enroll, mail a lost card's link, spend that link): per address, RATE_LIMIT_JOIN
JOIN_ENDPOINTS = ("pages.join_submit", "pages.lost_card_submit", "pages.member_link_use")
SIGN_IN_ENDPOINT = "pages.checkout_sign_in"
DEVICE_LOG_ENDPOINT = "wallet.device_log"


def install_rate_limits(app: Flask, config: Config, api_keys: ApiKeyCache) -> Limiter:
    """One limiter per app, so every test app has its own limits and counters. The per-key limit of the merchant
    API is ours (`ApiKeyLimit`): its Redis round trip also reads the API keys' revocation generation."""
    rates = config.rate_limits
    redis_options = {"socket_connect_timeout": 0.5, "socket_timeout": 1} if config.redis_url else {}
    limiter = Limiter(client_address, app=app, storage_uri=config.redis_url or "memory://",
                      storage_options=redis_options, key_prefix=KEY_PREFIX, strategy="fixed-window",
                      in_memory_fallback_enabled=True, swallow_errors=True, headers_enabled=False)
    api_limit = ApiKeyLimit(rates.api_key, rates.failed_auth, api_keys)
    app.before_request(api_limit)
    app.after_request(api_limit.count_failed_auth)
    for blueprint in api_blueprints:
        limiter.exempt(blueprint)  # ApiKeyLimit has both of its limits: flask-limiter need not look at all
    limiter.shared_limit(rates.public, scope="public")(wallet_bp)
    limiter.shared_limit(rates.public, scope="public", exempt_when=_not_card_link)(pages_bp)
    limiter.shared_limit(rates.sign_in, scope="sign-in", exempt_when=_not_sign_in)(pages_bp)
    limiter.shared_limit(rates.dashboard_sign_in, scope="dashboard-sign-in", exempt_when=_not_dashboard_sign_in,
                         deduct_when=_unauthorised)(dashboard_bp)  # wrong passwords only, per address
    # ...and per email typed, known or not: an unknown email is throttled exactly like a locked account, so the
    # answer never tells whether an account exists.
    limiter.shared_limit(f"{users.MAX_FAILED_SIGN_INS}/{int(users.LOCK_DURATION.total_seconds())} seconds",
                         scope="dashboard-account", key_func=_sign_in_email, exempt_when=_not_dashboard_sign_in,
                         deduct_when=_unauthorised)(dashboard_bp)
    limiter.shared_limit(rates.join, scope="join", exempt_when=_not_join_form)(pages_bp)
    limiter.shared_limit(rates.device_log, scope="device-log", exempt_when=_not_device_log)(wallet_bp)
    # the save link and class images; Google's own callbacks come from few addresses and are signed
    limiter.shared_limit(rates.public, scope="public",
                         exempt_when=lambda: request.endpoint == "google.callbacks")(google_bp)
    app.register_error_handler(RateLimitExceeded, lambda error: _too_many_requests(limiter))
    return limiter


class ApiKeyLimit:
    """The merchant API's two limits, fixed windows like the others: RATE_LIMIT_API_KEY per presented key, and
    RATE_LIMIT_FAILED_AUTH per client address on answers that were 401. One Redis round trip per request, by the
    script that also reads the API keys' revocation generation (left in `g.api_key_generation` for `app.auth`):
    it counts the key's hit and reads the address's failed authentications; a 401 then counts one more. In memory
    without Redis or when it does not answer (the keys are then looked up in the database)."""

    API_BLUEPRINTS = frozenset(blueprint.name for blueprint in api_blueprints)

    def __init__(self, rate: str, failed_auth_rate: str, api_keys: ApiKeyCache):
        self.items = limits.parse_many(rate)
        self.failed_auth_items = limits.parse_many(failed_auth_rate)
        self.api_keys = api_keys
        self.in_memory = FixedWindowRateLimiter(MemoryStorage())

    def __call__(self) -> Response | None:
        if request.blueprint not in self.API_BLUEPRINTS:
            return None
        identity, address = api_key_identity(), client_address()
        counted = self.api_keys.generation_and_counts(
            [(item.key_for(KEY_PREFIX, "api-key", identity), item.get_expiry()) for item in self.items],
            [item.key_for(KEY_PREFIX, "failed-auth", address) for item in self.failed_auth_items])
        g.api_key_generation = counted[0] if counted else None
        if counted:
            _, hits, failures = counted
            over = [left for item, (count, left) in zip(self.items, hits, strict=True) if count > item.amount]
            over += [left for item, (count, left) in zip(self.failed_auth_items, failures, strict=True)
                     if count >= item.amount]
        else:
            over = [self._seconds_left(item, "failed-auth", address) for item in self.failed_auth_items
                    if not self.in_memory.test(item, "failed-auth", address)]
            over += [self._seconds_left(item, "api-key", identity) for item in self.items
                     if not self.in_memory.hit(item, "api-key", identity)]
        return too_many_requests(max(1, *over)) if over else None

    def count_failed_auth(self, response: Response) -> Response:
        """After a merchant API answer of 401: one more failed authentication for the client's address."""
        if response.status_code != 401 or request.blueprint not in self.API_BLUEPRINTS:
            return response
        address = client_address()
        counted = g.get("api_key_generation") is not None and self.api_keys.generation_and_counts(
            [(item.key_for(KEY_PREFIX, "failed-auth", address), item.get_expiry()) for item in self.failed_auth_items])
        if not counted:  # no Redis, or it did not answer: counted where the check then looks, in memory
            for item in self.failed_auth_items:
                self.in_memory.hit(item, "failed-auth", address)
        return response

    def _seconds_left(self, item, scope: str, identity: str) -> int:
        return math.ceil(self.in_memory.get_window_stats(item, scope, identity).reset_time - time.time())


def client_address() -> str:
    return request.remote_addr or "unknown"


def api_key_identity() -> str:
    """The presented key, hashed (the limiter's storage never sees it); the checkout page's session cookie counts
    like a key; neither counts per address. Only a Bearer header names a key: any other scheme falls back to the
    cookie in auth, so it must here too, or a new made-up header per request would get a new bucket each time."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        header = request.cookies.get(till_sessions.COOKIE, "")
    if not header:
        return f"address:{client_address()}"
    return "key:" + hashlib.sha256(header.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _sign_in_email() -> str:
    email = request.form.get("email", "").strip().lower()
    return "email:" + hashlib.sha256(email.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def retry_after_seconds(limiter: Limiter) -> int:
    """Seconds until the breached limit's window resets (at least 1)."""
    breached = limiter.current_limit
    if breached is None:
        return 1
    try:
        return max(1, math.ceil(breached.window[0] - time.time()))
    except Exception:  # storage gone between the check and now: any honest small number will do
        return 1


def _too_many_requests(limiter: Limiter) -> Response:
    """Apple's web service gets a plain 429 (its clients read only the status); everything else problem+json."""
    headers = {"Retry-After": str(retry_after_seconds(limiter))}
    if request.endpoint == SIGN_IN_ENDPOINT:  # a person at a till, not a program: the form again, saying to wait
        return sign_in_throttled(retry_after_seconds(limiter))
    if request.endpoint == DASHBOARD_SIGN_IN_ENDPOINT:
        return dashboard_sign_in_throttled(retry_after_seconds(limiter))
    if request.endpoint in JOIN_ENDPOINTS:
        return join_throttled(retry_after_seconds(limiter))
    if request.blueprint == wallet_bp.name:
        return Response("", status=429, mimetype="text/plain", headers=headers)
    return too_many_requests(retry_after_seconds(limiter))


def too_many_requests(retry_after: int) -> Response:
    return problem(429, "Too Many Requests", "Too many requests; try again after the Retry-After seconds.",
                   headers={"Retry-After": str(retry_after)})


def _unauthorised(response: Response) -> bool:
    return response.status_code == 401


def _not_card_link() -> bool:
    return request.endpoint not in CARD_LINK_ENDPOINTS


def _not_sign_in() -> bool:
    return not (request.endpoint == SIGN_IN_ENDPOINT and request.method == "POST")


def _not_dashboard_sign_in() -> bool:
    return not (request.endpoint == DASHBOARD_SIGN_IN_ENDPOINT and request.method == "POST")


def _not_join_form() -> bool:
    return not (request.endpoint in JOIN_ENDPOINTS and request.method == "POST")


def _not_device_log() -> bool:
    return request.endpoint != DEVICE_LOG_ENDPOINT
