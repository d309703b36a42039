"""A program-wide update fanned out to 100,000 registered devices by one `punchpass worker` process.

Members and device registrations are written with bulk SQL (COPY on PostgreSQL, executemany on SQLite), not
through the API. The worker and the fake APNs (recording each push's arrival) run as their own processes.
The update is a PATCH of the program's branding through the API — the app runs in this process behind
Flask's test client and, like the web app, enqueues the committed `program_refresh` outbox event on Redis
DB 14 (or PUNCHPASS_BENCH_REDIS). Reports pushes/s, total time, and the worker's resident memory before and at
its peak (VmHWM).

    .venv/bin/python -m bench.fanout [--devices 100000] [--tracemalloc]

--tracemalloc then stops the worker and delivers one more refresh in this process under tracemalloc, printing
what holds Python memory at the peak (much slower; not part of the figures above it).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import select, text

from app.domain.passupdates import PROGRAM_REFRESH
from app.models import OutboxEvent, utcnow
from bench.harness import (
    REDIS_URL,
    ROOT,
    CpuMeter,
    FakeAPNsProcess,
    RssSampler,
    app_env,
    app_in_process,
    bulk_insert,
    exit_on_sigterm,
    flushed_redis,
    format_cpu,
    free_port,
    fresh_database,
    job_started,
    machine,
    make_merchant_key,
    memory_kb,
    merchant_headers,
    named_processes,
    push_batches,
    run_folder,
    start_workers,
    stop_dispatch,
    stop_process,
    traced_peak,
    wait_for_outbox,
)
from passes import make_test_chain

TARGET_PEAK_MB = 150
MEMBER_COLUMNS = ("program_id", "merchant_id", "name", "locale", "referral_code", "points_balance", "held_points",
                  "lifetime_points", "serial_number", "auth_token", "barcode_token", "download_token",
                  "pass_version", "pass_update_tag", "pass_updated_at", "created_at")
DEVICE_COLUMNS = ("device_library_id", "push_token", "member_id", "created_at", "updated_at")


def seed_devices(engine, program_id: int, count: int) -> float:
    """`count` members of the program, one registered device each; returns the seconds it took."""
    started = time.monotonic()
    with engine.connect() as conn:
        merchant_id = conn.scalar(text("SELECT merchant_id FROM programs WHERE id = :id"), {"id": program_id})
    now = utcnow() if engine.dialect.name == "postgresql" else utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    bulk_insert(engine, "members", MEMBER_COLUMNS, (
        (program_id, merchant_id, f"Member {n}", "en", f"F{n:09d}", 0, 0, 0, secrets.token_hex(16),
         secrets.token_urlsafe(24), f"b{n}", f"d{n}-{secrets.token_hex(12)}", 1, 0, now, now)
        for n in range(count)))
    with engine.connect() as conn:
        member_ids = conn.scalars(text("SELECT id FROM members WHERE program_id = :id ORDER BY id"),
                                  {"id": program_id}).all()
    bulk_insert(engine, "device_registrations", DEVICE_COLUMNS,
                ((uuid.uuid4().hex, secrets.token_hex(32), member_id, now, now) for member_id in member_ids))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE members; ANALYZE device_registrations"))
    return time.monotonic() - started


class EarnProbe(threading.Thread):
    """An earn every `interval` seconds on a member of another program, timing each API call: does the
    fan-out hold up the rest of the instance?"""

    def __init__(self, client, key: str, member_id: int, interval: float = 0.25):
        super().__init__(name="earn-probe", daemon=True)
        self.client, self.key, self.member_id, self.interval = client, key, member_id, interval
        self.calls: list[tuple[float, float, int]] = []  # (start, seconds, status)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.calls.append(self.earn())

    def earn(self) -> tuple[float, float, int]:
        started = time.time()
        response = self.client.post(f"/api/v1/members/{self.member_id}/earn", json={"points": 1},
                                    headers=merchant_headers(self.key))
        return started, time.time() - started, response.status_code

    def stop(self) -> list[tuple[float, float, int]]:
        self._done.set()
        self.join()
        return self.calls


def create(client, key: str, path: str, body: dict) -> dict:
    """POST through the test client as the merchant; anything but 201 stops the run."""
    response = client.post(path, json=body, headers=merchant_headers(key))
    if response.status_code != 201:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return response.get_json()


def refresh_event(engine, program_id: int) -> OutboxEvent | None:
    """The program's latest program_refresh outbox row: the fan-out's state."""
    with engine.connect() as conn:
        return conn.execute(select(OutboxEvent).where(OutboxEvent.kind == PROGRAM_REFRESH,
                                                      OutboxEvent.program_id == program_id)
                            .order_by(OutboxEvent.id.desc()).limit(1)).first()


def wait_until_settled(engine, program_id: int, timeout: float) -> OutboxEvent | None:
    """The refresh event once it is delivered or dead; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = refresh_event(engine, program_id)
        if event is not None and (event.delivered_at or event.dead_at):
            return event
        time.sleep(0.1)
    return None


