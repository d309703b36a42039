"""Surveys end to end over HTTP (no browser): offered on demand or after N purchases, a link on the card, the
public page (en/ja/ko, signed per-member link), answers stored once with the bonus paid once, the link gone
from the card once answered, closed and foreign links refused, results for the merchant. Also the join page
recording the visitor's address for the referral velocity cap."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from app.card_notices import card_notices
from app.models import LedgerEntry, Member, Referral, SurveyInvitation, SurveyResponse
from app.services import db_session
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program

QUESTIONS = [{"kind": "rating", "text": "How was your coffee?", "translations": {"ja": "コーヒーはいかがでしたか？"}},
             {"kind": "choice", "text": "How did you find us?", "choices": ["Friend", "Map", "Walk-in"]},
             {"kind": "text", "text": "Anything else?", "required": False}]


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))[1]


def make_survey(client, key, program, **fields) -> dict:
    body = {"title": "Your visit", "questions": QUESTIONS, "bonus_points": 30, **fields}
    response = client.post(f"/api/v1/programs/{program['id']}/surveys", json=body,
                           headers=auth(key, str(uuid.uuid4())))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def send(client, key, survey, member):
    return client.post(f"/api/v1/surveys/{survey['id']}/send", json={"member_id": member["id"]},
                       headers=auth(key, str(uuid.uuid4())))


def path_of(url: str) -> str:
    return url[url.index("/join/"):]


def answer(client, path, **answers):
    form = {"csrf_token": csrf_of(client.get(path)), "q1": "4", "q2": "Map", "q3": "Lovely", **answers}
    return client.post(path, data=form)


def notice_keys(app, member) -> list[str]:
    with app.app_context():
        return [n.key for n in card_notices(db_session(), db_session().get(Member, member["id"]))]


def bonus_entries(app, member) -> int:
    with app.app_context():
        return db_session().scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.member_id == member["id"], LedgerEntry.kind == "bonus"))


def setup_shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    return key, program, make_survey(client, key, program), make_member(client, key, program["id"])


def test_a_sent_survey_is_on_the_card_answered_once_with_the_bonus_once(app, client):
    key, program, survey, member = setup_shop(app, client)
    sent = send(client, key, survey, member)
    assert sent.status_code == 201
    path = path_of(sent.get_json()["url"])
    assert notice_keys(app, member) == [f"survey_{survey['id']}"]
    page = client.get(path)
    assert page.status_code == 200 and "How was your coffee?" in page.get_data(as_text=True)
    token = csrf_of(page)
    done = answer(client, path)
    assert done.status_code == 200 and "30 points" in done.get_data(as_text=True)
    assert notice_keys(app, member) == []  # the card's link went away
    reopened = client.get(path)
    assert reopened.status_code == 200 and "already answered" in reopened.get_data(as_text=True)
    again = client.post(path, data={"csrf_token": token, "q1": "1", "q2": "Map"})
    assert again.status_code == 409 and "already answered" in again.get_data(as_text=True)
    assert bonus_entries(app, member) == 1
    member_now = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert member_now["points_balance"] == 30
    assert_problem(send(client, key, survey, member), 409)  # nothing more to ask


def test_the_answer_is_refused_twice_even_when_both_forms_were_open(app, client):
    key, program, survey, member = setup_shop(app, client)
    path = path_of(send(client, key, survey, member).get_json()["url"])
    token = csrf_of(client.get(path))
    first = client.post(path, data={"csrf_token": token, "q1": "5", "q2": "Friend"})
    second = client.post(path, data={"csrf_token": token, "q1": "2", "q2": "Map"})
    assert (first.status_code, second.status_code) == (200, 409)
    with app.app_context():
        answers = db_session().scalars(select(SurveyResponse.answers)).all()
    assert [a for a in answers if a.get("q1") in (2, 5)] == [{"q1": 5, "q2": "Friend"}]
    assert bonus_entries(app, member) == 1


def test_a_missing_or_bad_answer_shows_the_form_again_and_stores_nothing(app, client):
    key, program, survey, member = setup_shop(app, client)
    path = path_of(send(client, key, survey, member).get_json()["url"])
    bad = answer(client, path, q1="6")
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.get_data(as_text=True)
    assert answer(client, path, q2="Spaceship").status_code == 422
    assert answer(client, path, q1="").status_code == 422
    assert bonus_entries(app, member) == 0 and notice_keys(app, member) == [f"survey_{survey['id']}"]
    assert answer(client, path, q3="").status_code == 200  # free text is optional here


def test_a_closed_link_an_other_programs_link_and_a_forged_one_are_refused(app, client):
    key, program, survey, member = setup_shop(app, client)
    url = send(client, key, survey, member).get_json()["url"]
    other = make_program(client, key, name="Other shop")
    foreign = url.replace(f"/join/{program['slug']}/", f"/join/{other['slug']}/")
    assert client.get(path_of(foreign)).status_code == 404
    assert client.get(path_of(url)[:-3] + "xyz").status_code == 404
    assert client.get(f"/join/{program['slug']}/survey/1").status_code == 404  # an id alone is no token
    with app.app_context():
        invitation = db_session().scalars(select(SurveyInvitation).where(
            SurveyInvitation.member_id == member["id"])).one()
        invitation.expires_at -= timedelta(days=31)
        db_session().commit()
    assert client.get(path_of(url)).status_code == 410
    assert client.post(path_of(url), data={"q1": "5", "q2": "Map"}).status_code == 410
    assert notice_keys(app, member) == [] and bonus_entries(app, member) == 0


def test_offered_on_the_card_after_n_purchases(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    survey = make_survey(client, key, program, after_purchases=2, bonus_points=0)
    member = make_member(client, key, program["id"])
    earn(client, key, member["id"], points=5)
    assert notice_keys(app, member) == []
    earn(client, key, member["id"], points=5)
    assert notice_keys(app, member) == [f"survey_{survey['id']}"]
    earn(client, key, member["id"], points=5)  # offered once
    with app.app_context():
        assert db_session().scalar(select(func.count()).select_from(SurveyInvitation)) >= 1
        assert db_session().scalar(select(func.count()).select_from(SurveyInvitation).where(
            SurveyInvitation.member_id == member["id"])) == 1


def test_the_page_and_the_card_speak_the_members_language(app, client):
    key, program, survey, member = setup_shop(app, client)
    path = path_of(send(client, key, survey, member).get_json()["url"])
    page = client.get(path + "?lang=ja").get_data(as_text=True)
    assert "コーヒーはいかがでしたか？" in page and "回答を送信" in page
    korean = make_member(client, key, program["id"], locale="ko")
    send(client, key, survey, korean)
    with app.app_context():
        notice = card_notices(db_session(), db_session().get(Member, korean["id"]))[0]
    assert notice.text == "의견을 들려주세요 (30포인트 적립)"


def test_results_count_and_average_for_the_merchant_only(app, client):
    key, program, survey, member = setup_shop(app, client)
    other = make_member(client, key, program["id"])
    answer(client, path_of(send(client, key, survey, member).get_json()["url"]), q1="5", q2="Friend")
    answer(client, path_of(send(client, key, survey, other).get_json()["url"]), q1="2", q2="Friend", q3="")
    results = client.get(f"/api/v1/surveys/{survey['id']}/responses", headers=auth(key)).get_json()
    assert (results["invited"], results["responses"], results["response_rate"]) == (2, 2, 1.0)
    rating, choice, text = results["questions"]
    assert rating["average"] == 3.5 and rating["counts"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert choice["counts"] == {"Friend": 2, "Map": 0, "Walk-in": 0}
    assert text["recent"] == ["Lovely"] and len(results["data"]) == 2
    _, stranger = make_merchant(app, "Other")
    assert_problem(client.get(f"/api/v1/surveys/{survey['id']}/responses", headers=auth(stranger)), 404)
    assert_problem(send(client, stranger, survey, member), 404)


def test_send_refuses_another_programs_member_and_a_switched_off_survey(app, client):
    key, program, survey, member = setup_shop(app, client)
    other_program = make_program(client, key, name="Second")
    outsider = make_member(client, key, other_program["id"])
    assert "member_id" in str(assert_problem(send(client, key, survey, outsider), 422)["errors"])
    off = client.patch(f"/api/v1/surveys/{survey['id']}", json={"active": False}, headers=auth(key))
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert_problem(send(client, key, survey, member), 409)


def test_a_choice_question_needs_choices(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    response = client.post(f"/api/v1/programs/{program['id']}/surveys", json={
        "title": "T", "questions": [{"kind": "choice", "text": "Pick", "choices": ["Only"]}]}, headers=auth(key))
    assert "questions.0.choices" in str(assert_problem(response, 422)["errors"])


def test_the_join_page_records_the_visitors_address_for_the_velocity_cap(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": {
        "trigger": "signup", "referrer_points": 10, "max_per_ip_per_day": 1}}, headers=auth(key))
    referrer = make_member(client, key, program["id"])
    for name in ("Kim", "Lee"):
        page = client.get(f"/join/{program['slug']}?ref={referrer['referral_code']}")
        assert referrer["referral_code"] in page.get_data(as_text=True)
        client.post(f"/join/{program['slug']}", data={"csrf_token": csrf_of(page), "name": name, "consent": "yes",
                                                       "referral_code": referrer["referral_code"]},
                    environ_base={"REMOTE_ADDR": "192.0.2.44"})
    with app.app_context():
        rows = db_session().scalars(select(Referral).where(Referral.referrer_id == referrer["id"])
                                    .order_by(Referral.id)).all()
    assert [(r.ip, r.state, r.reason) for r in rows] == [("192.0.2.44", "completed", None),
                                                         ("192.0.2.44", "rejected", "ip_velocity")]


def test_switching_a_survey_off_takes_its_link_off_the_cards_at_once(app, client):
    key, program, survey, member = setup_shop(app, client)
    send(client, key, survey, member)
    before = pass_version(app, member)
    client.patch(f"/api/v1/surveys/{survey['id']}", json={"active": False}, headers=auth(key))
    assert notice_keys(app, member) == [] and pass_version(app, member) > before  # the card was re-issued


def pass_version(app, member) -> int:
    with app.app_context():
        return db_session().get(Member, member["id"]).pass_version


def test_a_deleted_members_survey_link_is_not_found(app, client):
    key, program, survey, member = setup_shop(app, client)
    path = path_of(send(client, key, survey, member).get_json()["url"])
    assert client.delete(f"/api/v1/members/{member['id']}", headers=auth(key, str(uuid.uuid4()))).status_code == 204
    assert client.get(path).status_code == 404


def test_a_referee_sees_the_referral_bonus_named_on_their_member_page(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": {
        "trigger": "signup", "referrer_points": 10, "referee_points": 5}}, headers=auth(key))
    referrer = make_member(client, key, program["id"])
    page = client.get(f"/join/{program['slug']}?ref={referrer['referral_code']}&lang=ja")
    client.post(f"/join/{program['slug']}", data={"csrf_token": csrf_of(page), "name": "Sora", "consent": "yes",
                                                   "referral_code": referrer["referral_code"]})
    assert "お友だち紹介" in client.get("/member?lang=ja").get_data(as_text=True)
