"""One place that reads the environment: `load_config(environ)`, used by the web app, the worker and the CLI."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import limits

from passes import google
from passes.google_callbacks import GOOGLE_KEYS_URL, GOOGLE_SENDER_ID
from passes.storecard import check_nfc

DEV_PASS_TYPE_ID = "pass.dev.punchpass"
DEV_TEAM_ID = "PUNCHDEV01"
APNS_PRODUCTION_URL = "https://api.push.apple.com"  # Apple: Wallet push tokens are production tokens
GOOGLE_WALLET_URL = "https://walletobjects.googleapis.com/walletobjects/v1"
GOOGLE_RATE_LIMIT = 20.0  # Google Wallet FAQ: "rate limited to 20 requests per second" per Cloud project
FCM_GOOGLE_URL = "https://fcm.googleapis.com"  # the adapter posts to {FCM_BASE_URL}/v1/projects/{p}/messages:send


class ConfigError(Exception):
    """A setting is missing, malformed or inconsistent; the message names it."""


@dataclass(frozen=True)
class AppleConfig:
    pass_cert: Path
    pass_key: Path
    wwdr_cert: Path
    key_password: str | None = field(default=None, repr=False)
    pass_type_id: str = DEV_PASS_TYPE_ID
    team_id: str = DEV_TEAM_ID
    dev_chain: bool = False  # True when Punchpass made the certificates itself (development only)
    apns_base_url: str = APNS_PRODUCTION_URL
    apns_ca_file: Path | None = None
    nfc_public_key: str | None = None  # Base64 P-256 key from Apple's NFC certificate request: enables `nfc`
    personalization: bool = False  # Apple rewards enrollment; needs the NFC-enabled certificate


@dataclass(frozen=True)
class GoogleConfig:
    """Google Wallet: set when GOOGLE_SERVICE_ACCOUNT_FILE and GOOGLE_ISSUER_ID are."""
    service_account: google.ServiceAccount = field(repr=False)
    issuer_id: str
    wallet_base_url: str = GOOGLE_WALLET_URL
    rate_limit: float = GOOGLE_RATE_LIMIT  # Wallet API calls per second, shared by every worker
    callback_keys_url: str = GOOGLE_KEYS_URL
    callback_sender_id: str = GOOGLE_SENDER_ID
    smart_tap_issuers: tuple[str, ...] = ()  # GOOGLE_SMART_TAP_ISSUERS: enables Smart Tap on every class


@dataclass(frozen=True)
class RateLimits:
    """flask-limiter notation ("100/second", "300/minute;5000/hour"). Defaults leave a busy till and a café full
    of customers behind one address alone; they stop a script."""
    api_key: str = "100/second"  # RATE_LIMIT_API_KEY: per API key, the whole merchant API
    public: str = "20/second"  # RATE_LIMIT_PUBLIC: per client address, the card link and /wallet/v1/*
    failed_auth: str = "300/minute"  # RATE_LIMIT_FAILED_AUTH: per address, merchant API answers 401
    device_log: str = "60/minute"  # RATE_LIMIT_DEVICE_LOG: per address, /wallet/v1/log (no login, Apple says)
    sign_in: str = "10/minute"  # RATE_LIMIT_SIGN_IN: per address, attempts to sign a till in on /checkout
    dashboard_sign_in: str = "5/15 minutes"  # RATE_LIMIT_DASHBOARD_SIGN_IN: per address, wrong dashboard passwords
    join: str = "10/minute"  # RATE_LIMIT_JOIN: per address, enrollments and lost-card mails from /join pages


@dataclass(frozen=True)
class Retention:
    """How long rows nobody reads again are kept; the worker's sweep deletes older ones."""
    idempotency_days: int = 7  # RETENTION_DAYS_IDEMPOTENCY: a retry later than this counts again
    outbox_days: int = 7  # RETENTION_DAYS_OUTBOX: delivered events (dead letters stay until revived)
    device_log_days: int = 30  # RETENTION_DAYS_DEVICE_LOGS
    device_log_max_lines: int = 10_000  # DEVICE_LOG_MAX_LINES: the newest are kept, whatever their age


