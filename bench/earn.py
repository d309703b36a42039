"""Earns at the till, production-shaped, measured from outside (issue 9): how many earns/s, how fast, who burns
the CPU, and how far that is from what PostgreSQL and a bare psycopg endpoint do on the same machine.

One run: the fake APNs in its own process, a fresh PostgreSQL database, Redis (PUNCHPASS_BENCH_REDIS, flushed
first and last), `gunicorn wsgi:app` from the project root with the shipped gunicorn.conf.py (gthread; rate
limits raised by setting), one `punchpass worker`, N members enrolled through the API (--with-devices: each
card also registered by a Wallet device). Then, per mode (earn, redeem, lookup, get), either wrk closed-loop
with --connections for --seconds, or (--rate R) an open-loop client sending R requests/s, latency counted from
each request's scheduled time. Every write mode checks that each request landed exactly once (ledger rows,
idempotency records, balances, outbox rows against what was sent and answered), and `punchpass ledger verify`
runs at the end. Then the same earns against bench/baseline_app.py under the same gunicorn and wrk, and the
SQL floor: one psycopg connection doing the earn's writes in a loop.

    python -m bench.earn [--connections 32] [--seconds 10] [--members 500] [--modes earn,redeem,lookup,get]
    python -m bench.earn --rate 200 --modes earn               # p99 at a fixed rate (open loop)
    python -m bench.earn --with-devices --rate 400 --seconds 30 --modes earn --no-baseline
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.harness import (
    BIN,
    REDIS_URL,
    Api,
    CpuMeter,
    FakeAPNsProcess,
    app_env,
    enroll_with_device,
    exit_on_sigterm,
    expect,
    flushed_redis,
    format_cpu,
    free_port,
    fresh_database,
    ledger_verify,
    load_average,
    machine,
    make_merchant_key,
    match_pushes,
    named_processes,
    open_loop,
    percentiles,
    process_tree,
    run_folder,
    settled_totals,
    sql_floor,
    start_gunicorn,
    start_workers,
    start_wrk,
    wait_for_outbox,
    write_wrk_script,
    wrk_output,
    wrk_result,
)
from passes import make_test_chain

RAISED_LIMITS = {"RATE_LIMIT_API_KEY": "100000/second", "RATE_LIMIT_PUBLIC": "100000/second"}
TOP_UP = 1_000_000  # points each member earns before a redeem run, so no redeem is refused
KINDS = {"earn": "earn", "redeem": "redeem"}  # write modes -> the ledger kind they append


def requests_for(mode: str, members) -> tuple[str, list[tuple[str, dict | None]]]:
    """(method, [(path, body)]) of one mode, one request per member, sent in turn."""
    if mode in ("earn", "redeem"):
        return "POST", [(f"/api/v1/members/{m.member_id}/{mode}", {"points": 1}) for m in members]
    if mode == "lookup":
        return "POST", [("/api/v1/checkout/lookup", {"barcode": m.barcode}) for m in members]
    if mode == "get":
        return "GET", [(f"/api/v1/members/{m.member_id}", None) for m in members]
    raise SystemExit(f"unknown mode {mode!r}: earn, redeem, lookup, get")


def measure(mode: str, port: int, key: str, members, groups: dict, args, workdir: Path, engine,
            label: str) -> dict:
    """One mode against the server on port: wrk closed loop, or open loop at args.rate; CPU metered over the
    load (and, for the worker's backlog, until the outbox is drained); ledger compared before and after."""
    method, requests = requests_for(mode, members)
    before = settled_totals(engine)
    shots, wrk = None, None
    if args.rate:
        api = Api(port, key)
        def send(i: int):
            path, body = requests[i % len(requests)]
            return members[i % len(members)].push_token, api.merchant(method, path, body)[0]
        meter, drained = CpuMeter({**groups, "bench client": [os.getpid()]}).start(), CpuMeter(groups).start()
        shots = open_loop(send, int(args.rate * args.seconds), args.rate, args.connections)
    else:
        script = write_wrk_script(workdir / f"{label}-{mode}.lua", method, requests, key, mode in KINDS)
        process = start_wrk(port, script, args.connections, args.seconds)
        if args.py_spy and label == "app":  # sample one gunicorn worker (not the master) during this mode
            py_spy(groups["gunicorn"][-1], args.seconds - 1, f"{args.py_spy}.{mode}.txt")
        meter, drained = CpuMeter({**groups, "wrk": [process.pid]}).start(), CpuMeter(groups).start()
        out = wrk_output(process)
    load, load_avg = meter.stop(), load_average()
    if not args.rate:
        process.wait()
        wrk = wrk_result(out)
    drain = wait_for_outbox(engine, 60)
    total = drained.stop()
    after = settled_totals(engine)  # wrk has exited; the server may still be finishing what it had in flight
    if shots is not None:
        statuses = {}
        for shot in shots:
            statuses[str(shot.status)] = statuses.get(str(shot.status), 0) + 1
        sent = answered = len(shots)
        latency = {"scheduled": percentiles([s.end - s.scheduled for s in shots]),
                   "service": percentiles([s.end - s.start for s in shots])}
        lag = max(s.start - s.scheduled for s in shots) * 1e3
    else:
        statuses, sent, answered = wrk["statuses"], wrk["sent"], wrk["requests"]
        latency = {"service": {k: wrk[f"{k}_us"] / 1e3 for k in ("p50", "p90", "p99", "max")}}
        lag = None
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    result = {"label": label, "mode": mode, "sent": sent, "answered": answered, "ok": ok, "statuses": statuses,
              "rate": ok / load["wall"], "latency": latency, "lag": lag, "cpu": load, "cpu_drained": total,
              "drain": drain, "load_avg": load_avg, "shots": shots}
    if mode in KINDS:
        result["check"] = exactly_once(mode, before, after, ok, sent, shots is not None, label, args.with_devices)
    return result


def py_spy(pid: int, seconds: float, out: str) -> None:
    """py-spy's collapsed stacks of one process, threads holding the GIL only (Python CPU, not GIL waits), in
    the background (`python -m bench.profile_earn --collapsed` splits them by package)."""
    subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1)),
                      "--format", "raw", "--rate", "250", "--gil", "--nonblocking", "--output", out],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def exactly_once(mode: str, before: dict, after: dict, ok: int, sent: int, every_answer_known: bool,
                 label: str, devices: bool) -> dict:
    """Each answered write is one ledger row, one idempotency record and ±1 point (and, in the app, one outbox
    row when the cards have devices, none when they have none); a request wrk had in flight when it stopped may
    have landed unanswered, so rows may exceed the 2xx by at most sent - 2xx (open loop: every answer is known,
    so rows must equal the 2xx)."""
    rows = after["kinds"].get(KINDS[mode], 0) - before["kinds"].get(KINDS[mode], 0)
    keys, balance = after["keys"] - before["keys"], after["balance"] - before["balance"]
    outbox = after["outbox"] - before["outbox"]
    sign = 1 if mode == "earn" else -1
    good = (rows == ok if every_answer_known else ok <= rows <= sent) and keys == rows and balance == sign * rows \
        and (label != "app" or outbox == (rows if devices else 0))
    return {"rows": rows, "keys": keys, "balance": balance, "outbox": outbox, "good": good}


