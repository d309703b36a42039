"""The dashboard's pages over HTTP: each section renders, changes go through the API's domain (the next pass
has the new colour), staff only read and adjust, and nobody ever sees another merchant's data."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest

from tests.dashboard.helpers import signed_in_owner
from tests.factories import auth, earn, make_member, make_merchant, make_png, make_program, make_reward


@pytest.fixture
def shop(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    reward = make_reward(client, admin, program["id"], "Free coffee", 100)
    member = make_member(client, admin, program["id"], points=150, name="Mina Park")
    owner = signed_in_owner(app, merchant_id, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    return {"client": client, "admin": admin, "program": program, "reward": reward, "member": member,
            "merchant_id": merchant_id, "owner": owner}


def pass_json(shop) -> dict:
    response = shop["client"].get(f"/api/v1/members/{shop['member']['id']}/pass.pkpass", headers=auth(shop["admin"]))
    return json.loads(zipfile.ZipFile(io.BytesIO(response.data)).read("pass.json"))


def test_every_section_renders_for_the_owner(shop):
    for path in ("/dashboard", "/dashboard/programs", f"/dashboard/programs/{shop['program']['id']}",
                 "/dashboard/members", f"/dashboard/members/{shop['member']['id']}", "/dashboard/tills",
                 "/dashboard/api-keys", "/dashboard/webhooks", "/dashboard/password"):
        response = shop["owner"].get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"


def test_overview_counts_the_merchants_figures_with_tables_and_csv(shop):
    page = shop["owner"].get("/dashboard").get_data(as_text=True)
    assert '<svg class="chart" id="chart-enrollments"' in page and '<rect class="series-0"' in page
    assert 'id="members-total">1<' in page and 'id="active-members">1<' in page
    csv = shop["owner"].get("/dashboard/analytics/points.csv")
    assert csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).splitlines()
    assert lines[0] == "label,issued,redeemed" and lines[-1].endswith(",150,0")  # today: 150 issued
    assert shop["owner"].get("/dashboard/analytics/nothing.csv").status_code == 404


def test_saving_branding_changes_the_next_downloaded_pass(shop):
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    response = shop["owner"].post(f"{program_page}/branding", {
        "background_color": "#aa3366", "foreground_color": "#ffffff", "label_color": "#ffee00",
        "logo_text": "Hoshi"}, page=program_page)
    assert response.status_code == 303
    assert 'data-background_color="#AA3366"' in shop["owner"].get(program_page).get_data(as_text=True).replace(
        "#aa3366", "#AA3366")
    card = pass_json(shop)
    assert card["backgroundColor"] == "rgb(170, 51, 102)" and card["logoText"] == "Hoshi"


def test_a_bad_colour_is_refused_with_the_apis_message(shop):
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    shop["owner"].post(f"{program_page}/branding", {"background_color": "red", "foreground_color": "#ffffff",
                                                    "label_color": "#ffee00"}, page=program_page)
    assert "Must be a colour like" in shop["owner"].get(program_page).get_data(as_text=True)
    assert pass_json(shop)["backgroundColor"] != "red"


def test_adjusting_a_member_writes_a_ledger_entry_with_the_reason(shop):
    member_page = f"/dashboard/members/{shop['member']['id']}"
    shop["owner"].post(f"{member_page}/adjust", {"points": "-30", "reason": "Broken cup"}, page=member_page)
    page = shop["owner"].get(member_page).get_data(as_text=True)
    assert 'id="balance">120<' in page and "Broken cup" in page


def test_rewards_tiers_and_members_change_through_the_forms(shop):
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    owner = shop["owner"]
    owner.post(f"{program_page}/rewards", {"name": "Cheesecake", "points_cost": "250"}, page=program_page)
    owner.post(f"/dashboard/rewards/{shop['reward']['id']}/retire", page=program_page)
    tiers = shop["program"]["tiers"]
    owner.post(f"{program_page}/tiers", {"tier_id": [str(tiers[0]["id"]), str(tiers[1]["id"]), ""],
                                         "tier_name": ["Bronze", "Gold", "Platinum"],
                                         "tier_threshold": ["0", "400", "2000"]}, page=program_page)
    program = shop["client"].get(f"/api/v1/programs/{shop['program']['id']}", headers=auth(shop["admin"])).get_json()
    assert [(t["name"], t["threshold"]) for t in program["tiers"]] == [("Bronze", 0), ("Gold", 400), ("Platinum", 2000)]
    assert "Cheesecake" in owner.get(program_page).get_data(as_text=True)
    assert "Free coffee" not in owner.get(program_page).get_data(as_text=True)
    member_page = f"/dashboard/members/{shop['member']['id']}"
    owner.post(f"{member_page}/delete", {"confirm": "yes"}, page=member_page)
    assert shop["client"].get(f"/api/v1/members/{shop['member']['id']}", headers=auth(shop["admin"])).status_code == 404


def test_api_keys_are_shown_once_and_revoked(shop):
    owner = shop["owner"]
    page = owner.post("/dashboard/api-keys", {"scope": "pos", "store": "Shibuya"}, page="/dashboard/api-keys")
    key = page.get_data(as_text=True).split('id="new-key">')[1].split("<")[0]
    assert shop["client"].get("/api/v1/checkout/lookup", headers=auth(key)).status_code in (405, 422, 404)
    listing = owner.get("/dashboard/api-keys").get_data(as_text=True)
    assert key[:12] in listing and key not in listing
    key_id = listing.split(f"{key[:12]}…")[1].split("/dashboard/api-keys/")[1].split("/revoke")[0]
    owner.post(f"/dashboard/api-keys/{key_id}/revoke", page="/dashboard/api-keys")
    assert shop["client"].post("/api/v1/checkout/lookup", json={"barcode": "x"}, headers=auth(key)).status_code == 401


def test_a_pairing_code_is_made_for_a_store(shop):
    page = shop["owner"].post("/dashboard/tills/pairing-codes", {"store": "Ginza"}, page="/dashboard/tills")
    assert page.status_code == 201 and 'id="pairing-code"' in page.get_data(as_text=True)


def test_staff_read_and_adjust_but_change_nothing_else(app, shop):
    staff = signed_in_owner(app, shop["merchant_id"], f"staff-{uuid.uuid4().hex[:8]}@example.com", role="staff")
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    assert staff.get(program_page).status_code == 200
    assert staff.post(f"{program_page}/branding", {"background_color": "#000000", "foreground_color": "#ffffff",
                                                   "label_color": "#ffffff"}, page=program_page).status_code == 403
    assert staff.post("/dashboard/api-keys", {"scope": "admin"}, page="/dashboard/api-keys").status_code == 403
    member_page = f"/dashboard/members/{shop['member']['id']}"
    assert staff.post(f"{member_page}/delete", {"confirm": "yes"}, page=member_page).status_code == 403
    adjusted = staff.post(f"{member_page}/adjust", {"points": "5", "reason": "Goodwill"}, page=member_page)
    assert adjusted.status_code == 303
    assert 'id="balance">155<' in staff.get(member_page).get_data(as_text=True)


def test_a_user_never_sees_another_merchants_data(app, shop):
    other_id, other_admin = make_merchant(app, "Elsewhere")
    other = signed_in_owner(app, other_id, f"other-{uuid.uuid4().hex[:8]}@example.com")
    program_page = f"/dashboard/programs/{shop['program']['id']}"
    member_page = f"/dashboard/members/{shop['member']['id']}"
    for path in (program_page, member_page, f"/dashboard/programs/{shop['program']['id']}/images/logo.png"):
        assert other.get(path).status_code == 404, path
    assert other.post(f"{member_page}/adjust", {"points": "500", "reason": "x"}, page="/dashboard").status_code == 303
    assert other.post(f"{program_page}/branding", {"background_color": "#000000", "foreground_color": "#ffffff",
                                                   "label_color": "#ffffff"}, page="/dashboard").status_code == 404
    assert "Mina Park" not in other.get("/dashboard/members").get_data(as_text=True)
    assert 'id="members-total">0<' in other.get("/dashboard").get_data(as_text=True)
    earn(shop["client"], shop["admin"], shop["member"]["id"], points=1)
    member = shop["client"].get(f"/api/v1/members/{shop['member']['id']}", headers=auth(shop["admin"])).get_json()
    assert member["points_balance"] == 151  # the other owner's adjustment never happened
    del other_admin


def test_a_stamp_card_takes_a_stamp_icon_instead_of_a_strip(app, shop):
    program = make_program(shop["client"], shop["admin"], name="Punch", type="stamps", stamps_required=6, tiers=[])
    page = f"/dashboard/programs/{program['id']}"
    html = shop["owner"].get(page).get_data(as_text=True)
    assert '<option value="stamp">' in html and '<option value="strip">' not in html
    points_page = shop["owner"].get(f"/dashboard/programs/{shop['program']['id']}").get_data(as_text=True)
    assert '<option value="stamp">' not in points_page
    response = shop["owner"].post(f"{page}/images", {"kind": "stamp", "file": (io.BytesIO(make_png(90, 90)), "s.png")},
                                  page=page, content_type="multipart/form-data")
    assert response.status_code == 303
    assert shop["owner"].get(f"{page}/images/stamp@3x.png").status_code == 200