@dataclass(frozen=True)
class FcmConfig:
    """Notifications to merchants' own apps (workers/fcm.py)."""
    base_url: str = FCM_GOOGLE_URL  # FCM_BASE_URL: another host only for a local fake
    # FCM_SERVICE_ACCOUNT_FILE, else GOOGLE_SERVICE_ACCOUNT_FILE: the instance's Firebase key, used for merchants
    # that uploaded none (a single-merchant deployment)
    service_account_file: Path | None = None
    # FCM_CREDENTIALS_KEY, else SECRET_KEY: what merchants' uploaded keys are encrypted with (app/encryption.py)
    credentials_secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class Config:
    database_url: str
    database_pool_size: int  # DATABASE_POOL_SIZE: connections a process keeps open (20 more in a burst)
    redis_url: str | None
    host: str
    port: int
    public_base_url: str
    instance_dir: Path
    apple: AppleConfig
    secret_key: str = field(repr=False, default="")
    testing: bool = False
    rate_limits: RateLimits = field(default_factory=RateLimits)
    trusted_proxies: int = 0  # hops of X-Forwarded-For to believe (ProxyFix); 0: the peer is the client
    retention: Retention = field(default_factory=Retention)
    max_devices_per_pass: int = 10  # MAX_DEVICES_PER_PASS: a new registration beyond it replaces the oldest
    metrics_token: str | None = field(default=None, repr=False)  # METRICS_TOKEN: /metrics from outside loopback
    metrics_multiproc_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR: gunicorn.conf.py sets it
    google: GoogleConfig | None = None  # None: Google Wallet is off (no save links, nothing queued)
    fcm: FcmConfig = field(default_factory=FcmConfig)
    # WEBHOOKS_ALLOW_PRIVATE_TARGETS: http, loopback and private addresses allowed (never link-local/metadata)
    webhooks_allow_private_targets: bool = False
    # SMTP_URL (smtp://[user:pass@]host[:port], smtps://...) and MAIL_FROM; no SMTP_URL: mail is logged (app/mail.py)
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "Punchpass <punchpass@localhost>"

    @property
    def web_service_url(self) -> str:
        """Apple appends `/v1/...` itself, so this must not end in /v1 (Apple, "PassKit Web Service
        Reference": the device calls webServiceURL/v1/devices/...)."""
        return self.public_base_url + "/wallet"

    def with_overrides(self, **changes) -> "Config":
        return replace(self, **changes)


def load_config(environ: dict | None = None) -> Config:
    """Read and validate every setting once; raise ConfigError naming the first bad one."""
    env = dict(os.environ if environ is None else environ)
    instance_dir = Path(env.get("PUNCHPASS_INSTANCE", "instance")).resolve()
    host = env.get("HOST", "127.0.0.1")
    port = _count_setting(env, "PORT", 5000, minimum=1, maximum=65535)
    public_base_url = _url_setting(env, "PUBLIC_BASE_URL", f"http://{host}:{port}").rstrip("/")
    _check_web_service_scheme(public_base_url, _bool_setting(env, "APPLE_ALLOW_HTTP_WEB_SERVICE"))
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'punchpass.db'}"
    if "://" not in database_url:
        raise ConfigError(f"DATABASE_URL: expected a URL such as postgresql://user@host/db, got {database_url!r}")
    secret_key = _secret_key(env, public_base_url)
    redis_url = env.get("REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL: expected redis://host:port/db, got {redis_url!r}")
    return Config(
        database_url=_normalise_database_url(database_url),
        database_pool_size=_count_setting(env, "DATABASE_POOL_SIZE", 10, maximum=1000),
        redis_url=redis_url,
        host=host,
        port=port,
        public_base_url=public_base_url,
        instance_dir=instance_dir,
        apple=_apple_config(env, instance_dir),
        secret_key=secret_key,
        rate_limits=_rate_limits(env),
        trusted_proxies=_count_setting(env, "TRUSTED_PROXIES", 0, minimum=0),
        retention=_retention(env),
        max_devices_per_pass=_count_setting(env, "MAX_DEVICES_PER_PASS", 10),
        metrics_token=_metrics_token(env),
        metrics_multiproc_dir=_existing_dir(env, "PROMETHEUS_MULTIPROC_DIR"),
        google=_google_config(env),
        fcm=_fcm_config(env, secret_key),
        webhooks_allow_private_targets=_bool_setting(env, "WEBHOOKS_ALLOW_PRIVATE_TARGETS"),
        smtp_url=_smtp_url(env),
        mail_from=_mail_from(env),
    )


