"""Campaigns: sent in batches through the outbox, shown on the card, capped per member, cancellable mid-way,
idempotent when a batch is retried, never sent once their offer ended, and their offers leave the cards."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.card_notices import card_notices
from app.domain import campaigns
from app.domain.webhook_subscriptions import subscriptions
from app.models import Campaign, CampaignRecipient, GoogleObject, Member, OutboxEvent, utcnow
from app.services import services
from tests.factories import assert_problem, auth, make_member, make_merchant, make_program
from workers.jobs import deliver_event
from workers.scheduled import SCHEDULE, run_due


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(campaigns, "BATCH_SIZE", 2)


def setup(app, client, n: int = 5):
    _, key = make_merchant(app)
    program = make_program(client, key, timezone="Asia/Tokyo")
    members = [make_member(client, key, program["id"], name=f"M{index}")["id"] for index in range(n)]
    segment = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key), json={
        "name": "Everyone", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}).get_json()
    return key, program, members, segment


def create(client, key, program, segment, **fields):
    body = {"name": "Spring", "segment_id": segment["id"],
            "message": {"title": {"en": "Spring is here", "ja": "春が来ました"}, "body": "Come by for a latte"},
            **fields}
    return client.post(f"/api/v1/programs/{program['id']}/campaigns", json=body, headers=auth(key))


def pending_batches(app, campaign_id: int, kind: str = campaigns.CAMPAIGN_BATCH) -> list[int]:
    with app.app_context():
        session = services(app).sessions()
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == kind, OutboxEvent.delivered_at.is_(None),
                                                         OutboxEvent.dead_at.is_(None))).all()
        ids = [row.id for row in rows if row.payload["campaign_id"] == campaign_id]
        session.close()
    return ids


def run_batches(app, campaign_id: int, limit: int = 100, kind: str = campaigns.CAMPAIGN_BATCH) -> int:
    """Deliver the campaign's batch rows through the worker until none is left; how many ran."""
    ran = 0
    while ran < limit:
        ids = pending_batches(app, campaign_id, kind)
        if not ids:
            return ran
        with app.app_context():
            session = services(app).sessions()
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(available_at=utcnow()))
            session.commit()
            session.close()
        for event_id in ids:
            assert deliver_event(app, event_id) == "delivered"
            ran += 1
    return ran


def notices(app, member_id: int, now=None):
    with app.app_context():
        session = services(app).sessions()
        member = session.get(Member, member_id)
        found = card_notices(session, member) if now is None else \
            campaigns.campaign_notices(session, member, now)
        session.close()
    return [(notice.key, notice.label, notice.text, notice.change_message) for notice in found]


def versions(app, member_ids: list[int]) -> list[int]:
    with app.app_context():
        session = services(app).sessions()
        found = [session.get(Member, member_id).pass_version for member_id in member_ids]
        session.close()
    return found


def results(client, key, campaign_id):
    return client.get(f"/api/v1/campaigns/{campaign_id}/results", headers=auth(key)).get_json()


def test_a_campaign_streams_in_batches_and_shows_on_every_card(app, client, small_batches):
    key, program, members, segment = setup(app, client)
    created = create(client, key, program, segment)
    assert created.status_code == 201
    campaign = created.get_json()
    assert campaign["status"] == "sending" and campaign["results"]["targeted"] == 5

    assert run_batches(app, campaign["id"]) == 3  # 2 + 2 + 1
    assert results(client, key, campaign["id"]) == {"targeted": 5, "delivered": 5, "capped": 0, "card_updated": 0,
                                                     "redeemed": 0}
    assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=auth(key)).get_json()["status"] == "sent"
    assert notices(app, members[0]) == [(f"campaign_{campaign['id']}", "Spring is here", "Come by for a latte", "%@")]


def test_the_card_changes_and_the_message_goes_to_the_app_and_google(app, client):
    key, program, members, segment = setup(app, client, n=1)
    device = client.post(f"/api/v1/members/{members[0]}/devices", json={"token": "t" * 40, "platform": "ios"},
                         headers=auth(key))
    assert device.status_code == 201
    with app.app_context():
        session = services(app).sessions()
        before = session.get(Member, members[0]).pass_version
        session.close()
    campaign = create(client, key, program, segment).get_json()
    run_batches(app, campaign["id"])
    with app.app_context():
        session = services(app).sessions()
        assert session.get(Member, members[0]).pass_version == before + 1
        sent = [row.payload["event"] for row in session.scalars(select(OutboxEvent).where(
            OutboxEvent.member_id == members[0], OutboxEvent.kind == "fcm"))]
        session.close()
    assert [(event["type"], event["data"]["campaign_id"]) for event in sent] == [("campaign.message", campaign["id"])]


