"""Earn -> APNs push latency at a steady earn rate, end to end through real processes.

Each mode gets a dev certificate chain, the fake APNs in its own process (noting when each push arrived,
per token), a fresh database, the web app in a real WSGI server, and a worker. N members are enrolled through
the API and each registers a device through the PassKit web service (as Wallet does: download the pass,
register its push token, list serials). Then earns go out at a steady rate from a client thread pool, each to
the next member, each with an Idempotency-Key. Latency = the push's arrival at the fake minus the earn
request's start, and minus the moment its 201 was received.

  rq        gunicorn (1 gthread worker, 2 threads) + one `punchpass worker` process (--workers N for more);
            PostgreSQL (SQLite if unreachable); Redis DB 14 or PUNCHPASS_BENCH_REDIS (flushed first and last)
  embedded  `punchpass serve` (werkzeug, threaded) with its embedded worker thread; SQLite; no Redis

    .venv/bin/python -m bench.latency [--rate 50] [--seconds 20] [--members 200] [--modes rq,embedded]

Everything started is stopped, and the database dropped, on failure, Ctrl-C or SIGTERM too. CPU figures are
per process group from /proc; "PostgreSQL" and "Redis" are every process of those servers (shared with
whatever else uses them), and "everything else" is the rest of the machine's busy time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine

from bench.harness import (
    REDIS_URL,
    Api,
    CpuMeter,
    Device,
    FakeAPNsProcess,
    Shot,
    app_env,
    enroll_with_device,
    exit_on_sigterm,
    expect,
    flushed_redis,
    format_cpu,
    free_port,
    fresh_database,
    machine,
    make_merchant_key,
    match_pushes,
    named_processes,
    pending_events,
    percentiles,
    process_tree,
    run_folder,
    start_web,
    start_workers,
    wait_for_outbox,
)
from passes import make_test_chain

WARM_UP_EARNS = 20
CLIENT_THREADS = 16


def earn_once(api: Api, device: Device, scheduled: float) -> Shot:
    """One earn of 1 point, timed from the client's side."""
    start = time.time()
    status, _ = api.merchant("POST", f"/api/v1/members/{device.member_id}/earn",
                             {"points": 1, "reference": "bench"})
    return Shot(device.push_token, scheduled, start, time.time(), status)


def fire_earns(api: Api, devices: list[Device], rate: float, seconds: float, pool) -> list[Shot]:
    """Open loop: earn i is sent at t0 + i/rate whatever the server does, each to the next member."""
    count = int(rate * seconds)
    t0 = time.time() + 0.1
    futures = []
    for i in range(count):
        scheduled = t0 + i / rate
        delay = scheduled - time.time()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(earn_once, api, devices[i % len(devices)], scheduled))
    return [future.result() for future in futures]


def run_mode(mode: str, args) -> dict:
    """Set up every process for one mode, measure, and tear everything down, whatever happens."""
    logs = Path(args.logs) / mode if args.logs else None
    with run_folder(f"punchpass-bench-{mode}-", logs) as (workdir, stack):
        return _run_mode(mode, args, workdir, stack)


def _run_mode(mode: str, args, workdir: Path, stack: ExitStack) -> dict:
    """Start the fake APNs, database, Redis, web server and workers of one mode; enrol, warm up, measure."""
    embedded = mode == "embedded"
    certs = make_test_chain(workdir / "certs")
    fake = stack.enter_context(FakeAPNsProcess(certs, workdir))
    redis = None if embedded else stack.enter_context(flushed_redis())
    if not embedded and redis is None:
        raise RuntimeError("the rq mode needs Redis")
    database_url, database = stack.enter_context(fresh_database(workdir, postgres=not embedded))
    port = free_port()
    env = app_env(certs, database_url, workdir, fake.port, port, None if embedded else REDIS_URL)
    web, server = start_web(stack, env, workdir, embedded)
    workers = [] if embedded else start_workers(stack, env, workdir, redis, args.workers)
    engine = create_engine(database_url)
    stack.callback(engine.dispose)
    worker = "embedded worker thread" if embedded else f"{len(workers)} x punchpass worker (rq SimpleWorker)"
    print(f"[{mode}] {server}; {worker}; {database}; fake APNs pid {fake.pid}")

    api = Api(port, make_merchant_key(database_url))
    pool = stack.enter_context(ThreadPoolExecutor(CLIENT_THREADS))
    devices = enroll_all(api, pool, mode, args.members)
    fire_earns(api, devices[:WARM_UP_EARNS], 10, WARM_UP_EARNS / 10, pool)  # first connections, caches
    wait_for_outbox(engine, 30)
    meter = CpuMeter(cpu_groups(web, fake, workers, database, redis)).start()
    earns = fire_earns(api, devices, args.rate, args.seconds, pool)
    drain = wait_for_outbox(engine, 30)
    cpu = meter.stop()
    pending, dead = pending_events(engine)
    seen = fake.finish()
    matched = match_pushes(earns, seen["arrivals"])
    return {"mode": mode, "server": f"{server}; {worker}", "database": database, "earns": len(earns),
            "created": sum(earn.status == 201 for earn in earns), "pushes": len(matched["from_start"]),
            "lost": matched["lost"], "extra": matched["extra"], "pending": pending, "dead": dead,
            "drain": drain, "apns_connections": seen["connections"], "cpu": cpu,
            "api": percentiles([earn.end - earn.start for earn in earns]),
            "send_lag": max(earn.start - earn.scheduled for earn in earns) * 1e3,
            "from_start": percentiles(matched["from_start"]), "from_201": percentiles(matched["from_201"]),
            "timeline": worst_per_window(matched["pairs"], min(earn.start for earn in earns))}


