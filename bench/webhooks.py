"""Webhook deliveries per second from one worker to the loopback receiver (tests/fakes/webhooks.py, in its own
process, answering 200 and counting).

Earns are made through the API (Flask's test client, in this process) for a merchant with one webhook; then
this process works as one worker (`deliver_everything_due`, what the embedded worker and an rq job run) until
every event is fanned out and every delivery answered. Reported: deliveries/s end to end (fan-out + signed POST
+ the attempt recorded), and this process's CPU per delivery.

    .venv/bin/python -m bench.webhooks [--events 2000] [--sqlite]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from app import create_app
from app.config import load_config
from app.models import WebhookDelivery
from app.services import services
from bench.harness import ROOT, cpu_seconds, fresh_database, machine, make_merchant_key, stop_process
from passes.devcerts import make_test_chain
from workers.jobs import deliver_everything_due
from workers.webhooks import close_senders


def start_receiver() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.webhooks"], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    return process, process.stdout.readline().strip()


def make_events(client, key: str, url: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/webhooks", json={"url": url, "events": ["points.earned"]},
                       headers=headers).status_code == 201
    program = client.post("/api/v1/programs", json={"name": "Bench"}, headers=headers).get_json()
    member = client.post(f"/api/v1/programs/{program['id']}/members", json={"name": "Bench Member"},
                         headers=headers).get_json()
    for _ in range(count):
        response = client.post(f"/api/v1/members/{member['id']}/earn", json={"points": 1},
                               headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == 201


def delivered(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).where(WebhookDelivery.status == "delivered"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--sqlite", action="store_true", help="SQLite even when PostgreSQL is reachable")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp, \
            fresh_database(Path(tmp), postgres=not args.sqlite) as (database_url, label):
        certs = make_test_chain(Path(tmp) / "certs")
        env = {"DATABASE_URL": database_url, "PUNCHPASS_INSTANCE": str(Path(tmp) / "instance"),
               "SECRET_KEY": "bench-not-secret", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "on",
               "RATE_LIMIT_API_KEY": "1000000/second", "APPLE_PASS_CERT": str(certs["pass_cert"]),
               "APPLE_PASS_KEY": str(certs["pass_key"]), "APPLE_WWDR_CERT": str(certs["wwdr"])}
        app = create_app(load_config(env))
        receiver, url = start_receiver()
        try:
            make_events(app.test_client(), make_merchant_key(database_url), url, args.events)
            wall, cpu, receiver_cpu = time.perf_counter(), time.process_time(), cpu_seconds(receiver.pid)
            while delivered(services(app).engine) < args.events:
                deliver_everything_due(app)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            receiver_cpu = cpu_seconds(receiver.pid) - receiver_cpu
        finally:
            close_senders()
            stop_process(receiver)
            services(app).engine.dispose()
    print(f"{machine()}; {label}")
    print(f"{args.events:,} webhook deliveries (one webhook, one worker): {args.events / wall:,.0f} deliveries/s, "
          f"{wall:.2f} s wall; worker CPU {cpu / args.events * 1e3:.2f} ms/delivery, "
          f"receiver CPU {receiver_cpu / args.events * 1e3:.2f} ms/delivery")
    return 0


if __name__ == "__main__":
    sys.exit(main())
