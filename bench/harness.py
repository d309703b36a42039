"""What the benchmarks share: the recording fake APNs in its own process, fresh databases and Redis, the app's
processes (gunicorn, `punchpass serve`, `punchpass worker`), CPU and memory readings from /proc, an HTTP client.

Settings (environment): PUNCHPASS_BENCH_PG, the PostgreSQL admin URL (default postgres@127.0.0.1:5432);
PUNCHPASS_BENCH_REDIS, the Redis database the benchmarks flush and use (default redis://127.0.0.1:6379/14).

`python -m bench.harness --out FILE --cert ... --key ... --ca ... --ca ...` is the fake APNs child process.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import io
import json
import os
import platform
import re
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.config import DEV_PASS_TYPE_ID, DEV_TEAM_ID
from app.migrate import upgrade_database
from app.models import OutboxEvent
from app.services import services
from tests.fakes.apns import FakeAPNs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("PUNCHPASS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PUNCHPASS_BENCH_REDIS", "redis://127.0.0.1:6379/14")
SETTINGS_WE_SET = ("DATABASE_URL", "REDIS_URL", "HOST", "PORT", "PUBLIC_BASE_URL", "PUNCHPASS_INSTANCE",
                   "SECRET_KEY", "RATE_LIMIT_API_KEY", "RATE_LIMIT_PUBLIC")


# --- the fake APNs, in its own process, timing each push --------------------------------------------------

def serve_fake_apns(argv: list[str]) -> int:
    """Child-process entry: the test fake, recording; print the port, serve until SIGTERM, then write every
    push's token and arrival time (`RecordedPush.at`, time.time(): comparable across processes) as JSON.
    (`python -m tests.fakes.apns` prints only counts.)"""
    parser = argparse.ArgumentParser(prog="python -m bench.harness")
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
        command = [sys.executable, "-m", "bench.harness", "--out", str(self.out),
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


# --- databases, Redis, the app in this process ------------------------------------------------------------

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
    """An AUTOCOMMIT engine on the admin database, or None (and why) when PostgreSQL does not answer."""
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return engine
    except OperationalError as error:
        print(f"PostgreSQL at {PG_ADMIN_URL} unreachable, using SQLite: {str(error).splitlines()[0]}")
        engine.dispose()
        return None


def bulk_insert(engine, table: str, columns: tuple[str, ...], rows) -> None:
    """COPY on PostgreSQL, executemany on SQLite: straight into the table, no ORM, no API."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            with raw.driver_connection.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            raw.cursor().executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()


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


def app_in_process(env: dict[str, str]):
    """The app built in this process from env (its relay enqueues on REDIS_URL) and its engine."""
    from app import create_app
    from app.config import load_config
    from workers.queue import connect_rq
    app = create_app(load_config(env))
    connect_rq(app)
    gc.collect()
    gc.freeze()  # as wsgi.py does
    return app, services(app).engine


def stop_dispatch(app) -> None:
    """Commits in this process enqueue nothing from now on, so no worker takes an event we deliver here."""
    services(app).relay.connect(None)


# --- child processes --------------------------------------------------------------------------------------

def app_env(certs: dict[str, Path], database_url: str, workdir: Path, apns_port: int, port: int,
            redis_url: str | None) -> dict[str, str]:
    """The environment of the web and worker processes: our database, Redis, certificates and fake APNs."""
    env = {name: value for name, value in os.environ.items()
           if name not in SETTINGS_WE_SET and not name.startswith(("APPLE_", "APNS_"))}
    env.update(
        DATABASE_URL=database_url, PUNCHPASS_INSTANCE=str(workdir / "instance"), HOST="127.0.0.1",
        PORT=str(port), PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", SECRET_KEY="bench-not-secret",
        RATE_LIMIT_API_KEY="1000000/second", RATE_LIMIT_PUBLIC="1000000/second",  # one key, one address, flat out
        APPLE_PASS_CERT=str(certs["pass_cert"]), APPLE_PASS_KEY=str(certs["pass_key"]),
        APPLE_WWDR_CERT=str(certs["wwdr"]), APPLE_PASS_TYPE_ID=DEV_PASS_TYPE_ID, APPLE_TEAM_ID=DEV_TEAM_ID,
        APNS_BASE_URL=f"https://127.0.0.1:{apns_port}", APNS_CA_FILE=str(certs["root_ca"]), PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


@contextmanager
def run_folder(prefix: str, logs: Path | None):
    """Yield (workdir, stack) for one run: the children's logs are printed on failure, copied to logs if set."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        try:
            yield workdir, stack
        except BaseException:
            print_logs(workdir)
            raise
        finally:
            if logs:
                keep_logs(workdir, logs)


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
    """TERM, then KILL after `grace` seconds, so no child outlives the benchmark."""
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


def keep_logs(workdir: Path, target: Path) -> None:
    """Copy the children's logs out of the temporary folder before it goes (--logs)."""
    target.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, target / log.name)


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
    return wait_until_serving(spawn(stack, "web", command, env, workdir), int(env["PORT"]), "web"), label


