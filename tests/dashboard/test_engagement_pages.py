"""The program's offers page (templates, their rules, how many cards show each) and the locations rows on the
program page: saved through the API's domain, so the next pass carries them."""

from __future__ import annotations

import uuid

import pytest

from tests.dashboard.helpers import signed_in_owner
from tests.dashboard.test_pages import pass_json
from tests.factories import auth, earn, make_member, make_merchant, make_program


@pytest.fixture
def shop(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    member = make_member(client, admin, program["id"], name="Mina Park")
    owner = signed_in_owner(app, merchant_id, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    return {"client": client, "admin": admin, "program": program, "member": member, "owner": owner}


def test_the_offers_page_lists_each_rule_and_the_cards_showing_it(shop, app):
    client, admin, program_id = shop["client"], shop["admin"], shop["program"]["id"]
    response = client.post(f"/api/v1/programs/{program_id}/offers", headers=auth(admin),
                           json={"name": "Coffee lovers", "kind": "top_category",
                                 "texts": {"en": "10% off {category}"}})
    assert response.status_code == 201
    earn(client, admin, shop["member"]["id"], items=[{"category": "coffee", "amount": "4.00"}])
    page = shop["owner"].get(f"/dashboard/programs/{program_id}/offers?lang=ja").get_data(as_text=True)
    assert "Coffee lovers" in page and "the member&#39;s most-bought category in the last 90 days" in page
    assert "<td>30</td><td>1</td>" in page  # priority 30, one card shows it
    assert "表示中のカード" in page


def test_locations_saved_on_the_program_page_go_on_the_next_pass(shop):
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    assert 'name="latitude"' in shop["owner"].get(program_page).get_data(as_text=True)
    response = shop["owner"].post(f"{program_page}/locations", {
        "name": ["Shibuya", ""], "latitude": ["35.6595", ""], "longitude": ["139.7005", ""],
        "text_en": ["Coffee nearby", ""], "text_ja": ["近くにカフェ", ""], "text_ko": ["", ""]}, page=program_page)
    assert response.status_code == 303
    assert pass_json(shop)["locations"] == [{"latitude": 35.6595, "longitude": 139.7005,
                                             "relevantText": "Coffee nearby"}]


def test_a_latitude_off_the_globe_is_refused_with_the_apis_message(shop):
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    shop["owner"].post(f"{program_page}/locations", {"name": ["Nowhere"], "latitude": ["95"], "longitude": ["0"],
                                                     "text_en": [""], "text_ja": [""], "text_ko": [""]},
                       page=program_page)
    assert "latitude" in shop["owner"].get(program_page).get_data(as_text=True)
    assert "locations" not in pass_json(shop)


def test_another_merchants_offers_page_is_not_found(app, shop):
    _, other_admin = make_merchant(app, "Other")
    other = make_program(app.test_client(), other_admin)
    assert shop["owner"].get(f"/dashboard/programs/{other['id']}/offers").status_code == 404
