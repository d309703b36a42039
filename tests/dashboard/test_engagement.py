"""The program page shows the referral stats and each survey's results, in the owner's language."""

from __future__ import annotations

import uuid

from tests.dashboard.helpers import signed_in_owner
from tests.factories import auth, make_member, make_merchant, make_program


def test_program_page_shows_referrals_and_survey_results(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": {
        "trigger": "signup", "referrer_points": 100, "referee_points": 20}}, headers=auth(admin))
    referrer = make_member(client, admin, program["id"], name="Mina Park")
    for _ in range(2):
        make_member(client, admin, program["id"], referral_code=referrer["referral_code"])
    survey = client.post(f"/api/v1/programs/{program['id']}/surveys", json={
        "title": "Your visit", "questions": [{"kind": "rating", "text": "How was your coffee?"}]},
        headers=auth(admin)).get_json()
    client.post(f"/api/v1/surveys/{survey['id']}/send", json={"member_id": referrer["id"]},
                headers=auth(admin, str(uuid.uuid4())))
    owner = signed_in_owner(app, merchant_id, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    page = owner.get(f"/dashboard/programs/{program['id']}?lang=ja").get_data(as_text=True)
    assert '<td id="referrals-completed">2</td>' in page and "Mina Park: 2" in page and "200 / 40" in page
    assert "紹介" in page and "アンケート" in page
    assert "Your visit" in page and "1人に案内、0件の回答" in page