def test_the_card_is_in_the_members_language(app, client):
    key, program, members, segment = setup(app, client, n=1)
    client.patch(f"/api/v1/members/{members[0]}", json={"locale": "ja"}, headers=auth(key))
    ends = utcnow() + timedelta(days=3)
    offer = {"text": {"en": "Free cookie", "ja": "クッキー無料"}, "ends_at": ends.isoformat()}
    campaign = create(client, key, program, segment, offer=offer).get_json()
    run_batches(app, campaign["id"])
    shown = notices(app, members[0])
    assert shown[0][1:3] == ("春が来ました", "Come by for a latte")  # no Japanese body: English
    assert shown[1][2] == "クッキー無料" and shown[1][1].endswith("までの特典")


def test_cancel_mid_way_stops_the_next_batch_and_takes_the_lines_off(app, client, small_batches):
    key, program, members, segment = setup(app, client)
    campaign = create(client, key, program, segment).get_json()
    first = pending_batches(app, campaign["id"])
    assert deliver_event(app, first[0]) == "delivered"
    cancelled = client.post(f"/api/v1/campaigns/{campaign['id']}/cancel", headers=auth(key))
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"

    run_batches(app, campaign["id"])
    assert results(client, key, campaign["id"])["delivered"] == 2
    assert notices(app, members[0]) == []
    before = versions(app, members)
    run_batches(app, campaign["id"], kind=campaigns.CAMPAIGN_CARDS)
    after = versions(app, members)
    assert [after[i] - before[i] for i in range(5)] == [1, 1, 0, 0, 0]  # the two cards it reached re-issued
    assert_problem(client.post(f"/api/v1/campaigns/{campaign['id']}/cancel", headers=auth(key)), 409)


def test_a_retried_batch_sends_nothing_twice(app, client, small_batches):
    key, program, members, segment = setup(app, client, n=3)
    campaign = create(client, key, program, segment).get_json()
    first = pending_batches(app, campaign["id"])[0]
    with app.app_context():
        session = services(app).sessions()
        assert campaigns.send_batch(session, campaign["id"], 0, utcnow()) == 2
        session.commit()
        # the worker died after committing the batch, before marking its row delivered: the row runs again
        assert campaigns.send_batch(session, campaign["id"], 0, utcnow()) == 0
        session.commit()
        session.close()
    assert deliver_event(app, first) == "delivered"
    run_batches(app, campaign["id"])
    assert results(client, key, campaign["id"])["delivered"] == 3
    with app.app_context():
        session = services(app).sessions()
        recipients = session.scalars(select(CampaignRecipient.member_id)
                                     .where(CampaignRecipient.campaign_id == campaign["id"])).all()
        session.close()
    assert sorted(recipients) == sorted(members)


def test_frequency_cap_skips_members_who_had_enough(app, client):
    key, program, members, segment = setup(app, client, n=2)
    for _ in range(2):
        run_batches(app, create(client, key, program, segment).get_json()["id"])
    with app.app_context():  # the older of member 1's two campaigns was exactly 7 days ago: outside the window
        session = services(app).sessions()
        oldest = session.scalar(select(CampaignRecipient).where(CampaignRecipient.member_id == members[1])
                                .order_by(CampaignRecipient.id))
        oldest.created_at = utcnow() - timedelta(days=7, seconds=1)
        session.commit()
        session.close()
    capped = create(client, key, program, segment, frequency_cap={"max": 2, "days": 7}).get_json()
    run_batches(app, capped["id"])
    assert results(client, key, capped["id"])["delivered"] == 1
    assert results(client, key, capped["id"])["capped"] == 1
    with app.app_context():
        session = services(app).sessions()
        skipped = session.scalar(select(CampaignRecipient.member_id).where(
            CampaignRecipient.campaign_id == capped["id"], CampaignRecipient.status == "capped"))
        session.close()
    assert skipped == members[0]


def test_a_scheduled_campaign_starts_at_its_time(app, client):
    key, program, members, segment = setup(app, client, n=1)
    send_at = utcnow() + timedelta(hours=2)
    campaign = create(client, key, program, segment, send_at=send_at.isoformat()).get_json()
    assert campaign["status"] == "scheduled" and pending_batches(app, campaign["id"]) == []
    with app.app_context():
        session = services(app).sessions()
        campaigns.start_due_campaigns(session, send_at - timedelta(seconds=1))
        assert session.get(Campaign, campaign["id"]).status == "scheduled"
        campaigns.start_due_campaigns(session, send_at)
        session.commit()
        assert session.get(Campaign, campaign["id"]).status == "sending"
        session.close()
    run_batches(app, campaign["id"])
    assert results(client, key, campaign["id"])["delivered"] == 1


