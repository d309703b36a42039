"""Challenges and the leaderboard on a big program, on a fresh PostgreSQL database (generate_series):

- an earn through the app (Flask test client, in process) in a program with three running challenges, each member
  with a history of progress rows, against the baseline measured in the same run: the same earn in a program
  without challenges (which sends no challenge statement at all);
- the month's leaderboard (`leaderboard.standings`) over the members who opted in, with the month's ledger;
- one member's place (`leaderboard.rank_of`, asked by every card build of an opted-in member; it ranks the
  others once per BOARD_SECONDS per process, so the runs after the first read the member's own score only)
  against the way it was first found, in the same run: the whole board read into Python and searched.

    .venv/bin/python -m bench.challenges [--members 50000] [--entries 500000] [--opted-in 0.2] [--earns 300]

Needs PostgreSQL on loopback (PUNCHPASS_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres);
the database it makes is dropped at the end. Figures are printed, never asserted."""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg

from app import create_app
from app.auth import issue_api_key
from app.config import load_config
from app.domain import leaderboard
from app.migrate import upgrade_database
from app.models import Member, Program, utcnow
from app.services import services

ADMIN_URL = os.environ.get("PUNCHPASS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# program 1: no challenge; program 2: three running challenges. Members 1..N in program 1, N+1..2N in program 2.
FILL = """
INSERT INTO merchants (id, name, created_at) VALUES (1, 'Bench', now());
INSERT INTO programs (id, merchant_id, slug, name, currency, points_per_unit, rounding, background_color,
  foreground_color, label_color, barcode_format, locales, timezone, design_version, design_update_tag,
  design_update_seen, created_at, challenges_from)
  SELECT p, 1, 'bench-' || p, 'Bench ' || p, 'USD', 1, 'down', '#000000', '#FFFFFF', '#FFFFFF', 'qr', '["en"]',
         'Asia/Tokyo', 1, 0, 0, now(), CASE WHEN p = 2 THEN now() - interval '1 day' END
  FROM generate_series(1, 2) AS p;
INSERT INTO members (id, program_id, merchant_id, name, locale, referral_code, points_balance, held_points,
  lifetime_points, serial_number, auth_token, barcode_token, download_token, pass_version, pass_update_tag,
  pass_update_seen, pass_updated_at, created_at, leaderboard_opt_in, leaderboard_name)
  SELECT n, 1 + (n > %(members)s)::int, 1, 'Member ' || n, 'en', 'R' || n, 0, 0, 0, 'S' || n, 'A' || n, 'B' || n,
         'D' || n, 1, 0, 0, now(), now(), (n % 100) < %(opted)s, 'Player ' || n
  FROM generate_series(1, 2 * %(members)s) AS n;
INSERT INTO ledger_entries (member_id, merchant_id, kind, points, balance_after, held, shortfall, created_at)
  SELECT 1 + (n % %(members)s), 1, CASE WHEN n % 5 = 0 THEN 'redeem' ELSE 'earn' END,
         CASE WHEN n % 5 = 0 THEN -5 ELSE (n % 97) END, 0, 0, 0, now() - (n % 40) * interval '1 day'
  FROM generate_series(1, %(entries)s) AS n;
UPDATE members SET points_balance = 1000000;
INSERT INTO challenges (id, program_id, merchant_id, name, goal, target, category, "window", window_days,
  reward_points, badge, repeatable, clawback, created_at)
  VALUES (1, 2, 1, 'Regular', 'visits', 1000000, NULL, 'days', 30, 100, 'Regular', true, false, now()),
         (2, 2, 1, 'Spender', 'spend', 1000000, NULL, 'month', NULL, 100, NULL, false, false, now()),
         (3, 2, 1, 'Pastry', 'category', 1000000, 'pastry', 'challenge', NULL, 0, 'Pastry', false, false, now());
INSERT INTO challenge_progress (challenge_id, member_id, entry_id, value, created_at)
  SELECT 1 + (n % 2), %(members)s + 1 + (n % %(members)s), 1, 5, now() - (n % 60) * interval '1 day'
  FROM generate_series(1, 20 * %(members)s) AS n;
SELECT setval('members_id_seq', 2 * %(members)s);
SELECT setval('challenges_id_seq', 3);
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--opted-in", type=float, default=0.2)
    parser.add_argument("--earns", type=int, default=300)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    name = f"punchpass_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_database(url)
        fill = FILL.replace("%(members)s", str(args.members)).replace("%(entries)s", str(args.entries)) \
            .replace("%(opted)s", str(round(args.opted_in * 100)))
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(fill)
        print(f"generated 2 x {args.members} members, {args.entries} ledger entries, "
              f"{20 * args.members} challenge progress rows in {time.perf_counter() - started:.1f} s")
        app = create_app(load_config({"DATABASE_URL": url, "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
                                      "RATE_LIMIT_API_KEY": "1000000/second"}))
        try:
            time_earns(app, args.members, args.earns)
            time_leaderboard(app, args.runs, round(args.members * args.opted_in))
        finally:
            services(app).engine.dispose()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def time_earns(app, members: int, earns: int) -> None:
    """Interleaved, so both programs see the same machine: baseline (program 1) and with challenges (program 2)."""
    with app.app_context():
        session = services(app).sessions()
        key = issue_api_key(session, 1, "admin")
        session.commit()
        session.close()
    client, headers = app.test_client(), {"Authorization": f"Bearer {key}"}
    timings: dict[str, list[float]] = {"no challenge": [], "3 challenges": []}
    for n in range(earns):
        for label, member_id in (("no challenge", 1 + n % members), ("3 challenges", members + 1 + n % members)):
            started = time.perf_counter()
            response = client.post(f"/api/v1/members/{member_id}/earn", json={"amount": "12.50"},
                                   headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            timings[label].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 201, response.get_data(as_text=True)
    base = statistics.median(timings["no challenge"])
    for label, values in timings.items():
        median = statistics.median(values)
        p95 = sorted(values)[int(len(values) * 0.95)]
        print(f"earn, {label}: median {median:.2f} ms, p95 {p95:.2f} ms over {len(values)} "
              f"({median / base:.2f}x the baseline)")


def time_leaderboard(app, runs: int, opted_in: int) -> None:
    with app.app_context():
        session = services(app).sessions()
        program = session.get(Program, 1)
        leaderboard.standings(session, program, utcnow(), 50)  # warm
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            board = leaderboard.standings(session, program, utcnow(), 50)
            timings.append((time.perf_counter() - started) * 1000)
        session.close()
    print(f"leaderboard over {opted_in} opted-in members: median {statistics.median(timings):.0f} ms over {runs} "
          f"runs (top {len(board)})")
    time_rank_of(app, runs)


def time_rank_of(app, runs: int) -> None:
    """Interleaved: the board searched in Python (the first rank_of) and the database's one-row answer."""
    with app.app_context():
        session = services(app).sessions()
        program = session.get(Program, 1)
        member = session.get(Member, leaderboard.standings(session, program, utcnow(), 1)[0].member_id)
        now = utcnow()
        timings: dict[str, list[float]] = {"whole board searched": [], "rank_of": []}
        for _ in range(runs):
            started = time.perf_counter()
            searched = next(s for s in leaderboard.standings(session, program, now) if s.member_id == member.id)
            timings["whole board searched"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            ranked = leaderboard.rank_of(session, member, now)
            timings["rank_of"].append((time.perf_counter() - started) * 1000)
            assert ranked == searched, (ranked, searched)
        session.close()
    base = statistics.median(timings["whole board searched"])
    for label, values in timings.items():
        print(f"one member's rank, {label}: median {statistics.median(values):.1f} ms over {runs} runs "
              f"({statistics.median(values) / base:.2f}x the board searched)")


if __name__ == "__main__":
    main()