def patch_branding(client, key: str, program_id: int, colour: str) -> tuple[float, float]:
    """The merchant changes the card's colour; returns when the request started and when it answered."""
    started = time.time()
    response = client.patch(f"/api/v1/programs/{program_id}", json={"branding": {"background_color": colour}},
                            headers=merchant_headers(key))
    if response.status_code != 200:
        raise RuntimeError(f"PATCH answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return started, time.time()


def run(args, workdir: Path, stack: ExitStack) -> dict:
    """Seed, start and warm the worker, PATCH the branding, and read everything until the fan-out settles."""
    certs = make_test_chain(workdir / "certs")
    fake = stack.enter_context(FakeAPNsProcess(certs, workdir))
    redis = stack.enter_context(flushed_redis())
    if redis is None:
        raise RuntimeError("punchpass worker needs Redis")
    database_url, database = stack.enter_context(fresh_database(workdir))
    env = app_env(certs, database_url, workdir, fake.port, free_port(), REDIS_URL)
    app, engine = app_in_process(env)  # the API, in this process; its relay enqueues on Redis
    stack.callback(engine.dispose)
    client, key = app.test_client(), make_merchant_key(database_url)
    program = create(client, key, "/api/v1/programs", {"name": "Fan-out Beans"})
    bystander = enroll_bystander(engine, client, key)
    seconds = seed_devices(engine, program["id"], args.devices)
    print(f"{args.devices:,} members + device registrations written with bulk SQL in {seconds:.1f} s ({database})")

    [worker] = start_workers(stack, env, workdir, redis)
    time.sleep(1.0)  # let the worker finish starting (imports, app, signer) before its RSS is read
    idle = memory_kb(worker.pid)
    EarnProbe(client, key, bystander["id"]).earn()  # a first job: database pool, APNs connection, a signed pass
    wait_for_outbox(engine, 30)
    before = memory_kb(worker.pid)
    sampler, probe = RssSampler(worker.pid), EarnProbe(app.test_client(), key, bystander["id"])
    meter = CpuMeter({"worker": [worker.pid], "fake APNs": [fake.pid],
                      "PostgreSQL": lambda: named_processes("postgres"),
                      "Redis": lambda: named_processes("redis-server")}).start()
    sampler.start()
    probe.start()
    started, answered = patch_branding(client, key, program["id"], "#112233")
    event = wait_until_settled(engine, program["id"], args.timeout)
    settled = time.time()
    probes = probe.stop()
    wait_for_outbox(engine, 10)  # the bystander's pushes, queued behind the fan-out
    cpu, samples, peak = meter.stop(), sampler.stop(), memory_kb(worker.pid)
    result = {"database": database, "idle": idle, "before": before, "peak": peak, "samples": samples, "cpu": cpu,
              "probes": probes, "bystander_token": bystander["push_token"], "started": started,
              "answered": answered, "settled": settled, "event": event,
              "batches": push_batches(workdir / "worker-1.log"),
              "job_started": job_started(workdir / "worker-1.log", event.id) if event else None}
    if args.tracemalloc:
        stop_process(worker)
        result["profile"] = profile_in_process(app, engine, client, key, program["id"])
    result["fake"] = fake.finish()
    return result


def enroll_bystander(engine, client, key: str) -> dict:
    """A member of another program with one registered device: the rest of the instance, during a fan-out."""
    other = create(client, key, "/api/v1/programs", {"name": "Another Shop"})
    member = create(client, key, f"/api/v1/programs/{other['id']}/members", {"name": "Bystander"})
    member["push_token"] = secrets.token_hex(32)
    now = utcnow() if engine.dialect.name == "postgresql" else utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    bulk_insert(engine, "device_registrations", DEVICE_COLUMNS,
                [(uuid.uuid4().hex, member["push_token"], member["id"], now, now)])
    return member


def profile_in_process(app, engine, client, key: str, program_id: int) -> dict:
    """Deliver one more refresh here, as the worker would, under tracemalloc; the top holders at the peak."""
    from workers.apns import close_shared_clients
    from workers.jobs import deliver_event
    stop_dispatch(app)  # nobody else may take this event
    patch_branding(client, key, program_id, "#445566")
    event_id = refresh_event(engine, program_id).id
    profile = traced_peak(lambda: deliver_event(app, event_id))
    close_shared_clients()
    return profile


def report(result: dict, args) -> None:
    """The figures docs/performance.md quotes, one aspect per line."""
    fake, event = result["fake"], result["event"]
    def window(t: float) -> bool:  # not the profile's pushes
        return result["started"] <= t <= result["settled"]
    fanned = {token: [t for t in times if window(t)] for token, times in fake["arrivals"].items()
              if token != result["bystander_token"]}
    arrivals = sorted(t for times in fanned.values() for t in times)
    tokens = sum(1 for times in fanned.values() if times)
    print(f"\nFan-out of one program_refresh to {args.devices:,} devices; {result['database']}; {machine()}")
    if event is None or not arrivals:
        print(f"  NOT settled within {args.timeout:.0f} s; {len(arrivals):,} pushes arrived")
    else:
        state = "delivered" if event.delivered_at else f"DEAD: {event.last_error}"
        first, last = arrivals[0], arrivals[-1]
        print(f"  outbox event {state} after {event.attempts} attempt(s); {len(arrivals):,} pushes to "
              f"{tokens:,} distinct tokens; the fake accepted {fake['connections']} APNs connection(s)"
              + (" (one is the --tracemalloc run's)" if "profile" in result else ""))
        print(f"  PATCH answered in {(result['answered'] - result['started']) * 1e3:.0f} ms; first push "
              f"{first - result['started']:.2f} s after it; last push {last - result['started']:.2f} s after it")
        print(f"  pushes/s: {len(arrivals) / (last - first):,.0f} (first -> last push), "
              f"{len(arrivals) / (last - result['started']):,.0f} (PATCH -> last push)")
        per_second = Counter(int(t - first) for t in arrivals)
        print("  pushes in each second from the first: " + " ".join(
            f"{per_second[s]:,}" for s in range(int(last - first) + 1)))
    report_worker_log(result)
    print(f"  {format_cpu(result['cpu'])}")
    report_bystander(result)
    report_memory(result)
    if "profile" in result:
        report_profile(result["profile"])


def report_worker_log(result: dict) -> None:
    """Where the worker's time went, from its own log: picking the job up, preparing, pushing."""
    job_start = result["job_started"]
    batches = [b for b in result["batches"] if job_start and job_start <= b[0] <= result["settled"] + 0.01]
    if batches:
        pushing = sum(seconds for _, _, seconds in batches)
        first_call = batches[0][0] - batches[0][2]
        print(f"  worker log: job picked up {job_start - result['started']:.2f} s after the PATCH started; "
              f"{first_call - job_start:.2f} s from then to the first push_many (lease, update tag, UPDATE of "
              f"every member, commit, first registrations); {len(batches)} push_many calls of "
              f"{max(n for _, n, _ in batches):,} tokens at most, {pushing:.2f} s inside them "
              f"({sum(n for _, n, _ in batches) / pushing:,.0f} pushes/s there), "
              f"{batches[-1][0] - first_call - pushing:.2f} s between them")


def report_memory(result: dict) -> None:
    """The worker's resident memory idle, warmed and at its peak, against the target."""
    idle, before, peak = result["idle"], result["before"], result["peak"]
    top = max((kb for _, kb in result["samples"]), default=0)
    print(f"  worker RSS: {idle['VmRSS'] / 1024:.1f} MB idle after start, {before['VmRSS'] / 1024:.1f} MB after "
          f"a first one-push job (VmHWM {before['VmHWM'] / 1024:.1f} MB); peak VmHWM {peak['VmHWM'] / 1024:.1f} MB "
          f"(highest 100 ms sample {top / 1024:.1f} MB); {peak['VmRSS'] / 1024:.1f} MB after")
    verdict = "met" if peak["VmHWM"] / 1024 <= TARGET_PEAK_MB else "NOT met"
    print(f"  target peak RSS <= {TARGET_PEAK_MB} MB: {verdict}")


def report_bystander(result: dict) -> None:
    """How the rest of the instance fared: earns elsewhere (API time) and their pushes (queued behind)."""
    probes = result["probes"]
    if not probes:
        return
    slow = max(probes, key=lambda call: call[1])
    times = sorted(result["fake"]["arrivals"].get(result["bystander_token"], []))
    waits = [next((t - start for t in times if t >= start), None) for start, _, _ in probes]
    print(f"  earns on a member of another program every 0.25 s during the fan-out: {len(probes)}, statuses "
          f"{dict(Counter(status for _, _, status in probes))}; API call median "
          f"{sorted(seconds for _, seconds, _ in probes)[len(probes) // 2] * 1e3:.0f} ms, slowest "
          f"{slow[1] * 1e3:,.0f} ms (sent {slow[0] - result['started']:.2f} s after the PATCH)")
    pushed = [wait for wait in waits if wait is not None]
    if pushed:
        print(f"  ... its card pushed {min(pushed):.2f} to {max(pushed):.2f} s after an earn "
              f"({len(times)} pushes for its {len(probes)} earns: queued events of one card are coalesced)")


def report_profile(profile: dict) -> None:
    """What held Python memory at the in-process peak (--tracemalloc)."""
    print(f"\ntracemalloc, one more refresh delivered in this process ({profile['outcome']}): traced peak "
          f"{profile['traced_peak'] / 2**20:.1f} MB of Python allocations (this process's RSS is no guide here: "
          f"tracemalloc's own tables inflate it)")
    snapshot = profile["snapshot"]
    if snapshot is None:
        return
    print(f"largest holders in the snapshot nearest the peak ({profile['snapshot_size'] / 2**20:.1f} MB traced):")
    ours = (f"{ROOT}/", f"{sys.prefix}/")  # this checkout and its virtualenv, which may live in another checkout
    for stat in snapshot.statistics("traceback")[:6]:
        frames = [f"{frame.filename.replace(str(Path.cwd()) + '/', '')}:{frame.lineno}"
                  for frame in stat.traceback if frame.filename.startswith(ours) or "sqlalchemy" in frame.filename]
        print(f"  {stat.size / 2**20:7.1f} MB in {stat.count:,} blocks  " + " <- ".join(frames[-4:][::-1]))


def main(argv: list[str] | None = None) -> int:
    """One fan-out, reported after every process is stopped and the database dropped."""
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000, help="registered devices (default 100,000)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the fan-out")
    parser.add_argument("--tracemalloc", action="store_true", help="then profile one refresh in this process")
    parser.add_argument("--logs", help="copy the worker's and the fake's logs into this folder")
    args = parser.parse_args(argv)
    with run_folder("punchpass-fanout-", Path(args.logs) if args.logs else None) as (workdir, stack):
        result = run(args, workdir, stack)
    report(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