def test_an_expired_campaign_is_never_sent(app, client):
    key, program, members, segment = setup(app, client, n=1)
    send_at, ends = utcnow() + timedelta(hours=1), utcnow() + timedelta(hours=2)
    campaign = create(client, key, program, segment, send_at=send_at.isoformat(),
                      offer={"text": "Free cookie", "ends_at": ends.isoformat()}).get_json()
    with app.app_context():  # the workers were down until after the offer ended
        session = services(app).sessions()
        campaigns.start_due_campaigns(session, ends)
        session.commit()
        session.close()
    body = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=auth(key)).get_json()
    assert body["status"] == "expired" and body["results"]["delivered"] == 0
    assert pending_batches(app, campaign["id"]) == [] and notices(app, members[0]) == []


def test_an_offer_leaves_the_card_when_it_ends(app, client):
    key, program, members, segment = setup(app, client, n=1)
    ends = utcnow() + timedelta(days=1)
    campaign = create(client, key, program, segment, message=None,
                      offer={"text": "Free cookie", "ends_at": ends.isoformat()})
    assert campaign.status_code == 422  # a null message is not "no message"
    campaign = client.post(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(key), json={
        "name": "Cookie", "segment_id": segment["id"], "offer": {"text": "Free cookie", "ends_at": ends.isoformat()}
    }).get_json()
    run_batches(app, campaign["id"])
    assert [key for key, *_ in notices(app, members[0])] == [f"offer_{campaign['id']}"]
    assert notices(app, members[0], now=ends) == []
    with app.app_context():
        session = services(app).sessions()
        version = session.get(Member, members[0]).pass_version
        campaigns.clear_ended_offers(session, ends)
        session.commit()
        session.close()
    assert run_batches(app, campaign["id"], kind=campaigns.CAMPAIGN_CARDS) == 1
    with app.app_context():
        session = services(app).sessions()
        assert session.get(Member, members[0]).pass_version == version + 1
        session.close()


def test_a_sending_campaign_stops_when_its_offer_ends(app, client, small_batches):
    key, program, members, segment = setup(app, client, n=3)
    ends = utcnow() + timedelta(minutes=5)
    campaign = client.post(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(key), json={
        "name": "Flash", "segment_id": segment["id"], "offer": {"text": "Now!", "ends_at": ends.isoformat()}
    }).get_json()
    with app.app_context():
        session = services(app).sessions()
        assert campaigns.send_batch(session, campaign["id"], 0, utcnow()) == 2
        assert campaigns.send_batch(session, campaign["id"], members[1], ends) == 0
        session.commit()
        assert session.get(Campaign, campaign["id"]).status == "expired"
        session.close()


def test_an_offer_is_redeemed_once_by_a_recipient(app, client):
    key, program, members, segment = setup(app, client, n=1)
    outsider = make_member(client, key, make_program(client, key)["id"])["id"]
    ends = utcnow() + timedelta(days=1)
    campaign = client.post(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(key), json={
        "name": "Cookie", "segment_id": segment["id"], "offer": {"text": "Free cookie", "ends_at": ends.isoformat()}
    }).get_json()
    run_batches(app, campaign["id"])
    url = f"/api/v1/campaigns/{campaign['id']}/redemptions"
    first = client.post(url, json={"member_id": members[0]}, headers=auth(key))
    again = client.post(url, json={"member_id": members[0]}, headers=auth(key))
    assert first.status_code == again.status_code == 201
    assert first.get_json()["redeemed_at"] == again.get_json()["redeemed_at"]
    assert results(client, key, campaign["id"])["redeemed"] == 1
    assert_problem(client.post(url, json={"member_id": outsider}, headers=auth(key)), 409)


def test_bad_campaigns_are_422_naming_the_field(app, client):
    key, program, _, segment = setup(app, client, n=0)
    now = utcnow()
    cases = [
        ({"name": "x", "segment_id": segment["id"]}, "message"),
        ({"name": "x", "segment_id": segment["id"], "send_at": (now + timedelta(days=2)).isoformat(),
          "offer": {"text": "t", "ends_at": (now + timedelta(days=1)).isoformat()}}, "offer.ends_at"),
        ({"name": "x", "segment_id": segment["id"], "message": {"title": {"fr": "Bonjour"}, "body": "b"}}, "message"),
        ({"name": "x", "segment_id": segment["id"], "message": {"title": "t", "body": "b"},
          "frequency_cap": {"max": 0, "days": 7}}, "frequency_cap"),
    ]
    for body, field in cases:
        errors = assert_problem(client.post(f"/api/v1/programs/{program['id']}/campaigns", json=body,
                                            headers=auth(key)), 422)["errors"]
        assert any(name.startswith(field) for name in errors), (body, errors)
    _, other = make_merchant(app)
    other_program = make_program(client, other)
    assert "segment_id" in assert_problem(create(client, other, other_program, segment), 422)["errors"]


