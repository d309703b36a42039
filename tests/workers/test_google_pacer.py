"""The Google Wallet pacer: calls spaced at GOOGLE_RATE_LIMIT, shared through Redis, slower after a 429."""

import os
import time

import pytest
from redis import Redis

from workers.google_pacer import LocalPacer, RedisPacer


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_calls_are_spaced_at_the_rate():
    clock = FakeClock()
    pacer = LocalPacer(20, clock=clock, sleep=clock.sleep)
    for _ in range(21):
        pacer.wait()
    assert clock.now == pytest.approx(1001.0)  # 21 calls at 20/s: the 21st goes one second after the first


def test_a_429_doubles_the_spacing_for_a_while():
    clock = FakeClock()
    pacer = LocalPacer(10, clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.slow_down()
    pacer.wait()
    start = clock.now
    pacer.wait()
    assert clock.now - start == pytest.approx(0.2)
    clock.now += 120  # the slowdown has worn off
    start = clock.now
    pacer.wait()
    pacer.wait()
    assert clock.now - start == pytest.approx(0.1)


def test_rate_zero_lifts_the_limit():
    pacer = LocalPacer(0, sleep=lambda seconds: pytest.fail("must not wait"))
    for _ in range(100):
        pacer.wait()


@pytest.fixture
def redis():
    url = os.environ.get("PUNCHPASS_TEST_REDIS_URL")
    if not url:
        pytest.skip("PUNCHPASS_TEST_REDIS_URL is not set")
    client = Redis.from_url(url)
    yield client
    client.close()


def test_workers_sharing_redis_share_one_limit(redis):
    key = f"test-pacer-{time.time_ns()}"
    slept = []
    pacers = [RedisPacer(redis, 50, key=key, sleep=slept.append) for _ in range(2)]
    started = time.monotonic()
    for _ in range(5):
        for pacer in pacers:
            pacer.wait()
    elapsed = time.monotonic() - started  # the sleeps are recorded, not slept: real time passed only this much
    # both pacers draw from one schedule: the 10th call's slot is 9 slots (not 4) after the first
    assert 9 / 50 - elapsed - 0.01 <= slept[-1] <= 9 / 50 + 0.01
    pacers[0].slow_down()
    assert int(redis.get(key + ":slowdown")) == 2
