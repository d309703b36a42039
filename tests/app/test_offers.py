"""Personalised offers end to end: templates through the API, purchases with line items, the offer on the card
and the reason in the API; chosen again at the earn, daily, and after a template changes."""

import io
import json
import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from app.domain import many_cards, offer_templates, offers, purchases
from app.models import LedgerEntry, Member, MemberOffer, OfferTemplate, OutboxEvent, Program, PurchaseItem, utcnow
from app.services import services
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program
from workers.jobs import deliver_event
from workers.scheduled import run_due

COFFEE = {"name": "Coffee lovers", "kind": "top_category", "min_purchases": 2,
          "texts": {"en": "10% off your next {category}", "ja": "次回の{category}が10%オフ"}}


def _items(*lines):
    return [{"category": category, "amount": "3.00", "quantity": quantity} for category, quantity in lines]


def _offers(client, key, member_id) -> dict:
    response = client.get(f"/api/v1/members/{member_id}/offers", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _back(client, member) -> dict:
    data = client.get(member["apple_pass_url"].replace("https://punchpass.test", "")).data
    fields = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("pass.json"))["storeCard"]["backFields"]
    return {field["key"]: field for field in fields}


def _new_offer(client, key, program_id, **body):
    return client.post(f"/api/v1/programs/{program_id}/offers", json=body, headers=auth(key, None))


class Shop:
    def __init__(self, app, client):
        self.app, self.client = app, client
        _, self.key = make_merchant(app)
        self.program = make_program(self.client, self.key)

    def offer(self, **body) -> dict:
        response = _new_offer(self.client, self.key, self.program["id"], **body)
        assert response.status_code == 201, response.get_json()
        self.deliver_refreshes()
        return response.get_json()

    def deliver_refreshes(self) -> None:
        with services(self.app).sessions() as session:
            ids = session.scalars(select(OutboxEvent.id).where(OutboxEvent.kind == offer_templates.OFFERS_REFRESH,
                                                               OutboxEvent.delivered_at.is_(None))).all()
            session.rollback()
        for event_id in ids:
            assert deliver_event(self.app, event_id) == "delivered"

    def pass_version(self, member_id) -> int:
        with services(self.app).sessions() as session:
            version = session.get(Member, member_id).pass_version
            session.rollback()
            return version


@pytest.fixture
def shop(app, client):
    return Shop(app, client)


def test_the_members_most_bought_category_is_on_the_card_and_the_api_says_why(shop, client):
    shop.offer(**COFFEE)
    member = make_member(client, shop.key, shop.program["id"], locale="ja")
    earn(client, shop.key, member["id"], items=_items(("coffee", 5), ("tea", 3), (None, 1)))
    earn(client, shop.key, member["id"], items=_items(("coffee", 2), ("cake", 1)))
    found = _offers(client, shop.key, member["id"])
    assert found["chosen"]["why"] == "most-bought category: coffee, 7 of 12 items in 90 days"
    assert found["chosen"]["text"] == found["on_card"]["text"] == "次回のcoffeeが10%オフ"
    line = _back(client, member)["notice_offer"]
    assert (line["label"], line["value"]) == ("あなたへの特典", "次回のcoffeeが10%オフ")
    assert line["changeMessage"] == "%@"


def test_the_offer_follows_the_purchase_that_changes_the_top_category(shop, client):
    shop.offer(**COFFEE)
    member = make_member(client, shop.key, shop.program["id"])
    earn(client, shop.key, member["id"], items=_items(("coffee", 2)))
    assert _back(client, member)["notice_offer"]["value"] == "10% off your next coffee"
    earn(client, shop.key, member["id"], items=_items(("tea", 3)))
    assert _back(client, member)["notice_offer"]["value"] == "10% off your next tea"


def test_no_history_no_offer_and_no_line_on_the_card(shop, client):
    shop.offer(**COFFEE)
    member = make_member(client, shop.key, shop.program["id"])
    found = _offers(client, shop.key, member["id"])
    assert found["chosen"] is None and found["on_card"] is None
    assert found["evaluated"][0]["why"] == "no purchase in any category in the last 90 days"
    assert "notice_offer" not in _back(client, member)