def enroll(api: Api, count: int, devices: bool, pool) -> list:
    program = expect(api.merchant("POST", "/api/v1/programs", {"name": "Bench Beans"}), 201)
    return list(pool.map(lambda n: enroll_with_device(api, program["id"], n, register=devices), range(count)))


def top_up(api: Api, members, pool) -> None:
    """Enough points on every card that no redeem is refused (earns through the API: the ledger stays true)."""
    list(pool.map(lambda m: expect(api.merchant("POST", f"/api/v1/members/{m.member_id}/earn",
                                                {"points": TOP_UP, "reference": "top-up"}), 201), members))


def run(args) -> dict:
    with run_folder("punchpass-earn-", Path(args.logs) if args.logs else None) as (workdir, stack):
        certs = make_test_chain(workdir / "certs")
        fake = stack.enter_context(FakeAPNsProcess(certs, workdir))
        redis = stack.enter_context(flushed_redis())
        if redis is None:
            raise RuntimeError("bench.earn needs Redis")
        database_url, database = stack.enter_context(fresh_database(workdir))
        if database != "PostgreSQL":
            raise RuntimeError("bench.earn needs PostgreSQL")
        port = free_port()
        env = {**app_env(certs, database_url, workdir, fake.port, port, REDIS_URL), **RAISED_LIMITS}
        engine = create_engine(database_url)
        stack.callback(engine.dispose)
        pool = stack.enter_context(ThreadPoolExecutor(16))
        results, app_stack = [], stack.enter_context(ExitStack())
        web = start_gunicorn(app_stack, env, workdir)
        workers = start_workers(app_stack, env, workdir, redis, 1)
        key = make_merchant_key(database_url)
        api = Api(port, key)
        started = time.monotonic()
        members = enroll(api, args.members, args.with_devices, pool)
        print(f"{len(members)} members enrolled{', each with a registered device' if args.with_devices else ''} "
              f"in {time.monotonic() - started:.1f} s; gunicorn processes {len(process_tree(web.pid))}")
        groups = {"gunicorn": process_tree(web.pid), "worker": [w.pid for w in workers],
                  "PostgreSQL": lambda: named_processes("postgres"),
                  "Redis": lambda: named_processes("redis-server"), "fake APNs": [fake.pid]}
        warm = argparse.Namespace(**{**vars(args), "rate": 0, "seconds": 2})
        measure("earn", port, key, members, groups, warm, workdir, engine, "warm-up")  # every worker, thread
        for mode in args.modes:
            if mode == "redeem":
                top_up(api, members, pool)
            results.append(measure(mode, port, key, members, groups, args, workdir, engine, "app"))
            print(line(results[-1]), flush=True)
        verified = ledger_verify(env)
        app_stack.close()  # gunicorn and the worker stop: the baseline gets the machine alone
        pushes = fake.finish()
        if args.baseline:
            baseline = start_gunicorn(stack, env, workdir, "bench.baseline_app:app", "baseline")
            groups = {"gunicorn": process_tree(baseline.pid), "PostgreSQL": lambda: named_processes("postgres")}
            results.append(measure("earn", port, key, members, groups, args, workdir, engine, "baseline"))
            print(line(results[-1]), flush=True)
        with engine.connect() as conn:
            merchant_id = conn.scalar(text("SELECT min(id) FROM merchants"))
        ids = [m.member_id for m in members]
        floors = [(load_average(), sql_floor(database_url, ids, merchant_id, args.floor_seconds, full, durable))
                  for full, durable in ((False, True), (True, True), (False, False))] if args.floor_seconds else []
        return {"results": results, "verified": verified, "pushes": pushes, "floors": floors}


