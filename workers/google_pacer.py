"""Google Wallet's rate limit, kept by us: "Calls to the Google Wallet API are rate limited to 20 requests per
second" per Cloud project (Wallet FAQ). Every call first takes the next free slot on a shared schedule, one slot
every 1/rate seconds, and waits for it; a 429 doubles the spacing for a while (up to 16 times) instead of
hammering Google again at once.

With REDIS_URL the schedule lives in Redis, so every worker process shares one limit (the slot is taken with one
Lua script, on Redis's clock); without it, in this process. A rate of 0 lifts the limit (benchmarks)."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from redis import Redis

SLOW_DOWN_SECONDS = 60  # how long a 429 keeps the pace slower
MAX_SLOWDOWN = 16
KEY = "punchpass:google-pacer"

# KEYS[1]: the next free slot (seconds, Redis clock); KEYS[2]: the slowdown factor. ARGV[1]: seconds per call.
# Returns how long the caller waits for its slot, in microseconds.
_TAKE_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local spacing = tonumber(ARGV[1]) * tonumber(redis.call('GET', KEYS[2]) or '1')
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], tostring(slot + spacing), 'PX', math.ceil((slot + spacing - now) * 1000) + 1000)
return math.floor((slot - now) * 1000000)
"""


class Pacer(Protocol):
    def wait(self) -> None:
        """Block until this caller may make its call."""

    def slow_down(self) -> None:
        """Google answered 429: space calls further apart for a while."""


class LocalPacer:
    """The schedule in this process (no Redis: the embedded worker)."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep):
        self.spacing = 1.0 / rate if rate > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._factor, self._factor_until = 1, 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.spacing:
            return
        with self._lock:
            now = self.clock()
            if now >= self._factor_until:
                self._factor = 1
            slot = max(now, self._next)
            self._next = slot + self.spacing * self._factor
        if slot > now:
            self.sleep(slot - now)

    def slow_down(self) -> None:
        with self._lock:
            self._factor = min(self._factor * 2, MAX_SLOWDOWN)
            self._factor_until = self.clock() + SLOW_DOWN_SECONDS


class RedisPacer:
    """The schedule in Redis, shared by every worker process."""

    def __init__(self, redis: Redis, rate: float, key: str = KEY, sleep=time.sleep):
        self.redis, self.spacing, self.sleep = redis, (1.0 / rate if rate > 0 else 0.0), sleep
        self.keys = [key + ":next", key + ":slowdown"]
        self._take_slot = redis.register_script(_TAKE_SLOT)

    def wait(self) -> None:
        if not self.spacing:
            return
        delay = int(self._take_slot(keys=self.keys, args=[repr(self.spacing)])) / 1_000_000
        if delay > 0:
            self.sleep(delay)

    def slow_down(self) -> None:
        factor = int(self.redis.get(self.keys[1]) or 1)
        self.redis.set(self.keys[1], min(factor * 2, MAX_SLOWDOWN), ex=SLOW_DOWN_SECONDS)


def make_pacer(rate: float, redis_url: str | None) -> Pacer:
    if redis_url:
        return RedisPacer(Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=2), rate)
    return LocalPacer(rate)
