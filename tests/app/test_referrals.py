"""Referrals: rewards on the program's trigger, tiered incentives, caps, and the fraud controls (self-referral by
email, phone or device, one person using a code twice, velocity per address and per referrer, refunds)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from app.card_notices import card_notices
from app.models import DeviceRegistration, LedgerEntry, Member, OutboxEvent, Referral
from app.services import db_session
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, redeem

SIGNUP = {"trigger": "signup", "referrer_points": 100, "referee_points": 50}
FIRST = {"trigger": "first_purchase", "referrer_points": 100, "referee_points": 50}


def shop(app, client, settings: dict | None = None, **program_fields) -> tuple[str, dict]:
    _, key = make_merchant(app)
    program = make_program(client, key, **program_fields)
    if settings is not None:
        response = client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": settings}, headers=auth(key))
        assert response.status_code == 200, response.get_json()
    return key, program


def join(client, key, program, referrer, **fields) -> dict:
    return make_member(client, key, program["id"], referral_code=referrer["referral_code"], **fields)


def balance(client, key, member) -> int:
    return client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"]


def referrals_of(client, key, member) -> dict:
    response = client.get(f"/api/v1/members/{member['id']}/referrals", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def state_of(client, key, referee) -> tuple[str, str | None]:
    made = referrals_of(client, key, referee)["referred_by"]
    return made["state"], made["reason"]


def joined_days_ago(app, member: dict, days: int) -> None:
    with app.app_context():
        db_session().get(Member, member["id"]).created_at -= timedelta(days=days)
        db_session().commit()


def referral_entries(app, member_id: int) -> list[LedgerEntry]:
    with app.app_context():
        return list(db_session().scalars(select(LedgerEntry).where(LedgerEntry.member_id == member_id,
                                                                   LedgerEntry.kind == "referral")))


def test_signup_trigger_rewards_both_at_once_with_a_reason_naming_the_referral(app, client):
    key, program = shop(app, client, SIGNUP)
    referrer = make_member(client, key, program["id"], email="ann@example.com")
    referee = join(client, key, program, referrer, email="bob@example.com")
    assert (balance(client, key, referrer), referee["points_balance"]) == (100, 50)
    made = referrals_of(client, key, referrer)
    assert made["stats"] == {"pending": 0, "completed": 1, "rejected": 0, "points_earned": 100}
    referral = made["data"][0]
    assert referral["referee_id"] == referee["id"] and referral["state"] == "completed"
    entry = referral_entries(app, referrer["id"])[0]
    assert entry.reason.startswith(f"Referral #{referral['id']}")
    assert entry.rule == f"referral #{referral['id']}: signup"
    assert made["referral_url"].endswith(f"/join/{program['slug']}?ref={referrer['referral_code']}")


def test_first_purchase_trigger_pays_on_the_first_purchase_only(app, client):
    key, program = shop(app, client, FIRST)
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    assert balance(client, key, referrer) == 0 and state_of(client, key, referee) == ("pending", None)
    earn(client, key, referee["id"], amount="10")
    earn(client, key, referee["id"], amount="10")
    assert balance(client, key, referrer) == 100
    assert balance(client, key, referee) == 20 + 50
    assert state_of(client, key, referee) == ("completed", None)


def test_every_purchase_pays_within_the_window_and_not_after(app, client):
    key, program = shop(app, client, {"trigger": "every_purchase", "within_days": 30, "referrer_points": 10,
                                      "referee_points": 5})
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    earn(client, key, referee["id"], points=1)
    earn(client, key, referee["id"], points=1)
    assert balance(client, key, referrer) == 20
    joined_days_ago(app, referee, 31)
    earn(client, key, referee["id"], points=1)
    assert balance(client, key, referrer) == 20 and balance(client, key, referee) == 3 + 10


def test_a_purchase_after_the_window_rejects_a_pending_referral(app, client):
    key, program = shop(app, client, {**FIRST, "within_days": 7})
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    joined_days_ago(app, referee, 8)
    earn(client, key, referee["id"], points=5)
    assert state_of(client, key, referee) == ("rejected", "window_passed") and balance(client, key, referrer) == 0


def test_the_same_person_using_a_code_twice_is_rewarded_once(app, client):
    key, program = shop(app, client, SIGNUP)
    referrer = make_member(client, key, program["id"], email="ann@example.com")
    first = join(client, key, program, referrer, email="bob@example.com")
    again = join(client, key, program, referrer, email="Bob@Example.com")
    again_by_phone = join(client, key, program, referrer, phone="+81 90 1111 2222")
    and_again = join(client, key, program, referrer, phone="+81-90-1111-2222")
    assert state_of(client, key, first) == ("completed", None)
    assert state_of(client, key, again) == ("rejected", "already_member") and again["points_balance"] == 0
    assert state_of(client, key, again_by_phone) == ("completed", None)
    assert state_of(client, key, and_again) == ("rejected", "already_member")
    assert balance(client, key, referrer) == 200


def test_referring_yourself_by_email_or_phone_is_rejected(app, client):
    key, program = shop(app, client, SIGNUP)
    referrer = make_member(client, key, program["id"], email="ann@example.com", phone="+82 10 1234 5678")
    by_email = join(client, key, program, referrer, email="ANN@Example.com")
    by_phone = join(client, key, program, referrer, phone="+82 10-1234-5678")
    assert state_of(client, key, by_email) == ("rejected", "self_referral")
    assert state_of(client, key, by_phone) == ("rejected", "self_referral")
    assert balance(client, key, referrer) == 0 and by_email["points_balance"] == by_phone["points_balance"] == 0


def test_the_same_apple_device_as_the_referrer_refuses_the_reward(app, client):
    key, program = shop(app, client, FIRST)
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    with app.app_context():
        db_session().add_all(DeviceRegistration(device_library_id="device-1", push_token="ab" * 16, member_id=m["id"])
                             for m in (referrer, referee))
        db_session().commit()
    earn(client, key, referee["id"], points=5)
    assert state_of(client, key, referee) == ("rejected", "same_device") and balance(client, key, referrer) == 0


def test_two_friends_on_one_device_are_rewarded_once(app, client):
    key, program = shop(app, client, FIRST)
    referrer = make_member(client, key, program["id"])
    first, second = join(client, key, program, referrer), join(client, key, program, referrer)
    with app.app_context():
        db_session().add_all(DeviceRegistration(device_library_id="phone-9", push_token="cd" * 16, member_id=m["id"])
                             for m in (first, second))
        db_session().commit()
    earn(client, key, first["id"], points=5)
    earn(client, key, second["id"], points=5)
    assert state_of(client, key, first) == ("completed", None)
    assert state_of(client, key, second) == ("rejected", "same_device") and balance(client, key, referrer) == 100


def test_velocity_cap_per_address_per_day(app, client):
    key, program = shop(app, client, {**SIGNUP, "max_per_ip_per_day": 2})
    referrers = [make_member(client, key, program["id"]) for _ in range(3)]
    joined = [join(client, key, program, referrer, client_ip="203.0.113.7") for referrer in referrers]
    other_address = join(client, key, program, referrers[0], client_ip="198.51.100.1")
    assert [state_of(client, key, m) for m in joined] == [("completed", None)] * 2 + [("rejected", "ip_velocity")]
    assert state_of(client, key, other_address) == ("completed", None)
    assert balance(client, key, referrers[2]) == 0


def test_velocity_cap_per_referrer_per_day(app, client):
    key, program = shop(app, client, {**SIGNUP, "max_per_referrer_per_day": 2})
    referrer = make_member(client, key, program["id"])
    joined = [join(client, key, program, referrer) for _ in range(3)]
    assert [state_of(client, key, m)[1] for m in joined] == [None, None, "referrer_velocity"]
    assert balance(client, key, referrer) == 200
    with app.app_context():  # yesterday's referrals do not count today
        for referral in db_session().scalars(select(Referral).where(Referral.referrer_id == referrer["id"])):
            referral.created_at -= timedelta(days=1)
        db_session().commit()
    assert state_of(client, key, join(client, key, program, referrer)) == ("completed", None)


def test_tiered_incentives_pay_more_from_the_3rd_and_5th_referral(app, client):
    key, program = shop(app, client, {**SIGNUP, "tiers": [{"from": 5, "referrer_points": 300},
                                                           {"from": 3, "referrer_points": 150}]})
    referrer = make_member(client, key, program["id"])
    paid = []
    for _ in range(6):
        before = balance(client, key, referrer)
        join(client, key, program, referrer)
        paid.append(balance(client, key, referrer) - before)
    assert paid == [100, 100, 150, 150, 300, 300]
    ordinals = sorted(r["ordinal"] for r in referrals_of(client, key, referrer)["data"])
    assert ordinals == [1, 2, 3, 4, 5, 6]


def test_the_referrer_cap_rejects_referrals_beyond_it(app, client):
    key, program = shop(app, client, {**SIGNUP, "max_referrals": 1})
    referrer = make_member(client, key, program["id"])
    first, second = join(client, key, program, referrer), join(client, key, program, referrer)
    assert state_of(client, key, first)[0] == "completed"
    assert state_of(client, key, second) == ("rejected", "referrer_cap") and balance(client, key, referrer) == 100


def reverse(client, key, transaction_id, **body):
    return client.post(f"/api/v1/transactions/{transaction_id}/reverse", json=body,
                       headers=auth(key, str(uuid.uuid4())))


def test_refunding_the_qualifying_purchase_reverses_both_rewards(app, client):
    key, program = shop(app, client, FIRST)
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    purchase = earn(client, key, referee["id"], points=40).get_json()["transaction"]
    assert (balance(client, key, referrer), balance(client, key, referee)) == (100, 90)
    assert reverse(client, key, purchase["id"], points=10).status_code == 201  # partly: the purchase stands
    assert balance(client, key, referrer) == 100 and state_of(client, key, referee)[0] == "completed"
    assert reverse(client, key, purchase["id"]).status_code == 201
    assert (balance(client, key, referrer), balance(client, key, referee)) == (0, 0)
    assert state_of(client, key, referee) == ("rejected", "refunded")
    reward = referrals_of(client, key, referrer)["data"][0]["rewards"][0]
    assert reward["reversed_at"] is not None and reward["qualifying_transaction_id"] == purchase["id"]
    stats = client.get(f"/api/v1/programs/{program['id']}/referrals/stats", headers=auth(key)).get_json()
    assert stats["referrer_points"] == 0 and stats["rejected_by_reason"] == {"refunded": 1}


def test_a_refunded_reward_already_spent_is_a_shortfall_never_a_negative_balance(app, client):
    key, program = shop(app, client, FIRST)
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    purchase = earn(client, key, referee["id"], points=40).get_json()["transaction"]
    assert redeem(client, key, referrer["id"], points=80).status_code == 201
    assert reverse(client, key, purchase["id"]).status_code == 201
    assert balance(client, key, referrer) == 0
    reversal = [e for e in referral_entries(app, referrer["id"])]
    with app.app_context():
        undo = db_session().scalars(select(LedgerEntry).where(LedgerEntry.reverses_id == reversal[0].id)).one()
    assert (undo.points, undo.shortfall) == (-20, 80)


def test_referral_completed_reaches_webhooks(app, client):
    key, program = shop(app, client, FIRST)
    hook = client.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/p",
                                                 "events": ["referral.completed"]}, headers=auth(key))
    assert hook.status_code == 201, hook.get_json()
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    purchase = earn(client, key, referee["id"], points=5).get_json()["transaction"]
    earn(client, key, referee["id"], points=5)
    with app.app_context():
        rows = db_session().scalars(select(OutboxEvent).where(OutboxEvent.kind == "webhook")).all()
        sent = [row.payload["event"] for row in rows if row.payload["event"]["type"] == "referral.completed"
                and row.payload["event"]["data"]["referrer_id"] == referrer["id"]]
    assert len(sent) == 1
    assert sent[0]["data"]["referee_id"] == referee["id"] and sent[0]["data"]["qualifying_transaction_id"] == \
        purchase["id"] and sent[0]["data"]["referrer_points"] == 100


def test_settings_are_validated_naming_the_field(app, client):
    key, program = shop(app, client)
    for settings, field in (({"trigger": "every_purchase", "referrer_points": 5}, "within_days"),
                            ({"trigger": "weekly", "referrer_points": 5}, "trigger"),
                            ({"trigger": "signup"}, "referrer_points"),
                            ({"trigger": "signup", "referrer_points": -1}, "referrer_points")):
        body = assert_problem(client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": settings},
                                           headers=auth(key)), 422)
        assert field in str(body["errors"]), body
    off = client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": None}, headers=auth(key))
    assert off.status_code == 200 and off.get_json()["referrals"] is None


def test_stats_and_another_merchants_members_and_programs(app, client):
    key, program = shop(app, client, SIGNUP)
    referrer = make_member(client, key, program["id"], name="Ann")
    join(client, key, program, referrer)
    join(client, key, program, referrer, email="x@example.com")
    join(client, key, program, referrer, email="x@example.com")
    stats = client.get(f"/api/v1/programs/{program['id']}/referrals/stats", headers=auth(key)).get_json()
    assert (stats["total"], stats["completed"], stats["rejected"]) == (3, 2, 1)
    assert stats["top_referrers"] == [{"member_id": referrer["id"], "name": "Ann", "completed": 2}]
    assert stats["referrer_points"] == 200 and stats["referee_points"] == 100
    _, stranger = make_merchant(app, "Other")
    assert_problem(client.get(f"/api/v1/programs/{program['id']}/referrals/stats", headers=auth(stranger)), 404)
    assert_problem(client.get(f"/api/v1/members/{referrer['id']}/referrals", headers=auth(stranger)), 404)


def test_the_card_shows_the_referral_link_while_the_program_rewards_referrals(app, client):
    key, program = shop(app, client, SIGNUP)
    member = make_member(client, key, program["id"], locale="ja")
    with app.app_context():
        notices = card_notices(db_session(), db_session().get(Member, member["id"]))
    assert [n.key for n in notices] == ["referral_link"]
    assert notices[0].label == "友だちを招待" and member["referral_code"] in notices[0].text
    assert notices[0].link.endswith(f"/join/{program['slug']}?ref={member['referral_code']}")
    client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": None}, headers=auth(key))
    with app.app_context():
        assert card_notices(db_session(), db_session().get(Member, member["id"])) == ()


def test_without_referral_settings_a_code_is_recorded_and_pays_nothing(app, client):
    key, program = shop(app, client)
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    earn(client, key, referee["id"], points=5)
    assert state_of(client, key, referee) == ("pending", None) and balance(client, key, referrer) == 0


def test_on_a_stamp_card_the_first_visit_is_the_qualifying_purchase(app, client):
    key, program = shop(app, client, FIRST, type="stamps", stamps_required=5, stamp_reward="Free coffee", tiers=[])
    referrer = make_member(client, key, program["id"])
    referee = join(client, key, program, referrer)
    assert earn(client, key, referee["id"], stamps=1).status_code == 201
    assert balance(client, key, referrer) == 100
    assert state_of(client, key, referee) == ("completed", None)
