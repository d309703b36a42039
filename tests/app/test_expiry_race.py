"""PostgreSQL: an expiry sweep racing earns and redemptions on the same members loses nothing. Every point
earned ends up spent, expired or still in an open lot, and `ledger verify` stays clean."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.domain import sweeps
from app.domain.ledger import verify_balances
from app.models import LedgerEntry, utcnow
from app.services import services
from tests.factories import earn, make_member, make_merchant, make_program, redeem

TILLS, ROUNDS = 4, 15


def test_an_expiry_sweep_racing_earns_and_redeems_loses_nothing(app, client):
    if services(app).engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises every writer: there is no race to lose")
    _, key = make_merchant(app)
    program = make_program(client, key, expiry={"policy": "rolling_days", "days": 1})
    people = [make_member(client, key, program["id"], points=500, name=f"Racer {n}")["id"] for n in range(3)]
    as_of = utcnow() + timedelta(days=2)  # every lot, old or made during the race, is due for this sweep
    errors, start = [], threading.Barrier(TILLS + 1)

    def till(n):
        with app.test_client() as c:
            start.wait()
            for round_ in range(ROUNDS):
                member = people[(n + round_) % len(people)]
                for response in (earn(c, key, member, points=10), redeem(c, key, member, points=7)):
                    if response.status_code not in (201, 409):
                        errors.append(response.get_json())

    def sweeper():
        start.wait()
        for _ in range(ROUNDS):
            with app.app_context():
                session = services(app).sessions()
                sweeps.expire_points(session, as_of)
                session.commit()
                session.close()

    threads = [threading.Thread(target=till, args=(n,)) for n in range(TILLS)] + [threading.Thread(target=sweeper)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        session = services(app).sessions()
        sweeps.expire_points(session, as_of)
        session.commit()
        assert verify_balances(session) == []
        for member in people:
            by_kind = dict(session.execute(select(LedgerEntry.kind, func.sum(LedgerEntry.points))
                                           .where(LedgerEntry.member_id == member).group_by(LedgerEntry.kind)).all())
            assert by_kind["earn"] + by_kind.get("redeem", 0) + by_kind["expire"] == 0, by_kind
        session.close()
