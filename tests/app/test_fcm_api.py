"""The merchant's app registers its FCM tokens per member, and the merchant uploads its Firebase key, which is
stored encrypted and never shown again."""

import json
import logging
import uuid

import pytest
from sqlalchemy import text

from app import create_app
from app.config import ConfigError, load_config
from app.encryption import UnsealError, derive_key, seal, unseal
from app.services import services
from passes.google import GOOGLE_TOKEN_URI
from tests.factories import auth, make_api_key, make_member, make_merchant, make_program
from tests.fakes.fcm import new_service_account


def _token() -> str:
    return f"{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}{uuid.uuid4().hex}"


@pytest.fixture
def shop(app, client):
    merchant_id, key = make_merchant(app)
    program = make_program(client, key)
    return {"merchant_id": merchant_id, "key": key, "program": program,
            "member": make_member(client, key, program["id"])}


def _register(client, shop, token, platform="android", member=None):
    member_id = (member or shop["member"])["id"]
    return client.post(f"/api/v1/members/{member_id}/devices", json={"token": token, "platform": platform},
                       headers=auth(shop["key"]))


def _devices(app, token):
    with services(app).engine.connect() as conn:
        return conn.execute(text("SELECT member_id, platform FROM fcm_devices WHERE token = :t"), {"t": token}).all()


def test_registering_a_token_answers_the_device(app, client, shop):
    token = _token()
    response = _register(client, shop, token, "ios")
    assert response.status_code == 201
    assert response.get_json() | {"created_at": None, "updated_at": None} == {
        "member_id": shop["member"]["id"], "token": token, "platform": "ios", "created_at": None,
        "updated_at": None}


def test_registering_the_same_token_again_is_the_same_device(app, client, shop):
    token = _token()
    first = _register(client, shop, token).get_json()
    again = _register(client, shop, token)
    assert again.status_code == 201 and again.get_json() == first
    assert len(_devices(app, token)) == 1


def test_a_token_registered_for_another_member_moves_to_them(app, client, shop):
    token = _token()
    other = make_member(client, shop["key"], shop["program"]["id"], name="Ken Sato")
    _register(client, shop, token)
    assert _register(client, shop, token, "web", member=other).get_json()["member_id"] == other["id"]
    assert _devices(app, token) == [(other["id"], "web")]


def test_another_merchant_cannot_register_for_my_member(app, client, shop):
    _, their_key = make_merchant(app, "Other Café")
    response = client.post(f"/api/v1/members/{shop['member']['id']}/devices",
                           json={"token": _token(), "platform": "android"}, headers=auth(their_key))
    assert response.status_code == 404


def test_a_till_key_may_not_register_devices(app, client, shop):
    pos_key = make_api_key(app, shop["merchant_id"], "pos")
    response = client.post(f"/api/v1/members/{shop['member']['id']}/devices",
                           json={"token": _token(), "platform": "android"}, headers=auth(pos_key))
    assert response.status_code == 403


@pytest.mark.parametrize("body, field", [
    ({"token": "short", "platform": "android"}, "token"),
    ({"token": "has spaces in it, which FCM tokens never do", "platform": "android"}, "token"),
    ({"token": "a" * 1025, "platform": "android"}, "token"),
    ({"token": "x" * 40 + "\n", "platform": "android"}, "token"),
    ({"token": "x" * 40, "platform": "windows"}, "platform"),
    ({"platform": "android"}, "token"),
])
def test_bad_registration_names_the_field(client, shop, body, field):
    response = client.post(f"/api/v1/members/{shop['member']['id']}/devices", json=body, headers=auth(shop["key"]))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_deleting_a_token_forgets_it_and_is_idempotent(app, client, shop):
    token = _token()
    _register(client, shop, token)
    path = f"/api/v1/members/{shop['member']['id']}/devices/{token}"
    assert client.delete(path, headers=auth(shop["key"])).status_code == 204
    assert _devices(app, token) == []
    assert client.delete(path, headers=auth(shop["key"])).status_code == 204


def test_deleting_a_malformed_token_names_it(client, shop):
    response = client.delete(f"/api/v1/members/{shop['member']['id']}/devices/bad%20token",
                             headers=auth(shop["key"]))
    assert response.status_code == 422 and "token" in response.get_json()["errors"]


def _google_account(project_id="merchant-app-1"):
    return new_service_account(GOOGLE_TOKEN_URI, project_id)


def test_uploaded_credentials_are_never_returned(client, shop):
    account = _google_account()
    response = client.put("/api/v1/fcm/credentials", json=account, headers=auth(shop["key"]))
    assert response.status_code == 200
    assert set(response.get_json()) == {"project_id", "client_email", "updated_at"}
    assert response.get_json()["project_id"] == "merchant-app-1"
    shown = client.get("/api/v1/fcm/credentials", headers=auth(shop["key"]))
    assert shown.get_json()["client_email"] == account["client_email"]
    for answer in (response, shown):
        assert "PRIVATE KEY" not in answer.get_data(as_text=True)


