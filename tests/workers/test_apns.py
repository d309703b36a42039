"""workers.apns against the loopback fake APNs (real HTTP/2 over TLS with client certificates)."""

import logging
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

import pytest

from passes.devcerts import make_test_chain
from tests.fakes.apns import FakeAPNs
from workers.apns import APNsClient, PushResult, classify, close_shared_clients, shared_client

TOPIC = "pass.dev.punchpass"


def token(number: int) -> str:
    """A push token shaped like Apple's (32 bytes, hex)."""
    return f"{number:064x}"


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_test_chain(tmp_path_factory.mktemp("apns-chain"))


@pytest.fixture
def fake(certs):
    with FakeAPNs(certs["server_cert"], certs["server_key"], [certs["root_ca"], certs["wwdr"]]) as server:
        yield server


def make_client(certs, base_url, **options) -> APNsClient:
    return APNsClient(cert_path=certs["pass_cert"], key_path=certs["pass_key"], ca_file=certs["root_ca"],
                      base_url=base_url, **options)


@pytest.fixture
def client(certs, fake):
    with make_client(certs, fake.base_url) as apns:
        yield apns


def test_pushes_reach_apns_with_topic_and_empty_body_over_one_connection(client, fake):
    tokens = [token(n) for n in range(50)]

    results = client.push_many(tokens[:30], TOPIC) + client.push_many(tokens[30:], TOPIC)

    assert [r.token for r in results] == tokens
    assert {(r.status, r.outcome) for r in results} == {(200, "ok")}
    seen = fake.pushes
    assert sorted(p.token for p in seen) == tokens
    assert {(p.topic, p.body, p.connection) for p in seen} == {(TOPIC, b"{}", 1)}
    assert {p.headers[":method"] for p in seen} == {"POST"}
    assert fake.connection_count == 1


def test_pushes_go_at_immediate_priority_with_neither_push_type_nor_priority_header(client, fake):
    client.push(token(1), TOPIC)

    [push] = fake.pushes
    assert "apns-priority" not in push.headers  # APNs then uses 10: deliver at once
    assert "apns-push-type" not in push.headers


def test_fake_refuses_a_tls_client_without_certificate(certs, fake):
    context = ssl.create_default_context(cafile=str(certs["root_ca"]))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((fake.host, fake.port)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname=fake.host) as tls:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                tls.recv(1)  # TLS 1.3: the server's refusal arrives after the handshake
    assert fake.connection_count == 0


def test_certificate_from_another_ca_is_a_fatal_result_and_nothing_is_sent(certs, fake, tmp_path, caplog):
    stranger = make_test_chain(tmp_path / "other-ca")
    with APNsClient(cert_path=stranger["pass_cert"], key_path=stranger["pass_key"], ca_file=certs["root_ca"],
                    base_url=fake.base_url) as apns:
        results = apns.push_many([token(1), token(2)], TOPIC)

    assert {(r.status, r.outcome) for r in results} == {(0, "fatal")}
    assert fake.push_count == 0
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_410_and_400_bad_device_token_mean_drop_the_registration(client, fake):
    fake.respond(token(1), 410, "Unregistered")
    fake.respond(token(2), 400, "BadDeviceToken")

    gone, bad, fine = client.push_many([token(1), token(2), token(3)], TOPIC)

    assert (gone.status, gone.reason, gone.outcome) == (410, "Unregistered", "unregistered")
    assert gone.timestamp is not None and gone.timestamp > 1_600_000_000_000
    assert (bad.status, bad.reason, bad.outcome) == (400, "BadDeviceToken", "unregistered")
    assert fine.outcome == "ok"


def test_429_and_500_are_retried_and_403_is_a_fatal_config_error(client, fake):
    fake.respond(token(1), 429, "TooManyRequests")
    fake.respond(token(2), 500, "InternalServerError")
    fake.respond(token(3), 403, "BadCertificate")

    results = client.push_many([token(1), token(2), token(3)], TOPIC)

    assert [(r.status, r.reason, r.outcome) for r in results] == [
        (429, "TooManyRequests", "retry"), (500, "InternalServerError", "retry"),
        (403, "BadCertificate", "fatal")]


def test_programmed_answer_given_once_then_200(client, fake):
    fake.respond(token(1), 500, "InternalServerError", times=1)

    first = client.push(token(1), TOPIC)
    second = client.push(token(1), TOPIC)

    assert (first.status, second.status) == (500, 200)


def test_topic_other_than_the_certificates_is_refused_as_fatal(client, fake):
    result = client.push(token(1), "pass.someone.else")

    assert (result.status, result.reason, result.outcome) == (400, "TopicDisallowed", "fatal")
    assert [(p.topic, p.status) for p in fake.pushes] == [("pass.someone.else", 400)]


def test_malformed_token_is_never_sent_and_reported_as_bad_device_token(client, fake):
    bad, good = client.push_many(["not-a-token/../x", token(1)], TOPIC)

    assert (bad.status, bad.reason, bad.outcome) == (400, "BadDeviceToken", "unregistered")
    assert good.status == 200
    assert [p.token for p in fake.pushes] == [token(1)]


def test_reconnects_after_the_server_drops_the_connection(client, fake):
    assert client.push(token(1), TOPIC).status == 200

    fake.close_connections()
    results = client.push_many([token(n) for n in range(2, 12)], TOPIC)

    assert {r.status for r in results} == {200}
    assert fake.connection_count == 2


