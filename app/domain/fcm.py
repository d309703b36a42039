"""The merchant's own app: its FCM registration tokens per member, and the merchant's Firebase key (sealed).

The FCM channel listens only to events worth a notification, and only for members with a token, so the earn
path writes nothing for the rest. Workers deliver (workers/fcm.py); nothing here talks to Google."""

from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain import events
from app.encryption import UnsealError, derive_key, seal, unseal
from app.models import FcmCredentials, FcmDevice, Member, utcnow
from passes.google import ServiceAccount

FCM = "fcm"  # the outbox kind
NOTIFIED_TYPES = frozenset({"tier.changed", "reward.unlocked", "points.expiring", "campaign.message",
                            "challenge.completed"})
PLATFORMS = ("android", "ios", "web")
MAX_DEVICES_PER_MEMBER = 20  # a new token beyond it replaces the member's oldest
_KEY_PURPOSE = "fcm-credentials"


def _member_has_tokens(session: Session, merchant_id: int, type: str, member_id: int | None) -> bool:
    """Cheap: a set look-up, then one indexed query only for the notified types."""
    if type not in NOTIFIED_TYPES or member_id is None:
        return False
    return session.scalar(select(FcmDevice.id).where(FcmDevice.member_id == member_id).limit(1)) is not None


events.add_channel(FCM, _member_has_tokens)


def register_device(session: Session, member: Member, token: str, platform: str) -> FcmDevice:
    """Idempotent: the same token again is the same device (its platform updated); a token another member of
    the merchant had moves to this one (the app's user signed in as someone else)."""
    device = _device(session, member.merchant_id, token)
    if device is None:
        try:
            with session.begin_nested():  # a savepoint: the same token registering at this moment wins instead
                device = FcmDevice(merchant_id=member.merchant_id, member_id=member.id, token=token,
                                   platform=platform)
                session.add(device)
                session.flush()
        except IntegrityError:
            device = _device(session, member.merchant_id, token)
    if (device.member_id, device.platform) != (member.id, platform):
        device.member_id, device.platform = member.id, platform
        device.updated_at = utcnow()
        session.flush()
    _drop_oldest_beyond_limit(session, member.id)
    return device


def _device(session: Session, merchant_id: int, token: str) -> FcmDevice | None:
    return session.scalar(select(FcmDevice).where(FcmDevice.merchant_id == merchant_id, FcmDevice.token == token)
                          .with_for_update())


def _drop_oldest_beyond_limit(session: Session, member_id: int) -> None:
    ids = session.scalars(select(FcmDevice.id).where(FcmDevice.member_id == member_id)
                          .order_by(FcmDevice.id.desc()).offset(MAX_DEVICES_PER_MEMBER)).all()
    if ids:
        session.execute(delete(FcmDevice).where(FcmDevice.id.in_(ids)))


def remove_device(session: Session, member: Member, token: str) -> None:
    """Idempotent: a token the member does not have (any more) is no error."""
    session.execute(delete(FcmDevice).where(FcmDevice.member_id == member.id, FcmDevice.token == token))


def remove_tokens(session: Session, merchant_id: int, tokens: list[str]) -> int:
    """Tokens FCM called dead (the app was uninstalled, the token expired or was never valid)."""
    if not tokens:
        return 0
    return session.execute(delete(FcmDevice).where(FcmDevice.merchant_id == merchant_id,
                                                   FcmDevice.token.in_(tokens))).rowcount


def member_tokens(session: Session, member_id: int) -> list[str]:
    return list(session.scalars(select(FcmDevice.token).where(FcmDevice.member_id == member_id)
                                .order_by(FcmDevice.id)))


def save_credentials(session: Session, merchant_id: int, account: ServiceAccount, secret: str) -> FcmCredentials:
    """Replace the merchant's Firebase key; only the sealed form is stored."""
    sealed = seal(derive_key(secret, _KEY_PURPOSE), json.dumps(account.info).encode(), _owner(merchant_id))
    row = session.get(FcmCredentials, merchant_id, with_for_update=True)
    if row is None:
        row = FcmCredentials(merchant_id=merchant_id)
        session.add(row)
    row.project_id, row.client_email, row.sealed_key = account.project_id, account.client_email, sealed
    row.updated_at = utcnow()
    session.flush()
    return row


def get_credentials(session: Session, merchant_id: int) -> FcmCredentials | None:
    return session.get(FcmCredentials, merchant_id)


def delete_credentials(session: Session, merchant_id: int) -> None:
    session.execute(delete(FcmCredentials).where(FcmCredentials.merchant_id == merchant_id))


def open_credentials(row: FcmCredentials, secret: str) -> ServiceAccount:
    """The merchant's key, unsealed. UnsealError when the key setting changed since the upload."""
    plain = unseal(derive_key(secret, _KEY_PURPOSE), row.sealed_key, _owner(row.merchant_id))
    return ServiceAccount.from_info(json.loads(plain))


def unreadable_credentials(session: Session, secret: str) -> list[int]:
    """Merchants whose stored key does not open with `secret` (FCM_CREDENTIALS_KEY or SECRET_KEY changed)."""
    unreadable = []
    for row in session.scalars(select(FcmCredentials)):
        try:
            unseal(derive_key(secret, _KEY_PURPOSE), row.sealed_key, _owner(row.merchant_id))
        except UnsealError:
            unreadable.append(row.merchant_id)
    return unreadable


def _owner(merchant_id: int) -> str:
    """What a sealed key is bound to: copied onto another merchant's row, it does not open."""
    return f"fcm_credentials:{merchant_id}"
