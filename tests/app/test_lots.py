"""Earned points are lots with their own expiry: spent soonest-expiring first, given back with their dates when a
spend is reversed, expired by a sweep that writes `expire` entries, and pending for a returns window."""

from datetime import datetime, timedelta, timezone

import time_machine
from sqlalchemy import select

from app.domain import events, lots, sweeps
from app.domain.ledger import verify_balances
from app.models import LedgerEntry, LotConsumption, Member, OutboxEvent, Program
from app.services import db_session
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, redeem

DAY0 = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)


def _shop(app, client, **program_fields):
    _, key = make_merchant(app)
    program = make_program(client, key, **program_fields)
    return key, program, make_member(client, key, program["id"])


def _member(client, key, member_id) -> dict:
    return client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()


def _sweep(app, as_of, sweep=sweeps.expire_points):
    with app.app_context():
        session = db_session()
        result = sweep(session, as_of)
        session.commit()
        return result


def _entries(app, member_id) -> list[LedgerEntry]:
    with app.app_context():
        return list(db_session().scalars(select(LedgerEntry).where(LedgerEntry.member_id == member_id)
                                         .order_by(LedgerEntry.id)))


def test_a_redemption_spends_the_soonest_expiring_lot_first_and_records_which(app, client):
    key, _, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30})
    with time_machine.travel(DAY0, tick=False) as clock:
        first = earn(client, key, member["id"], points=100).get_json()["transaction"]
        clock.shift(timedelta(days=5))
        second = earn(client, key, member["id"], points=50).get_json()["transaction"]
        spend = redeem(client, key, member["id"], points=120).get_json()
    assert first["expires_at"].startswith("2026-04-01") and second["expires_at"].startswith("2026-04-06")
    assert spend["member"]["expiring"] == {"points": 30, "expires_at": second["expires_at"]}
    with app.app_context():
        taken = db_session().execute(select(LotConsumption.lot_id, LotConsumption.points)
                                     .where(LotConsumption.entry_id == spend["transaction"]["id"])).all()
    assert sorted(taken) == [(first["id"], 100), (second["id"], 20)]


def test_the_sweep_expires_what_is_left_of_due_lots_once_and_the_card_updates(app, client):
    key, _, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30})
    with time_machine.travel(DAY0, tick=False) as clock:
        earn(client, key, member["id"], points=100)
        clock.shift(timedelta(days=10))
        earn(client, key, member["id"], points=40)
        redeem(client, key, member["id"], points=30)
        version = _member_row(app, member["id"]).pass_version
        assert _sweep(app, DAY0 + timedelta(days=30)) == {"members": 1, "points": 70}
        assert _sweep(app, DAY0 + timedelta(days=30)) == {"members": 0, "points": 0}  # idempotent
    after = _member(client, key, member["id"])
    assert (after["points_balance"], after["expiring"]["points"]) == (40, 40)
    assert _member_row(app, member["id"]).pass_version == version + 1
    expire = _entries(app, member["id"])[-1]
    assert (expire.kind, expire.points, expire.rule) == ("expire", -70, "expiry: rolling_days")
    _assert_verified(app)


def test_reversing_a_redemption_restores_its_lots_with_their_original_dates(app, client):
    key, _, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30})
    with time_machine.travel(DAY0, tick=False) as clock:
        earn(client, key, member["id"], points=100)
        clock.shift(timedelta(days=5))
        earn(client, key, member["id"], points=50)
        spend = redeem(client, key, member["id"], points=120).get_json()["transaction"]
        clock.shift(timedelta(days=20))
        reversal = client.post(f"/api/v1/transactions/{spend['id']}/reverse", json={}, headers=auth(key))
        assert reversal.status_code == 201, reversal.get_json()
    restored = reversal.get_json()["member"]
    assert restored["points_balance"] == 150
    assert restored["expiring"]["points"] == 100 and restored["expiring"]["expires_at"].startswith("2026-04-01")
    assert _sweep(app, DAY0 + timedelta(days=30)) == {"members": 1, "points": 100}  # the old date still holds
    _assert_verified(app)