def test_campaign_delivered_reaches_subscribed_webhooks_once(app, client, small_batches):
    key, program, members, segment = setup(app, client, n=3)
    hook = client.post("/api/v1/webhooks", headers=auth(key), json={
        "url": "https://hooks.example.com/punchpass", "events": ["campaign.delivered"]})
    assert hook.status_code == 201
    with app.app_context():  # a new webhook is heard within about a second (webhook_subscriptions.py): now
        session = services(app).sessions()
        subscriptions(session).refresh(session.connection())
        session.close()
    campaign = create(client, key, program, segment).get_json()
    run_batches(app, campaign["id"])
    with app.app_context():
        session = services(app).sessions()
        sent = [row.payload["event"] for row in session.scalars(select(OutboxEvent).where(
            OutboxEvent.kind == "webhook", OutboxEvent.program_id == program["id"]))]
        session.close()
    assert [(event["type"], event["data"]["campaign_id"], event["data"]["delivered"]) for event in sent] == \
        [("campaign.delivered", campaign["id"], 3)]


def test_a_card_in_google_wallet_gets_the_message_through_the_capped_google_path(app, client):
    key, program, members, segment = setup(app, client, n=2)
    with app.app_context():
        session = services(app).sessions()
        session.add(GoogleObject(member_id=members[0], object_id=f"issuer.test-{members[0]}", notified_at=[],
                                 message_ids=[]))
        session.commit()
        session.close()
    campaign = create(client, key, program, segment).get_json()
    run_batches(app, campaign["id"])
    with app.app_context():
        session = services(app).sessions()
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "google_message",
                                                         OutboxEvent.member_id.in_(members))).all()
        session.close()
    assert [(row.member_id, row.payload["event"]["type"]) for row in rows] == [(members[0], "campaign.message")]
    assert results(client, key, campaign["id"])["card_updated"] == 1


def test_a_webhook_taking_campaign_messages_hears_every_member(app, client):
    key, program, members, segment = setup(app, client, n=2)
    assert client.post("/api/v1/webhooks", headers=auth(key), json={
        "url": "https://hooks.example.com/punchpass", "events": ["campaign.message"]}).status_code == 201
    with app.app_context():  # a new webhook is heard within about a second (webhook_subscriptions.py): now
        session = services(app).sessions()
        subscriptions(session).refresh(session.connection())
        session.close()
    campaign = create(client, key, program, segment).get_json()
    run_batches(app, campaign["id"])
    with app.app_context():
        session = services(app).sessions()
        heard = sorted(row.member_id for row in session.scalars(select(OutboxEvent).where(
            OutboxEvent.kind == "webhook", OutboxEvent.member_id.in_(members))))
        session.close()
    assert heard == sorted(members)


def test_the_apple_pass_shows_the_message_on_its_back_with_a_change_message(app, client):
    key, program, members, segment = setup(app, client, n=1)
    campaign = create(client, key, program, segment).get_json()
    run_batches(app, campaign["id"])
    response = client.get(f"/api/v1/members/{members[0]}/pass.pkpass", headers=auth(key))
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(response.data)).read("pass.json"))
    lines = [field for field in pass_json["storeCard"]["backFields"] if "Come by for a latte" in field["value"]]
    assert len(lines) == 1 and lines[0]["changeMessage"] == "%@" and lines[0]["label"] == "Spring is here"


def test_jobs_run_due_starts_a_scheduled_campaign_at_its_time(app, client):
    key, program, members, segment = setup(app, client, n=1)
    send_at = utcnow() + timedelta(minutes=30)
    campaign = create(client, key, program, segment, send_at=send_at.isoformat()).get_json()
    run_start_campaigns(app, send_at - timedelta(minutes=1))
    assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=auth(key)).get_json()["status"] == "scheduled"
    run_start_campaigns(app, send_at + timedelta(minutes=1))
    assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=auth(key)).get_json()["status"] == "sending"


def run_start_campaigns(app, as_of) -> None:
    """`punchpass jobs run-due --as-of` for the start_campaigns job, again while another test process holds its
    lease for a moment (the tests share one database)."""
    schedule = tuple(job for job in SCHEDULE if job.name == "start_campaigns")
    for _ in range(100):
        if "start_campaigns" in run_due(app, as_of=as_of, schedule=schedule):
            return
        time.sleep(0.05)
    raise AssertionError("start_campaigns never ran")