def start_gunicorn(stack: ExitStack, env: dict, workdir: Path, app: str = "wsgi:app",
                   name: str = "web") -> subprocess.Popen:
    """gunicorn as README's production command runs it: from the project root, so it reads the shipped
    gunicorn.conf.py (gthread workers, 2 x CPUs + 1 of them, 8 threads each; binds HOST:PORT from env)."""
    return wait_until_serving(spawn(stack, name, [BIN / "gunicorn", app], env, workdir), int(env["PORT"]), name)


def wait_until_serving(process: subprocess.Popen, port: int, name: str, path: str = "/healthz"):
    """process, once GET path answers 200 on port."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if Api(port).call("GET", path)[0] == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} server did not start (see {name}.log)")
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


def push_batches(log: Path) -> list[tuple[float, int, float]]:
    """(end time, pushes, seconds) of each push_many call, from the worker's log lines of workers.apns."""
    pattern = re.compile(r"workers\.apns: .*?: (\d+) pushes in ([\d.]+) s")
    return [(log_time(line), int(m.group(1)), float(m.group(2)))
            for line in log.read_text().splitlines() if (m := pattern.search(line))]


def job_started(log: Path, event_id: int) -> float | None:
    """When rq started the job of an outbox event, from the worker's log."""
    marker = f"workers.jobs.deliver({event_id}) (outbox-{event_id})"
    return next((log_time(line) for line in log.read_text().splitlines() if line.endswith(marker)), None)


def log_time(line: str) -> float:
    """The logging module's default asctime (local time, milliseconds) as time.time()."""
    return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000


# --- /proc and tracemalloc: CPU and memory ----------------------------------------------------------------

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


class RssSampler(threading.Thread):
    """VmRSS of a process every `interval` seconds, in a daemon thread, until stop()."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.interval, self.samples = pid, interval, []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.samples.append((time.time(), memory_kb(self.pid)["VmRSS"]))
            except (OSError, KeyError):
                return

    def stop(self) -> list[tuple[float, int]]:
        self._done.set()
        self.join()
        return self.samples


def traced_peak(action) -> dict:
    """action() under tracemalloc, with a snapshot whenever traced memory grew 5 %: what holds it at the peak."""
    import tracemalloc
    tracemalloc.start(12)
    peak = {"size": 0, "snapshot": None}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.25):
            current = tracemalloc.get_traced_memory()[0]
            if current > peak["size"] * 1.05:
                peak["size"], peak["snapshot"] = current, tracemalloc.take_snapshot()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    outcome = action()
    stop.set()
    watcher.join()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"outcome": outcome, "traced_peak": traced, "snapshot": peak["snapshot"], "snapshot_size": peak["size"]}


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
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "app", "workers", "passes")
    code = f"commit {git('rev-parse', '--short', 'HEAD') or '?'}" + (" + uncommitted changes" if changed else "")
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {code}"


# --- HTTP client ------------------------------------------------------------------------------------------

def merchant_headers(key: str) -> dict:
    """A merchant's bearer key and a fresh Idempotency-Key, as every API write carries."""
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}


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
        return self.call(method, path, body, merchant_headers(self.key))


def expect(answer: tuple[int, bytes], *statuses: int) -> dict | bytes:
    """The body (JSON decoded) of an answer with one of statuses; anything else stops the run."""
    status, body = answer
    if status not in statuses:
        raise RuntimeError(f"expected HTTP {statuses}, got {status}: {body[:300]!r}")
    return json.loads(body) if body[:1] in (b"{", b"[") else body


# --- members with a Wallet device, open-loop load, pushes matched to requests ------------------------------