def test_a_partial_reversal_of_a_redemption_gives_back_the_last_lot_taken_first(app, client):
    key, _, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30})
    with time_machine.travel(DAY0, tick=False) as clock:
        earn(client, key, member["id"], points=100)
        clock.shift(timedelta(days=5))
        earn(client, key, member["id"], points=50)
        spend = redeem(client, key, member["id"], points=120).get_json()["transaction"]
        part = client.post(f"/api/v1/transactions/{spend['id']}/reverse", json={"points": 15}, headers=auth(key))
    assert part.get_json()["member"]["expiring"] == {"points": 45, "expires_at": "2026-04-06T12:00:00+00:00"}
    with app.app_context():
        lots_left = {lot.points: lot.lot_remaining for lot in _entries(app, member["id"]) if lot.kind == "earn"}
    assert lots_left == {100: 0, 50: 45}
    _assert_verified(app)


def test_reversing_spent_points_records_a_shortfall_never_a_negative_balance(app, client):
    key, _, member = _shop(app, client)
    credit = earn(client, key, member["id"], points=100).get_json()["transaction"]
    redeem(client, key, member["id"], points=80)
    response = client.post(f"/api/v1/transactions/{credit['id']}/reverse", json={}, headers=auth(key))
    body = response.get_json()
    assert (body["transaction"]["points"], body["shortfall"], body["member"]["points_balance"]) == (-20, 80, 0)
    again = client.post(f"/api/v1/transactions/{credit['id']}/reverse", json={}, headers=auth(key))
    assert_problem(again, 409)  # reversed in full: 20 taken and 80 recorded short
    _assert_verified(app)


def test_end_of_month_expiry_follows_the_program_time_zone():
    program = Program(expiry_policy="end_of_month", expiry_days=None, timezone="Asia/Tokyo")
    # 31 Jan 16:00 UTC is already 1 Feb in Tokyo: the lot lasts to the end of February there
    expires = lots.expiry_for(program, datetime(2028, 1, 31, 16, tzinfo=timezone.utc))
    assert expires == datetime(2028, 2, 29, 15, tzinfo=timezone.utc)
    program.expiry_policy, program.expiry_days = "end_of_year", 365
    assert lots.expiry_for(program, datetime(2028, 1, 31, 16, tzinfo=timezone.utc)) == \
        datetime(2029, 12, 31, 15, tzinfo=timezone.utc)
    program.expiry_policy = "never"
    assert lots.expiry_for(program, datetime(2028, 1, 31, tzinfo=timezone.utc)) is None


def test_points_expiring_fires_once_n_days_ahead(app, client):
    key, program, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30, "warn_days": 7})
    events.add_channel("test-expiring", lambda s, merchant_id, type, member_id: type == "points.expiring"
                       and member_id == member["id"])
    try:
        with time_machine.travel(DAY0, tick=False):
            earn(client, key, member["id"], points=300)
        heard = []
        for day in (22, 23, 24, 29):
            _sweep(app, DAY0 + timedelta(days=day), sweeps.warn_expiring_points)
            heard.append(_heard(app, "test-expiring"))
    finally:
        events._channels.pop("test-expiring")
    warning = {"member_id": member["id"], "points": 300, "expires_at": "2026-04-01T12:00:00+00:00"}
    assert heard == [[], [warning], [warning], [warning]]


def _heard(app, kind) -> list[dict]:
    with app.app_context():
        return [row.payload["event"]["data"] for row in db_session().scalars(
            select(OutboxEvent).where(OutboxEvent.kind == kind))]


def test_pending_points_wait_out_the_returns_window_and_a_reversal_cancels_them(app, client):
    key, _, member = _shop(app, client, pending_days=14)
    with time_machine.travel(DAY0, tick=False):
        kept = earn(client, key, member["id"], points=100).get_json()
        returned = earn(client, key, member["id"], points=40).get_json()["transaction"]
        assert (kept["member"]["points_balance"], kept["member"]["pending_points"]) == (0, 100)
        assert_problem(redeem(client, key, member["id"], points=10), 409)
        cancel = client.post(f"/api/v1/transactions/{returned['id']}/reverse", json={}, headers=auth(key)).get_json()
        assert (cancel["shortfall"], cancel["member"]["pending_points"]) == (0, 100)
    assert _sweep(app, DAY0 + timedelta(days=13), sweeps.release_pending_points)["points"] == 0
    assert _sweep(app, DAY0 + timedelta(days=14), sweeps.release_pending_points)["points"] == 100
    after = _member(client, key, member["id"])
    assert (after["points_balance"], after["pending_points"]) == (100, 0)
    _assert_verified(app)


