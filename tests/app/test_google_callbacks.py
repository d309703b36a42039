"""POST /google/callbacks: Google's save/delete callbacks, signed (ECv2SigningOnly), deduplicated on nonce,
recorded per member and told to the merchant (pass.installed / pass.removed)."""

import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.domain import events
from app.google.callbacks import forget_keys
from app.models import OutboxEvent
from app.services import services
from tests.factories import auth, make_member, make_merchant, make_program
from tests.fakes.google import CallbackSigner, callback_message

ISSUER = "3388000000012345678"


@pytest.fixture
def client(google_app):
    return google_app.test_client()


@pytest.fixture
def listening():
    """A channel that hears pass.* events, as a webhook subscribed to them would."""
    events.add_channel("test-pass-events", lambda s, merchant_id, type, member_id: type.startswith("pass."))
    yield "test-pass-events"
    events._channels.pop("test-pass-events")


@pytest.fixture
def card(google_app, client):
    """A member whose save link was opened (so their object id is known)."""
    _, key = make_merchant(google_app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"])
    assert client.get(urlsplit(member["google_save_url"]).path).status_code == 302
    return key, member, f"{ISSUER}.punchpass-program-{program['id']}", f"{ISSUER}.{member['serial_number']}"


def post(client, body):
    return client.post("/google/callbacks", data=json.dumps(body), content_type="application/json")


def saved(client, key, member) -> bool:
    return client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["wallets"]["google"]["saved"]


def pass_events(google_app, member_id) -> list[str]:
    with google_app.app_context(), services(google_app).sessions() as session:
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "test-pass-events",
                                                         OutboxEvent.member_id == member_id).order_by(OutboxEvent.id))
        return [(row.payload["event"]["type"], row.payload["event"]["data"]["wallet"]) for row in rows]


def test_a_save_and_a_delete_are_recorded_and_told_once(google_app, client, card, fake_google, listening):
    key, member, class_id, object_id = card
    google = fake_google.signer
    save = google.callback(ISSUER, callback_message(class_id, object_id, "save", nonce="nonce-save-1"))
    assert post(client, save).status_code == 200
    assert saved(client, key, member) is True
    assert post(client, save).status_code == 200  # Google delivers at least once: the repeat changes nothing
    delete = google.callback(ISSUER, callback_message(class_id, object_id, "del"))
    assert post(client, delete).status_code == 200
    assert saved(client, key, member) is False
    assert pass_events(google_app, member["id"]) == [("pass.installed", "google"), ("pass.removed", "google")]


@pytest.mark.parametrize("forge", ["stranger", "tampered", "not json", "wrong issuer"])
def test_a_callback_not_signed_by_google_is_refused(google_app, client, card, fake_google, forge):
    key, member, class_id, object_id = card
    signer = CallbackSigner() if forge == "stranger" else fake_google.signer
    body = signer.callback("999" if forge == "wrong issuer" else ISSUER, callback_message(class_id, object_id))
    if forge == "tampered":
        body["signedMessage"] = body["signedMessage"].replace("save", "del")
    response = post(client, body) if forge != "not json" else client.post("/google/callbacks", data=b"{]")
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert saved(client, key, member) is False


def test_an_unknown_object_is_acknowledged_and_ignored(client, fake_google):
    body = fake_google.signer.callback(ISSUER, callback_message(f"{ISSUER}.c", f"{ISSUER}.nobody"))
    assert post(client, body).status_code == 200


def test_unreachable_google_keys_answer_503_so_google_retries(google_app, client, card, fake_google):
    _, _, class_id, object_id = card
    forget_keys()
    fake_google.fail("GET", "/keys", 500)
    body = fake_google.signer.callback(ISSUER, callback_message(class_id, object_id))
    assert post(client, body).status_code == 503
    assert post(client, body).status_code == 200


def test_old_nonces_are_pruned_with_the_other_expired_rows(google_app):
    from datetime import timedelta

    from app.config import Retention
    from app.domain.retention import prune_expired
    from app.models import GoogleCallbackNonce, utcnow
    with google_app.app_context(), services(google_app).sessions() as session:
        session.add_all([GoogleCallbackNonce(nonce="old-nonce", received_at=utcnow() - timedelta(days=8)),
                         GoogleCallbackNonce(nonce="new-nonce", received_at=utcnow())])
        session.commit()
        assert prune_expired(session, Retention(), utcnow())["google_callback_nonces"] >= 1
        session.commit()
        assert session.get(GoogleCallbackNonce, "old-nonce") is None
        assert session.get(GoogleCallbackNonce, "new-nonce") is not None
