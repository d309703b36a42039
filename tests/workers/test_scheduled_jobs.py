"""The schedule: a due job runs once (whatever the number of workers), again after its interval, as of any
instant `punchpass jobs run-due --as-of` names; a failure is recorded and retried after a pause."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from app import create_app
from app.cli import cli
from app.config import load_config
from app.models import Counter, ScheduledJob, utcnow
from app.services import services
from tests.factories import make_merchant
from tests.workers.test_retention import add_rows, surviving
from workers.embedded import EmbeddedWorker
from workers.scheduled import SCHEDULE, PeriodicJob, run_due, run_job

HOUR = timedelta(hours=1)


@pytest.fixture
def schedule_app(private_env):
    """An app on a database of its own: the schedule's rows are instance-wide, and these tests move its clock."""
    app = create_app(load_config(private_env), testing=True)
    yield app
    services(app).engine.dispose()


def counting_job(name: str = "count", every: timedelta = HOUR, pause: float = 0.0, fail: bool = False):
    """A job that adds one to the counter `name` (committed with the schedule, as real jobs' work is)."""
    def run(session, as_of, config):
        time.sleep(pause)
        if fail:
            raise RuntimeError("the job broke")
        row = session.get(Counter, name) or Counter(name=name, value=0)
        row.value += 1
        session.add(row)
        return {"as_of": as_of.isoformat()}
    return PeriodicJob(name, every, run)


def runs(app, name: str = "count") -> int:
    with services(app).sessions() as session:
        row = session.get(Counter, name)
        return row.value if row else 0


def test_a_new_job_is_due_at_once_then_again_after_its_interval(schedule_app):
    schedule, now = (counting_job(),), utcnow()

    first = run_due(schedule_app, now, schedule)
    second = run_due(schedule_app, now + timedelta(minutes=59), schedule)
    third = run_due(schedule_app, now + timedelta(minutes=61), schedule)

    assert list(first) == ["count"] and second == {} and list(third) == ["count"]
    assert runs(schedule_app) == 2


def test_a_run_as_of_a_future_instant_does_not_put_off_the_regular_runs(schedule_app):
    schedule, now = (counting_job(),), utcnow()
    run_due(schedule_app, now + timedelta(days=400), schedule)  # a test or an operator running ahead

    assert list(run_due(schedule_app, now + timedelta(minutes=61), schedule)) == ["count"]
    with services(schedule_app).sessions() as session:
        row = session.get(ScheduledJob, "count")
    assert row.last_as_of == now + timedelta(minutes=61) and row.leased_by is None


