"""Choosing every member's offer again (the daily `choose_offers` job, and the worker after a template change) on
a big program: N members with 5 purchase lines each over 120 days, made with generate_series on a fresh
PostgreSQL database. Prints the first run (every member gets an offer: a card update each), a second run (nothing
changed: no writes) and, as the baseline measured in the same run, reading the same members in the same batches
without evaluating anything.

    .venv/bin/python -m bench.offers [--members 100000]

Needs PostgreSQL on loopback; the database it makes is dropped at the end."""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg
from sqlalchemy import select

from app import create_app
from app.config import load_config
from app.domain.offer_templates import BATCH, refresh_program
from app.migrate import upgrade_database
from app.models import Member, OfferTemplate, Program, utcnow
from app.services import services
from bench.dashboard import ADMIN_URL, program_with_members_sql

FILL = program_with_members_sql() + """
SELECT setval('members_id_seq', %(members)s);
"""
ITEMS = """
INSERT INTO ledger_entries (id, member_id, merchant_id, kind, points, balance_after, held, shortfall, amount,
  created_at)
  SELECT 2000000000 + n, n, 1, 'earn', 10, 10, 0, 0, 10, now() - ((n % 60) || ' days')::interval
  FROM generate_series(1, %(members)s) AS n;
INSERT INTO purchase_items (entry_id, member_id, category, quantity, amount, created_at)
  SELECT 2000000000 + 1 + (n % %(members)s), 1 + (n % %(members)s),
         (ARRAY['coffee', 'tea', 'cake', 'juice'])[1 + (n * 7) % 4], 1 + n % 3, 3.5,
         now() - ((n % 120) || ' days')::interval
  FROM generate_series(1, %(members)s * 5) AS n;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()
    name = f"punchpass_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_database(url)
        with psycopg.connect(url, autocommit=True) as db:
            fill = (FILL + ITEMS).replace("%(members)s", str(args.members))
            db.execute(fill)
        app = create_app(load_config({"DATABASE_URL": url, "PUBLIC_BASE_URL": "http://127.0.0.1:5000"}))
        with app.app_context():
            session = services(app).sessions()
            program = session.get(Program, 1)
            session.add_all([OfferTemplate(program_id=1, name="Top", kind="top_category", priority=30, settings={},
                                           texts={"en": "10% off {category}"}, labels={}, active=True),
                             OfferTemplate(program_id=1, name="Miss", kind="we_miss_you", priority=10,
                                           settings={"days": 45}, texts={"en": "We miss you"}, labels={},
                                           active=True)])
            program.offers_active = True
            session.commit()
            baseline = _timed(lambda: _read_batches(session))
            first, changed = _timed(lambda: refresh_program(session, program, utcnow()), keep=True)
            second, unchanged = _timed(lambda: refresh_program(session, program, utcnow()), keep=True)
            session.close()
        print(f"{args.members} members, {args.members * 5} purchase lines")
        print(f"baseline (read the members in batches of {BATCH}): {baseline:.2f} s")
        print(f"first run: {first:.2f} s, {changed} cards updated ({first / baseline:.1f}x the baseline)")
        print(f"second run: {second:.2f} s, {unchanged} cards updated ({second / baseline:.1f}x the baseline)")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _read_batches(session) -> int:
    after, count = 0, 0
    while True:
        members = list(session.scalars(select(Member).where(Member.program_id == 1, Member.id > after)
                                       .order_by(Member.id).limit(BATCH)))
        if not members:
            return count
        after, count = members[-1].id, count + len(members)


def _timed(action, keep: bool = False):
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    return (elapsed, result) if keep else elapsed


if __name__ == "__main__":
    main()
