"""Google Wallet end to end against the loopback fake Google over TLS: the save link, class and object inserts,
updates that PATCH only what changed, notifications within Google's cap, and Google's errors."""

from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from app.domain.googlewallet import GOOGLE_CLASS, GOOGLE_MESSAGE, GOOGLE_OBJECT
from app.models import GoogleObject, OutboxEvent
from app.services import services
from passes.google import MAX_SAFE_URL_LENGTH
from tests.factories import auth, earn, make_member, make_merchant, make_program
from workers.jobs import deliver_everything_due

ISSUER = "3388000000012345678"


@pytest.fixture
def client(google_app):
    return google_app.test_client()


@pytest.fixture
def shop(google_app, client):
    _, key = make_merchant(google_app)
    return key, make_program(client, key)


def open_save_link(client, member) -> dict:
    """Follow the member's google_save_url one hop: Google's save page with a JWT; its claims (unverified)."""
    response = client.get(urlsplit(member["google_save_url"]).path)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith("https://pay.google.com/gp/v/save/")
    return {"url": location, "token": location.rsplit("/", 1)[1],
            "claims": jwt.decode(location.rsplit("/", 1)[1], options={"verify_signature": False})}


def saved_member(google_app, client, key, program, **fields) -> dict:
    """A member whose save link was opened and whose object is at the fake."""
    member = make_member(client, key, program["id"], **fields)
    open_save_link(client, member)
    deliver_everything_due(google_app)
    return member


def object_id(member) -> str:
    return f"{ISSUER}.{member['serial_number']}"


def outbox_kinds(google_app, member_id) -> list[str]:
    with google_app.app_context(), services(google_app).sessions() as session:
        return list(session.scalars(select(OutboxEvent.kind).where(OutboxEvent.member_id == member_id)
                                    .order_by(OutboxEvent.id)))


def test_enroll_save_earn_and_a_tier_change_reach_google_with_one_notification(google_app, client, shop,
                                                                                  fake_google, google_account):
    key, program = shop
    member = make_member(client, key, program["id"])
    assert member["google_save_url"].startswith("https://punchpass.test/google/save/")
    assert member["wallets"]["google"] == {"saved": False}

    first = open_save_link(client, member)  # before the insert: the JWT carries the object and its class
    fat = first["claims"]["payload"]
    assert fat["loyaltyObjects"][0]["id"] == object_id(member) and fat["loyaltyClasses"][0]["reviewStatus"]
    deliver_everything_due(google_app)
    class_id = f"{ISSUER}.punchpass-program-{program['id']}"
    assert class_id in fake_google.classes and object_id(member) in fake_google.objects

    second = open_save_link(client, member)  # inserted: a skinny JWT naming the object
    public_key = serialization.load_pem_private_key(google_account["private_key"].encode(), None).public_key()
    claims = jwt.decode(second["token"], public_key, algorithms=["RS256"], audience="google")
    assert claims["payload"] == {"loyaltyObjects": [{"id": object_id(member), "classId": class_id}]}
    assert claims["iss"] == google_account["client_email"] and claims["typ"] == "savetowallet"
    assert claims["origins"] == ["https://punchpass.test"] and len(second["url"]) < MAX_SAFE_URL_LENGTH

    patches = len(fake_google.calls("PATCH", object_id(member)))
    assert earn(client, key, member["id"], points=40).status_code == 201
    deliver_everything_due(google_app)
    sent = fake_google.calls("PATCH", object_id(member))[patches:]
    assert [call.body for call in sent] == [{"loyaltyPoints": fake_google.objects[object_id(member)]["loyaltyPoints"]}]
    assert sent[0].body["loyaltyPoints"]["balance"] == {"int": 40}

    assert earn(client, key, member["id"], points=500).status_code == 201  # reaches Gold
    deliver_everything_due(google_app)
    stored = fake_google.objects[object_id(member)]
    assert stored["loyaltyPoints"]["balance"] == {"int": 540}
    assert stored["secondaryLoyaltyPoints"]["balance"] == {"string": "Gold"}
    messages = fake_google.calls("POST", object_id(member) + "/addMessage")
    assert len(messages) == 1 and messages[0].body["message"]["messageType"] == "TEXT_AND_NOTIFY"
    assert "Gold" in messages[0].body["message"]["body"]