def test_the_merchants_default_offer_fits_members_without_history(shop, client):
    member = make_member(client, shop.key, shop.program["id"])
    shop.offer(**COFFEE)
    shop.offer(name="Welcome", kind="default", texts={"en": "A free cookie with any drink"})
    assert _offers(client, shop.key, member["id"])["on_card"]["text"] == "A free cookie with any drink"
    assert _back(client, member)["notice_offer"]["value"] == "A free cookie with any drink"


def test_programs_without_offers_keep_line_items_but_choose_nothing(shop, client, app):
    member = make_member(client, shop.key, shop.program["id"])
    earn(client, shop.key, member["id"], items=_items(("coffee", 2)))
    with services(app).sessions() as session:
        assert session.scalar(select(PurchaseItem.quantity).where(PurchaseItem.member_id == member["id"])) == 2
        assert session.get(MemberOffer, member["id"]) is None
        session.rollback()
    assert _offers(client, shop.key, member["id"]) == {"chosen": None, "on_card": None, "evaluated": [],
                                                       "precedence": offers_precedence()}


def offers_precedence() -> str:
    from app.api.offers import PRECEDENCE
    return PRECEDENCE


def test_the_window_includes_items_exactly_its_length_old_and_not_a_second_more(shop, client, app):
    member = make_member(client, shop.key, shop.program["id"])
    now = utcnow()
    with services(app).sessions() as session:
        entry = session.scalars(select(LedgerEntry).limit(1)).first()
        if entry is None:
            earn(client, shop.key, member["id"], points=1)
            entry = session.scalars(select(LedgerEntry).limit(1)).first()
        for category, age in (("coffee", timedelta(days=90)), ("tea", timedelta(days=90, seconds=1)),
                              ("cake", timedelta(0))):
            session.add(PurchaseItem(entry_id=entry.id, member_id=member["id"], category=category, quantity=1,
                                     amount=Decimal("1"), created_at=now - age))
        session.flush()
        counts = purchases.category_counts(session, [member["id"]], now - timedelta(days=90), now)
        session.rollback()
    assert counts[member["id"]] == {"coffee": 1, "cake": 1}


def test_the_daily_job_offers_we_miss_you_to_lapsed_members_and_a_second_run_changes_nothing(shop, client, app):
    shop.offer(name="Come back", kind="we_miss_you", days=30, texts={"en": "We miss you: double points this week"})
    regular, lapsed = (make_member(client, shop.key, shop.program["id"]) for _ in range(2))
    for member in (regular, lapsed):
        earn(client, shop.key, member["id"], amount="5.00")
    with services(app).sessions() as session:
        session.execute(LedgerEntry.__table__.update().where(LedgerEntry.member_id == lapsed["id"])
                        .values(created_at=utcnow() - timedelta(days=31)))
        session.commit()
    versions = {m["id"]: shop.pass_version(m["id"]) for m in (regular, lapsed)}
    results = run_due(app, as_of=utcnow() + timedelta(days=2))
    assert results["choose_offers"] == {"cards": 1}
    assert shop.pass_version(lapsed["id"]) == versions[lapsed["id"]] + 1
    assert shop.pass_version(regular["id"]) == versions[regular["id"]]
    assert _offers(client, shop.key, lapsed["id"])["on_card"]["text"] == "We miss you: double points this week"
    with services(app).sessions() as session:
        program = session.get(Program, shop.program["id"])
        assert offer_templates.refresh_program(session, program, utcnow() + timedelta(days=2)) == 0
        session.rollback()


def test_retiring_an_offer_takes_it_off_the_cards_that_showed_it(shop, client):
    offer = shop.offer(name="Welcome", kind="default", texts={"en": "A free cookie"})
    member = make_member(client, shop.key, shop.program["id"])
    earn(client, shop.key, member["id"], amount="1.00")
    assert "notice_offer" in _back(client, member)
    version = shop.pass_version(member["id"])
    response = client.delete(f"/api/v1/programs/{shop.program['id']}/offers/{offer['id']}", headers=auth(shop.key))
    assert response.status_code == 204
    shop.deliver_refreshes()
    assert shop.pass_version(member["id"]) == version + 1
    assert "notice_offer" not in _back(client, member)
    listed = client.get(f"/api/v1/programs/{shop.program['id']}/offers", headers=auth(shop.key)).get_json()["data"]
    assert [(o["id"], o["active"], o["members"]) for o in listed] == [(offer["id"], False, 0)]


