"""After a worker dies mid-delivery, `punchpass outbox status` says which events are leased, by whom, since
when and until when, instead of a silent "retrying"."""

import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from app import create_app
from app.cli import cli
from app.config import load_config
from app.models import OutboxEvent, utcnow
from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program
from tests.workers.test_wallet_push import Device
from workers import jobs


@pytest.fixture
def private_app(private_env, fake_apns, cert_chain):
    """On a database of its own, so the counts are this test's alone."""
    env = {**private_env, "APNS_BASE_URL": fake_apns.base_url, "APNS_CA_FILE": str(cert_chain["root_ca"])}
    app = create_app(load_config(env), testing=True)
    app.config["ENV_FOR_CLI"] = env
    yield app
    services(app).engine.dispose()


def an_earn_event(app) -> int:
    client = app.test_client()
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    Device(client, client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data).register()
    earn(client, key, member["id"], points=5)
    with services(app).sessions() as session:
        return session.scalar(select(OutboxEvent.id).where(OutboxEvent.member_id == member["id"]))


def outbox_status(app) -> dict:
    result = CliRunner().invoke(cli, ["outbox", "status"], env=app.config["ENV_FOR_CLI"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def lease_and_die(app, event_id: int) -> None:
    """What a worker does first, and then nothing: it was killed."""
    with services(app).sessions() as session:
        assert jobs._lease_pushes(session, [event_id]) != []


def test_status_names_the_worker_holding_an_event_and_since_when(private_app):
    event_id = an_earn_event(private_app)
    lease_and_die(private_app, event_id)

    status = outbox_status(private_app)

    assert (status["waiting"], status["leased"], status["retrying"]) == (0, 1, 0)
    [lease] = status["leases"]
    assert lease["id"] == event_id and lease["leased_by"] == jobs.WORKER_ID and not lease["lease_expired"]
    since, until = datetime.fromisoformat(lease["since"]), datetime.fromisoformat(lease["until"])
    assert until - since == jobs.LEASE


def test_an_expired_lease_shows_as_retrying_with_its_vanished_holder(private_app):
    event_id = an_earn_event(private_app)
    lease_and_die(private_app, event_id)
    with services(private_app).sessions() as session:  # the lease ran out
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                        .values(available_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    status = outbox_status(private_app)

    assert (status["leased"], status["retrying"]) == (0, 1)
    assert [(lease["id"], lease["lease_expired"]) for lease in status["leases"]] == [(event_id, True)]


def test_a_finished_delivery_gives_its_lease_back(private_app):
    event_id = an_earn_event(private_app)

    assert jobs.deliver_event(private_app, event_id) == "delivered"

    with services(private_app).sessions() as session:
        event = session.get(OutboxEvent, event_id)
        assert (event.leased_by, event.leased_at) == (None, None)
    assert outbox_status(private_app)["leases"] == []
