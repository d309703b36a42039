"""What `punchpass doctor` reports and start-up warns about: settings without their secrets, and how long the
Apple certificates have left (Apple's pass certificate and WWDR both expire; passes signed after that are
refused by every iPhone)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from app.config import Config
from passes import PassSigner

log = logging.getLogger(__name__)
EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class CertificateExpiry:
    name: str
    setting: str
    not_valid_after: datetime

    def days_left(self, now: datetime) -> int:
        return (self.not_valid_after - now).days


def certificate_expiries(signer: PassSigner) -> list[CertificateExpiry]:
    return [CertificateExpiry("pass certificate", "APPLE_PASS_CERT", signer.not_valid_after),
            CertificateExpiry("WWDR certificate", "APPLE_WWDR_CERT", signer.wwdr.not_valid_after_utc)]


def expiry_warnings(signer: PassSigner, now: datetime) -> list[str]:
    """One line per certificate expiring within EXPIRY_WARNING."""
    return [f"{cert.setting}: the {cert.name} expires on {cert.not_valid_after:%Y-%m-%d} UTC, in "
            f"{cert.days_left(now)} day(s); renew it before then (passes signed afterwards will not install)"
            for cert in certificate_expiries(signer) if cert.not_valid_after - now <= EXPIRY_WARNING]


def warn_about_expiring_certificates(signer: PassSigner, now: datetime) -> None:
    for warning in expiry_warnings(signer, now):
        log.warning(warning)


def settings_summary(config: Config) -> dict[str, str]:
    """Settings as an operator checks them: no passwords, keys or tokens."""
    rates, retention = config.rate_limits, config.retention
    return {
        "PUBLIC_BASE_URL": config.public_base_url,
        "DATABASE_URL": without_password(config.database_url),
        "REDIS_URL": without_password(config.redis_url) if config.redis_url else "(unset: embedded worker)",
        "APPLE_PASS_TYPE_ID": config.apple.pass_type_id,
        "APPLE_TEAM_ID": config.apple.team_id,
        "APPLE_PASS_CERT": "(development chain)" if config.apple.dev_chain else str(config.apple.pass_cert),
        "APNS_BASE_URL": config.apple.apns_base_url,
        "SECRET_KEY": "set" if config.secret_key else "(unset: development only)",
        "TRUSTED_PROXIES": str(config.trusted_proxies),
        "RATE_LIMIT_API_KEY": rates.api_key,
        "RATE_LIMIT_PUBLIC": rates.public,
        "RATE_LIMIT_FAILED_AUTH": rates.failed_auth,
        "RATE_LIMIT_DEVICE_LOG": rates.device_log,
        "RETENTION_DAYS": f"idempotency {retention.idempotency_days}, outbox {retention.outbox_days}, "
                          f"device logs {retention.device_log_days} (at most {retention.device_log_max_lines} lines)",
        "MAX_DEVICES_PER_PASS": str(config.max_devices_per_pass),
        "GOOGLE_ISSUER_ID": config.google.issuer_id if config.google else "(unset: Google Wallet off)",
        **({"GOOGLE_SERVICE_ACCOUNT": config.google.service_account.client_email,
            "GOOGLE_WALLET_BASE_URL": config.google.wallet_base_url,
            "GOOGLE_RATE_LIMIT": f"{config.google.rate_limit:g}/s"} if config.google else {}),
        "FCM_BASE_URL": config.fcm.base_url,
        "FCM_SERVICE_ACCOUNT_FILE": str(config.fcm.service_account_file or "(unset: merchants upload their own)"),
    }


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