def test_a_burst_of_earns_on_one_card_is_one_patch(google_app, client, shop, fake_google):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    before = len(fake_google.calls("PATCH", object_id(member)))
    for _ in range(5):
        assert earn(client, key, member["id"], points=3).status_code == 201
    deliver_everything_due(google_app)
    sent = fake_google.calls("PATCH", object_id(member))[before:]
    assert len(sent) == 1 and sent[0].body["loyaltyPoints"]["balance"] == {"int": 15}


def test_cards_never_opened_in_google_queue_nothing(google_app, client, shop, fake_google):
    key, program = shop
    member = make_member(client, key, program["id"])
    earn(client, key, member["id"], points=600)
    assert not {GOOGLE_OBJECT, GOOGLE_MESSAGE} & set(outbox_kinds(google_app, member["id"]))
    assert object_id(member) not in fake_google.objects


def test_an_object_google_already_has_is_fetched_and_patched(google_app, client, shop, fake_google):
    """A save of the fat JWT made the object at Google before our insert: 409, GET, then PATCH what differs."""
    key, program = shop
    member = make_member(client, key, program["id"])
    fat = open_save_link(client, member)["claims"]["payload"]
    fake_google.classes[fat["loyaltyClasses"][0]["id"]] = fat["loyaltyClasses"][0]
    fake_google.objects[object_id(member)] = {**fat["loyaltyObjects"][0], "hasUsers": True}
    earn(client, key, member["id"], points=7)
    deliver_everything_due(google_app)
    assert [call.status for call in fake_google.calls("POST", "/loyaltyObject") if call.body
            and call.body.get("id") == object_id(member)] == [409]
    assert fake_google.calls("GET", object_id(member))
    assert fake_google.objects[object_id(member)]["loyaltyPoints"]["balance"] == {"int": 7}


def test_a_design_change_updates_the_class_and_no_object(google_app, client, shop, fake_google):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    class_id = f"{ISSUER}.punchpass-program-{program['id']}"
    object_calls = len(fake_google.calls(path_part=object_id(member)))
    class_calls = len(fake_google.calls(path_part=class_id))
    response = client.patch(f"/api/v1/programs/{program['id']}", json={"branding": {"background_color": "#AA3300"}},
                            headers=auth(key))
    assert response.status_code == 200
    deliver_everything_due(google_app)
    assert len(fake_google.calls(path_part=class_id)) == class_calls + 1  # one PATCH of the class
    assert fake_google.classes[class_id]["hexBackgroundColor"] == "#AA3300"
    assert fake_google.calls("PATCH", class_id)[-1].body["reviewStatus"] == "UNDER_REVIEW"
    assert len(fake_google.calls(path_part=object_id(member))) == object_calls


def test_a_rotated_checkout_code_reaches_the_google_card(google_app, client, shop, fake_google):
    from app.domain.members import rotate_card_link
    key, program = shop
    member = saved_member(google_app, client, key, program)
    with google_app.app_context(), services(google_app).sessions() as session:
        new_code = rotate_card_link(session, member["id"]).barcode_token
        session.commit()
    deliver_everything_due(google_app)
    stored = fake_google.objects[object_id(member)]
    assert stored["barcode"]["value"] == new_code == stored["smartTapRedemptionValue"]


def test_more_than_three_buzzes_a_day_go_silent(google_app, client, shop, fake_google):
    key, program = shop
    response = client.patch(f"/api/v1/programs/{program['id']}", headers=auth(key), json={"tiers": [
        {"name": f"T{n}", "threshold": n * 10} for n in range(6)]})
    assert response.status_code == 200
    member = saved_member(google_app, client, key, program)
    for _ in range(5):
        earn(client, key, member["id"], points=10)
        deliver_everything_due(google_app)
    kinds = [call.body["message"]["messageType"] for call in fake_google.calls("POST", object_id(member) + "/add")]
    assert kinds == ["TEXT_AND_NOTIFY"] * 3 + ["TEXT"] * 2
    assert all(call.status == 200 for call in fake_google.calls("POST", object_id(member) + "/add"))


def test_googles_quota_403_falls_back_to_a_silent_message_and_is_not_retried(google_app, client, shop, fake_google):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    fake_google.notified[object_id(member)] = [__import__("time").time()] * 3  # notified by someone else
    earn(client, key, member["id"], points=500)
    outcomes = deliver_everything_due(google_app)
    calls = fake_google.calls("POST", object_id(member) + "/addMessage")
    assert [(c.status, c.body["message"]["messageType"]) for c in calls] == [(403, "TEXT_AND_NOTIFY"), (200, "TEXT")]
    assert outcomes["retry"] == 0 and outcomes["dead"] == 0


