"""Bulk import and export of members (issue 11): `punchpass import-members` on a generated CSV of N members (default
100,000; target: under 60 s on PostgreSQL), run again (every row skipped: the idempotent re-run), then
`punchpass export-members`, each as the operator runs it (a subprocess), timed from outside, with the child's CPU
and peak memory, and the CPU of the PostgreSQL backend serving it (client CPU + backend CPU is what the run costs
on a machine with nothing else to do: on a busy one the wall time is mostly waiting). Checks afterwards that the
program has exactly N members and the expected import adjustments, and that `punchpass ledger verify` is clean.

    python -m bench.import_members [--members 100000] [--batch-size 1000] [--sqlite]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.harness import BIN, cpu_seconds, fresh_database, machine

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("PUNCHPASS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
LOCALES = ("en", "ja", "ko")


def write_csv(path: Path, count: int) -> None:
    """Members shaped like a real export: most with an external id, email and phone, some with points and tiers."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "name", "email", "phone", "locale", "points", "tier_override"])
        for n in range(count):
            writer.writerow([f"crm-{n:07d}", f"Member {n} 会員", f"member{n}@example.com", f"+81 90 {n:08d}",
                             LOCALES[n % 3], (n * 37) % 2000 if n % 4 else "", "Gold" if n % 50 == 0 else ""])


def make_program(database_url: str) -> int:
    from app.db import make_engine, make_session_factory
    from app.domain.programs import create_program
    from app.models import Merchant
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            merchant = Merchant(name="Bench Café")
            session.add(merchant)
            session.flush()
            program = create_program(session, merchant.id, {"name": "Bench Beans", "tiers": [
                {"name": "Silver", "threshold": 0}, {"name": "Gold", "threshold": 1000}]})
            session.commit()
            return program.id
    finally:
        engine.dispose()


class BackendCpu(threading.Thread):
    """Samples the CPU of the PostgreSQL backends whose application_name is ours (Linux /proc, same host)."""

    def __init__(self, admin_url: str):
        super().__init__(daemon=True)
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.seconds: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.wait(0.2):
                for (pid,) in conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = "
                                                "'punchpass-import-bench'")):
                    self.seconds[pid] = max(self.seconds.get(pid, 0.0), cpu_seconds(pid))
        self.engine.dispose()

    def total(self) -> float:
        self.stop.set()
        self.join()
        return sum(self.seconds.values())


def timed(command: list[str], env: dict) -> tuple[float, float, int, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds of the child plus its database backend, its peak RSS in MB, and the result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    backend = BackendCpu(ADMIN_URL) if env["DATABASE_URL"].startswith("postgresql") else None
    if backend:
        backend.start()
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    database_cpu = backend.total() if backend else 0.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return wall, (cpu, database_cpu), after.ru_maxrss // 1024, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--sqlite", action="store_true", help="measure SQLite instead of PostgreSQL")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="punchpass-import-") as folder:
        workdir = Path(folder)
        with fresh_database(workdir, postgres=not args.sqlite) as (url, label):
            if url.startswith("postgresql"):
                url += ("&" if "?" in url else "?") + "application_name=punchpass-import-bench"
            env = {**os.environ, "DATABASE_URL": url, "PUNCHPASS_INSTANCE": str(workdir)}
            source = workdir / "members.csv"
            write_csv(source, args.members)
            program_id = make_program(url)
            size_mb = source.stat().st_size / 1e6
            print(f"{label}: {args.members:,} members, {size_mb:.1f} MB of CSV, batches of {args.batch_size}")
            importing = [str(BIN / "punchpass"), "import-members", str(source), "--program", str(program_id),
                         "--batch-size", str(args.batch_size)]
            for run in ("import", "re-run (all skipped)"):
                wall, cpu, rss, result = timed(importing, env)
                print(f"  {run:<22}{wall:7.1f} s  {args.members / wall:9,.0f} rows/s  {cpu_text(cpu)}  "
                      f"peak RSS {rss} MB  {result.stdout.strip()}")
            out = workdir / "export.csv"
            wall, cpu, rss, _ = timed([str(BIN / "punchpass"), "export-members", "--program", str(program_id),
                                       "--out", str(out)], env)
            print(f"  {'export':<22}{wall:7.1f} s  {args.members / wall:9,.0f} rows/s  {cpu_text(cpu)}  "
                  f"peak RSS {rss} MB  {out.stat().st_size / 1e6:.1f} MB")
            check(url, program_id, args.members, env)
    return 0


def cpu_text(cpu: tuple[float, float]) -> str:
    client, database = cpu
    return f"CPU: client {client:5.1f} s + database {database:5.1f} s = {client + database:5.1f} s"


def check(url: str, program_id: int, expected: int, env: dict) -> None:
    engine = create_engine(url.split("?")[0].replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        members = conn.scalar(text("SELECT count(*) FROM members WHERE program_id = :p"), {"p": program_id})
        entries = conn.scalar(text("SELECT count(*) FROM ledger_entries e JOIN members m ON m.id = e.member_id "
                                   "WHERE m.program_id = :p AND e.reason = 'import'"), {"p": program_id})
    engine.dispose()
    with_points = sum(1 for n in range(expected) if n % 4 and (n * 37) % 2000)
    verify = subprocess.run([str(BIN / "punchpass"), "ledger", "verify"], env=env, cwd=ROOT, capture_output=True,
                            text=True)
    ok = members == expected and entries == with_points and verify.returncode == 0
    print(f"  check: {members:,} members, {entries:,} import adjustments (expected {with_points:,}), "
          f"ledger verify {'clean' if verify.returncode == 0 else 'FAILED'}: {'OK' if ok else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