@dataclass(frozen=True)
class Device:
    """A member and the Wallet device that registered their card: who gets each earn, and where it is pushed."""
    member_id: int
    serial: str
    auth_token: str
    library_id: str
    push_token: str
    barcode: str = ""


@dataclass(frozen=True)
class Shot:
    """One request of an open-loop run as the client saw it; `tag` names what it is matched with (a push token)."""
    tag: str
    scheduled: float
    start: float
    end: float
    status: int


def enroll_with_device(api: Api, program_id: int, number: int, register: bool = True) -> Device:
    """Enrol a member, then (register=True) do what Wallet does when the card is added: download it,
    register, list serials. Without a device, library_id and push_token are empty."""
    member = expect(api.merchant("POST", f"/api/v1/programs/{program_id}/members",
                                 {"name": f"Bench member {number}"}), 201)
    if not register:
        return Device(member["id"], member["serial_number"], "", "", "", member["barcode_value"])
    pkpass = expect(api.call("GET", urlsplit(member["apple_pass_url"]).path), 200)
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(pkpass)).read("pass.json"))
    device = Device(member["id"], pass_json["serialNumber"], pass_json["authenticationToken"],
                    uuid.uuid4().hex, secrets.token_hex(32), member["barcode_value"])
    devices_path = f"/wallet/v1/devices/{device.library_id}/registrations/{DEV_PASS_TYPE_ID}"
    expect(api.call("POST", f"{devices_path}/{device.serial}", {"pushToken": device.push_token},
                    {"Authorization": f"ApplePass {device.auth_token}"}), 201)
    expect(api.call("GET", devices_path), 200)
    return device


def open_loop(send, count: int, rate: float, threads: int) -> list[Shot]:
    """Request i is due at t0 + i/rate whatever the server does (no coordinated omission): `threads` client
    threads (one keep-alive connection each) take the next due request; `send(i)` returns (tag, status).
    A request sent late because every thread was busy counts its wait: latency is measured from `scheduled`."""
    t0, lock, shots, next_index = time.time() + 0.2, threading.Lock(), [None] * count, iter(range(count))

    def run() -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            scheduled = t0 + i / rate
            if (delay := scheduled - time.time()) > 0:
                time.sleep(delay)
            start = time.time()
            tag, status = send(i)
            shots[i] = Shot(tag, scheduled, start, time.time(), status)

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return shots


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99 and max, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {}
    def rank(p: float):
        return ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))]
    return {"p50": rank(50) * 1e3, "p90": rank(90) * 1e3, "p99": rank(99) * 1e3, "max": ordered[-1] * 1e3}


def match_pushes(shots: list[Shot], arrivals: dict[str, list[float]]) -> dict:
    """Each 201's push = the first not yet matched push to its tag (push token) that arrived after the request
    was sent (one member's earns are len(members)/rate seconds apart)."""
    by_token: dict[str, list[Shot]] = defaultdict(list)
    for shot in shots:
        if shot.status == 201:
            by_token[shot.tag].append(shot)
    from_start, from_201, pairs, lost = [], [], [], 0
    first_start = min(shot.start for shot in shots)
    for token, token_shots in by_token.items():
        times, j = sorted(arrivals.get(token, [])), 0
        for shot in sorted(token_shots, key=lambda e: e.start):
            while j < len(times) and times[j] < shot.start:
                j += 1
            if j == len(times):
                lost += 1
                continue
            from_start.append(times[j] - shot.start)
            from_201.append(times[j] - shot.end)
            pairs.append((shot.start, times[j] - shot.start))
            j += 1
    received = sum(1 for times in arrivals.values() for t in times if t >= first_start)
    return {"from_start": from_start, "from_201": from_201, "pairs": pairs, "lost": lost,
            "extra": received - len(from_start)}


# --- wrk (closed loop), the SQL floor, ledger totals ------------------------------------------------------

