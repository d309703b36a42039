"""One member's life across every channel at once, against the loopback fakes: Google Wallet (OAuth and the
Wallet REST API over TLS), FCM (over TLS) and a merchant's webhook receiver. Enrol -> class and object inserted
-> the save link's JWT verifies with the service account's public key -> earn -> the object is PATCHed with the
new balance -> a tier change -> exactly one Google message, one FCM message, and signed webhooks, the first of
which was answered 500 and retried."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization

from app import create_app
from app.config import load_config
from app.services import services
from tests.conftest import fresh_database
from tests.factories import auth, earn, make_member, make_merchant, make_program
from tests.fakes.fcm import FakeFCM
from tests.fakes.webhooks import FakeWebhookReceiver
from workers import fcm_client
from workers import webhooks as webhook_worker
from workers.google_client import close_wallet_clients
from workers.jobs import deliver_everything_due

ISSUER = "3388000000012345678"
EVENTS = ["member.enrolled", "points.earned", "tier.changed"]


@pytest.fixture(scope="module")
def fake_fcm(cert_chain):
    with FakeFCM(cert_chain["server_cert"], cert_chain["server_key"]) as fake:
        yield fake


@pytest.fixture
def every_channel_app(google_env, fake_fcm, tmp_path_factory, cert_chain, monkeypatch):
    """Google Wallet, FCM (the instance's Firebase key) and webhooks to loopback, on a database of its own."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_chain["root_ca"]))
    firebase = tmp_path_factory.mktemp("firebase") / "firebase.json"
    firebase.write_text(json.dumps(fake_fcm.new_account("merchant-app")))
    with fresh_database(tmp_path_factory) as url:
        env = {**google_env, "DATABASE_URL": url, "FCM_BASE_URL": fake_fcm.base_url,
               "FCM_SERVICE_ACCOUNT_FILE": str(firebase), "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "on"}
        app = create_app(load_config(env), testing=True)
        yield app
        webhook_worker.close_senders()
        fcm_client.close_senders()
        close_wallet_clients()
        services(app).engine.dispose()


def save_link_claims(client, member, public_key=None) -> dict:
    """Open the member's google_save_url (302 to Google's save page) and read the JWT it carries."""
    response = client.get(urlsplit(member["google_save_url"]).path)
    assert response.status_code == 302
    token = response.headers["Location"].removeprefix("https://pay.google.com/gp/v/save/")
    if public_key is None:
        return jwt.decode(token, options={"verify_signature": False})
    return jwt.decode(token, public_key, algorithms=["RS256"], audience="google")


def test_one_member_across_google_fcm_and_webhooks(every_channel_app, fake_google, google_account, fake_fcm):
    app, client = every_channel_app, every_channel_app.test_client()
    _, key = make_merchant(app)
    program = make_program(client, key)  # Bronze from 0, Gold from 500
    with FakeWebhookReceiver() as receiver:
        hook = client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": EVENTS}, headers=auth(key))
        assert hook.status_code == 201, hook.get_json()
        receiver.secret, receiver.answers = hook.get_json()["secret"], [500]

        member = make_member(client, key, program["id"], name="Hana Sato")
        token = f"{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}"
        assert client.post(f"/api/v1/members/{member['id']}/devices", json={"token": token, "platform": "android"},
                           headers=auth(key)).status_code == 201
        deliver_everything_due(app)  # member.enrolled: the receiver answers 500

        # Google: the save link works at once (the full object), and the worker inserts class and object
        object_id = f"{ISSUER}.{member['serial_number']}"
        class_id = f"{ISSUER}.punchpass-program-{program['id']}"
        assert save_link_claims(client, member)["payload"]["loyaltyObjects"][0]["id"] == object_id
        deliver_everything_due(app)
        assert class_id in fake_google.classes and object_id in fake_google.objects
        public_key = serialization.load_pem_private_key(google_account["private_key"].encode(), None).public_key()
        claims = save_link_claims(client, member, public_key)  # inserted: a skinny JWT, verified
        assert claims["payload"] == {"loyaltyObjects": [{"id": object_id, "classId": class_id}]}
        assert claims["typ"] == "savetowallet" and claims["iss"] == google_account["client_email"]

        patches = len(fake_google.calls("PATCH", object_id))
        assert earn(client, key, member["id"], points=40).status_code == 201
        deliver_everything_due(app)
        [patch] = fake_google.calls("PATCH", object_id)[patches:]
        assert patch.body == {"loyaltyPoints": fake_google.objects[object_id]["loyaltyPoints"]}
        assert patch.body["loyaltyPoints"]["balance"] == {"int": 40}

        assert earn(client, key, member["id"], points=500).status_code == 201  # 540: Gold
        deliver_everything_due(app)
        assert fake_google.objects[object_id]["secondaryLoyaltyPoints"]["balance"] == {"string": "Gold"}
        [message] = fake_google.calls("POST", object_id + "/addMessage")
        assert message.body["message"]["messageType"] == "TEXT_AND_NOTIFY" and "Gold" in message.body["message"]["body"]
        [notification] = fake_fcm.sent_to(token)
        assert notification.data["type"] == "tier.changed" and "Gold" in notification.title

        # the enrolment's webhook was answered 500: retried at its time, then every event is in, signed, once
        with time_machine.travel(datetime.now().astimezone() + timedelta(minutes=1), tick=True):
            deliver_everything_due(app)
        deliver_everything_due(app)
    assert receiver.received[0].status == 500
    assert all(sent.signature_ok for sent in receiver.received)
    delivered = Counter(json.loads(sent.body)["type"] for sent in receiver.received if sent.status == 200)
    assert delivered == {"member.enrolled": 1, "points.earned": 2, "tier.changed": 1}
    assert json.loads(receiver.received[0].body) == json.loads(
        next(s.body for s in receiver.received if s.status == 200 and b"member.enrolled" in s.body))
    assert len(fake_google.calls("POST", object_id + "/addMessage")) == 1 and len(fake_fcm.sent_to(token)) == 1