def line(row: dict) -> str:
    """One result in a line: rate, latency, answers, load average."""
    lat = row["latency"]
    figures = "; ".join(f"{what} p50 {s['p50']:.1f} p90 {s['p90']:.1f} p99 {s['p99']:.1f} max {s['max']:.1f} ms"
                        for what, s in lat.items())
    return (f"[{row['label']} {row['mode']}] {row['ok']:,} x 2xx of {row['sent']:,} sent, {row['rate']:,.1f}/s; "
            f"{figures}; statuses {row['statuses']}; load average {row['load_avg']}")


def report(out: dict, args) -> None:
    loop = f"open loop at {args.rate:g}/s, {args.connections} client threads" if args.rate else \
        f"wrk closed loop, {args.connections} connections"
    print(f"\n{loop}, {args.seconds:g} s per mode, {args.members} members"
          f"{' with devices' if args.with_devices else ''}; {machine()}")
    for row in out["results"]:
        print("\n" + line(row))
        if row["lag"] is not None:
            print(f"  worst send lag behind schedule {row['lag']:.1f} ms")
        print(f"  {format_cpu(row['cpu'])}")
        wall, count = row["cpu"]["wall"], max(row["ok"], 1)
        per = {name: cores * wall / count * 1e3 for name, cores in row["cpu"]["cores"].items()}
        drained = row["cpu_drained"]
        worker = drained["cores"].get("worker", 0) * drained["wall"] / max(row["ok"], 1) * 1e3
        print("  CPU ms per answered request: " + ", ".join(f"{n} {v:.2f}" for n, v in per.items())
              + (f"; worker incl. its backlog {worker:.2f} (drained {row['drain']:.1f} s after)"
                 if "worker" in drained["cores"] else ""))
        if "check" in row:
            c = row["check"]
            print(f"  exactly once: {'OK' if c['good'] else 'FAILED'} (ledger rows {c['rows']}, idempotency "
                  f"records {c['keys']}, balances {c['balance']:+}, outbox rows {c['outbox']}, answered "
                  f"{row['answered']}, 2xx {row['ok']}, sent {row['sent']})")
    print(f"\npunchpass ledger verify: {'OK' if out['verified'][0] else 'FAILED'}: {out['verified'][1]}")
    for load_avg, floor in out["floors"]:
        what = "an earn's statements as the app sent them before the fourth hot-path pass (key, member + tag, " \
            "rewards, devices, ledger, member, idempotency)" if floor["full"] else \
            "lean (lock, update, ledger, idempotency; the app's 4 statements today)"
        what += "" if floor["durable"] else ", synchronous_commit off"
        print(f"SQL floor, one psycopg connection, {what}: {floor['tps']:,.0f} transactions/s "
              f"({floor['statements']} statements, {floor['round_trips']} round trips each); load average {load_avg}")
    earns = [row for row in out["results"] if row["label"] == "app" and row["mode"] == "earn"]
    if args.with_devices and earns and earns[0]["shots"]:
        report_pushes(earns[0], out["pushes"])


