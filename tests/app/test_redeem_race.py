"""20 tills redeem from one card at the same instant: exactly the affordable number succeed."""

import threading

from app.domain.ledger import verify_balances
from app.services import services
from tests.factories import auth, make_member, make_merchant, make_program, redeem


def test_twenty_concurrent_redeems_never_overspend(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"], points=70)
    barrier, results = threading.Barrier(20), []

    def till(n):
        with app.test_client() as c:
            barrier.wait()
            results.append(redeem(c, key, member["id"], idempotency_key=f"till-{n}", points=10).status_code)

    threads = [threading.Thread(target=till, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] * 7 + [409] * 13
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"] == 0
    with app.app_context():
        session = services(app).sessions()
        assert verify_balances(session) == []
        session.close()
