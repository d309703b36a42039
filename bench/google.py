"""Google Wallet: object updates per second from one worker (the pacer lifted), and how a burst of earns drains
at the paced rate when updates to one card coalesce.

The fake Google (tests/fakes/google.py, schema check off) runs in its own process over TLS on loopback, so this
process's CPU is the client's alone.

    .venv/bin/python -m bench.google [--updates 5000] [--threads 1] [--members 100] [--earns 1000] [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from bench.harness import ROOT, cpu_seconds
from passes.devcerts import make_test_chain
from tests.fakes.google import make_service_account

ISSUER = "3388000000012345678"


def start_fake(certs: dict, key_file: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.fakes.google", "--no-validate", "--port", str(port),
               "--cert", str(certs["server_cert"]), "--key", str(certs["server_key"]),
               "--service-account", str(key_file)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    process.stdout.readline()  # "fake Google on ..."
    return process


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_updates(env: dict, updates: int, threads: int, fake_pid: int) -> dict:
    """PATCHes of one object's balance through workers.google_client with the pacer lifted, on kept-open
    connections (`threads` > 1: that many deliveries at once sharing the worker's connection pool)."""
    from app.config import load_config
    from passes.google import LoyaltyCard, LoyaltyProgram, loyalty_class_json, loyalty_object_json
    from workers.google_client import WalletClient
    from workers.google_pacer import LocalPacer

    google = load_config(env).google
    client = WalletClient(google, LocalPacer(0), pool_size=max(threads, 2))
    program = LoyaltyProgram(ISSUER, "bench", "Bench Café", "Bench Club", "https://punchpass.test/logo.png")
    client.call("POST", "loyaltyClass", body=loyalty_class_json(program))
    objects = [loyalty_object_json(LoyaltyCard(ISSUER, f"serial-{n}", program.class_id, "A1", "Bench", 0, "code"))
               for n in range(max(threads, 1))]
    for body in objects:
        client.call("POST", "loyaltyObject", body=body)

    def patch(n: int) -> int:
        body = objects[n % len(objects)]
        return client.call("PATCH", "loyaltyObject", body["id"],
                           body={"loyaltyPoints": {"balance": {"int": n}}})[0]

    for n in range(200):  # warm-up: connections open, token fetched
        patch(n)
    wall, cpu, fake_cpu = time.perf_counter(), time.process_time(), cpu_seconds(fake_pid)
    if threads == 1:
        statuses = [patch(n) for n in range(updates)]
    else:
        with ThreadPoolExecutor(threads) as pool:
            statuses = list(pool.map(patch, range(updates)))
    wall, cpu, fake_cpu = (time.perf_counter() - wall, time.process_time() - cpu,
                           cpu_seconds(fake_pid) - fake_cpu)
    assert statuses.count(200) == updates, "not every update succeeded"
    client.close()
    return {"updates": updates, "threads": threads, "per_second": round(updates / wall),
            "client_cpu_us_per_update": round(cpu / updates * 1e6), "fake_cpu_us_per_update":
            round(fake_cpu / updates * 1e6)}


def bench_burst(env: dict, members: int, earns: int) -> dict:
    """`earns` earns spread over `members` cards already in Google Wallet, then the outbox drained by one
    worker at GOOGLE_RATE_LIMIT: how long it takes and how many Wallet calls it makes."""
    from sqlalchemy import func, select

    from app import create_app
    from app.config import load_config
    from app.migrate import upgrade_database
    from app.models import OutboxEvent
    from app.services import services
    from tests.factories import auth, make_member, make_merchant
    from workers.jobs import deliver_everything_due

    upgrade_database(env["DATABASE_URL"])
    app = create_app(load_config(env))
    web = app.test_client()
    _, key = make_merchant(app)
    program = web.post("/api/v1/programs", json={"name": "Bench Club"}, headers=auth(key)).get_json()
    cards = [make_member(web, key, program["id"]) for _ in range(members)]
    for card in cards:
        web.get(urlsplit(card["google_save_url"]).path)
    deliver_everything_due(app)  # class and objects inserted
    started = time.perf_counter()
    for n in range(earns):
        response = web.post(f"/api/v1/members/{cards[n % members]['id']}/earn", json={"points": 1},
                            headers={**auth(key), "Idempotency-Key": f"burst-{n}"})
        assert response.status_code == 201
    earn_seconds = time.perf_counter() - started
    calls_before = _fake_calls(env)["requests"]
    started = time.perf_counter()
    outcomes = deliver_everything_due(app)
    drain = time.perf_counter() - started
    with app.app_context(), services(app).sessions() as session:
        left = session.scalar(select(func.count()).select_from(OutboxEvent)
                              .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.dead_at.is_(None)))
    return {"members": members, "earns": earns, "earn_seconds": round(earn_seconds, 1),
            "google_rows_delivered": outcomes["delivered"], "wallet_calls": _fake_calls(env)["requests"] - calls_before,
            "drain_seconds": round(drain, 2), "rate_limit": load_config(env).google.rate_limit, "left": left,
            "without_coalescing_seconds": round(earns / load_config(env).google.rate_limit, 1)}


def _fake_calls(env: dict) -> dict:
    """What the fake has answered so far (its /stats)."""
    import requests
    base = env["GOOGLE_WALLET_BASE_URL"].rsplit("/walletobjects", 1)[0]
    return requests.get(base + "/stats", timeout=5).json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--earns", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-google-"))
    certs = make_test_chain(work / "certs")
    port = free_port()
    account = make_service_account(f"https://127.0.0.1:{port}/token")
    key_file = work / "service-account.json"
    key_file.write_text(json.dumps(account))
    os.environ["REQUESTS_CA_BUNDLE"] = str(certs["root_ca"])
    os.environ["NO_PROXY"] = "127.0.0.1"
    env = {"PUNCHPASS_INSTANCE": str(work / "instance"), "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
           "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file), "GOOGLE_ISSUER_ID": ISSUER,
           "GOOGLE_WALLET_BASE_URL": f"https://127.0.0.1:{port}/walletobjects/v1", "GOOGLE_RATE_LIMIT": "0",
           "PUBLIC_BASE_URL": "https://punchpass.test", "SECRET_KEY": "bench-secret-key-not-for-production",
           "RATE_LIMIT_API_KEY": "100000/second", "RATE_LIMIT_PUBLIC": "100000/second"}
    fake = start_fake(certs, key_file, port)
    try:
        for threads in args.threads:
            print(json.dumps({"bench": "object updates, pacer lifted",
                              **bench_updates(env, args.updates, threads, fake.pid)}), flush=True)
        print(json.dumps({"bench": "burst drain", **bench_burst(
            {**env, "GOOGLE_RATE_LIMIT": str(args.rate)}, args.members, args.earns)}), flush=True)
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    main()
