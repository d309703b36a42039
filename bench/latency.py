"""Earn -> APNs push latency at a steady earn rate, end to end through real processes.

Each mode gets a dev certificate chain, the fake APNs in its own process (noting when each push arrived,
per token), a fresh database, the web app in a real WSGI server, and a worker. N members are enrolled through
the API and each registers a device through the PassKit web service (as Wallet does: download the pass,
register its push token, list serials). Then earns go out at a steady rate from a client thread pool, each to
the next member, each with an Idempotency-Key. Latency = the push's arrival at the fake minus the earn
request's start, and minus the moment its 201 was received.

  rq        gunicorn (1 gthread worker, 2 threads) + one `punchpass worker` process (--workers N for more);
            PostgreSQL (SQLite if unreachable); Redis DB 14 (flushed first and last)
  embedded  `punchpass serve` (werkzeug, threaded) with its embedded worker thread; SQLite; no Redis

    .venv/bin/python bench/latency.py [--rate 50] [--seconds 20] [--members 200] [--modes rq,embedded]

Everything started is stopped, and the database dropped, on failure, Ctrl-C or SIGTERM too. CPU figures are
per process group from /proc; "PostgreSQL" and "Redis" are every process of those servers (shared with
whatever else uses them), and "everything else" is the rest of the machine's busy time.

The other benchmark scripts use the process, database and fake-APNs helpers below.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from app.config import DEV_PASS_TYPE_ID, DEV_TEAM_ID  # noqa: E402
from app.migrate import upgrade_database  # noqa: E402
from app.models import OutboxEvent  # noqa: E402
from passes import make_test_chain  # noqa: E402
from tests.fakes.apns import FakeAPNs  # noqa: E402

BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("PUNCHPASS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PUNCHPASS_BENCH_REDIS", "redis://127.0.0.1:6379/14")
SETTINGS_WE_SET = ("DATABASE_URL", "REDIS_URL", "HOST", "PORT", "PUBLIC_BASE_URL", "PUNCHPASS_INSTANCE",
                   "SECRET_KEY")
WARM_UP_EARNS = 20
CLIENT_THREADS = 16


# --- the fake APNs, in its own process, timing each push --------------------------------------------------

def serve_fake_apns(argv: list[str]) -> int:
    """Child-process entry: the test fake, recording; print the port, serve until SIGTERM, then write every
    push's token and arrival time (`RecordedPush.at`, time.time(): comparable across processes) as JSON.
    (`python -m tests.fakes.apns` prints only counts.)"""
    parser = argparse.ArgumentParser(prog="latency.py fake-apns")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", action="append", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # the server thread inherits the mask
    with FakeAPNs(args.cert, args.key, args.ca, record=True) as fake:
        print(fake.port, flush=True)
        signal.sigwait(signals)
    arrivals = defaultdict(list)
    for push in fake.pushes:
        arrivals[push.token].append(push.at)
    if arrivals and abs(max(max(times) for times in arrivals.values()) - time.time()) > 3600:
        raise SystemExit("RecordedPush.at is no longer time.time(); fix the arrival clock here")
    Path(args.out).write_text(json.dumps({"pushes": fake.push_count, "connections": fake.connection_count,
                                          "arrivals": arrivals}))
    return 0


class FakeAPNsProcess:
    """The recording fake APNs in a child process, so its CPU is not ours; `finish()` stops it and returns
    what it saw."""

    def __init__(self, certs: dict[str, Path], workdir: Path):
        self.out = workdir / "apns-arrivals.json"
        command = [sys.executable, str(Path(__file__).resolve()), "fake-apns", "--out", str(self.out),
                   "--cert", str(certs["server_cert"]), "--key", str(certs["server_key"]),
                   "--ca", str(certs["root_ca"]), "--ca", str(certs["wwdr"])]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError("the fake APNs did not start")
        self.port, self.pid = int(line), self.process.pid

    def finish(self) -> dict:
        stop_process(self.process)
        return json.loads(self.out.read_text())

    def close(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> FakeAPNsProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- databases, Redis, child processes --------------------------------------------------------------------

@contextmanager
def fresh_database(workdir: Path, postgres: bool = True):
    """Yield (url, label) of a migrated new database: `punchpass_bench_<random>` on PostgreSQL, dropped at the
    end; SQLite in workdir when PostgreSQL is unreachable or not wanted."""
    admin = _postgres_admin() if postgres else None
    if admin is None:
        url = f"sqlite:///{workdir / 'bench.db'}"
        upgrade_database(url)
        yield url, "SQLite" + (" (PostgreSQL unreachable)" if postgres else "")
        return
    name = f"punchpass_bench_{secrets.token_hex(5)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        upgrade_database(url)
        yield url, "PostgreSQL"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _postgres_admin():
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return engine
    except OperationalError as error:
        print(f"PostgreSQL at {PG_ADMIN_URL} unreachable, using SQLite: {str(error).splitlines()[0]}")
        engine.dispose()
        return None


@contextmanager
def flushed_redis(url: str = REDIS_URL):
    """Yield a client on an emptied Redis database, emptied again at the end; None when Redis is down."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    redis = Redis.from_url(url, socket_connect_timeout=2)
    try:
        redis.flushdb()
    except RedisConnectionError as error:
        print(f"Redis at {url} unreachable: {error}")
        yield None
        return
    try:
        yield redis
    finally:
        redis.flushdb()
        redis.close()


