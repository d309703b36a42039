"""After a restore into a new PostgreSQL cluster, transaction ids start again from a low number: update tags
must still start above every tag devices already hold."""

import pytest
from sqlalchemy import update

from app import create_app
from app.config import load_config
from app.models import Member
from app.services import services
from tests.factories import earn, make_member, make_merchant, make_program


def test_tags_after_a_restore_start_above_the_restored_ones(private_env):
    if not private_env["DATABASE_URL"].startswith("postgresql"):
        pytest.skip("transaction-id tags are PostgreSQL's; SQLite keeps a counter")
    app = create_app(load_config(private_env), testing=True)
    client = app.test_client()
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    restored_tag = 10**15  # what a device holds from the old cluster, far above this cluster's ids
    with services(app).sessions() as session:
        session.execute(update(Member).where(Member.id == member["id"]).values(pass_update_tag=restored_tag))
        session.commit()
    services(app).engine.dispose()

    restarted = create_app(load_config(private_env), testing=True)  # start-up catches the tags up
    earn(restarted.test_client(), key, member["id"], points=5)
    with services(restarted).sessions() as session:
        assert session.get(Member, member["id"]).pass_update_tag > restored_tag
    services(restarted).engine.dispose()