def _smtp_url(env: dict) -> str | None:
    url = env.get("SMTP_URL") or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://..., got "
                          f"{parts.scheme or 'no scheme'}://{parts.hostname or ''}")
    try:
        parts.port  # noqa: B018  (a malformed port raises here, at start-up, not at the first mail)
    except ValueError:
        raise ConfigError("SMTP_URL: the port must be a number") from None
    return url


def _mail_from(env: dict) -> str:
    sender = env.get("MAIL_FROM") or "Punchpass <punchpass@localhost>"
    if "@" not in sender:
        raise ConfigError(f"MAIL_FROM: expected an address such as Shop <loyalty@example.com>, got {sender!r}")
    return sender


def _google_config(env: dict) -> GoogleConfig | None:
    """On with GOOGLE_ISSUER_ID (the key file is then required); the key is read and checked here, at start-up.
    The key file alone does not switch Google Wallet on: FCM may use it (FCM_SERVICE_ACCOUNT_FILE's fallback)."""
    key_file, issuer_id = env.get("GOOGLE_SERVICE_ACCOUNT_FILE"), (env.get("GOOGLE_ISSUER_ID") or "").strip()
    if not issuer_id:
        return None
    if not key_file:
        raise ConfigError("GOOGLE_SERVICE_ACCOUNT_FILE: not set (needed with GOOGLE_ISSUER_ID for Google Wallet)")
    if not issuer_id.isascii() or not issuer_id.isdigit():
        raise ConfigError(f"GOOGLE_ISSUER_ID: expected the digits of your Google Wallet issuer id, got {issuer_id!r}")
    try:
        account = google.ServiceAccount.from_file(Path(key_file).expanduser())
    except google.ServiceAccountError as error:
        raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE: {error}") from None
    if urlsplit(account.token_uri).scheme != "https":
        raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE: its token_uri must be https, got {account.token_uri!r}")
    smart_tap = tuple(part.strip() for part in (env.get("GOOGLE_SMART_TAP_ISSUERS") or "").split(",") if part.strip())
    if any(not issuer.isascii() or not issuer.isdigit() for issuer in smart_tap):
        raise ConfigError(f"GOOGLE_SMART_TAP_ISSUERS: expected comma-separated issuer ids (digits), got {smart_tap}")
    return GoogleConfig(
        service_account=account, issuer_id=issuer_id,
        wallet_base_url=_url_setting(env, "GOOGLE_WALLET_BASE_URL", GOOGLE_WALLET_URL).rstrip("/"),
        rate_limit=_rate_setting(env, "GOOGLE_RATE_LIMIT", GOOGLE_RATE_LIMIT),
        callback_keys_url=_url_setting(env, "GOOGLE_CALLBACK_KEYS_URL", GOOGLE_KEYS_URL),
        callback_sender_id=(env.get("GOOGLE_CALLBACK_SENDER_ID") or GOOGLE_SENDER_ID).strip(),
        smart_tap_issuers=smart_tap,
    )


