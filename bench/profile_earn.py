"""Where one earn's time goes, in-process: the app as gunicorn's worker builds it (wsgi.py: create_app +
connect_rq on PUNCHPASS_BENCH_REDIS), a fresh PostgreSQL database, earns through Flask's test client (no HTTP
server: gunicorn's own share is what bench/earn.py's py-spy shows), one at a time.

1. Counts per earn: SQL statements (SQLAlchemy before_cursor_execute, grouped by statement), transaction
   commands psycopg sends (BEGIN on a transaction's first statement, COMMIT, ROLLBACK), pool pre-pings (one
   per connection checkout with pool_pre_ping) and Redis commands (rq's enqueue after commit).
2. Wall and CPU per earn (time.perf_counter / time.process_time), no profiler attached.
3. With --py-spy: py-spy samples this process (threads holding the GIL only) over the same earns, without
   cProfile's inflation, and splits them by phase of the request (rate limit, auth, validation, the member's
   lock, the ledger write, serialization, commit, Flask...) and by package.
4. cProfile on the CPU clock over the same earns: own CPU time grouped by package (framework, marshmallow,
   SQLAlchemy, psycopg, rq and Redis, our code, the rest), and the top functions by cumulative CPU time.

    python -m bench.profile_earn [--earns 1000] [--members 100] [--top 25] [--mode earn|redeem|get|lookup]
                                 [--py-spy [--detail N]] [--no-cprofile]

`--detail N` splits the N costliest phases by the library functions they spend in (inclusive); the raw py-spy
samples are kept at PUNCHPASS_PYSPY_SAMPLES when that is set.

`--mode redeem` spends 1 point per request (each member is topped up first), `--mode get` reads the member
(GET /members/{id}), `--mode lookup` finds it by its barcode (POST /checkout/lookup); "earn" in the report then
means one request of that mode.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import event

from bench.harness import (
    BIN,
    REDIS_URL,
    app_env,
    app_in_process,
    exit_on_sigterm,
    flushed_redis,
    free_port,
    fresh_database,
    load_average,
    machine,
    make_merchant_key,
    merchant_headers,
    run_folder,
)
from passes import make_test_chain

PACKAGES = [  # first match of a path fragment wins
    ("SQLAlchemy", ("/sqlalchemy/",)),
    ("psycopg", ("/psycopg/", "/psycopg_binary/")),
    ("marshmallow/apispec", ("/marshmallow/", "/apispec/", "/webargs/")),
    ("Flask/APIFlask/werkzeug", ("/flask/", "/apiflask/", "/werkzeug/", "/flask_httpauth", "/jinja2/",
                                 "/itsdangerous/", "/click/", "/blinker/")),
    ("rq/redis", ("/rq/", "/redis/")),
    ("our code (app/, workers/)", ("/app/", "/workers/", "/passes/")),
]


def package_of(filename: str) -> str:
    for name, fragments in PACKAGES:
        if any(fragment in filename for fragment in fragments):
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C: json, hashlib, socket, dict...)"
    return "stdlib/other Python"


class Tally:
    """Statements, transaction commands, pre-pings and Redis commands seen while `counting` is on."""

    def __init__(self, engine):
        self.statements, self.counting = Counter(), False
        self.begins = self.commits = self.rollbacks = self.checkouts = self.redis = 0
        self.pre_ping = bool(getattr(engine.pool, "_pre_ping", False))  # a checkout is a round trip only then
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", lambda conn: self._add("begins"))
        event.listen(engine, "commit", lambda conn: self._add("commits"))
        event.listen(engine, "rollback", lambda conn: self._add("rollbacks"))
        event.listen(engine.pool, "checkout", lambda *a: self._add("checkouts"))
        from redis.connection import Connection
        send = Connection.send_packed_command

        def counted(connection, command, check_health=True):
            self._add("redis", len(command) if isinstance(command, list) and len(command) > 1 else 1)
            return send(connection, command, check_health)
        Connection.send_packed_command = counted

    def _add(self, name: str, n: int = 1) -> None:
        if self.counting:
            setattr(self, name, getattr(self, name) + n)

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.counting:
            self.statements[" ".join(statement.split())[:110]] += 1


# Phases of one request, by the function a sample is in: the innermost frame that matches names the phase.
PHASES = [
    ("rate limit (flask-limiter + the per-key script, Redis)",
     ("_check_request_limit (", "ratelimits.py", "generation_and_counts (")),
    ("auth (API key)", ("_verify_token (",)),
    ("input guard (JSON, storable text)", ("refuse_unusable_input (",)),
    ("metrics hooks", ("_start_timer (", "_observe (")),
    ("update tag", ("next_update_tag (",)),
    ("has devices? (and a Google object?)", ("_card_holders (",)),
    ("member read / lock (+ the program's configuration)",
     ("get_member_for_update (", "get_member (", "find_by_barcode (")),
    ("ledger write (entry INSERT, member UPDATE)", ("_append (",)),
    ("domain, other", ("earn_points (", "redeem_points (", "points_for_amount (")),
    ("answer dict (present.py)", ("member_json (", "transaction_json (", "redeemable_rewards (")),
    ("view, other", ("api/members.py", "api/checkout.py")),
    ("request parsing + validation (webargs/marshmallow)", ("webargs/core.py",)),
    ("response serialization (APIFlask output schema, JSON)", ("apiflask/scaffold.py",)),
    ("idempotency record + COMMIT", ("idempotency.py",)),
    ("teardown (session close)", ("close_db_session (",)),
    ("Flask/werkzeug request handling", ("flask/app.py",)),
    ("test client (not in production)", ("werkzeug/test.py", "flask/testing.py")),
]


def earn(client, key: str, member_id: int, mode: str = "earn", barcode: str = "") -> None:
    if mode == "get":
        response = client.get(f"/api/v1/members/{member_id}", headers=merchant_headers(key))
        expected = 200
    elif mode == "lookup":
        response = client.post("/api/v1/checkout/lookup", json={"barcode": barcode}, headers=merchant_headers(key))
        expected = 200
    else:
        response = client.post(f"/api/v1/members/{member_id}/{mode}", json={"points": 1},
                               headers=merchant_headers(key))
        expected = 201
    if response.status_code != expected:
        raise RuntimeError(f"{mode} answered {response.status_code}: {response.get_data(as_text=True)[:200]}")


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--earns", type=int, default=1000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--mode", choices=("earn", "redeem", "get", "lookup"), default="earn")
    parser.add_argument("--py-spy", action="store_true", help="sample the timed earns with py-spy, by phase")
    parser.add_argument("--detail", type=int, default=0, metavar="N",
                        help="with --py-spy: split the N costliest phases by the library call they spend in")
    parser.add_argument("--no-cprofile", dest="cprofile", action="store_false", help="skip the cProfile pass")
    parser.add_argument("--out", help="write the cProfile stats here (for snakeviz, pstats)")
    parser.add_argument("--collapsed", help="instead: split py-spy's raw output (bench.earn --py-spy) by package")
    args = parser.parse_args(argv)
    if args.collapsed:
        return split_collapsed(Path(args.collapsed))
    with run_folder("punchpass-profile-", None) as (workdir, stack):
        certs = make_test_chain(workdir / "certs")
        stack.enter_context(flushed_redis())
        database_url, _ = stack.enter_context(fresh_database(workdir))
        env = app_env(certs, database_url, workdir, free_port(), free_port(), REDIS_URL)
        app, engine = app_in_process(env)
        key = make_merchant_key(database_url)
        client = app.test_client()
        auth = {"Authorization": f"Bearer {key}"}
        program = client.post("/api/v1/programs", json={"name": "Profile"}, headers=auth).get_json()
        enrolled = [client.post(f"/api/v1/programs/{program['id']}/members", json={"name": f"M {n}"},
                                headers=auth).get_json() for n in range(args.members)]
        ids = [member["id"] for member in enrolled]
        barcodes = {member["id"]: member["barcode_value"] for member in enrolled}

        def one(n: int) -> None:
            member_id = ids[n % len(ids)]
            earn(client, key, member_id, args.mode, barcodes[member_id])
        if args.mode == "redeem":
            for member_id in ids:
                client.post(f"/api/v1/members/{member_id}/earn", json={"points": 1_000_000}, headers=auth)
        tally = Tally(engine)
        for n in range(100):  # warm: every statement prepared by psycopg (after 5 runs), caches filled
            one(n)

        counted = 200
        tally.counting = True
        for n in range(counted):
            one(n)
        tally.counting = False

        wall0, cpu0 = time.perf_counter(), time.process_time()
        for n in range(args.earns):
            one(n)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

        samples = Path(os.environ.get("PUNCHPASS_PYSPY_SAMPLES") or workdir / "py-spy.txt")
        if args.py_spy:
            with sampled(samples):
                for n in range(args.earns):
                    one(n)
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waiting on a socket is not cost
        if args.cprofile:
            profiler.enable()
            for n in range(args.earns):
                one(n)
            profiler.disable()
        engine.dispose()
        report(tally, counted, wall, cpu, profiler if args.cprofile else None, args)
        if args.py_spy:
            split_phases(samples, cpu / args.earns * 1e3, args.detail)
    return 0


class sampled:
    """py-spy recording this process (GIL holders only: Python CPU, not waits) for the `with` block."""

    def __init__(self, out: Path):
        self.out = out

    def __enter__(self):
        self.process = subprocess.Popen(
            [str(BIN / "py-spy"), "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", "500",
             "--gil", "--output", str(self.out)], stdout=subprocess.DEVNULL, stderr=tempfile.TemporaryFile())
        time.sleep(1.0)  # attached before the first sample counts
        return self

    def __exit__(self, *_):
        self.process.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
        self.process.wait(30)


def split_phases(path: Path, cpu_ms: float, detail: int = 0) -> None:
    """py-spy samples by phase of the request (PHASES: innermost matching frame) and by package (innermost
    frame); the ms column scales the shares to the CPU per earn measured without any profiler."""
    by_phase, by_package, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        if not any("profile_earn.py" in frame for frame in frames):
            continue  # the sampler's own start-up, the interpreter's idle threads
        by_phase[phase_of(frames)] += n
        location = frames[-1].rpartition("(")[2]
        by_package[package_of("/" + location if not location.startswith("/") else location)] += n
        total += n
    print(f"\npy-spy, {total} samples of the timed earns; ms = share x {cpu_ms:.2f} ms CPU per earn unprofiled")
    for title, counts in (("by phase", by_phase), ("by package of the innermost frame", by_package)):
        print(f"  {title}:")
        for name, n in counts.most_common():
            print(f"    {n / total:6.1%}  {n / total * cpu_ms:5.2f} ms  {name}")
    for phase, _ in by_phase.most_common(detail):
        print(f"  inside '{phase}', by library call below ours (inclusive: shares overlap; file:function):")
        for name, n in below_ours(path, phase).most_common(14):
            print(f"    {n / total:6.1%}  {n / total * cpu_ms:5.2f} ms  {name}")


def below_ours(path: Path, phase: str) -> Counter:
    """Samples of one phase by library function (SQLAlchemy, psycopg, Flask...), inclusive: a sample counts for
    every library function on its stack below our innermost frame. Which calls a phase's CPU goes to."""
    counts = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("profile_earn.py" in frame for frame in frames) or phase_of(frames) != phase:
            continue
        ours = max((i for i, frame in enumerate(frames) if _is_ours(frame)), default=len(frames) - 1)
        names = set()
        for frame in frames[ours + 1:]:
            name, _, location = frame.rpartition(" (")
            names.add(f"{location.rstrip(')').rsplit('/', 2)[-1].split(':')[0]}:{name}")
        for name in names:
            counts[name] += int(count)
    return counts


