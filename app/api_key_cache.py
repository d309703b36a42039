"""API keys remembered per process, so a request need not look its key up in the database, while a revocation is
still refused by every process from the next request on.

Each entry is stamped with the *revocation generation*: a random value in Redis that every revocation replaces
after its commit (`announce_revocations`). A request reads the generation in the Redis round trip that also counts
its key's rate limit (`generation_and_counts`, a small script of ours that sets a first value when there is
none; app/ratelimits.py calls it) and trusts an entry only when its stamp equals it; otherwise it
looks the key up in the database and stamps the answer with the generation it read *before* the look-up, so a
revocation committed meanwhile makes the entry stale at once. The value is random, never a counter, so a Redis
that restarted empty cannot bring an old generation back.

Failure modes (docs/architecture.md, "API keys cached per process"):
- no REDIS_URL (SQLite, `make run`), or Redis not answering: no entry is trusted; every request looks its key up
  in the database, as before the cache;
- the revocation committed but the bump was lost (Redis down at that moment, the process died between the two):
  the revoking command says so and fails (run it again: a revoked key can be revoked again, which bumps again),
  and every entry is trusted for at most `MAX_AGE` seconds whatever the generation says."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis import Redis, RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

GENERATION_KEY = "punchpass:api-keys:revoked"  # replaced by every revocation
MAX_AGE = 60.0  # seconds an entry is trusted at most, even if a revocation's bump was lost
MAX_ENTRIES = 10_000
REVOKED = "api_keys_revoked"  # session.info: this transaction revoked a key
NOT_ANNOUNCED = "api_keys_revocation_not_announced"  # session.info: why the last revocation's bump failed
# One round trip per merchant API request: the revocation generation (set to ARGV[1] when Redis has none: first
# use, or a Redis that restarted empty); then ARGV[2] counters only read (KEYS[2..], the failed authentications
# of the caller's address: a 401 counts them afterwards), each with its count and the seconds left in its window;
# then each counter of the caller's rate limit, counted with this hit (fixed windows of ARGV[i+1] seconds, the
# window starting at its first hit), with its count and the seconds left.
_GENERATION_AND_COUNTS = """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[1]
  redis.call('SET', KEYS[1], generation)
end
local result = {generation}
local peeked = tonumber(ARGV[2])
for i = 2, #KEYS do
  local count
  if i <= peeked + 1 then
    count = tonumber(redis.call('GET', KEYS[i]) or '0')
  else
    count = redis.call('INCR', KEYS[i])
    if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[i + 1]) end
  end
  result[#result + 1] = count
  result[#result + 1] = redis.call('TTL', KEYS[i])
end
return result
"""
log = logging.getLogger(__name__)


class ApiKeyCache:
    def __init__(self, redis_url: str | None):
        self._redis = Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=1) if redis_url else None
        self._script = self._redis.register_script(_GENERATION_AND_COUNTS) if self._redis else None
        self._entries: dict[Any, tuple[bytes, float, Any]] = {}  # lookup -> (generation, stored at, answer)

    def get(self, lookup: Any, load: Callable[[], Any], generation: bytes | None) -> Any:
        """The answer for `lookup` (a key's hash, ...): remembered while `generation` (read by
        `generation_and_counts` before this call) is the one it was stored under, else `load()`."""
        if generation is None:
            return load()
        now = time.monotonic()
        entry = self._entries.get(lookup)
        if entry is not None and entry[0] == generation and now - entry[1] < MAX_AGE:
            return entry[2]
        answer = load()  # after reading the generation: a revocation committed before the load is in it
        if answer is not None:  # unknown keys are not remembered: a guesser must not fill the memory
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[lookup] = (generation, now, answer)
        return answer

    def generation_and_counts(self, counters: list[tuple[str, int]] = (), peeked: list[str] = ()) \
            -> tuple[bytes, list[tuple[int, int]], list[tuple[int, int]]] | None:
        """The revocation generation; for each of the `peeked` counter keys its count and the seconds left in its
        window, not counted; for each (counter key, window seconds) of `counters` the count with this hit and the
        seconds left: one Redis round trip. None without Redis or when it does not answer."""
        if self._script is None:
            return None
        try:
            answer = self._script(keys=[GENERATION_KEY, *peeked, *(key for key, _ in counters)],
                                  args=[secrets.token_hex(8), len(peeked), *([0] * len(peeked)),
                                        *(window for _, window in counters)])
        except RedisError as error:
            log.warning("API keys are looked up in the database, limits counted in memory: Redis did not answer "
                        "(%s)", type(error).__name__)
            return None
        counts = list(zip(answer[1::2], answer[2::2], strict=True))
        return answer[0], counts[len(peeked):], counts[:len(peeked)]


def mark_revoked(session: Session) -> None:
    """Called by a revocation: once the transaction commits, every process's cached keys become stale."""
    session.info[REVOKED] = True


def announce_revocations(sessions: sessionmaker, redis_url: str | None) -> None:
    """After a commit that revoked a key through `sessions`, replace the revocation generation in Redis. When
    Redis does not take it the commit stands: the error is logged and left in `session.info[NOT_ANNOUNCED]`
    for the caller to report (`punchpass revoke-api-key` fails, saying to run it again)."""
    if not redis_url:
        return  # no Redis: nothing is cached anywhere

    @event.listens_for(sessions, "after_commit")
    def _announce(session: Session) -> None:
        if not session.info.pop(REVOKED, False):
            return
        try:
            with Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2) as redis:
                redis.set(GENERATION_KEY, secrets.token_hex(8))
        except RedisError as error:
            session.info[NOT_ANNOUNCED] = (
                f"The key is revoked in the database, but Redis ({type(error).__name__}) was not told: other "
                f"processes may accept it for up to {int(MAX_AGE)} seconds. Run the revocation again.")
            log.error(session.info[NOT_ANNOUNCED])

    @event.listens_for(sessions, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(REVOKED, None)
