"""A pass keeps at most MAX_DEVICES_PER_PASS registrations: 1,000 fake devices on one card cannot make every earn
cost 1,000 pushes."""

import uuid

from sqlalchemy import func, select

from app import create_app
from app.config import load_config
from app.models import DeviceRegistration
from app.services import services
from tests.factories import auth, make_member, make_merchant, make_program
from tests.workers.test_wallet_push import Device


def registered_devices(app, member_id: int) -> list[str]:
    with services(app).sessions() as session:
        return list(session.scalars(select(DeviceRegistration.device_library_id)
                                    .where(DeviceRegistration.member_id == member_id)
                                    .order_by(DeviceRegistration.id)))


def a_card(app) -> tuple[dict, bytes]:
    client = app.test_client()
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    return member, client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data


def test_a_new_device_beyond_the_limit_replaces_the_oldest(test_env):
    app = create_app(load_config({**test_env, "MAX_DEVICES_PER_PASS": "3"}), testing=True)
    try:
        member, pkpass = a_card(app)
        devices = [Device(app.test_client(), pkpass) for _ in range(5)]
        assert [device.register().status_code for device in devices] == [201] * 5

        assert registered_devices(app, member["id"]) == [device.library_id for device in devices[2:]]
        assert devices[0].updated_serials() == [] and devices[4].updated_serials() == [devices[4].serial]
    finally:
        services(app).engine.dispose()


def test_by_default_a_pass_keeps_ten_devices(app):
    member, pkpass = a_card(app)
    for _ in range(25):
        Device(app.test_client(), pkpass).register()
    with services(app).sessions() as session:
        count = session.scalar(select(func.count()).select_from(DeviceRegistration)
                               .where(DeviceRegistration.member_id == member["id"]))
    assert count == 10


def test_registering_again_updates_the_token_without_replacing_anyone(test_env):
    app = create_app(load_config({**test_env, "MAX_DEVICES_PER_PASS": "2"}), testing=True)
    try:
        member, pkpass = a_card(app)
        first, second = Device(app.test_client(), pkpass), Device(app.test_client(), pkpass)
        first.register(), second.register()
        first.push_token = uuid.uuid4().hex * 2

        assert first.register().status_code == 200
        assert registered_devices(app, member["id"]) == [first.library_id, second.library_id]
    finally:
        services(app).engine.dispose()