def _rate_setting(env: dict, name: str, default: float) -> float:
    """Calls per second: `20`, `20/s` or `20/second`; 0 lifts the limit (benchmarks only)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    number = raw.split("/")[0].strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value < 0 or value != value or raw.split("/")[1:] not in ([], ["s"], ["second"]):
        raise ConfigError(f"{name}: expected calls per second such as 20 or 20/s, got {raw!r}")
    return value


def _fcm_config(env: dict, secret_key: str) -> FcmConfig:
    """The instance's Firebase key is read and checked now, not at the first notification."""
    name = "FCM_SERVICE_ACCOUNT_FILE" if env.get("FCM_SERVICE_ACCOUNT_FILE") else "GOOGLE_SERVICE_ACCOUNT_FILE"
    path = Path(env[name]).expanduser() if env.get(name) else None
    if path is not None:
        try:
            google.ServiceAccount.from_file(path)
        except google.ServiceAccountError as error:
            raise ConfigError(f"{name}: not a usable service-account key file: {error}") from None
    own_key = env.get("FCM_CREDENTIALS_KEY") or ""
    if own_key and len(own_key) < 32:
        raise ConfigError("FCM_CREDENTIALS_KEY: expected at least 32 characters, e.g. the output of "
                          "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return FcmConfig(base_url=_url_setting(env, "FCM_BASE_URL", FCM_GOOGLE_URL).rstrip("/"),
                     service_account_file=path, credentials_secret=own_key or secret_key or DEV_SECRET_KEY)