def test_an_object_keeps_at_most_ten_messages(google_app, client, shop, fake_google):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    fake_google.objects[object_id(member)]["messages"] = [
        {"id": f"old-{n}", "header": "h", "body": "b", "messageType": "TEXT"} for n in range(10)]
    earn(client, key, member["id"], points=500)
    deliver_everything_due(google_app)
    messages = fake_google.objects[object_id(member)]["messages"]
    assert len(messages) == 10 and messages[0]["id"] == "old-1" and messages[-1]["id"].startswith("punchpass-")
    with google_app.app_context(), services(google_app).sessions() as session:
        assert len(session.get(GoogleObject, member["id"]).message_ids) == 10


def test_an_expired_token_is_refreshed_once_and_tokens_are_cached(google_app, client, shop, fake_google):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    issued = fake_google.tokens_issued
    earn(client, key, member["id"], points=1)
    earn(client, key, member["id"], points=1)
    deliver_everything_due(google_app)
    assert fake_google.tokens_issued == issued  # the cached token served every call
    fake_google.expire_tokens()
    earn(client, key, member["id"], points=1)
    assert deliver_everything_due(google_app)["delivered"] >= 1
    assert fake_google.tokens_issued == issued + 1
    assert fake_google.objects[object_id(member)]["loyaltyPoints"]["balance"] == {"int": 3}


@pytest.mark.parametrize("status, outcome, words", [
    (429, "retry", "429"), (503, "retry", "503"),
    (400, "dead", "fake 400"), (403, "dead", "add it under Users in the Google Pay & Wallet Console"),
])
def test_google_errors_retry_or_dead_letter_with_a_clear_message(google_app, client, shop, fake_google, status,
                                                                  outcome, words):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    earn(client, key, member["id"], points=2)
    fake_google.fail("PATCH", object_id(member), status)
    assert deliver_everything_due(google_app)[outcome] == 1
    with google_app.app_context(), services(google_app).sessions() as session:
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.member_id == member["id"],
                                                          OutboxEvent.kind == GOOGLE_OBJECT)
                                .order_by(OutboxEvent.id.desc())).first()
        assert words in event.last_error
        if outcome == "retry":  # deliver it now instead of waiting for its backoff
            event.available_at = event.created_at
            session.commit()
    if outcome == "retry":
        deliver_everything_due(google_app)
        assert fake_google.objects[object_id(member)]["loyaltyPoints"]["balance"] == {"int": 2}


def test_without_google_settings_there_is_no_save_link_and_nothing_google_is_queued(app, client):
    plain = app.test_client()
    _, key = make_merchant(app)
    program = make_program(plain, key)
    member = make_member(plain, key, program["id"], points=600)
    assert member["google_save_url"] is None
    assert plain.get(f"/google/save/{'x' * 32}").status_code == 404
    with app.app_context(), services(app).sessions() as session:
        google_rows = session.scalar(select(func.count()).select_from(OutboxEvent).where(  # this program's: the
            (OutboxEvent.program_id == program["id"]) | (OutboxEvent.member_id == member["id"]),  # database is shared
            # with other tests that do use Google
            OutboxEvent.kind.in_([GOOGLE_OBJECT, GOOGLE_CLASS, GOOGLE_MESSAGE])))
    assert google_rows == 0


def test_the_class_logo_is_served_for_google_to_fetch(google_app, client, shop):
    _, program = shop
    response = client.get(f"/google/programs/{program['id']}/logo.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert client.get(f"/google/programs/{program['id']}/hero.png").status_code == 404


def test_a_429_slows_the_pacer_and_is_retried_later(google_app, fake_google):
    from workers.errors import RetryLater
    from workers.google_client import WalletClient
    from workers.google_pacer import LocalPacer
    pacer = LocalPacer(1000)
    client = WalletClient(services(google_app).config.google, pacer)
    fake_google.fail("GET", "/loyaltyClass/", 429)
    with pytest.raises(RetryLater, match="429"):
        client.call("GET", "loyaltyClass", f"{ISSUER}.anything")
    assert pacer._factor == 2
    client.close()


def test_tls_trust_comes_from_ssl_cert_file_too(google_app, fake_google, cert_chain, monkeypatch):
    from workers.errors import RetryLater
    from workers.google_client import WalletClient
    from workers.google_pacer import LocalPacer
    google = services(google_app).config.google
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    untrusting = WalletClient(google, LocalPacer(0))
    with pytest.raises(RetryLater, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.call("GET", "loyaltyClass", f"{ISSUER}.anything")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_chain["root_ca"]))
    trusting = WalletClient(google, LocalPacer(0))
    assert trusting.call("GET", "loyaltyClass", f"{ISSUER}.anything")[0] == 404
    untrusting.close()
    trusting.close()


