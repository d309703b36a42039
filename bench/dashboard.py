"""The dashboard's overview on a big merchant: 100,000 members and 1,000,000 ledger entries over a year, made
with generate_series on a fresh PostgreSQL database, then GET /dashboard timed through the app (warm, median).

    .venv/bin/python -m bench.dashboard [--members 100000] [--entries 1000000] [--runs 10]

Needs PostgreSQL on loopback (PUNCHPASS_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres);
the database it makes is dropped at the end."""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg

from app import create_app
from app.config import load_config
from app.domain.users import create_user
from app.migrate import upgrade_database
from app.services import services

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def program_with_members_sql(tier: str = "1", created: str = "now()") -> str:
    """Merchant 1, its program 1 with two tiers, and members 1..%(members)s: the seed the dashboard and offers
    benchmarks share. `tier` and `created` are SQL expressions of the member's number n."""
    return f"""
INSERT INTO merchants (id, name, created_at) VALUES (1, 'Bench', now());
INSERT INTO programs (id, merchant_id, name, slug, currency, points_per_unit, rounding, background_color,
  foreground_color, label_color, barcode_format, locales, timezone, design_version, design_update_tag,
  design_update_seen, created_at)
  VALUES (1, 1, 'Bench', 'bench', 'USD', 1, 'down', '#000000', '#FFFFFF', '#FFFFFF', 'qr', '["en"]', 'UTC', 1, 0, 0,
          now());
INSERT INTO tiers (id, program_id, name, threshold) VALUES (1, 1, 'Bronze', 0), (2, 1, 'Gold', 1000);
INSERT INTO members (id, program_id, merchant_id, name, locale, referral_code, points_balance, held_points,
  lifetime_points, tier_id, serial_number, auth_token, barcode_token, download_token, pass_version, pass_update_tag,
  pass_update_seen, pass_updated_at, created_at)
  SELECT n, 1, 1, 'Member ' || n, 'en', 'R' || n, 0, 0, 0, {tier}, 'S' || n, 'A' || n, 'B' || n, 'D' || n,
         1, 0, 0, now(), {created}
  FROM generate_series(1, %(members)s) AS n;
"""


FILL = program_with_members_sql("1 + (n % 2)", "now() - (n % 365) * interval '1 day'") + """
INSERT INTO ledger_entries (member_id, merchant_id, kind, points, balance_after, held, shortfall, created_at)
  SELECT 1 + (n % %(members)s), 1, CASE WHEN n % 5 = 0 THEN 'redeem' ELSE 'earn' END,
         CASE WHEN n % 5 = 0 THEN -50 ELSE 20 END, 0, 0, 0, now() - (n % 365) * interval '1 day'
  FROM generate_series(1, %(entries)s) AS n;
INSERT INTO device_registrations (device_library_id, push_token, member_id, created_at, updated_at)
  SELECT 'dev' || n, 'aa', n, now(), now() FROM generate_series(1, %(members)s / 3) AS n;
SELECT setval('members_id_seq', %(members)s);
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    name = f"punchpass_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_database(url)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(FILL.replace("%(members)s", str(args.members)).replace("%(entries)s", str(args.entries)))
        print(f"generated {args.members} members, {args.entries} ledger entries in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"GET /dashboard: median {time_overview(url, args.runs):.0f} ms over {args.runs} runs (warm)")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def time_overview(url: str, runs: int) -> float:
    app = create_app(load_config({"DATABASE_URL": url, "PUBLIC_BASE_URL": "http://127.0.0.1:5000"}))
    with app.app_context():
        session = services(app).sessions()
        user, password = create_user(session, 1, "bench@example.com")
        user.must_change_password = False
        session.commit()
        session.close()
    client = app.test_client()
    page = client.get("/dashboard/sign-in").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/dashboard/sign-in", data={"email": "bench@example.com", "password": password, "csrf_token": csrf})
    client.get("/dashboard")  # warm
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get("/dashboard")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    services(app).engine.dispose()
    return statistics.median(timings)


if __name__ == "__main__":
    main()