def test_reconnects_after_goaway(client, fake):
    assert client.push(token(1), TOPIC).status == 200

    fake.goaway()
    results = client.push_many([token(n) for n in range(2, 12)], TOPIC)

    assert {r.status for r in results} == {200}
    assert fake.connection_count == 2


def test_unanswered_push_times_out_as_retry_and_the_stuck_connection_is_replaced(certs, fake):
    fake.respond(token(1), None)
    with make_client(certs, fake.base_url, timeout=2.0) as apns:  # > the 1 s reconnect pause
        stuck, fine = apns.push_many([token(1), token(2)], TOPIC)
        later = apns.push(token(3), TOPIC)

    assert (stuck.status, stuck.reason, stuck.outcome) == (0, "Timeout", "retry")
    assert (fine.status, later.status) == (200, 200)
    assert [p.connection for p in fake.pushes if p.token == token(3)] == [2]


def test_push_in_flight_at_goaway_is_sent_again_on_a_new_connection(client, fake):
    fake.respond(token(1), None, times=1)  # the first copy stays unanswered
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.push, token(1), TOPIC)
        assert fake.wait_for_pushes(1)
        fake.goaway("Shutdown")
        result = pending.result(timeout=10)

    assert result.status == 200
    assert [p.connection for p in fake.pushes] == [1, 2]


def test_goaway_for_a_bad_certificate_fails_pushes_in_flight_as_fatal(client, fake):
    fake.respond(token(1), None)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.push, token(1), TOPIC)
        assert fake.wait_for_pushes(1)
        fake.goaway("BadCertificate")
        result = pending.result(timeout=10)

    assert (result.status, result.reason, result.outcome) == (0, "TLSCertificateRejected", "fatal")
    assert fake.connection_count == 1


def test_500_pushes_in_flight_complete_within_the_servers_stream_limit(certs):
    with FakeAPNs(certs["server_cert"], certs["server_key"], [certs["root_ca"], certs["wwdr"]],
                  max_concurrent_streams=100) as small_fake:
        with make_client(certs, small_fake.base_url) as apns:
            results = apns.push_many([token(n) for n in range(500)], TOPIC)
        assert small_fake.connection_count == 1  # h2 would reset the connection above 100 streams

    assert [r.token for r in results] == [token(n) for n in range(500)]
    assert {r.status for r in results} == {200}


def test_concurrent_jobs_share_one_connection(client, fake):
    batches = [[token(n) for n in range(start, start + 300)] for start in (0, 1000, 2000)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda batch: client.push_many(batch, TOPIC), batches))

    assert [[r.token for r in batch] for batch in results] == batches
    assert {r.status for batch in results for r in batch} == {200}
    assert fake.connection_count == 1


def test_unreachable_server_gives_retry_results(certs):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with make_client(certs, f"https://127.0.0.1:{port}") as apns:
        result = apns.push(token(1), TOPIC)

    assert (result.status, result.reason, result.outcome) == (0, "ConnectionFailed", "retry")


def test_certificate_and_key_given_as_pem_bytes(certs, fake):
    with APNsClient(cert_pem=certs["pass_cert"].read_bytes(), key_pem=certs["pass_key"].read_bytes(),
                    ca_file=certs["root_ca"], base_url=fake.base_url) as apns:
        assert apns.push(token(1), TOPIC).status == 200


def test_shared_client_keeps_one_connection_across_jobs(certs, fake):
    config = {"cert_path": certs["pass_cert"], "key_path": certs["pass_key"], "ca_file": certs["root_ca"],
              "base_url": fake.base_url}
    try:
        shared_client(**config).push(token(1), TOPIC)
        shared_client(**config).push(token(2), TOPIC)
        assert shared_client(**config) is shared_client(**config)
    finally:
        close_shared_clients()

    assert fake.push_count == 2
    assert fake.connection_count == 1


def test_logs_show_tokens_truncated_and_never_the_key(client, fake, certs, caplog):
    fake.respond(token(7), 403, "BadCertificate")
    caplog.set_level(logging.DEBUG, logger="workers.apns")

    client.push_many([token(7)], TOPIC)

    assert token(7)[:8] in caplog.text
    assert token(7) not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


@pytest.mark.parametrize(("status", "reason", "outcome"), [
    (200, None, "ok"),
    (410, "Unregistered", "unregistered"),
    (410, "ExpiredToken", "unregistered"),
    (400, "BadDeviceToken", "unregistered"),
    (400, "DeviceTokenNotForTopic", "unregistered"),
    (400, "TopicDisallowed", "fatal"),
    (403, "BadCertificateEnvironment", "fatal"),
    (404, "BadPath", "fatal"),
    (429, "TooManyRequests", "retry"),
    (500, "InternalServerError", "retry"),
    (503, "ServiceUnavailable", "retry"),
    (0, "ConnectionFailed", "retry"),
    (0, "Timeout", "retry"),
    (0, "TLSCertificateRejected", "fatal"),
])
def test_classify_maps_apns_answers_to_what_the_worker_does(status, reason, outcome):
    assert classify(status, reason) == outcome
    assert PushResult(token(1), status, reason).outcome == outcome
