"""Segments: every rule at its edges (thresholds exactly met, windows across local day and month ends in a
non-UTC zone, members with no purchases), compiled to one SQL statement, counted on demand through the API."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, select, update

from app.domain import segments
from app.models import LedgerEntry, Member, Program, PurchaseItem
from app.services import services
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program

TOKYO = ZoneInfo("Asia/Tokyo")


def count(app, program_id: int, conditions: list[dict], as_of: datetime, match: str = "all") -> set[int]:
    """The ids matching, as of `as_of`."""
    rules = segments.validate_rules({"match": match, "conditions": conditions})
    with app.app_context():
        session = services(app).sessions()
        try:
            program = session.get(Program, program_id)
            return set(session.scalars(segments.members_query(session, program, rules, as_of)))
        finally:
            session.close()


def set_member(app, member_id: int, **values) -> None:
    with app.app_context():
        session = services(app).sessions()
        session.execute(update(Member).where(Member.id == member_id).values(**values))
        session.commit()
        session.close()


def purchase(client, app, key, member_id: int, at: datetime, amount: str = "10.00", category: str | None = None):
    """A money earn, moved to `at` (with its categories)."""
    body = {"items": [{"category": category, "amount": amount}]} if category else {"amount": amount}
    entry_id = earn(client, key, member_id, **body).get_json()["transaction"]["id"]
    with app.app_context():
        session = services(app).sessions()
        session.execute(update(LedgerEntry).where(LedgerEntry.id == entry_id).values(created_at=at))
        session.execute(update(PurchaseItem).where(PurchaseItem.entry_id == entry_id).values(created_at=at))
        session.commit()
        session.close()


def setup(app, client, n: int = 3, **program_fields):
    _, key = make_merchant(app)
    program = make_program(client, key, **program_fields)
    members = [make_member(client, key, program["id"], name=f"M{index}")["id"] for index in range(n)]
    return key, program, members


NOW = datetime(2026, 3, 15, 3, 0, tzinfo=timezone.utc)


def test_balance_thresholds_are_exact(app, client):
    _, program, (a, b, c) = setup(app, client)
    for member_id, points in ((a, 99), (b, 100), (c, 101)):
        set_member(app, member_id, points_balance=points, lifetime_points=points)

    def balance(op):
        return count(app, program["id"], [{"field": "points_balance", "op": op, "value": 100}], NOW)

    assert (balance("gte"), balance("gt"), balance("lte"), balance("lt"), balance("eq")) == \
        ({b, c}, {c}, {a, b}, {a}, {b})
    assert count(app, program["id"], [{"field": "lifetime_points", "op": "gte", "value": 101}], NOW) == {c}


def test_days_window_counts_local_days_across_a_month_end_in_tokyo(app, client):
    key, program, (late, early, never) = setup(app, client, timezone="Asia/Tokyo")
    # 1 March 00:30 in Tokyo is still 28 February in UTC
    as_of = datetime(2026, 3, 1, 0, 30, tzinfo=TOKYO)
    purchase(client, app, key, late, datetime(2026, 2, 28, 23, 59, 59, tzinfo=TOKYO))
    purchase(client, app, key, early, datetime(2026, 3, 1, 0, 0, tzinfo=TOKYO))

    def bought(window, op="in_window"):
        return count(app, program["id"], [{"field": "last_purchase", "op": op, "window": window}], as_of)

    assert bought({"days": 1}) == {early}  # today, local
    assert bought({"days": 2}) == {late, early}  # today and yesterday
    assert bought({"month": "this"}) == {early}
    assert bought({"month": "last"}) == {late}
    assert bought({"days": 1}, "not_in_window") == {late, never}
    assert bought({"from": "2026-02-28", "to": "2026-02-28"}) == {late}


def test_month_window_in_a_zone_behind_utc_at_the_year_end(app, client):
    key, program, (december, january, _) = setup(app, client, timezone="America/Los_Angeles")
    zone = ZoneInfo("America/Los_Angeles")
    purchase(client, app, key, december, datetime(2025, 12, 31, 23, 0, tzinfo=zone))  # 1 Jan 07:00 UTC
    purchase(client, app, key, january, datetime(2026, 1, 1, 0, 0, tzinfo=zone))
    as_of = datetime(2026, 1, 1, 12, 0, tzinfo=zone)

    assert count(app, program["id"], [{"field": "purchase_count", "op": "gte", "value": 1,
                                       "window": {"month": "last"}}], as_of) == {december}
    assert count(app, program["id"], [{"field": "purchase_count", "op": "gte", "value": 1,
                                       "window": {"month": "this"}}], as_of) == {january}


def test_purchase_count_and_value_include_members_who_never_bought(app, client):
    key, program, (two, one, none) = setup(app, client)
    purchase(client, app, key, two, NOW, "12.50")
    purchase(client, app, key, two, NOW, "12.50")
    purchase(client, app, key, one, NOW, "24.99")

    def purchases(field, op, value):
        return count(app, program["id"], [{"field": field, "op": op, "value": value}], NOW)

    assert purchases("purchase_count", "lte", 1) == {one, none}
    assert purchases("purchase_count", "eq", 0) == {none}
    assert purchases("purchase_count", "lt", 2) == {one, none}
    assert purchases("purchase_count", "gte", 2) == {two}
    assert purchases("purchase_count", "gte", 0) == {two, one, none}
    assert purchases("purchase_value", "gte", "25.00") == {two}  # exactly 25.00
    assert purchases("purchase_value", "lt", "25") == {one, none}


def test_points_given_without_money_are_not_a_purchase(app, client):
    key, program, (member, _, _) = setup(app, client)
    earn(client, key, member, points=50)
    assert count(app, program["id"], [{"field": "purchase_count", "op": "gte", "value": 1}], NOW) == set()


def test_categories_bought_in_a_window(app, client):
    key, program, (beans, cake, _) = setup(app, client)
    purchase(client, app, key, beans, datetime(2026, 3, 10, tzinfo=timezone.utc), category="beans")
    purchase(client, app, key, cake, datetime(2026, 1, 10, tzinfo=timezone.utc), category="cake")

    def bought(op, value, window=None):
        condition = {"field": "category", "op": op, "value": value, **({"window": window} if window else {})}
        return count(app, program["id"], [condition], NOW)

    assert bought("bought", ["beans", "tea"]) == {beans}
    assert bought("bought", ["cake"], {"days": 30}) == set()
    assert bought("not_bought", ["beans"]) == {cake, _}


def test_tags_locale_tier_and_any(app, client):
    key, program, (vip, korean, plain) = setup(app, client)
    assert client.put(f"/api/v1/members/{vip}/tags", json={"tags": ["VIP", "vip", "staff"]},
                      headers=auth(key)).get_json()["tags"] == ["staff", "vip"]
    set_member(app, korean, locale="ko")
    gold = earn(client, key, plain, points=500).get_json()["member"]["tier"]
    assert gold == "Gold"

    assert count(app, program["id"], [{"field": "tag", "op": "has", "value": ["vip"]}], NOW) == {vip}
    assert count(app, program["id"], [{"field": "tag", "op": "has_not", "value": ["vip"]}], NOW) == {korean, plain}
    assert count(app, program["id"], [{"field": "locale", "op": "in", "value": ["ko"]}], NOW) == {korean}
    assert count(app, program["id"], [{"field": "tier", "op": "in", "value": ["Gold"]}], NOW) == {plain}
    assert count(app, program["id"], [{"field": "tier", "op": "not_in", "value": ["Gold"]}], NOW) == {vip, korean}
    assert count(app, program["id"], [{"field": "tag", "op": "has", "value": ["vip"]},
                                      {"field": "locale", "op": "in", "value": ["ko"]}], NOW, "any") == {vip, korean}


def test_enrolment_window_is_inclusive_of_both_local_days(app, client):
    _, program, (first, last, after) = setup(app, client, timezone="Asia/Seoul")
    seoul = ZoneInfo("Asia/Seoul")
    set_member(app, first, created_at=datetime(2026, 2, 1, 0, 0, tzinfo=seoul))
    set_member(app, last, created_at=datetime(2026, 2, 28, 23, 59, tzinfo=seoul))
    set_member(app, after, created_at=datetime(2026, 3, 1, 0, 0, tzinfo=seoul))
    window = {"from": "2026-02-01", "to": "2026-02-28"}
    assert count(app, program["id"], [{"field": "enrolled", "op": "in_window", "window": window}], NOW) == \
        {first, last}


def test_wallet_removed_means_had_it_and_no_longer(app, client):
    _, program, (installed, removed, never) = setup(app, client)
    set_member(app, installed, apple_devices=1, apple_ever_installed=True, google_saved=True, google_ever_saved=True)
    set_member(app, removed, apple_devices=0, apple_ever_installed=True, google_saved=False, google_ever_saved=True)

    for field, state, expected in (("apple_wallet", "installed", {installed}), ("apple_wallet", "removed", {removed}),
                                   ("apple_wallet", "never", {never}), ("google_wallet", "saved", {installed}),
                                   ("google_wallet", "removed", {removed}), ("google_wallet", "never", {never})):
        assert count(app, program["id"], [{"field": field, "op": "is", "value": state}], NOW) == expected


def test_a_segment_is_counted_with_one_sql_statement(app, client):
    key, program, members = setup(app, client, n=4)
    for member in members:
        purchase(client, app, key, member, NOW, category="beans")
    rules = segments.validate_rules({"match": "all", "conditions": [
        {"field": "purchase_count", "op": "lte", "value": 3, "window": {"days": 30}},
        {"field": "purchase_value", "op": "gte", "value": "1"},
        {"field": "category", "op": "bought", "value": ["beans"]},
        {"field": "tag", "op": "has_not", "value": ["staff"]},
        {"field": "apple_wallet", "op": "is", "value": "never"}]})
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        session = services(app).sessions()
        stored = session.get(Program, program["id"])
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", record)
        try:
            query = segments.members_query(session, stored, rules, NOW)
            assert session.scalar(select(func.count()).select_from(query.subquery())) == 4
        finally:
            event.remove(engine, "before_cursor_execute", record)
            session.close()
    assert len(statements) == 1, statements


def test_segment_api_create_count_update_delete(app, client):
    key, program, (a, b, c) = setup(app, client)
    set_member(app, a, points_balance=200)
    created = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key), json={
        "name": "Rich", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 100}]}})
    assert created.status_code == 201
    segment = created.get_json()
    assert segment["rules"]["match"] == "all"
    assert client.get(f"/api/v1/segments/{segment['id']}/count", headers=auth(key)).get_json()["count"] == 1
    assert client.get(f"/api/v1/segments/{segment['id']}?count=true", headers=auth(key)).get_json()["count"] == 1
    assert "count" not in client.get(f"/api/v1/segments/{segment['id']}", headers=auth(key)).get_json()
    listed = client.get(f"/api/v1/programs/{program['id']}/segments?count=true", headers=auth(key)).get_json()
    assert [(item["id"], item["count"]) for item in listed["data"]] == [(segment["id"], 1)]
    patched = client.patch(f"/api/v1/segments/{segment['id']}", headers=auth(key), json={
        "rules": {"conditions": [{"field": "points_balance", "op": "lt", "value": 100}]}})
    assert patched.status_code == 200
    assert client.get(f"/api/v1/segments/{segment['id']}/count", headers=auth(key)).get_json()["count"] == 2
    assert client.delete(f"/api/v1/segments/{segment['id']}", headers=auth(key)).status_code == 204
    assert_problem(client.get(f"/api/v1/segments/{segment['id']}/count", headers=auth(key)), 404)


def test_another_merchants_segment_is_not_found(app, client):
    key, program, _ = setup(app, client)
    segment = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key), json={
        "name": "All", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}).get_json()
    _, other = make_merchant(app)
    assert_problem(client.get(f"/api/v1/segments/{segment['id']}/count", headers=auth(other)), 404)
    assert_problem(client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(other), json={
        "name": "x", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}), 404)


def test_bad_rules_are_422_naming_the_part(app, client):
    key, program, _ = setup(app, client, n=0)
    cases = [
        ({"conditions": [{"field": "shoe_size", "op": "gte", "value": 1}]}, "rules.conditions[0].field"),
        ({"conditions": [{"field": "points_balance", "op": "bought", "value": 1}]}, "rules.conditions[0].op"),
        ({"conditions": [{"field": "points_balance", "op": "gte", "value": -1}]}, "rules.conditions[0].value"),
        ({"conditions": [{"field": "points_balance", "op": "gte", "value": True}]}, "rules.conditions[0].value"),
        ({"conditions": [{"field": "last_purchase", "op": "in_window"}]}, "rules.conditions[0].window"),
        ({"conditions": [{"field": "last_purchase", "op": "in_window", "window": {"days": 0}}]},
         "rules.conditions[0].window.days"),
        ({"conditions": [{"field": "enrolled", "op": "in_window",
                          "window": {"from": "2026-03-02", "to": "2026-03-01"}}]}, "rules.conditions[0].window.to"),
        ({"conditions": [{"field": "enrolled", "op": "in_window", "window": {"from": "2026-02-30"}}]},
         "rules.conditions[0].window.from"),
        ({"conditions": [{"field": "locale", "op": "in", "value": ["fr"]}]}, "rules.conditions[0].value"),
        ({"conditions": [{"field": "apple_wallet", "op": "is", "value": "lost"}]}, "rules.conditions[0].value"),
        ({"conditions": [{"field": "tag", "op": "has", "value": ["x"], "window": {"days": 3}}]},
         "rules.conditions[0].window"),
        ({"match": "some", "conditions": []}, "rules.match"),
        ({"conditions": []}, "rules.conditions"),
    ]
    for rules, field in cases:
        response = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key),
                               json={"name": "Bad", "rules": rules})
        assert field in assert_problem(response, 422)["errors"], (rules, response.get_json())
