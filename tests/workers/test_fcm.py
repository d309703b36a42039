"""Notifications in the merchant's app: a tier change reaches every FCM token of the member, in their language,
through a loopback FCM and OAuth endpoint over TLS; dead tokens are forgotten, 429s retried, and the merchant's
own Firebase key wins over the instance's."""

import json
import logging
import uuid

import pytest
from firebase_admin import messaging
from sqlalchemy import func, select, text, update

from app import create_app
from app.config import load_config
from app.domain.notifications import notice_for
from app.models import FcmDevice, OutboxEvent, utcnow
from app.services import services
from passes.google import ServiceAccount
from tests.factories import auth, earn, make_member, make_merchant, make_program
from tests.fakes.fcm import FakeFCM
from workers import fcm_client
from workers.fcm_client import FcmSender
from workers.jobs import deliver_event


@pytest.fixture(scope="module")
def fake_fcm(cert_chain):
    with FakeFCM(cert_chain["server_cert"], cert_chain["server_key"]) as fake:
        yield fake


@pytest.fixture
def trust_fake(cert_chain, monkeypatch):
    """What an operator does for a local fake: requests and google-auth trust its CA (REQUESTS_CA_BUNDLE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_chain["root_ca"]))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def instance_account(fake_fcm, tmp_path):
    account = fake_fcm.new_account("instance-app")
    path = tmp_path / "firebase.json"
    path.write_text(json.dumps(account))
    return account, path


@pytest.fixture
def fcm_app(test_env, fake_fcm, instance_account, trust_fake):
    env = {**test_env, "FCM_BASE_URL": fake_fcm.base_url, "FCM_SERVICE_ACCOUNT_FILE": str(instance_account[1])}
    app = create_app(load_config(env), testing=True)
    yield app
    fcm_client.close_senders()
    services(app).engine.dispose()


class Shop:
    def __init__(self, app):
        self.app, self.client = app, app.test_client()
        self.merchant_id, self.key = make_merchant(app)
        self.program = make_program(self.client, self.key)  # Bronze from 0, Gold from 500

    def member(self, locale="en", tokens=1) -> tuple[dict, list[str]]:
        member = make_member(self.client, self.key, self.program["id"], locale=locale)
        made = [f"{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}" for _ in range(tokens)]
        for token in made:
            response = self.client.post(f"/api/v1/members/{member['id']}/devices",
                                        json={"token": token, "platform": "android"}, headers=auth(self.key))
            assert response.status_code == 201
        return member, made

    def reach_gold(self, member) -> int:
        """Earn into Gold; the id of the FCM event it wrote."""
        assert earn(self.client, self.key, member["id"], points=600).status_code == 201
        with services(self.app).sessions() as session:
            return session.scalars(select(OutboxEvent.id).where(OutboxEvent.member_id == member["id"],
                                                                OutboxEvent.kind == "fcm")).one()

    def event(self, event_id) -> OutboxEvent:
        with services(self.app).sessions() as session:
            return session.get(OutboxEvent, event_id)

    def tokens_of(self, member) -> list[str]:
        with services(self.app).sessions() as session:
            return list(session.scalars(select(FcmDevice.token).where(FcmDevice.member_id == member["id"])))


@pytest.fixture
def shop(fcm_app):
    return Shop(fcm_app)


def test_tier_change_sends_one_notification_in_the_members_language(shop, fake_fcm, instance_account):
    member, [token] = shop.member(locale="ja")
    event_id = shop.reach_gold(member)
    assert deliver_event(shop.app, event_id) == "delivered"
    [sent] = fake_fcm.sent_to(token)
    assert (sent.title, sent.body) == notice_for("tier.changed", {"tier": "Gold"}, "ja")
    assert sent.title == "Goldランクになりました"
    assert sent.data["type"] == "tier.changed" and sent.data["event_id"].startswith("evt_")
    assert (sent.project_id, sent.client_email) == ("instance-app", instance_account[0]["client_email"])


def test_every_token_of_the_member_gets_it(shop, fake_fcm):
    member, tokens = shop.member(locale="ko", tokens=3)
    assert deliver_event(shop.app, shop.reach_gold(member)) == "delivered"
    for token in tokens:
        [sent] = fake_fcm.sent_to(token)
        assert sent.title == "Gold 등급이 되었어요"


def test_members_without_tokens_and_events_not_worth_a_buzz_write_nothing(shop):
    member, _ = shop.member(tokens=0)
    earn(shop.client, shop.key, member["id"], points=600)  # tier.changed, but no app
    with_app, _ = shop.member()
    earn(shop.client, shop.key, with_app["id"], points=10)  # points.earned-sized: no tier change
    with services(shop.app).sessions() as session:
        count = session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.kind == "fcm", OutboxEvent.member_id.in_([member["id"], with_app["id"]])))
    assert count == 0


@pytest.mark.parametrize("answer", ["UNREGISTERED", "INVALID_TOKEN"])
def test_tokens_fcm_calls_dead_are_removed(shop, fake_fcm, answer):
    member, [alive, dead] = shop.member(tokens=2)
    fake_fcm.fail(dead, answer)
    assert deliver_event(shop.app, shop.reach_gold(member)) == "delivered"
    assert shop.tokens_of(member) == [alive]
    assert len(fake_fcm.sent_to(alive)) == 1


def test_429_is_retried_for_the_tokens_still_owed(shop, fake_fcm):
    member, [ok, throttled] = shop.member(tokens=2)
    fake_fcm.fail(throttled, "QUOTA_EXCEEDED", times=1)
    event_id = shop.reach_gold(member)
    assert deliver_event(shop.app, event_id) == "retry"
    event = shop.event(event_id)
    assert event.payload["owed"] == [throttled] and "QuotaExceeded" in event.last_error
    with services(shop.app).sessions() as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(available_at=utcnow()))
        session.commit()
    assert deliver_event(shop.app, event_id) == "delivered"
    assert len(fake_fcm.sent_to(ok)) == 1 and len(fake_fcm.sent_to(throttled)) == 1
    assert shop.tokens_of(member) == [ok, throttled]


def test_the_merchants_own_key_is_used_over_the_instances(shop, fake_fcm):
    own = fake_fcm.new_account("merchant-app")
    assert shop.client.put("/api/v1/fcm/credentials", json=own, headers=auth(shop.key)).status_code == 200
    member, [token] = shop.member()
    assert deliver_event(shop.app, shop.reach_gold(member)) == "delivered"
    [sent] = fake_fcm.sent_to(token)
    assert (sent.project_id, sent.client_email) == ("merchant-app", own["client_email"])


def test_a_key_the_token_endpoint_refuses_is_a_dead_letter(shop, fake_fcm):
    own = fake_fcm.new_account("revoked-app")
    shop.client.put("/api/v1/fcm/credentials", json=own, headers=auth(shop.key))
    fake_fcm.refuse(own["client_email"])
    member, [token] = shop.member()
    event_id = shop.reach_gold(member)
    assert deliver_event(shop.app, event_id) == "dead"
    assert "refused the service account" in shop.event(event_id).last_error
    assert fake_fcm.sent_to(token) == [] and shop.tokens_of(member) == [token]


def test_tokens_of_another_project_are_a_dead_letter_not_deleted(shop, fake_fcm):
    member, [token] = shop.member()
    fake_fcm.fail(token, "SENDER_ID_MISMATCH")
    event_id = shop.reach_gold(member)
    assert deliver_event(shop.app, event_id) == "dead"
    assert "wrong Firebase project" in shop.event(event_id).last_error and shop.tokens_of(member) == [token]


def test_without_any_credentials_the_dead_letter_says_what_to_do(test_env, fake_fcm, trust_fake):
    app = create_app(load_config({**test_env, "FCM_BASE_URL": fake_fcm.base_url}), testing=True)
    try:
        shop = Shop(app)
        member, _ = shop.member()
        event_id = shop.reach_gold(member)
        assert deliver_event(app, event_id) == "dead"
        assert "PUT /api/v1/fcm/credentials" in shop.event(event_id).last_error
    finally:
        services(app).engine.dispose()


def test_credentials_reach_neither_logs_nor_dead_letters(shop, fake_fcm, caplog):
    own = fake_fcm.new_account("quiet-app")
    with caplog.at_level(logging.DEBUG):
        shop.client.put("/api/v1/fcm/credentials", json=own, headers=auth(shop.key))
        member, [token] = shop.member()
        fake_fcm.fail(token, "SENDER_ID_MISMATCH")
        event_id = shop.reach_gold(member)
        deliver_event(shop.app, event_id)
        fake_fcm.refuse(own["client_email"])
        fcm_client.close_senders()  # a new sender must ask the token endpoint again
        other, _ = shop.member()
        deliver_event(shop.app, shop.reach_gold(other))
    with services(shop.app).engine.connect() as conn:
        errors = " ".join(conn.execute(text("SELECT last_error FROM outbox_events WHERE member_id IN (:a, :b)"),
                                       {"a": member["id"], "b": other["id"]}).scalars())
    secret_lines = own["private_key"].splitlines()[1:-1]
    for line in secret_lines:
        assert line not in caplog.text and line not in errors


def test_send_each_takes_at_most_the_limit_per_call(fake_fcm, instance_account, trust_fake, monkeypatch):
    """FCM's limit is 500; a smaller one here shows the split without 500 threads."""
    calls = []
    real_send_each = messaging.send_each
    monkeypatch.setattr(fcm_client, "SEND_LIMIT", 2)
    monkeypatch.setattr(messaging, "send_each", lambda messages, **kw: calls.append(len(messages))
                        or real_send_each(messages, **kw))
    sender = FcmSender(ServiceAccount.from_info(instance_account[0]), fake_fcm.base_url)
    try:
        tokens = [f"batch-token-{n:02d}-{uuid.uuid4().hex}" for n in range(5)]
        outcomes = sender.send(tokens, notice_for("campaign.message", {"title": "Hi", "body": "Sale"}, "en"), {})
    finally:
        sender.close()
    assert calls == [2, 2, 1] and {outcome.status for outcome in outcomes.values()} == {"sent"}
    assert all(len(fake_fcm.sent_to(token)) == 1 for token in tokens)


def test_the_token_is_cached_across_sends(shop, fake_fcm):
    before = fake_fcm.token_requests
    for _ in range(2):
        member, _ = shop.member()
        deliver_event(shop.app, shop.reach_gold(member))
    assert fake_fcm.token_requests - before == 1

