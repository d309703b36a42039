"""What the benchmarks share: the recording fake APNs in its own process, fresh databases and Redis, the app's
processes (gunicorn, `punchpass serve`, `punchpass worker`), CPU and memory readings from /proc, an HTTP client.

Settings (environment): PUNCHPASS_BENCH_PG, the PostgreSQL admin URL (default postgres@127.0.0.1:5432);
PUNCHPASS_BENCH_REDIS, the Redis database the benchmarks flush and use (default redis://127.0.0.1:6379/14).

`python -m bench.harness --out FILE --cert ... --key ... --ca ... --ca ...` is the fake APNs child process.
"""

from __future__ import annotations

import argparse
import http.client
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
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

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


if __name__ == "__main__":
    sys.exit(serve_fake_apns(sys.argv[1:]))
