"""The offers page's forms: the owner creates, edits and retires offer templates (as the API would), a bad value is
refused naming the field, and staff only read."""

from __future__ import annotations

import uuid

from tests.dashboard.helpers import signed_in_owner
from tests.factories import auth, make_merchant, make_program


def setup(app, role: str = "owner"):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    user = signed_in_owner(app, merchant_id, f"{role}-{uuid.uuid4().hex[:8]}@example.com", role=role)
    return client, admin, program, user, f"/dashboard/programs/{program['id']}/offers"


def api_offers(client, admin, program):
    return client.get(f"/api/v1/programs/{program['id']}/offers", headers=auth(admin)).get_json()["data"]


def test_owner_creates_an_offer_from_the_form_and_the_api_lists_it(app):
    client, admin, program, owner, page = setup(app)
    response = owner.post(page, {"name": "Coffee fans", "kind": "top_category", "window_days": "60",
                                 "min_purchases": "3", "categories": "coffee, tea", "priority": "5",
                                 "text_en": "10% off your next {category}", "text_ja": "次回の{category}が10%オフ"},
                          page=page)
    assert response.status_code == 303
    [offer] = api_offers(client, admin, program)
    assert (offer["name"], offer["kind"], offer["priority"], offer["window_days"], offer["min_purchases"],
            offer["categories"]) == ("Coffee fans", "top_category", 5, 60, 3, ["coffee", "tea"])
    assert offer["texts"] == {"en": "10% off your next {category}", "ja": "次回の{category}が10%オフ"}
    assert "Coffee fans" in owner.get(page).get_data(as_text=True)


def test_owner_edits_the_texts_and_priority_then_retires_it(app):
    client, admin, program, owner, page = setup(app)
    created = client.post(f"/api/v1/programs/{program['id']}/offers", headers=auth(admin), json={
        "name": "Welcome back", "kind": "we_miss_you", "days": 20, "texts": {"en": "We missed you: {days} days"}})
    offer_id = created.get_json()["id"]
    owner.post(f"{page}/{offer_id}", {"text_en": "Come back: a free cookie", "text_ko": "다시 오세요", "priority": "3"},
               page=page)
    [offer] = api_offers(client, admin, program)
    assert (offer["texts"], offer["priority"], offer["days"]) == (
        {"en": "Come back: a free cookie", "ko": "다시 오세요"}, 3, 20)

    assert owner.post(f"{page}/{offer_id}/retire", page=page).status_code == 303
    [offer] = api_offers(client, admin, program)
    assert offer["active"] is False


def test_a_bad_value_is_refused_naming_the_field_and_nothing_is_saved(app):
    client, admin, program, owner, page = setup(app)
    owner.post(page, {"name": "Lapsed", "kind": "we_miss_you", "days": "0", "text_en": "Hi"}, page=page)
    assert "days:" in owner.get(page).get_data(as_text=True)
    owner.post(page, {"name": "Nothing said", "kind": "default"}, page=page)
    assert "texts:" in owner.get(page).get_data(as_text=True)
    assert api_offers(client, admin, program) == []


def test_staff_see_the_offers_but_cannot_save(app):
    client, admin, program, staff, page = setup(app, role="staff")
    created = client.post(f"/api/v1/programs/{program['id']}/offers", headers=auth(admin), json={
        "name": "Everyone", "kind": "default", "texts": {"en": "A free refill"}}).get_json()
    html = staff.get(page).get_data(as_text=True)
    assert "Everyone" in html and "text_en" not in html
    assert staff.post(page, {"name": "Mine", "kind": "default", "text_en": "x"}, page=page).status_code == 403
    assert staff.post(f"{page}/{created['id']}/retire", page=page).status_code == 403
    assert [(o["name"], o["active"]) for o in api_offers(client, admin, program)] == [("Everyone", True)]