def test_verify_reports_a_balance_that_differs_from_the_open_lots(app, client):
    key, _, member = _shop(app, client)
    earn(client, key, member["id"], points=100)
    with app.app_context():
        session = db_session()
        lot = session.scalar(select(LedgerEntry).where(LedgerEntry.member_id == member["id"]))
        lot.lot_remaining = 90
        session.flush()
        problems = [row for row in verify_balances(session) if row["member_id"] == member["id"]]
        session.rollback()
    assert problems and "open lots 90" in problems[0]["problem"]


def _member_row(app, member_id) -> Member:
    with app.app_context():
        return db_session().get(Member, member_id, populate_existing=True)


def _assert_verified(app):
    with app.app_context():
        assert verify_balances(db_session()) == []


def _hold(client, key, member_id, points):
    return client.post("/api/v1/checkout/holds", json={"member_id": member_id, "points": points, "ttl_seconds": 3600},
                       headers=auth(key, f"hold-{member_id}-{points}"))


def test_an_expiry_while_points_are_held_spares_them_and_the_hold_still_captures_from_those_lots(app, client):
    key, _, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30})
    due = DAY0 + timedelta(days=30)
    with time_machine.travel(DAY0, tick=False) as clock:
        lot = earn(client, key, member["id"], points=100).get_json()["transaction"]
        clock.move_to(due - timedelta(minutes=10))
        held = _hold(client, key, member["id"], 80).get_json()
        clock.move_to(due + timedelta(minutes=1))
        _sweep(app, due + timedelta(minutes=1))  # expires only what no hold keeps
        after = _member(client, key, member["id"])
        assert (after["points_balance"], after["held_points"], after["available_points"]) == (80, 80, 0)
        captured = client.post(f"/api/v1/checkout/holds/{held['id']}/capture", headers=auth(key)).get_json()
    assert captured["status"] == "captured"
    assert (captured["member"]["points_balance"], captured["member"]["available_points"]) == (0, 0)
    with app.app_context():
        session = db_session()
        taken = session.execute(select(LotConsumption.lot_id, LotConsumption.points)
                                .where(LotConsumption.entry_id == captured["transaction"]["id"])).all()
        assert taken == [(lot["id"], 80)]  # the capture spent the lot, like a redeem
        assert verify_balances(session) == []
    _sweep(app, due + timedelta(days=1))
    assert [(e.kind, e.points) for e in _entries(app, member["id"])] == [
        ("earn", 100), ("hold", 0), ("expire", -20), ("capture", -80)]


def test_points_a_voided_hold_gives_back_after_their_date_expire_on_the_next_sweep(app, client):
    key, _, member = _shop(app, client, expiry={"policy": "rolling_days", "days": 30})
    due = DAY0 + timedelta(days=30)
    with time_machine.travel(DAY0, tick=False) as clock:
        earn(client, key, member["id"], points=100)
        clock.move_to(due - timedelta(minutes=10))
        held = _hold(client, key, member["id"], 80).get_json()
        clock.move_to(due + timedelta(minutes=1))
        _sweep(app, due + timedelta(minutes=1))
        assert _member(client, key, member["id"])["points_balance"] == 80
        assert client.post(f"/api/v1/checkout/holds/{held['id']}/void", headers=auth(key)).status_code == 200
        assert _member(client, key, member["id"])["available_points"] == 80
        _sweep(app, due + timedelta(minutes=2))
        after = _member(client, key, member["id"])
    assert (after["points_balance"], after["held_points"], after["available_points"]) == (0, 0, 0)
    with app.app_context():
        assert verify_balances(db_session()) == []