def report_pushes(row: dict, pushes: dict) -> None:
    """Earn -> push: every 201 pushed once, the latency, and the worker's CPU per delivered push."""
    matched = match_pushes(row["shots"], pushes["arrivals"])
    delivered = len(matched["from_start"])
    drained = row["cpu_drained"]
    worker_ms = drained["cores"]["worker"] * drained["wall"] / max(delivered, 1) * 1e3
    stats = percentiles(matched["from_start"])
    last = {}  # a card's older event still queued behind a newer one is skipped (coalesced), by design
    for shot in row["shots"]:
        if shot.status == 201:
            last[shot.tag] = max(last.get(shot.tag, 0.0), shot.start)
    current = sum(1 for tag, t in last.items() if any(a >= t for a in pushes["arrivals"].get(tag, [])))
    print(f"cards whose last earn was pushed: {current} of {len(last)}")
    print(f"earn -> push: {delivered} pushes for {row['ok']} x 201, {matched['lost']} missing, {matched['extra']} "
          f"extra, APNs connections {pushes['connections']}; p50 {stats.get('p50', 0):.1f} p90 "
          f"{stats.get('p90', 0):.1f} p99 {stats.get('p99', 0):.1f} max {stats.get('max', 0):.1f} ms; worker CPU "
          f"{worker_ms:.2f} ms per delivered push; target p99 <= 200 ms and none missing: "
          f"{'met' if stats.get('p99', 1e9) <= 200 and not matched['lost'] else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32, help="wrk connections / open-loop client threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each mode's run (default 10)")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this many requests/s (default: "
                                                                "wrk closed loop; 400 with --with-devices)")
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--with-devices", action="store_true", help="register every card on a Wallet device")
    parser.add_argument("--modes", default="earn,redeem,lookup,get", type=lambda v: [m for m in v.split(",") if m])
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the bare psycopg endpoint (bench/baseline_app.py)")
    parser.add_argument("--floor-seconds", type=float, default=5.0, help="SQL floor length (0: skip)")
    parser.add_argument("--logs", help="copy the servers' logs into this folder")
    parser.add_argument("--py-spy", help="with wrk: record one gunicorn worker to PREFIX.<mode>.txt")
    args = parser.parse_args(argv)
    if args.with_devices and not args.rate:
        args.rate = 400.0
    for mode in args.modes:
        requests_for(mode, [])
    report(run(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