WRK_LUA = """-- generated by bench/harness.py: each request the next of `paths` (per-thread offset), a fresh
-- Idempotency-Key per write; counts what was sent and each status, printed as one JSON line by done().
local method, auth, writes, prefix = %(method)s, %(auth)s, %(writes)s, %(prefix)s
local paths = {%(paths)s}
local bodies = {%(bodies)s}
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  sent, statuses = 0, {}
  headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}
end
function request()
  sent = sent + 1
  local n = ((tid - 1) * 7919 + sent) %% #paths + 1
  if writes then headers["Idempotency-Key"] = prefix .. "-" .. tid .. "-" .. sent end
  return wrk.format(method, paths[n], headers, bodies[n])
end
function response(status, hdrs, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end
function done(summary, latency, requests)
  local total, merged, parts = 0, {}, {}
  for _, t in ipairs(threads) do
    total = total + t:get("sent")
    for k, v in pairs(t:get("statuses")) do merged[k] = (merged[k] or 0) + v end
  end
  for k, v in pairs(merged) do table.insert(parts, string.format('"%%s": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"sent": %%d, "requests": %%d, "duration_us": %%d, "p50_us": %%d, ' ..
    '"p90_us": %%d, "p99_us": %%d, "max_us": %%d, "errors": %%d, "statuses": {%%s}}\\n', total, summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ", ")))
end
"""


def write_wrk_script(path: Path, method: str, requests: list[tuple[str, dict | None]], key: str,
                     writes: bool) -> Path:
    """A wrk Lua script sending (path, JSON body) requests in turn with the merchant's key."""
    def lua(value) -> str:  # a JSON string of ASCII text is a valid Lua string literal
        return json.dumps(value, ensure_ascii=True)
    path.write_text(WRK_LUA % {
        "method": lua(method), "auth": lua(f"Bearer {key}"), "writes": "true" if writes else "false",
        "prefix": lua(secrets.token_hex(4)), "paths": ", ".join(lua(p) for p, _ in requests),
        "bodies": ", ".join(lua(json.dumps(b)) if b is not None else "nil" for _, b in requests)})
    return path


