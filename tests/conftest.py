"""Fixtures shared by every test: a dev certificate chain, a migrated database (PostgreSQL when
PUNCHPASS_TEST_DATABASE_URL is set, as .ci/run does; SQLite otherwise), an app and a client.

Tests isolate by data: each makes its own merchant, so nothing is shared between tests but the schema."""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import load_config
from app.migrate import upgrade_database
from app.services import services
from passes import make_test_chain
from tests.factories import TEST_PASS_TYPE_ID, TEST_TEAM_ID

_real_connect = socket.socket.connect


def _loopback_only(sock, address):
    """No test may reach the internet: APNs, Google and FCM are fakes on loopback."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {host}")
    return _real_connect(sock, address)


socket.socket.connect = _loopback_only


@pytest.fixture(scope="session")
def cert_chain(tmp_path_factory) -> dict:
    return make_test_chain(tmp_path_factory.mktemp("certs"), pass_type_id=TEST_PASS_TYPE_ID, team_id=TEST_TEAM_ID)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    with fresh_database(tmp_path_factory) as url:
        yield url


@contextmanager
def fresh_database(tmp_path_factory):
    """A new, migrated database: SQLite in a temporary folder, or a new PostgreSQL database dropped after."""
    base = os.environ.get("PUNCHPASS_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        upgrade_database(url)
        yield url
        return
    name = f"punchpass_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    upgrade_database(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def private_env(test_env, tmp_path_factory) -> dict:
    """test_env on a database of its own, for tests that change settings every card carries: such a start-up
    re-issues every card in its database, which must not reach the other tests' cards."""
    with fresh_database(tmp_path_factory) as url:
        yield {**test_env, "DATABASE_URL": url}


@pytest.fixture(scope="module")
def own_database_app(test_env, tmp_path_factory):
    """An app on a database of its own, for a module that leaves many outbox events behind (every earn and design
    change writes one): the push tests' embedded worker sweeps every pending event of its database, and must not
    wait behind them."""
    with fresh_database(tmp_path_factory) as url:
        app = create_app(load_config({**test_env, "DATABASE_URL": url}), testing=True)
        yield app
        services(app).engine.dispose()


@pytest.fixture(scope="session")
def test_env(cert_chain, database_url, tmp_path_factory) -> dict:
    """The environment a test app starts from; tests copy and change it to try other settings."""
    return {
        "DATABASE_URL": database_url,
        "PUNCHPASS_INSTANCE": str(tmp_path_factory.mktemp("instance")),
        "PUBLIC_BASE_URL": "https://punchpass.test",
        "SECRET_KEY": "test-secret-key-not-for-production",
        # Every test's "devices" share 127.0.0.1: a café's limit would throttle the whole suite; the race tests
        # send more than the API's default 100 requests a second on one key. Tests of the limits set their own.
        "RATE_LIMIT_API_KEY": "100000/second",
        "RATE_LIMIT_PUBLIC": "100000/second",
        "RATE_LIMIT_DEVICE_LOG": "100000/second",
        "RATE_LIMIT_SIGN_IN": "100000/second",
        "RATE_LIMIT_JOIN": "100000/second",
        # Many test apps live at once (one per module that needs its own settings), each with its own pool: two
        # idle connections each keep the suite under PostgreSQL's default max_connections of 100.
        "DATABASE_POOL_SIZE": "2",
        "APPLE_PASS_CERT": str(cert_chain["pass_cert"]),
        "APPLE_PASS_KEY": str(cert_chain["pass_key"]),
        "APPLE_WWDR_CERT": str(cert_chain["wwdr"]),
        "APPLE_PASS_TYPE_ID": TEST_PASS_TYPE_ID,
        "APPLE_TEAM_ID": TEST_TEAM_ID,
    }


@pytest.fixture(scope="session")
def app(test_env):
    app = create_app(load_config(test_env), testing=True)
    yield app
    services(app).engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def fake_apns(cert_chain):
    """A loopback APNs that, like Apple, demands a client certificate issued through WWDR."""
    from tests.fakes.apns import FakeAPNs
    with FakeAPNs(cert_chain["server_cert"], cert_chain["server_key"],
                  [cert_chain["root_ca"], cert_chain["wwdr"]]) as fake:
        yield fake


@pytest.fixture
def live_app(test_env, fake_apns, cert_chain):
    """An app wired to the fake APNs, with no worker: tests deliver the outbox themselves or start one."""
    from workers.apns import close_shared_clients
    env = {**test_env, "APNS_BASE_URL": fake_apns.base_url, "APNS_CA_FILE": str(cert_chain["root_ca"])}
    app = create_app(load_config(env), testing=True)
    yield app
    close_shared_clients()
    services(app).engine.dispose()


@pytest.fixture(scope="session")
def google_account(tmp_path_factory) -> dict:
    """A fresh service-account key; its token_uri is filled in by `fake_google`."""
    from tests.fakes.google import make_service_account
    return make_service_account("https://127.0.0.1:1/token")


@pytest.fixture(scope="session")
def fake_google(cert_chain, google_account):
    """A loopback Google (OAuth token endpoint + Wallet REST API) over TLS, trusted through REQUESTS_CA_BUNDLE as
    any deployment would trust a private CA."""
    from tests.fakes.google import CallbackSigner, FakeGoogle
    with pytest.MonkeyPatch.context() as patch, FakeGoogle(cert_chain["server_cert"], cert_chain["server_key"],
                                                           google_account) as fake:
        patch.setenv("REQUESTS_CA_BUNDLE", str(cert_chain["root_ca"]))
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        google_account["token_uri"] = fake.token_uri
        fake.signer = CallbackSigner()
        fake.callback_keys = fake.signer.keys_document()
        yield fake


@pytest.fixture(scope="session")
def google_env(test_env, fake_google, google_account, tmp_path_factory) -> dict:
    """test_env with Google Wallet configured against the fake."""
    import json
    key_file = tmp_path_factory.mktemp("google") / "service-account.json"
    key_file.write_text(json.dumps(google_account))
    return {**test_env, "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file), "GOOGLE_ISSUER_ID": "3388000000012345678",
            "GOOGLE_WALLET_BASE_URL": fake_google.wallet_url, "GOOGLE_RATE_LIMIT": "0",
            "GOOGLE_CALLBACK_KEYS_URL": fake_google.base_url + "/keys"}


@pytest.fixture(scope="module")
def google_app(google_env, tmp_path_factory):
    """An app with Google Wallet on a database of its own (its worker delivers every due event there)."""
    from workers.google_client import close_wallet_clients
    with fresh_database(tmp_path_factory) as url:
        app = create_app(load_config({**google_env, "DATABASE_URL": url}), testing=True)
        yield app
        close_wallet_clients()
        services(app).engine.dispose()