def app_env(certs: dict[str, Path], database_url: str, workdir: Path, apns_port: int, port: int,
            redis_url: str | None) -> dict[str, str]:
    """The environment of the web and worker processes: our database, Redis, certificates and fake APNs."""
    env = {name: value for name, value in os.environ.items()
           if name not in SETTINGS_WE_SET and not name.startswith(("APPLE_", "APNS_"))}
    env.update(
        DATABASE_URL=database_url, PUNCHPASS_INSTANCE=str(workdir / "instance"), HOST="127.0.0.1",
        PORT=str(port), PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", SECRET_KEY="bench-not-secret",
        APPLE_PASS_CERT=str(certs["pass_cert"]), APPLE_PASS_KEY=str(certs["pass_key"]),
        APPLE_WWDR_CERT=str(certs["wwdr"]), APPLE_PASS_TYPE_ID=DEV_PASS_TYPE_ID, APPLE_TEAM_ID=DEV_TEAM_ID,
        APNS_BASE_URL=f"https://127.0.0.1:{apns_port}", APNS_CA_FILE=str(certs["root_ca"]), PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def spawn(stack: ExitStack, name: str, command: list, env: dict, workdir: Path) -> subprocess.Popen:
    """A child with its output in workdir/<name>.log, stopped (TERM, then KILL) when the stack closes."""
    log = open(workdir / f"{name}.log", "wb")
    stack.callback(log.close)
    process = subprocess.Popen([str(part) for part in command], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    stack.callback(stop_process, process)
    return process


def exit_on_sigterm() -> None:
    """SIGTERM (`timeout`, `kill`) raises SystemExit like Ctrl-C raises KeyboardInterrupt, so every `finally`
    and ExitStack still stops the children and drops the database."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def print_logs(workdir: Path, lines: int = 25) -> None:
    """The end of every child's log, to see why a run failed."""
    for log in sorted(workdir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail), file=sys.stderr)


def start_web(stack: ExitStack, env: dict, workdir: Path, embedded: bool) -> tuple[subprocess.Popen, str]:
    """The web app in a real WSGI server; returns the process and what it is."""
    if embedded:
        command, label = [BIN / "punchpass", "serve", "--embedded-worker"], "punchpass serve (werkzeug, threaded)"
    elif (BIN / "gunicorn").exists():
        command = [BIN / "gunicorn", "--bind", f"127.0.0.1:{env['PORT']}", "--workers", "1",
                   "--worker-class", "gthread", "--threads", "2", "wsgi:app"]
        label = "gunicorn, 1 gthread worker, 2 threads"
    else:
        command = [sys.executable, "-c", "import os; from werkzeug.serving import make_server; from wsgi import app; "
                   "make_server('127.0.0.1', int(os.environ['PORT']), app, threaded=True).serve_forever()"]
        label = "werkzeug make_server, threaded"
    process = spawn(stack, "web", command, env, workdir)
    deadline = time.monotonic() + 30
    while True:
        try:
            if Api(int(env["PORT"])).call("GET", "/healthz")[0] == 200:
                return process, label
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start (see web.log)")
        time.sleep(0.1)


def start_workers(stack: ExitStack, env: dict, workdir: Path, redis, count: int = 1) -> list[subprocess.Popen]:
    """`punchpass worker` processes (rq SimpleWorkers), returned once all of them listen on the queue."""
    from rq import Worker
    processes = [spawn(stack, f"worker-{n}", [BIN / "punchpass", "worker"], env, workdir)
                 for n in range(1, count + 1)]
    deadline = time.monotonic() + 30
    while len(Worker.all(connection=redis)) < count:
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            raise RuntimeError("punchpass worker did not start (see worker-*.log)")
        time.sleep(0.1)
    return processes


def free_port() -> int:
    """A free port below Linux's ephemeral range, so no outgoing connection takes it before the server binds."""
    import random
    import socket
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


# --- /proc: CPU and memory of processes -------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (gunicorn's master and its worker)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree.extend(children)
        frontier = children
    return tree


def named_processes(*names: str) -> list[int]:
    """Processes whose command name is one of names (PostgreSQL backends, redis-server): read-only look."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in names:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


class CpuMeter:
    """CPU used by groups of processes, and the machine's busy share, between start() and stop(), in cores.
    A group is a list of pids or a function listing them (looked up again at stop, so processes started in
    between, such as a new PostgreSQL backend, count from their birth)."""

    def __init__(self, groups: dict):
        self.groups = groups

    def _sample(self) -> tuple[dict[str, dict[int, float]], tuple[int, int]]:
        used = {name: {pid: cpu_seconds(pid) for pid in (pids() if callable(pids) else pids)}
                for name, pids in self.groups.items()}
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return used, (sum(ticks) - ticks[3] - ticks[4], sum(ticks))  # busy = all but idle and iowait

    def start(self) -> CpuMeter:
        self._start, self._wall = self._sample(), time.monotonic()
        return self

    def stop(self) -> dict:
        (used, (busy, total)), wall = self._sample(), time.monotonic() - self._wall
        (used0, (busy0, total0)) = self._start
        shares = {name: sum(seconds - used0[name].get(pid, 0.0) for pid, seconds in pids.items()) / wall
                  for name, pids in used.items()}
        return {"wall": wall, "machine_busy": (busy - busy0) / max(total - total0, 1) * os.cpu_count(),
                "cores": shares}


def format_cpu(cpu: dict) -> str:
    """Cores used per process group; "everything else" is the machine's busy time outside them."""
    parts = ", ".join(f"{name} {share:.2f}" for name, share in cpu["cores"].items())
    others = cpu["machine_busy"] - sum(cpu["cores"].values())
    return f"CPU in cores: {parts}; everything else {max(others, 0):.2f}; " \
           f"whole machine {cpu['machine_busy']:.2f} of {os.cpu_count()}"


def machine() -> str:
    """The machine and the code measured (commit, and whether app/ or workers/ differ from it)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    changed = git("status", "--porcelain", "--", "app", "workers", "passes")
    code = f"commit {git('rev-parse', '--short', 'HEAD') or '?'}" + (" + uncommitted changes" if changed else "")
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {code}"


# --- HTTP client ------------------------------------------------------------------------------------------

class Api:
    """Keep-alive HTTP/1.1 to the app, one connection per client thread. Every write carries an
    Idempotency-Key, so a request resent after a dropped keep-alive connection cannot act twice."""

    def __init__(self, port: int, key: str | None = None):
        self.port, self.key = port, key
        self._local = threading.local()

    def call(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None) or http.client.HTTPConnection("127.0.0.1", self.port,
                                                                                   timeout=30)
            self._local.conn = conn
            try:
                conn.request(method, path, data, headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def merchant(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        return self.call(method, path, body, {"Authorization": f"Bearer {self.key}",
                                              "Idempotency-Key": str(uuid.uuid4())})


def expect(answer: tuple[int, bytes], *statuses: int) -> dict | bytes:
    status, body = answer
    if status not in statuses:
        raise RuntimeError(f"expected HTTP {statuses}, got {status}: {body[:300]!r}")
    return json.loads(body) if body[:1] in (b"{", b"[") else body


def make_merchant_key(database_url: str) -> str:
    """A merchant and its admin key, straight in the database (what `punchpass create-merchant` does)."""
    from app.auth import issue_api_key
    from app.db import make_engine, make_session_factory
    from app.models import Merchant
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            merchant = Merchant(name="Bench Café")
            session.add(merchant)
            session.flush()
            key = issue_api_key(session, merchant.id, "admin")
            session.commit()
            return key
    finally:
        engine.dispose()


# --- the benchmark ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    member_id: int
    serial: str
    auth_token: str
    library_id: str
    push_token: str


@dataclass(frozen=True)
class Earn:
    push_token: str
    scheduled: float
    start: float
    end: float
    status: int


def enroll_with_device(api: Api, program_id: int, number: int) -> Device:
    """Enrol a member, then do what Wallet does when the card is added: download it, register, list serials."""
    member = expect(api.merchant("POST", f"/api/v1/programs/{program_id}/members",
                                 {"name": f"Bench member {number}"}), 201)
    pkpass = expect(api.call("GET", urlsplit(member["apple_pass_url"]).path), 200)
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(pkpass)).read("pass.json"))
    device = Device(member["id"], pass_json["serialNumber"], pass_json["authenticationToken"],
                    uuid.uuid4().hex, secrets.token_hex(32))
    devices_path = f"/wallet/v1/devices/{device.library_id}/registrations/{DEV_PASS_TYPE_ID}"
    expect(api.call("POST", f"{devices_path}/{device.serial}", {"pushToken": device.push_token},
                    {"Authorization": f"ApplePass {device.auth_token}"}), 201)
    expect(api.call("GET", devices_path), 200)
    return device


def earn_once(api: Api, device: Device, scheduled: float) -> Earn:
    start = time.time()
    status, _ = api.merchant("POST", f"/api/v1/members/{device.member_id}/earn",
                             {"points": 1, "reference": "bench"})
    return Earn(device.push_token, scheduled, start, time.time(), status)


def fire_earns(api: Api, devices: list[Device], rate: float, seconds: float, pool) -> list[Earn]:
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


def pending_events(engine) -> tuple[int, int]:
    """(waiting or retrying, dead) outbox events."""
    with engine.connect() as conn:
        pending = conn.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.delivered_at.is_(None), OutboxEvent.dead_at.is_(None)))
        dead = conn.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.dead_at.is_not(None)))
    return pending, dead


def wait_for_outbox(engine, timeout: float) -> float:
    """Wait until every outbox event is delivered or dead; returns the seconds waited."""
    started = time.monotonic()
    while pending_events(engine)[0] and time.monotonic() - started < timeout:
        time.sleep(0.1)
    return time.monotonic() - started


def match_pushes(earns: list[Earn], arrivals: dict[str, list[float]]) -> dict:
    """Each earn's push = the first not yet matched push to its member's token that arrived after the earn
    was sent (one member's earns are len(members)/rate seconds apart)."""
    by_token: dict[str, list[Earn]] = defaultdict(list)
    for earn in earns:
        if earn.status == 201:
            by_token[earn.push_token].append(earn)
    from_start, from_201, pairs, lost = [], [], [], 0
    first_start = min(earn.start for earn in earns)
    for token, token_earns in by_token.items():
        times, j = sorted(arrivals.get(token, [])), 0
        for earn in sorted(token_earns, key=lambda e: e.start):
            while j < len(times) and times[j] < earn.start:
                j += 1
            if j == len(times):
                lost += 1
                continue
            from_start.append(times[j] - earn.start)
            from_201.append(times[j] - earn.end)
            pairs.append((earn.start, times[j] - earn.start))
            j += 1
    received = sum(1 for times in arrivals.values() for t in times if t >= first_start)
    return {"from_start": from_start, "from_201": from_201, "pairs": pairs, "lost": lost,
            "extra": received - len(from_start)}


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99 and max, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {}
    rank = lambda p: ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))]  # noqa: E731
    return {"p50": rank(50) * 1e3, "p90": rank(90) * 1e3, "p99": rank(99) * 1e3, "max": ordered[-1] * 1e3}