def start_wrk(port: int, script: Path, connections: int, seconds: float, threads: int = 2) -> subprocess.Popen:
    """wrk against 127.0.0.1:port (closed loop: each connection sends its next request when answered)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return subprocess.Popen([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
                             "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_output(process: subprocess.Popen) -> str:
    """wrk's output once it exits, without reaping it: its /proc entry (and CPU) stays readable until
    `process.wait()`."""
    return process.stdout.read()


def wrk_result(out: str) -> dict:
    """The JSON line the script's done() printed."""
    line = next((line for line in out.splitlines() if line.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return json.loads(line.removeprefix("WRKJSON "))


def psycopg_url(database_url: str) -> str:
    """SQLAlchemy's postgresql+psycopg:// URL as libpq wants it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def sql_floor(database_url: str, member_ids: list[int], merchant_id: int, seconds: float,
              full: bool = False, durable: bool = True) -> dict:
    """PostgreSQL alone: one psycopg connection looping lock member FOR UPDATE / update balance / insert
    ledger row / insert idempotency row / commit (the baseline app's writes, and since the fourth hot-path pass the
    same four statements the app sends). full=True sends what the app sent for an earn on a card without a device
    before that pass (FLOOR_FULL, kept to compare with earlier figures: the API key, the member with its program and
    tiers and the lock-free update tag, the rewards, the device check, the ledger row, the member's one UPDATE, the
    idempotency record). durable=False sets synchronous_commit off for the session, to see the floor without the
    WAL flush. Balances stay equal to the ledger. Returns transactions/s and the statements and round trips of
    one."""
    import psycopg
    statements = FLOOR_FULL if full else FLOOR_LEAN
    run = secrets.token_hex(4)
    with psycopg.connect(psycopg_url(database_url)) as conn, conn.cursor() as cursor:
        if not durable:
            cursor.execute("SET synchronous_commit = off")
            conn.commit()
        key_hash = cursor.execute("SELECT key_hash FROM api_keys WHERE merchant_id = %s LIMIT 1",
                                  (merchant_id,)).fetchone()[0]
        conn.commit()
        done, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            params = {"m": member_ids[done % len(member_ids)], "merchant": merchant_id, "key": f"{run}-{done}",
                      "hash": key_hash}
            for statement, returns_balance in statements:
                cursor.execute(statement, params)
                if returns_balance:
                    params["balance"] = cursor.fetchone()[0]
                elif cursor.description is not None:
                    cursor.fetchall()
            conn.commit()
            done += 1
        wall = time.monotonic() - started
    return {"tps": done / wall, "transactions": done, "statements": len(statements), "durable": durable,
            "full": full, "round_trips": len(statements) + 2}  # psycopg sends BEGIN, then each statement, then COMMIT


_FLOOR_LEDGER_ROW = (
    "INSERT INTO ledger_entries (member_id, merchant_id, kind, points, balance_after, shortfall, created_at) "
    "VALUES (%(m)s, %(merchant)s, 'earn', 1, %(balance)s, 0, now())", False)
_FLOOR_KEY_RECORD = (
    "INSERT INTO idempotency_records (merchant_id, endpoint, key, request_hash, status_code, response_body, "
    "created_at) VALUES (%(merchant)s, 'POST floor', %(key)s, '', 201, '{}', now())", False)
FLOOR_LEAN = [
    ("SELECT points_balance FROM members WHERE id = %(m)s FOR UPDATE", False),
    ("UPDATE members SET points_balance = points_balance + 1, lifetime_points = lifetime_points + 1, "
     "pass_version = pass_version + 1 WHERE id = %(m)s RETURNING points_balance", True),
    _FLOOR_LEDGER_ROW,
    _FLOOR_KEY_RECORD,
]
FLOOR_FULL = [  # the app's statements of one earn (tests/app/test_statements.py), in its order
    ("SELECT merchant_id, scope, id FROM api_keys WHERE key_hash = %(hash)s AND revoked_at IS NULL", False),
    ("SELECT members.points_balance + 1, "  # + 1: the new balance, which the app computes in Python
     "(SELECT value FROM counters WHERE name = 'update_tag_base') + pg_current_xact_id()::text::bigint, "
     "(SELECT value FROM counters WHERE name = 'update_tag_base') "
     "+ pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1, members.*, programs.*, tiers.* FROM members "
     "JOIN programs ON programs.id = members.program_id LEFT JOIN tiers ON tiers.program_id = programs.id "
     "WHERE members.id = %(m)s FOR UPDATE OF members", True),
    ("SELECT rewards.* FROM rewards WHERE rewards.program_id = "
     "(SELECT program_id FROM members WHERE id = %(m)s) ORDER BY points_cost", False),
    ("SELECT EXISTS (SELECT id FROM device_registrations WHERE member_id = %(m)s)", False),
    _FLOOR_LEDGER_ROW,
    ("UPDATE members SET points_balance = points_balance + 1, lifetime_points = lifetime_points + 1, "
     "pass_version = pass_version + 1, pass_update_tag = pass_update_tag + 1, pass_updated_at = now() "
     "WHERE id = %(m)s", False),
    _FLOOR_KEY_RECORD,
]


def ledger_totals(engine) -> dict:
    """Ledger rows per kind, the sum of balances, the idempotency records and outbox rows, all from one
    statement (one snapshot: a commit landing between two counts cannot make them disagree)."""
    with engine.connect() as conn:
        kinds, balance, keys, outbox = conn.execute(text(
            "SELECT (SELECT coalesce(json_object_agg(kind, n), '{}') FROM "
            "(SELECT kind, count(*) AS n FROM ledger_entries GROUP BY kind) AS k), "
            "(SELECT coalesce(sum(points_balance), 0) FROM members), "
            "(SELECT count(*) FROM idempotency_records), (SELECT count(*) FROM outbox_events)")).one()
    return {"kinds": kinds, "balance": int(balance), "keys": keys, "outbox": outbox}


def settled_totals(engine, quiet: float = 1.0, timeout: float = 30.0) -> dict:
    """`ledger_totals` once nothing has changed for `quiet` seconds: a request wrk had in flight when it stopped
    may still be running in the server after wrk exits, and must be counted in this run, not the next."""
    totals, started = ledger_totals(engine), time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(quiet)
        again = ledger_totals(engine)
        if again == totals:
            return totals
        totals = again
    return totals


def ledger_verify(env: dict) -> tuple[bool, str]:
    """`punchpass ledger verify` on the run's database: (every balance equals its ledger sum, what it said)."""
    done = subprocess.run([BIN / "punchpass", "ledger", "verify"], cwd=ROOT, env=env, capture_output=True, text=True)
    said = (done.stdout + done.stderr).strip()
    return done.returncode == 0, said.splitlines()[-1] if said else ""


def load_average() -> str:
    """The 1/5/15-minute load averages, to print next to every figure on a shared machine."""
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    sys.exit(serve_fake_apns(sys.argv[1:]))