def enroll_all(api: Api, pool, mode: str, members: int) -> list[Device]:
    """Every member enrolled with a registered device through the API, as real cards are added."""
    program = expect(api.merchant("POST", "/api/v1/programs", {"name": "Bench Beans"}), 201)
    started = time.monotonic()
    devices = list(pool.map(lambda n: enroll_with_device(api, program["id"], n), range(members)))
    print(f"[{mode}] {len(devices)} members enrolled, each with a registered device, in "
          f"{time.monotonic() - started:.1f} s")
    return devices


def cpu_groups(web, fake: FakeAPNsProcess, workers: list, database: str, redis) -> dict:
    """The process groups whose CPU is reported; PostgreSQL and Redis only when the mode uses them."""
    groups = {"web": process_tree(web.pid), "fake APNs": [fake.pid], "bench client": [os.getpid()],
              "PostgreSQL": (lambda: named_processes("postgres")) if database == "PostgreSQL" else [],
              "Redis": (lambda: named_processes("redis-server")) if redis is not None else []}
    if workers:
        groups["worker"] = [process.pid for process in workers]
    return {name: pids for name, pids in groups.items() if pids}


def worst_per_window(pairs: list[tuple[float, float]], t0: float, window: float = 2.0) -> list[float]:
    """The slowest earn -> push (ms) among the earns sent in each `window` seconds of the run."""
    worst: dict[int, float] = defaultdict(float)
    for start, latency in pairs:
        slot = int((start - t0) // window)
        worst[slot] = max(worst[slot], latency * 1e3)
    return [worst[slot] for slot in range(max(worst) + 1)] if worst else []


def report(results: list[dict], args) -> None:
    """The latency table of every mode, then each mode's details."""
    print(f"\n{args.rate:g} earns/s for {args.seconds:g} s over {args.members} members; {machine()}")
    header = f"{'mode':<9} {'earns':>5} {'201':>5} {'pushes':>6} {'lost':>4}  {'what (ms)':<22} " \
             f"{'p50':>6} {'p90':>6} {'p99':>6} {'max':>7}"
    print(header)
    for row in results:
        lines = [("earn start -> push", row["from_start"]), ("201 received -> push", row["from_201"]),
                 ("earn API call", row["api"])]
        for n, (what, stats) in enumerate(lines):
            lead = f"{row['mode']:<9} {row['earns']:>5} {row['created']:>5} {row['pushes']:>6} {row['lost']:>4}" \
                if n == 0 else " " * 33
            figures = " ".join(f"{stats.get(k, float('nan')):>{7 if k == 'max' else 6}.1f}"
                               for k in ("p50", "p90", "p99", "max"))
            print(f"{lead}  {what:<22} {figures}")
    for row in results:
        report_details(row)


def report_details(row: dict) -> None:
    """What else tells a clean run from a disturbed one: lost and extra pushes, CPU, the slowest push over time."""
    print(f"\n[{row['mode']}] {row['server']}; {row['database']}")
    print(f"  extra pushes {row['extra']}, outbox left pending {row['pending']}, dead {row['dead']}, "
          f"APNs connections {row['apns_connections']}, drain after last earn {row['drain']:.2f} s, "
          f"worst send lag behind schedule {row['send_lag']:.1f} ms")
    print(f"  {format_cpu(row['cpu'])}")
    print("  slowest earn -> push per 2 s of the run (ms): " + " ".join(f"{v:.0f}" for v in row["timeline"]))
    p99 = row["from_start"].get("p99", float("inf"))
    print(f"  target p99 <= 200 ms: {'met' if p99 <= 200 and not row['lost'] else 'NOT met'} "
          f"(p99 {p99:.1f} ms, {row['lost']} lost)")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen modes one after the other, then print the figures docs/performance.md quotes."""
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="earns per second (default 50)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the timed run (default 20)")
    parser.add_argument("--members", type=int, default=200, help="members, one device each (default 200)")
    parser.add_argument("--modes", default="rq,embedded", help="comma-separated: rq, embedded")
    parser.add_argument("--workers", type=int, default=1, help="punchpass worker processes in rq mode (default 1)")
    parser.add_argument("--logs", help="copy the servers' logs into this folder")
    args = parser.parse_args(argv)
    results = [run_mode(mode.strip(), args) for mode in args.modes.split(",") if mode.strip()]
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