def test_news_waiting_for_one_card_is_one_message_and_survives_a_retry(google_app, client, shop, fake_google):
    from app.domain import events
    key, program = shop
    member = saved_member(google_app, client, key, program)
    merchant_id = member_merchant(google_app, member)
    with google_app.app_context(), services(google_app).sessions() as session:
        for points in (30, 20):
            events.emit(session, merchant_id=merchant_id, member_id=member["id"],
                        type="points.expiring", data={"points": points})
        session.commit()
    fake_google.fail("POST", object_id(member) + "/addMessage", 503)
    assert deliver_everything_due(google_app)["retry"] == 1
    with google_app.app_context(), services(google_app).sessions() as session:
        session.execute(OutboxEvent.__table__.update().where(OutboxEvent.member_id == member["id"])
                        .values(available_at=OutboxEvent.created_at))
        session.commit()
    deliver_everything_due(google_app)
    sent = [c for c in fake_google.calls("POST", object_id(member) + "/addMessage") if c.status == 200]
    assert len(sent) == 1
    body = sent[0].body["message"]["body"]
    assert "30 points" in body and "20 points" in body and sent[0].body["message"]["header"] == "Points expiring soon"


def member_merchant(google_app, member) -> int:
    from app.models import Member
    with google_app.app_context(), services(google_app).sessions() as session:
        return session.get(Member, member["id"]).merchant_id


def test_a_deleted_member_s_google_card_becomes_inactive(google_app, client, shop, fake_google):
    key, program = shop
    member = saved_member(google_app, client, key, program)
    assert client.delete(f"/api/v1/members/{member['id']}", headers=auth(key)).status_code in (200, 204)
    deliver_everything_due(google_app)
    stored = fake_google.objects[object_id(member)]
    assert stored["state"] == "INACTIVE" and stored["accountName"] != "Mina Park"


def test_the_batch_job_patches_google_itself_and_leaves_webhooks_and_the_over_budget_rest_to_their_own_jobs(
        google_app, client, shop, fake_google):
    from workers.queue import deliver_inline
    key, program = shop
    member = saved_member(google_app, client, key, program)
    assert client.post("/api/v1/webhooks", json={"url": "https://hooks.example/p", "events": ["points.earned"]},
                       headers=auth(key)).status_code == 201
    earn(client, key, member["id"], points=5)
    with google_app.app_context(), services(google_app).sessions() as session:
        waiting = session.execute(select(OutboxEvent.id, OutboxEvent.kind).where(OutboxEvent.delivered_at.is_(None))
                                  .order_by(OutboxEvent.id)).all()
    kinds = {kind for _id, kind in waiting}
    assert GOOGLE_OBJECT in kinds and any(kind.startswith("webhook") for kind in kinds)

    assert deliver_inline(google_app, waiting, budget=0) == [event_id for event_id, _kind in waiting]
    left = deliver_inline(google_app, waiting)

    assert left == [event_id for event_id, kind in waiting if kind not in (GOOGLE_OBJECT, GOOGLE_MESSAGE)]
    assert fake_google.objects[object_id(member)]["loyaltyPoints"]["balance"] == {"int": 5}


def test_a_stamp_card_shows_its_count_and_vouchers_on_google(google_app, client, fake_google):
    _, key = make_merchant(google_app)
    program = make_program(client, key, type="stamps", stamps_required=5, stamp_reward="Free coffee", tiers=[])
    member = saved_member(google_app, client, key, program)
    assert fake_google.objects[object_id(member)]["loyaltyPoints"]["balance"] == {"string": "0/5"}
    assert earn(client, key, member["id"], stamps=7).status_code == 201  # a full card and two on the next
    deliver_everything_due(google_app)
    stored = fake_google.objects[object_id(member)]
    assert stored["loyaltyPoints"]["balance"] == {"string": "2/5"}
    assert [(m["id"], m["body"]) for m in stored["textModulesData"]] == [("vouchers", "Free coffee")]
