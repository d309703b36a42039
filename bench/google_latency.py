"""Earn -> Google Wallet PATCH latency at a steady earn rate, production-shaped: gunicorn with the shipped
gunicorn.conf.py, one `punchpass worker` (rq), PostgreSQL and Redis, the fake Google in its own process over TLS
(schema check off). Issue 12's target: p99 at most 300 ms at 10 earns/s.

Members are enrolled through the API and their save links opened (so each object is inserted, as when a customer
saves the card); the outbox is drained; then earns go out open-loop (earn i due at t0 + i/rate, latency counted
from that moment), each to the next member, so one card's earns are `members / rate` seconds apart and never
coalesce. Each 201's PATCH is the first PATCH of its object that arrived after the earn was sent and carries
the balance the earn answered. No Apple device is registered: the run measures the Google path alone.

    .venv/bin/python -m bench.google_latency [--rate 10] [--seconds 30] [--members 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import create_engine

from bench.harness import (
    REDIS_URL,
    Api,
    CpuMeter,
    app_env,
    exit_on_sigterm,
    expect,
    flushed_redis,
    format_cpu,
    free_port,
    fresh_database,
    load_average,
    machine,
    make_merchant_key,
    open_loop,
    pending_events,
    percentiles,
    process_tree,
    run_folder,
    spawn,
    start_gunicorn,
    start_workers,
    wait_for_outbox,
)
from passes import make_test_chain
from tests.fakes.google import make_service_account

ISSUER = "3388000000012345678"
CLIENT_THREADS = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--logs", help="keep the processes' logs in this folder")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    print(machine(), "| load average", load_average())
    with run_folder("punchpass-bench-google-latency-", Path(args.logs) if args.logs else None) as (workdir, stack):
        result = run(args, workdir, stack)
    report(result, args)
    return 0 if result["lost"] == 0 and result["wrong_balance"] == 0 else 1


def run(args, workdir: Path, stack: ExitStack) -> dict:
    certs = make_test_chain(workdir / "certs")
    google_port = free_port()
    key_file = workdir / "service-account.json"
    key_file.write_text(json.dumps(make_service_account(f"https://127.0.0.1:{google_port}/token")))
    redis = stack.enter_context(flushed_redis())
    if redis is None:
        raise RuntimeError("this benchmark needs Redis (PUNCHPASS_BENCH_REDIS)")
    database_url, database = stack.enter_context(fresh_database(workdir, postgres=True))
    port = free_port()
    env = app_env(certs, database_url, workdir, free_port(), port, REDIS_URL)
    env.update(GOOGLE_SERVICE_ACCOUNT_FILE=str(key_file), GOOGLE_ISSUER_ID=ISSUER, GOOGLE_RATE_LIMIT="1000",
               GOOGLE_WALLET_BASE_URL=f"https://127.0.0.1:{google_port}/walletobjects/v1",
               REQUESTS_CA_BUNDLE=str(certs["root_ca"]), SSL_CERT_FILE=str(certs["root_ca"]), NO_PROXY="127.0.0.1")
    fake = spawn(stack, "fake-google", [sys.executable, "-m", "tests.fakes.google", "--no-validate",
                                        "--port", str(google_port), "--cert", str(certs["server_cert"]),
                                        "--key", str(certs["server_key"]), "--service-account", str(key_file)],
                 env, workdir)
    fake_url = f"https://127.0.0.1:{google_port}"
    _wait_for_fake(fake_url, certs["root_ca"], fake)
    web = start_gunicorn(stack, env, workdir)
    workers = start_workers(stack, env, workdir, redis)
    engine = create_engine(database_url)
    stack.callback(engine.dispose)

    api = Api(port, make_merchant_key(database_url))
    program = expect(api.merchant("POST", "/api/v1/programs", {"name": "Bench Club"}), 201)
    members = [expect(api.merchant("POST", f"/api/v1/programs/{program['id']}/members",
                                   {"name": f"Bench member {n}"}), 201) for n in range(args.members)]
    for member in members:  # the customer taps "Save to Google Wallet": the object is queued for insertion
        expect(api.call("GET", urlsplit(member["google_save_url"]).path), 302)
    wait_for_outbox(engine, 60)
    object_ids = {member["id"]: f"{ISSUER}.{member['serial_number']}" for member in members}

    def send(i: int) -> tuple[str, int]:
        member = members[i % len(members)]
        status, body = api.merchant("POST", f"/api/v1/members/{member['id']}/earn", {"points": 1})
        balance = json.loads(body)["member"]["points_balance"] if status == 201 else None
        return f"{member['id']}:{balance}", status

    meter = CpuMeter({"gunicorn": process_tree(web.pid), "worker": process_tree(workers[0].pid),
                      "fake Google": [fake.pid]}).start()
    shots = open_loop(send, int(args.rate * args.seconds), args.rate, CLIENT_THREADS)
    drain = wait_for_outbox(engine, 60)
    cpu = meter.stop()
    pending, dead = pending_events(engine)
    patched = requests.get(f"{fake_url}/patches", verify=str(certs["root_ca"]), timeout=10).json()
    return {"database": database, **match_patches(shots, patched, object_ids), "drain": drain, "cpu": cpu,
            "pending": pending, "dead": dead, "earns": len(shots),
            "created": sum(shot.status == 201 for shot in shots),
            "api": percentiles([shot.end - shot.scheduled for shot in shots])}


def match_patches(shots, patched: dict, object_ids: dict) -> dict:
    """Each 201's PATCH: the first PATCH of its object after the earn was sent. A PATCH with another balance
    than the earn answered is counted as wrong (coalescing never happens here: earns to one card are far apart)."""
    from_scheduled, from_answer, lost, wrong = [], [], 0, 0
    for shot in shots:
        if shot.status != 201:
            continue
        member_id, balance = shot.tag.split(":")
        arrivals = [(at, sent) for at, sent in patched.get(object_ids[int(member_id)], []) if at >= shot.start]
        if not arrivals:
            lost += 1
            continue
        at, sent = arrivals[0]
        wrong += sent != int(balance)
        from_scheduled.append(at - shot.scheduled)
        from_answer.append(at - shot.end)
    return {"patches": len(from_scheduled), "lost": lost, "wrong_balance": wrong,
            "from_earn": percentiles(from_scheduled), "from_201": percentiles(from_answer)}


def report(result: dict, args) -> None:
    ms = " / ".join(f"{result['from_earn'].get(p, 0):.0f}" for p in ("p50", "p90", "p99", "max"))
    after = " / ".join(f"{result['from_201'].get(p, 0):.0f}" for p in ("p50", "p90", "p99", "max"))
    api = " / ".join(f"{result['api'].get(p, 0):.0f}" for p in ("p50", "p90", "p99", "max"))
    print(f"{result['database']}; {args.rate:g} earns/s for {args.seconds:g} s over {args.members} cards")
    print(f"earns: {result['earns']} sent, {result['created']} x 201; earn answered p50/p90/p99/max ms: {api}")
    print(f"PATCHes matched: {result['patches']}, lost: {result['lost']}, wrong balance: {result['wrong_balance']};"
          f" outbox drained {result['drain']:.1f} s after the last earn; left {result['pending']}, dead "
          f"{result['dead']}")
    print(f"earn -> PATCH at Google, ms p50/p90/p99/max: from the earn's due time {ms}; from its 201 {after}"
          f"  (target p99 <= 300)")
    print("CPU:", format_cpu(result["cpu"]), "| load average", load_average())


def _wait_for_fake(url: str, ca: Path, process) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{url}/stats", verify=str(ca), timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the fake Google did not start (see fake-google.log)")
        time.sleep(0.1)


if __name__ == "__main__":
    os.environ.setdefault("NO_PROXY", "127.0.0.1")
    sys.exit(main())