def run_mode(mode: str, args) -> dict:
    """Set up every process for one mode, measure, and tear everything down, whatever happens."""
    with tempfile.TemporaryDirectory(prefix=f"punchpass-bench-{mode}-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        try:
            return _run_mode(mode, args, workdir, stack)
        except BaseException:
            print_logs(workdir)
            raise
        finally:
            if args.logs:
                keep_logs(workdir, Path(args.logs) / mode)


def keep_logs(workdir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, target / log.name)


def _run_mode(mode: str, args, workdir: Path, stack: ExitStack) -> dict:
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
    program = expect(api.merchant("POST", "/api/v1/programs", {"name": "Bench Beans"}), 201)
    started = time.monotonic()
    devices = list(pool.map(lambda n: enroll_with_device(api, program["id"], n), range(args.members)))
    print(f"[{mode}] {len(devices)} members enrolled, each with a registered device, in "
          f"{time.monotonic() - started:.1f} s")

    fire_earns(api, devices[:WARM_UP_EARNS], 10, WARM_UP_EARNS / 10, pool)  # first connections, caches
    wait_for_outbox(engine, 30)
    groups = {"web": process_tree(web.pid), "fake APNs": [fake.pid], "bench client": [os.getpid()],
              "PostgreSQL": (lambda: named_processes("postgres")) if database == "PostgreSQL" else [],
              "Redis": (lambda: named_processes("redis-server")) if redis is not None else []}
    if workers:
        groups["worker"] = [process.pid for process in workers]
    meter = CpuMeter({name: pids for name, pids in groups.items() if pids}).start()
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


def worst_per_window(pairs: list[tuple[float, float]], t0: float, window: float = 2.0) -> list[float]:
    """The slowest earn -> push (ms) among the earns sent in each `window` seconds of the run."""
    worst: dict[int, float] = defaultdict(float)
    for start, latency in pairs:
        slot = int((start - t0) // window)
        worst[slot] = max(worst[slot], latency * 1e3)
    return [worst[slot] for slot in range(max(worst) + 1)] if worst else []


def report(results: list[dict], args) -> None:
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fake-apns"]:
        return serve_fake_apns(argv[1:])
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