def test_credentials_are_stored_encrypted(app, client, shop):
    account = _google_account()
    client.put("/api/v1/fcm/credentials", json=account, headers=auth(shop["key"]))
    with services(app).engine.connect() as conn:
        sealed = conn.scalar(text("SELECT sealed_key FROM fcm_credentials WHERE merchant_id = :m"),
                             {"m": shop["merchant_id"]})
    key_body = "".join(account["private_key"].splitlines()[1:-1])
    assert sealed and b"PRIVATE KEY" not in sealed and key_body[:40].encode() not in bytes(sealed)
    assert account["client_email"].encode() not in bytes(sealed)


def test_credentials_never_reach_the_log(client, shop, caplog):
    account = _google_account()
    with caplog.at_level(logging.DEBUG):
        client.put("/api/v1/fcm/credentials", json=account, headers=auth(shop["key"]))
        client.put("/api/v1/fcm/credentials", json={**account, "private_key": account["private_key"][:-80]},
                   headers=auth(shop["key"]))
    key_line = account["private_key"].splitlines()[5]
    assert key_line not in caplog.text


@pytest.mark.parametrize("change, field", [
    ({"type": "authorized_user"}, "type"),
    ({"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"}, "private_key"),
    ({"project_id": "Not A Project"}, "project_id"),
    ({"client_email": "nobody"}, "client_email"),
    ({"token_uri": "https://127.0.0.1:9/token"}, "token_uri"),  # the worker would post a signed assertion there
])
def test_unusable_credentials_name_the_field(client, shop, change, field):
    response = client.put("/api/v1/fcm/credentials", json={**_google_account(), **change}, headers=auth(shop["key"]))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert "PRIVATE KEY" not in response.get_data(as_text=True)


def test_an_ec_key_is_refused(client, shop):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    response = client.put("/api/v1/fcm/credentials", json={**_google_account(), "private_key": pem},
                          headers=auth(shop["key"]))
    assert response.status_code == 422 and "private_key" in response.get_json()["errors"]


def test_only_admin_keys_touch_credentials(app, client, shop):
    pos_key = make_api_key(app, shop["merchant_id"], "pos")
    assert client.put("/api/v1/fcm/credentials", json=_google_account(), headers=auth(pos_key)).status_code == 403
    assert client.get("/api/v1/fcm/credentials", headers=auth(pos_key)).status_code == 403


def test_deleting_credentials_falls_back_to_none(client, shop):
    client.put("/api/v1/fcm/credentials", json=_google_account(), headers=auth(shop["key"]))
    assert client.delete("/api/v1/fcm/credentials", headers=auth(shop["key"])).status_code == 204
    assert client.get("/api/v1/fcm/credentials", headers=auth(shop["key"])).status_code == 404
    assert client.delete("/api/v1/fcm/credentials", headers=auth(shop["key"])).status_code == 204


def test_a_sealed_key_opens_only_for_its_owner_and_key():
    key = derive_key("a secret long enough for the test", "fcm-credentials")
    sealed = seal(key, b"{}", "fcm_credentials:1")
    assert unseal(key, sealed, "fcm_credentials:1") == b"{}"
    with pytest.raises(UnsealError):
        unseal(key, sealed, "fcm_credentials:2")
    with pytest.raises(UnsealError):
        unseal(derive_key("another secret", "fcm-credentials"), sealed, "fcm_credentials:1")


def test_fcm_settings_are_checked_at_start(test_env, tmp_path):
    with pytest.raises(ConfigError, match="FCM_CREDENTIALS_KEY"):
        load_config({**test_env, "FCM_CREDENTIALS_KEY": "short"})
    with pytest.raises(ConfigError, match="FCM_SERVICE_ACCOUNT_FILE"):
        load_config({**test_env, "FCM_SERVICE_ACCOUNT_FILE": str(tmp_path / "missing.json")})
    not_a_key = tmp_path / "user.json"
    not_a_key.write_text(json.dumps({**_google_account(), "type": "authorized_user"}))
    with pytest.raises(ConfigError, match="GOOGLE_SERVICE_ACCOUNT_FILE.*type"):
        load_config({**test_env, "GOOGLE_SERVICE_ACCOUNT_FILE": str(not_a_key)})
    with pytest.raises(ConfigError, match="FCM_BASE_URL"):
        load_config({**test_env, "FCM_BASE_URL": "fcm.example"})


def test_the_google_key_file_is_the_fallback(test_env, tmp_path):
    google, fcm = tmp_path / "google.json", tmp_path / "fcm.json"
    google.write_text(json.dumps(_google_account("wallet-project")))
    fcm.write_text(json.dumps(_google_account("app-project")))
    assert load_config({**test_env, "GOOGLE_SERVICE_ACCOUNT_FILE": str(google)}).fcm.service_account_file == google
    both = load_config({**test_env, "GOOGLE_SERVICE_ACCOUNT_FILE": str(google), "FCM_SERVICE_ACCOUNT_FILE": str(fcm)})
    assert both.fcm.service_account_file == fcm


def test_a_changed_key_setting_is_reported_at_start(test_env, client, shop, caplog):
    client.put("/api/v1/fcm/credentials", json=_google_account(), headers=auth(shop["key"]))
    with caplog.at_level(logging.ERROR):
        other = create_app(load_config({**test_env, "FCM_CREDENTIALS_KEY": "another-key-" * 4}), testing=True)
    services(other).engine.dispose()
    assert "FCM_CREDENTIALS_KEY: the FCM credentials of" in caplog.text