def test_editing_an_offers_text_updates_the_cards_showing_it(shop, client):
    offer = shop.offer(name="Welcome", kind="default", texts={"en": "A free cookie"})
    member = make_member(client, shop.key, shop.program["id"])
    earn(client, shop.key, member["id"], amount="1.00")
    version = shop.pass_version(member["id"])
    response = client.patch(f"/api/v1/programs/{shop.program['id']}/offers/{offer['id']}",
                            json={"texts": {"en": "A free muffin"}}, headers=auth(shop.key, "edit-1"))
    assert response.status_code == 200 and response.get_json()["members"] == 1
    shop.deliver_refreshes()
    assert shop.pass_version(member["id"]) == version + 1
    assert _back(client, member)["notice_offer"]["value"] == "A free muffin"


def test_the_list_counts_the_members_each_offer_fits_now(shop, client):
    coffee = shop.offer(**COFFEE)
    fallback = shop.offer(name="Welcome", kind="default", texts={"en": "A free cookie"})
    for lines in (_items(("coffee", 2)), _items(("tea", 2)), _items(("coffee", 1))):
        earn(client, shop.key, make_member(client, shop.key, shop.program["id"])["id"], items=lines)
    listed = client.get(f"/api/v1/programs/{shop.program['id']}/offers", headers=auth(shop.key)).get_json()
    assert {o["id"]: o["members"] for o in listed["data"]} == {coffee["id"]: 2, fallback["id"]: 1}
    assert listed["data"][0]["rule"] == "the member's most-bought category in the last 90 days, at least 2 items"


@pytest.mark.parametrize("body, field", [
    ({**COFFEE, "texts": {"en": "{discount}% off"}}, "texts.en"),
    ({**COFFEE, "texts": {"en": "50% off {category"}}, "texts.en"),
    ({**COFFEE, "texts": {"fr": "Réduction"}}, "texts.fr"),
    ({**COFFEE, "texts": {}}, "texts"),
    ({**COFFEE, "days": 30}, "days"),
    ({**COFFEE, "window_days": 0}, "window_days"),
    ({**COFFEE, "kind": "birthday"}, "kind"),
    ({"kind": "default", "texts": {"en": "x"}}, "name"),
])
def test_bad_templates_are_refused_naming_the_field(shop, client, body, field):
    problem = assert_problem(_new_offer(client, shop.key, shop.program["id"], **body), 422)
    assert any(name == field or name.startswith(field + ".") for name in problem["errors"]), problem["errors"]


def test_another_merchants_offers_and_members_are_not_found(shop, client, app):
    offer = shop.offer(**COFFEE)
    member = make_member(client, shop.key, shop.program["id"])
    _, other = make_merchant(app, "Other")
    assert_problem(client.get(f"/api/v1/programs/{shop.program['id']}/offers", headers=auth(other)), 404)
    assert_problem(client.patch(f"/api/v1/programs/{shop.program['id']}/offers/{offer['id']}", json={"name": "x"},
                                headers=auth(other, "o-1")), 404)
    assert_problem(client.get(f"/api/v1/members/{member['id']}/offers", headers=auth(other)), 404)


def test_a_template_change_turns_offers_on_and_retiring_the_last_turns_them_off(shop, client, app):
    offer = shop.offer(**COFFEE)

    def active() -> bool:
        with services(app).sessions() as session:
            value = session.get(Program, shop.program["id"]).offers_active
            session.rollback()
            return value
    assert active()
    client.delete(f"/api/v1/programs/{shop.program['id']}/offers/{offer['id']}", headers=auth(shop.key))
    assert not active()
    with services(app).sessions() as session:
        assert session.get(OfferTemplate, offer["id"]).active is False
        session.rollback()


def test_choosing_again_at_an_earn_costs_no_statement_in_a_program_without_offers(app, shop, client):
    member = make_member(client, shop.key, shop.program["id"])
    statements = []

    def count(*_):
        statements.append(1)
    engine = services(app).engine
    with services(app).sessions() as session:
        row = session.get(Member, member["id"])
        _ = row.program.offers_active
        event.listen(engine, "before_cursor_execute", count)
        try:
            offers.after_purchase(session, row, utcnow())
            assert offers.offer_notices(session, row) == ()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        session.rollback()
    assert statements == []