def _metrics_token(env: dict) -> str | None:
    """A bearer token for Prometheus; short ones are guessable, and it is compared as sent."""
    token = env.get("METRICS_TOKEN") or None
    if token is not None and (len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError("METRICS_TOKEN: expected at least 16 printable ASCII characters without spaces, e.g. "
                          "the output of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return token


def _existing_dir(env: dict, name: str) -> Path | None:
    value = env.get(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{name}: no such directory {str(path)!r}")
    return path


DEV_SECRET_KEY = "dev-not-secret"  # what a loopback (development) start signs sessions with when unset


def _secret_key(env: dict, public_base_url: str) -> str:
    """Development on loopback may go without; anything reachable from outside needs a real key."""
    key = env.get("SECRET_KEY") or ""
    if is_loopback_host(urlsplit(public_base_url).hostname or "") or (key and key != DEV_SECRET_KEY):
        return key
    raise ConfigError(f"SECRET_KEY: required when PUBLIC_BASE_URL is not loopback ({public_base_url}); set it to "
                      "a long random value, e.g. the output of `python3 -c 'import secrets; "
                      "print(secrets.token_urlsafe(32))'`")


def _rate_limits(env: dict) -> RateLimits:
    names = {"api_key": "RATE_LIMIT_API_KEY", "public": "RATE_LIMIT_PUBLIC", "failed_auth": "RATE_LIMIT_FAILED_AUTH",
             "device_log": "RATE_LIMIT_DEVICE_LOG", "sign_in": "RATE_LIMIT_SIGN_IN",
             "dashboard_sign_in": "RATE_LIMIT_DASHBOARD_SIGN_IN", "join": "RATE_LIMIT_JOIN"}
    defaults = RateLimits()
    return RateLimits(**{field_name: _rate_limit_setting(env, name, getattr(defaults, field_name))
                         for field_name, name in names.items()})


def _rate_limit_setting(env: dict, name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        parsed = limits.parse_many(value)
    except ValueError:
        parsed = []
    if not parsed or any(item.amount < 1 for item in parsed):
        raise ConfigError(f"{name}: expected a rate such as 50/second or 300/minute;5000/hour, got {value!r}")
    return value


def _retention(env: dict) -> Retention:
    defaults = Retention()
    return Retention(
        idempotency_days=_count_setting(env, "RETENTION_DAYS_IDEMPOTENCY", defaults.idempotency_days),
        outbox_days=_count_setting(env, "RETENTION_DAYS_OUTBOX", defaults.outbox_days),
        device_log_days=_count_setting(env, "RETENTION_DAYS_DEVICE_LOGS", defaults.device_log_days),
        device_log_max_lines=_count_setting(env, "DEVICE_LOG_MAX_LINES", defaults.device_log_max_lines),
    )


def _apple_config(env: dict, instance_dir: Path) -> AppleConfig:
    """Real credentials when any APPLE_* file is set; otherwise the local dev chain under instance/."""
    names = ("APPLE_PASS_CERT", "APPLE_PASS_KEY", "APPLE_WWDR_CERT")
    given = [n for n in names if env.get(n)]
    pass_type_id = env.get("APPLE_PASS_TYPE_ID") or DEV_PASS_TYPE_ID
    team_id = env.get("APPLE_TEAM_ID") or DEV_TEAM_ID
    apns = dict(
        apns_base_url=_url_setting(env, "APNS_BASE_URL", APNS_PRODUCTION_URL).rstrip("/"),
        apns_ca_file=_existing_file(env, "APNS_CA_FILE") if env.get("APNS_CA_FILE") else None,
        **_nfc_settings(env),
    )
    if not given:
        dev = instance_dir / "dev-certs"
        return AppleConfig(dev / "pass.pem", dev / "pass.key", dev / "wwdr.pem", None,
                           pass_type_id, team_id, dev_chain=True, **apns)
    cert = _existing_file(env, "APPLE_PASS_CERT")
    is_p12 = cert.suffix.lower() in (".p12", ".pfx")
    key = cert if is_p12 and not env.get("APPLE_PASS_KEY") else _existing_file(env, "APPLE_PASS_KEY")
    return AppleConfig(cert, key, _existing_file(env, "APPLE_WWDR_CERT"),
                       env.get("APPLE_PASS_KEY_PASSWORD") or None, pass_type_id, team_id, **apns)


def _nfc_settings(env: dict) -> dict:
    key = env.get("APPLE_NFC_PUBLIC_KEY") or None
    if key is not None:
        try:
            check_nfc("probe", key)
        except ValueError as error:
            raise ConfigError(f"APPLE_NFC_PUBLIC_KEY: {error}") from None
    personalization = _bool_setting(env, "APPLE_PERSONALIZATION")
    if personalization and key is None:
        raise ConfigError("APPLE_PERSONALIZATION: Apple requires NFC for rewards enrollment; set "
                          "APPLE_NFC_PUBLIC_KEY (and use the NFC-enabled pass certificate) first")
    return {"nfc_public_key": key, "personalization": personalization}


def _bool_setting(env: dict, name: str) -> bool:
    raw = (env.get(name) or "off").strip().lower()
    if raw not in ("1", "0", "on", "off", "true", "false", "yes", "no"):
        raise ConfigError(f"{name}: expected on or off, got {raw!r}")
    return raw in ("1", "on", "true", "yes")


def _existing_file(env: dict, name: str) -> Path:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name}: not set (needed with the other APPLE_* certificate settings)")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name}: no such file {str(path)!r}")
    return path


def _count_setting(env: dict, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        expected = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name}: expected {expected}, got {value}")
    return value


def _url_setting(env: dict, name: str, default: str) -> str:
    value = env.get(name) or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: expected an http(s) URL, got {value!r}")
    return value


def _check_web_service_scheme(public_base_url: str, allow_http: bool) -> None:
    """Apple (Wallet Developer Guide, "Updating a pass"): the web service must use HTTPS; only a device with
    the developer setting "Allow HTTP Services" talks to plain http. Cards that point at http on a public host
    are never registered, so refuse to start rather than ship them."""
    parts = urlsplit(public_base_url)
    if parts.scheme == "https" or allow_http or is_loopback_host(parts.hostname or ""):
        return
    raise ConfigError(f"PUBLIC_BASE_URL: Apple Wallet only registers cards whose web service is https, got "
                      f"{public_base_url!r}; use https, a loopback address for local development, or "
                      "APPLE_ALLOW_HTTP_WEB_SERVICE=on for an iPhone with the developer setting")


def trusted_ca_file() -> str | None:
    """The CA bundle outbound HTTPS trusts, from the standard variables (REQUESTS_CA_BUNDLE, then SSL_CERT_FILE);
    None: the default trust store. Read when a client is made: these belong to the process, not to a Config."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalise_database_url(url: str) -> str:
    """Use psycopg 3 for plain postgres URLs (the driver we install)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