def test_two_workers_running_the_same_due_job_count_it_once(schedule_app):
    """Both see the job due and race to claim it: one conditional UPDATE wins, the other runs nothing."""
    schedule, now = (counting_job(pause=0.3),), utcnow()
    run_due(schedule_app, now - timedelta(hours=2), schedule)  # the row exists and is due again from now - 1 h
    start = threading.Barrier(2)
    results = {}

    def worker(worker_id: str) -> None:
        start.wait()
        results[worker_id] = run_due(schedule_app, now, schedule, worker=worker_id)

    threads = [threading.Thread(target=worker, args=(f"host:{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(result) for result in results.values()) == [0, 1]
    assert runs(schedule_app) == 2  # the first run above and one of the two racing ones


def test_a_job_held_by_a_worker_is_skipped_until_its_lease_runs_out(schedule_app):
    schedule, now = (counting_job(),), utcnow()
    run_due(schedule_app, now - timedelta(hours=2), schedule)
    with services(schedule_app).sessions() as session:  # a worker claimed it and died
        session.execute(update(ScheduledJob).values(leased_by="dead:1", leased_until=now + timedelta(minutes=10)))
        session.commit()

    assert run_due(schedule_app, now, schedule) == {}
    with services(schedule_app).sessions() as session:
        session.execute(update(ScheduledJob).values(leased_until=now - timedelta(seconds=1)))
        session.commit()
    assert list(run_due(schedule_app, now, schedule)) == ["count"]


def test_a_failed_job_is_recorded_retried_after_a_pause_and_the_others_still_run(schedule_app):
    schedule, now = (counting_job("broken", fail=True), counting_job("fine")), utcnow()

    results = run_due(schedule_app, now, schedule)

    assert isinstance(results["broken"], RuntimeError) and results["fine"] == {"as_of": now.isoformat()}
    with services(schedule_app).sessions() as session:
        broken = session.get(ScheduledJob, "broken")
    assert broken.last_error == "RuntimeError: the job broke" and broken.leased_by is None
    assert now < broken.next_run_at <= utcnow() + timedelta(minutes=1)
    assert runs(schedule_app, "broken") == 0  # its work was rolled back


def test_run_job_twice_as_of_the_same_instant_runs_it_once(schedule_app):
    job, now = counting_job(), utcnow()
    run_due(schedule_app, now, (job,))

    assert run_job(schedule_app, job, now) == (False, None)


def test_retention_is_a_scheduled_job_the_embedded_worker_runs_when_due(schedule_app):
    merchant_id, _ = make_merchant(schedule_app)
    worker = EmbeddedWorker(schedule_app)
    first = add_rows(schedule_app, merchant_id, timedelta(days=31))
    worker._sweep()
    second = add_rows(schedule_app, merchant_id, timedelta(days=31))

    worker._next_schedule_check = 0.0
    worker._sweep()  # looks again, but retention ran less than 5 minutes ago

    assert surviving(schedule_app, first) == {"dead"}
    assert surviving(schedule_app, second) == {"idempotency", "delivered", "dead", "device_log"}
    assert SCHEDULE[0].name == "prune_retention"


def test_jobs_run_due_as_of_an_instant_runs_what_is_due_then_and_is_idempotent(schedule_app, private_env):
    merchant_id, _ = make_merchant(schedule_app)
    later = utcnow() + timedelta(days=10)
    rows = add_rows(schedule_app, merchant_id, timedelta(days=4))  # 14 days old as of `later`

    first = CliRunner().invoke(cli, ["jobs", "run-due", "--as-of", later.isoformat()], env=private_env)
    again = CliRunner().invoke(cli, ["jobs", "run-due", "--as-of", later.isoformat()], env=private_env)

    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["prune_retention"]["idempotency_records"] >= 1
    assert surviving(schedule_app, rows) == {"dead", "device_log"}
    assert again.exit_code == 0  # due again (the real clock's next run is before `later`), and changes nothing
    assert json.loads(again.output)["prune_retention"] == {"idempotency_records": 0, "outbox_events": 0,
                                                          "device_logs": 0}
    status = CliRunner().invoke(cli, ["jobs", "status"], env=private_env)
    assert "prune_retention" in [job["name"] for job in json.loads(status.output)]


def test_jobs_run_due_refuses_a_time_that_is_not_iso_8601(private_env):
    result = CliRunner().invoke(cli, ["jobs", "run-due", "--as-of", "next tuesday"], env=private_env)

    assert result.exit_code == 2 and "ISO-8601" in result.output


def test_a_time_without_a_zone_is_utc(schedule_app, private_env):
    CliRunner().invoke(cli, ["jobs", "run-due", "--as-of", "2031-01-02T03:04:05"], env=private_env)

    with services(schedule_app).sessions() as session:
        as_of = session.scalar(select(ScheduledJob.last_as_of))
    assert as_of == datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.mark.skipif(not os.environ.get("PUNCHPASS_TEST_REDIS_URL"), reason="set PUNCHPASS_TEST_REDIS_URL for rq tests")
def test_punchpass_worker_enqueues_each_due_job_once_and_runs_it(schedule_app):
    """The sweep of every worker enqueues what is due; the job id keeps one copy in the queue, and the claim makes
    a copy that runs late do nothing."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from workers import jobs
    from workers.queue import SCHEDULED_QUEUE_NAME, enqueue_due_scheduled_jobs
    redis = Redis.from_url(os.environ["PUNCHPASS_TEST_REDIS_URL"])
    queue = Queue(SCHEDULED_QUEUE_NAME, connection=redis)
    queue.empty()
    previous = jobs._worker_app
    jobs.use_app(schedule_app)
    try:
        names = sorted(job.name for job in SCHEDULE)  # every job is due on a new schedule
        assert sorted(enqueue_due_scheduled_jobs(schedule_app, queue)) == names
        enqueue_due_scheduled_jobs(schedule_app, queue)  # a second worker's sweep
        assert sorted(queue.job_ids) == [f"scheduled-{name}" for name in names]

        SimpleWorker([queue], connection=redis).work(burst=True)

        with services(schedule_app).sessions() as session:
            row = session.get(ScheduledJob, "prune_retention")
        assert row.last_run_at is not None and row.next_run_at > utcnow() + timedelta(minutes=4)
        assert enqueue_due_scheduled_jobs(schedule_app, queue) == []
    finally:
        jobs._worker_app = previous
        queue.empty()
        redis.close()