def test_a_purchase_refunded_in_full_no_longer_counts_towards_the_top_category(shop, client):
    shop.offer(**{**COFFEE, "min_purchases": 1})
    member = make_member(client, shop.key, shop.program["id"])
    coffee = earn(client, shop.key, member["id"], items=_items(("coffee", 3))).get_json()["transaction"]
    tea = earn(client, shop.key, member["id"], items=_items(("tea", 2))).get_json()["transaction"]
    client.post(f"/api/v1/transactions/{tea['id']}/reverse", json={"points": 1}, headers=auth(shop.key, None))
    assert _offers(client, shop.key, member["id"])["chosen"]["why"] == (
        "most-bought category: coffee, 3 of 5 items in 90 days")  # a partial refund: its lines still count
    response = client.post(f"/api/v1/transactions/{coffee['id']}/reverse", json={}, headers=auth(shop.key, None))
    assert response.status_code == 201, response.get_json()
    assert _offers(client, shop.key, member["id"])["chosen"]["why"] == (
        "most-bought category: tea, 2 of 2 items in 90 days")


def test_the_google_object_carries_the_offer_in_the_members_language_and_fits_googles_schema(google_app):
    from app.google_cards import loyalty_object
    from tests.fakes.walletobjects_schema import schema_errors
    client = google_app.test_client()
    _, key = make_merchant(google_app)
    program = make_program(client, key)
    client.post(f"/api/v1/programs/{program['id']}/offers", headers=auth(key),
                json={"name": "Welcome", "kind": "default", "texts": {"en": "A free cookie", "ko": "쿠키 무료"}})
    member = make_member(client, key, program["id"], locale="ko")
    earn(client, key, member["id"], amount="2.00")
    with google_app.app_context(), services(google_app).sessions() as session:  # as in the worker's job
        body = loyalty_object(session, services(google_app).config, session.get(Member, member["id"]))
        session.rollback()
    assert {"id": "offer", "header": "회원님을 위한 혜택", "body": "쿠키 무료"}.items() <= next(
        module for module in body["textModulesData"] if module["id"] == "offer").items()
    assert schema_errors(body, "LoyaltyObject") == []


def test_an_offer_reaching_many_members_is_one_design_change_plus_their_google_objects(shop, client, app,
                                                                                        monkeypatch):
    from app.models import GoogleObject
    monkeypatch.setattr(many_cards, "CARD_BY_CARD", 1)
    members = [make_member(client, shop.key, shop.program["id"]) for _ in range(3)]
    with services(app).sessions() as session:
        session.add(GoogleObject(member_id=members[0]["id"], object_id=f"issuer.obj{members[0]['id']}"))
        design = session.get(Program, shop.program["id"]).design_version
        session.commit()
    versions = [shop.pass_version(m["id"]) for m in members]
    shop.offer(name="Welcome", kind="default", texts={"en": "A free cookie"})
    assert [shop.pass_version(m["id"]) for m in members] == versions  # no card-by-card update...
    with services(app).sessions() as session:
        assert session.get(Program, shop.program["id"]).design_version == design + 1  # ...one re-issue of all
        queued = session.scalars(select(OutboxEvent.member_id).where(  # this program's members: the database is shared
            OutboxEvent.kind == "google_object", OutboxEvent.member_id.in_([m["id"] for m in members]))).all()
        session.rollback()
    assert queued == [members[0]["id"]]
    assert _back(client, members[2])["notice_offer"]["value"] == "A free cookie"


def test_an_offer_reads_back_with_its_settings_and_defaults(shop, client):
    offer = shop.offer(**COFFEE)
    got = client.get(f"/api/v1/programs/{shop.program['id']}/offers/{offer['id']}", headers=auth(shop.key))
    assert got.status_code == 200
    body = got.get_json()
    assert (body["kind"], body["priority"], body["window_days"], body["min_purchases"], body["categories"]) == (
        "top_category", 30, 90, 2, [])
    assert body["texts"] == COFFEE["texts"] and body["active"] is True