def _is_ours(frame: str) -> bool:
    """py-spy names files relative to sys.path: ours start with the package name."""
    return frame.rpartition(" (")[2].startswith(("app/", "workers/", "passes/"))


def phase_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in PHASES:
            if any(marker in frame for marker in markers):
                return name
    return "other (bench loop, interpreter)"


def split_collapsed(path: Path) -> int:
    """py-spy samples (only threads running, not waiting) by the package of the innermost Python frame, and
    by the outermost frame of ours or of the libraries that called it: where a worker's CPU goes."""
    leaf, total = Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        location = frames[-1].rpartition("(")[2]
        leaf[package_of("/" + location if not location.startswith("/") else location)] += int(count)
        total += int(count)
    print(f"{path}: {total} samples of running threads, by the innermost frame's package")
    for name, n in leaf.most_common():
        print(f"  {n / total:6.1%}  {name}")
    return 0


def report(tally: Tally, counted: int, wall: float, cpu: float, profiler: cProfile.Profile | None, args) -> None:
    print(f"{machine()}; load average {load_average()}; mode {args.mode}")
    statements = sum(tally.statements.values())
    pings = tally.checkouts if tally.pre_ping else 0
    pg_trips = statements + tally.begins + tally.commits + tally.rollbacks + pings
    print(f"\nPer earn (mean of {counted}): {statements / counted:.2f} SQL statements; BEGIN "
          f"{tally.begins / counted:.2f}, COMMIT {tally.commits / counted:.2f}, ROLLBACK "
          f"{tally.rollbacks / counted:.2f}, pool checkouts {tally.checkouts / counted:.2f} "
          f"({'each' if tally.pre_ping else 'no'} pre-ping SELECT 1)"
          f" -> {pg_trips / counted:.2f} PostgreSQL round trips; Redis commands {tally.redis / counted:.2f}")
    for statement, n in tally.statements.most_common():
        print(f"  {n / counted:5.2f} x {statement}")
    print(f"\nNo profiler, {args.earns} earns one at a time: wall {wall / args.earns * 1e3:.2f} ms, CPU "
          f"{cpu / args.earns * 1e3:.2f} ms per earn in this process ({args.earns / wall:.0f} earns/s on one thread)")
    if profiler is None:
        return
    stats = pstats.Stats(profiler)
    if args.out:
        stats.dump_stats(args.out)
    by_package, total = Counter(), 0.0
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        by_package[package_of(filename)] += own
        total += own
    print(f"\ncProfile, {args.earns} earns: own time by package ({total / args.earns * 1e3:.2f} ms per earn under "
          "the profiler, which inflates call-heavy code)")
    for name, own in by_package.most_common():
        print(f"  {own / total:6.1%}  {own / args.earns * 1e3:6.3f} ms  {name}")
    print(f"\nTop {args.top} by cumulative time:")
    rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)[:args.top]
    for (filename, line, function), (_, calls, own, cumulative, _) in rows:
        where = "/".join(Path(filename).parts[-2:])
        print(f"  {cumulative / args.earns * 1e3:7.3f} ms cum {own / args.earns * 1e3:6.3f} own "
              f"{calls / args.earns:6.1f} calls  {where}:{line} {function}")


if __name__ == "__main__":
    sys.exit(main())
