"""Google Wallet settings: both or neither, checked at start-up, a bad one named."""

import json

import pytest

from app.config import GOOGLE_WALLET_URL, ConfigError, load_config


@pytest.fixture
def key_file(tmp_path, google_account):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(google_account))
    return path


def google(test_env, key_file, **settings):
    return {**test_env, "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file), "GOOGLE_ISSUER_ID": "3388000000012345678",
            **settings}


def test_google_is_off_without_its_settings(test_env):
    assert load_config(test_env).google is None


def test_google_settings_and_their_defaults(test_env, key_file, google_account):
    config = load_config(google(test_env, key_file)).google
    assert config.issuer_id == "3388000000012345678" and config.wallet_base_url == GOOGLE_WALLET_URL
    assert config.rate_limit == 20 and config.service_account.client_email == google_account["client_email"]
    assert config.callback_keys_url == "https://pay.google.com/gp/m/issuer/keys"
    assert config.callback_sender_id == "GooglePayPasses" and config.smart_tap_issuers == ()
    assert load_config(google(test_env, key_file, GOOGLE_RATE_LIMIT="5/s")).google.rate_limit == 5


@pytest.mark.parametrize("name, value", [
    ("GOOGLE_ISSUER_ID", "33880000x"), ("GOOGLE_SERVICE_ACCOUNT_FILE", "/nonexistent/key.json"),
    ("GOOGLE_WALLET_BASE_URL", "walletobjects"), ("GOOGLE_RATE_LIMIT", "fast"), ("GOOGLE_RATE_LIMIT", "-1"),
    ("GOOGLE_RATE_LIMIT", "20/minute"), ("GOOGLE_CALLBACK_KEYS_URL", "keys"), ("GOOGLE_SMART_TAP_ISSUERS", "abc"),
])
def test_a_bad_google_setting_is_named(test_env, key_file, name, value):
    with pytest.raises(ConfigError, match=name):
        load_config(google(test_env, key_file, **{name: value}))


def test_an_issuer_id_without_a_key_file_is_named(test_env, key_file):
    env = google(test_env, key_file)
    del env["GOOGLE_SERVICE_ACCOUNT_FILE"]
    with pytest.raises(ConfigError, match="GOOGLE_SERVICE_ACCOUNT_FILE"):
        load_config(env)


def test_a_key_file_alone_leaves_google_wallet_off(test_env, key_file):
    """The file may be there for FCM (FCM_SERVICE_ACCOUNT_FILE falls back to it)."""
    env = google(test_env, key_file)
    del env["GOOGLE_ISSUER_ID"]
    assert load_config(env).google is None


def test_a_key_file_without_a_private_key_stops_start_up(test_env, tmp_path, google_account):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**google_account, "private_key": ""}))
    with pytest.raises(ConfigError, match="GOOGLE_SERVICE_ACCOUNT_FILE: .*private_key"):
        load_config(google(test_env, broken))
