"""Segment evaluation over a program of 100,000 members, and a campaign's fan-out rate per worker.

Members (with varied balances, locales, enrolment dates and wallet states), a year of purchases (about three per
member, a third with a category), tags and Apple device registrations are written with bulk SQL into a fresh
PostgreSQL database. Then:
- each segment below is counted 5 times (`segments.count_members`, one SQL statement); the median is printed
  next to the baseline measured in the same run: `SELECT count(*)` of the program's members;
- a campaign with a message goes to the first --fanout members, its batches run one after another in this
  process exactly as the worker's job does (`send_batch`, commit), without the Apple pacing delay between them:
  members/s is what one worker process can fan out, the pacing then spreads it (docs/architecture.md).

    .venv/bin/python -m bench.segments [--members 100000] [--fanout 20000]
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import time
from datetime import timedelta

from sqlalchemy import text

from app import create_app
from app.config import load_config
from app.domain import campaigns, segments
from app.models import Campaign, Program, Segment, utcnow
from app.services import services
from bench.harness import app_env, bulk_insert, fresh_database, load_average, machine, make_merchant_key, run_folder
from passes import make_test_chain

MEMBER_COLUMNS = ("program_id", "merchant_id", "name", "locale", "referral_code", "points_balance", "held_points",
                  "lifetime_points", "serial_number", "auth_token", "barcode_token", "download_token",
                  "pass_version", "pass_update_tag", "pass_updated_at", "created_at", "apple_devices",
                  "apple_ever_installed", "google_saved", "google_ever_saved")
ENTRY_COLUMNS = ("member_id", "merchant_id", "kind", "points", "balance_after", "amount", "shortfall", "held",
                 "stamps", "created_at")
CATEGORIES = ("coffee", "tea", "beans", "cake", "sandwich", "merch")
SEGMENTS = {
    "balance >= 500": [{"field": "points_balance", "op": "gte", "value": 500}],
    "lapsed: bought before, not in 30 days": [
        {"field": "purchase_count", "op": "gte", "value": 1},
        {"field": "last_purchase", "op": "not_in_window", "window": {"days": 30}}],
    "spent >= 100 in 90 days": [{"field": "purchase_value", "op": "gte", "value": "100", "window": {"days": 90}}],
    "bought beans this month": [{"field": "category", "op": "bought", "value": ["beans"],
                                 "window": {"month": "this"}}],
    "Apple card removed, ja/ko": [{"field": "apple_wallet", "op": "is", "value": "removed"},
                                  {"field": "locale", "op": "in", "value": ["ja", "ko"]}],
    "vip or <= 2 purchases in a year": "any",
}
ANY_RULE = [{"field": "tag", "op": "has", "value": ["vip"]},
            {"field": "purchase_count", "op": "lte", "value": 2, "window": {"days": 365}}]


def seed(engine, program_id: int, merchant_id: int, count: int, rng: random.Random) -> float:
    started, now = time.monotonic(), utcnow()
    rows = []
    for n in range(count):
        apple = rng.random() < 0.5
        removed = not apple and rng.random() < 0.2
        google = rng.random() < 0.3
        points = rng.randint(0, 2000)
        rows.append((program_id, merchant_id, f"Member {n}", rng.choice(("en", "en", "ja", "ko")), f"S{n:09d}",
                     points, 0, points + rng.randint(0, 3000), secrets.token_hex(16), secrets.token_urlsafe(24),
                     f"b{n}-{secrets.token_hex(6)}", f"d{n}-{secrets.token_hex(12)}", 1, 0, now,
                     now - timedelta(days=rng.randint(0, 730)), int(apple), apple or removed, google,
                     google or rng.random() < 0.1))
    bulk_insert(engine, "members", MEMBER_COLUMNS, rows)
    with engine.connect() as conn:
        ids = conn.scalars(text("SELECT id FROM members WHERE program_id = :p ORDER BY id"), {"p": program_id}).all()
        apple_ids = conn.scalars(text("SELECT id FROM members WHERE program_id = :p AND apple_devices > 0"),
                                 {"p": program_id}).all()
    entries = [(member_id, merchant_id, "earn", 10, 10, f"{rng.randint(300, 6000) / 100:.2f}", 0, 0, 0,
                now - timedelta(minutes=rng.randint(0, 365 * 24 * 60)))
               for member_id in ids for _ in range(rng.randint(0, 6))]
    bulk_insert(engine, "ledger_entries", ENTRY_COLUMNS, entries)
    with engine.connect() as conn:
        entry_rows = conn.execute(text("SELECT id, member_id, created_at FROM ledger_entries WHERE merchant_id = :m"),
                                  {"m": merchant_id}).all()
    bulk_insert(engine, "purchase_items", ("entry_id", "member_id", "category", "quantity", "amount", "created_at"),
                ((entry_id, member_id, rng.choice(CATEGORIES), 1, "5.00", at)
                 for entry_id, member_id, at in entry_rows if rng.random() < 0.33))
    bulk_insert(engine, "member_tags", ("member_id", "tag", "created_at"),
                ((member_id, "vip", now) for member_id in ids if rng.random() < 0.05))
    bulk_insert(engine, "device_registrations", ("device_library_id", "push_token", "member_id", "created_at",
                                                 "updated_at"),
                ((secrets.token_hex(16), secrets.token_hex(32), member_id, now, now) for member_id in apple_ids))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    print(f"{count:,} members, {len(entries):,} purchases, {len(apple_ids):,} Apple devices written in "
          f"{time.monotonic() - started:.1f} s")
    return time.monotonic() - started


def median_seconds(action, runs: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure_segments(app, program_id: int) -> None:
    with app.app_context(), services(app).sessions() as session:
        program, now = session.get(Program, program_id), utcnow()
        baseline, total = median_seconds(lambda: session.scalar(
            text("SELECT count(*) FROM members WHERE program_id = :p"), {"p": program_id}))
        print(f"\nbaseline SELECT count(*) of the program's {total:,} members: {baseline * 1000:.1f} ms")
        print(f"{'segment':42} {'members':>8} {'median':>10} {'x baseline':>10}")
        for name, conditions in SEGMENTS.items():
            rules = segments.validate_rules({"match": "any", "conditions": ANY_RULE} if conditions == "any"
                                            else {"match": "all", "conditions": conditions})
            segment = Segment(merchant_id=program.merchant_id, program_id=program_id, name=name, rules=rules)
            session.add(segment)
            session.flush()
            seconds, found = median_seconds(lambda chosen=segment: segments.count_members(session, chosen, now))
            print(f"{name:42} {found:8,} {seconds * 1000:8.1f} ms {seconds / baseline:9.1f}x")
        session.commit()


def measure_fanout(app, program_id: int, count: int) -> None:
    """A campaign to the first `count` members, its batches run back to back as the worker runs them."""
    with app.app_context(), services(app).sessions() as session:
        program = session.get(Program, program_id)
        last = session.scalar(text("SELECT id FROM members WHERE program_id = :p ORDER BY id OFFSET :n LIMIT 1"),
                              {"p": program_id, "n": count - 1})
        first = session.scalar(text("SELECT min(id) FROM members WHERE program_id = :p"), {"p": program_id})
        segment = segments.create_segment(session, program, "everyone", {"conditions": [
            {"field": "points_balance", "op": "gte", "value": 0}]})
        session.commit()
        campaign = campaigns.create_campaign(session, program, {
            "name": "Bench", "segment_id": segment.id,
            "message": {"title": {"en": "Hello", "ja": "こんにちは"}, "body": "A latte on us this week"}}, utcnow())
        session.commit()
        started, cpu_started, handled, batches = time.perf_counter(), time.process_time(), 0, 0
        while True:
            campaign = session.get(Campaign, campaign.id, populate_existing=True)
            if campaign.status != "sending" or campaign.cursor >= last:
                break
            handled += campaigns.send_batch(session, campaign.id, campaign.cursor, utcnow())
            session.commit()
            batches += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        pushes = session.scalar(text("SELECT count(*) FROM outbox_events WHERE kind = 'apple_push'"))
        print(f"\nfan-out: {handled:,} members (ids {first}..{last}) in {batches} batches of "
              f"{campaigns.BATCH_SIZE}: {seconds:.1f} s, {handled / seconds:,.0f} members/s per worker, "
              f"{cpu / handled * 1000:.2f} ms of this process's CPU per member; {pushes:,} Apple pushes queued")
        print(f"Apple pacing at {campaigns.APPLE_FETCHES_PER_SECOND} fetches/s would spread those pushes over "
              f"{pushes / campaigns.APPLE_FETCHES_PER_SECOND:,.0f} s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.segments")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--fanout", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(machine())
    print(f"load average before: {load_average()}")
    with run_folder("punchpass-bench-segments-", None) as (workdir, stack):
        certs = make_test_chain(workdir / "certs")
        database_url, database = stack.enter_context(fresh_database(workdir))
        print(f"database: {database}")
        env = app_env(certs, database_url, workdir, 9, 9, None)
        app = create_app(load_config(env))
        engine = services(app).engine
        stack.callback(engine.dispose)
        services(app).relay.connect(None)  # nothing is delivered: this measures the fan-out, not APNs
        make_merchant_key(database_url)
        with app.app_context(), services(app).sessions() as session:
            merchant_id = session.scalar(text("SELECT max(id) FROM merchants"))
            program = Program(merchant_id=merchant_id, name="Segment Beans", slug=f"bench-{secrets.token_hex(4)}",
                              timezone="Asia/Tokyo")
            session.add(program)
            session.commit()
            program_id = program.id
        seed(engine, program_id, merchant_id, args.members, random.Random(2026))
        measure_segments(app, program_id)
        measure_fanout(app, program_id, min(args.fanout, args.members))
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

