"""Prometheus metrics at `/metrics`: request latency, earns and redeems, outbox depth, APNs push outcomes.

The metric objects are module-level, so each process counts once whatever number of apps it builds. Under
gunicorn, `gunicorn.conf.py` sets PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client: every
process then writes its samples to files there and a scrape (answered by any one worker) adds them up. Without
it (`punchpass serve`, tests) the default registry of the one process is served.

Access: from loopback (`request.remote_addr` after ProxyFix, so TRUSTED_PROXIES decides) always; from anywhere
else only with `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise), and not at all (404) when METRICS_TOKEN
is unset, so an installation that never asked for metrics shows nothing from outside."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator, Mapping

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import is_loopback_host
from app.errors import problem
from app.models import OutboxEvent, utcnow
from app.services import app_config, services

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

REQUEST_SECONDS = Histogram("punchpass_request_duration_seconds", "Time from the first to the last request hook",
                            ["endpoint", "method", "status"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EARNS = Counter("punchpass_earns", "Earns committed through the merchant API (idempotent replays not counted)")
EARNED_POINTS = Counter("punchpass_earned_points", "Points earned through the merchant API")
REDEEMS = Counter("punchpass_redeems", "Redeems committed through the merchant API (idempotent replays not counted)")
REDEEMED_POINTS = Counter("punchpass_redeemed_points", "Points redeemed through the merchant API")
APNS_PUSHES = Counter("punchpass_apns_pushes", "APNs push results by outcome", ["outcome"])

# endpoint -> (count, points): the ledger writes the API routes commit (their 201 is sent after the commit).
_LEDGER_WRITES = {"members.earn": (EARNS, EARNED_POINTS), "members.redeem": (REDEEMS, REDEEMED_POINTS)}
# Methods outside this set share one label: a client may send any token as a method.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install_metrics(app: Flask) -> None:
    """Call before other before_request hooks are added, so requests they answer early are timed too."""
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.register_blueprint(bp)


def count_push_outcomes(outcomes: Mapping[str, int]) -> None:
    """APNs results of one batch (`ok`, `unregistered`, `retry`, `fatal`); called by the worker's client."""
    for outcome, count in outcomes.items():
        APNS_PUSHES.labels(outcome).inc(count)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        method = request.method if request.method in _METHODS else "other"
        REQUEST_SECONDS.labels(request.endpoint or "unmatched", method,
                               f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
    counters = _LEDGER_WRITES.get(request.endpoint or "")
    if counters and response.status_code == 201 and "Idempotent-Replayed" not in response.headers:
        count, points = counters
        count.inc()
        points.inc(abs(response.get_json()["transaction"]["points"]))
    return response


@bp.get("/metrics")
def metrics() -> Response:
    token = app_config().metrics_token
    if not is_loopback_host(request.remote_addr or ""):
        if token is None:
            return problem(404, "Not Found")
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
            return problem(401, "Unauthorized", "Send Authorization: Bearer <METRICS_TOKEN>.",
                           headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body = generate_latest(_process_registry()) + generate_latest(_scrape_time_registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def _process_registry() -> CollectorRegistry:
    """Every gunicorn worker's (and co-located `punchpass worker`'s) samples, or this process's alone."""
    directory = app_config().metrics_multiproc_dir
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return registry


def _scrape_time_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(services().sessions))
    return registry


class OutboxCollector(Collector):
    """Outbox depth and the oldest pending event's age, from one query at scrape time (the same for every
    process, so it is not a per-process metric); `punchpass_database_up` 0 when the query fails."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.sessions() as session:
                waiting, dead, oldest = session.execute(
                    select(func.count(OutboxEvent.id).filter(OutboxEvent.dead_at.is_(None)),
                           func.count(OutboxEvent.id).filter(OutboxEvent.dead_at.is_not(None)),
                           func.min(OutboxEvent.created_at).filter(OutboxEvent.dead_at.is_(None)))
                    .where(OutboxEvent.delivered_at.is_(None))).one()
        except SQLAlchemyError as error:
            log.warning("metrics: outbox query failed: %s", type(error).__name__)
            yield GaugeMetricFamily("punchpass_database_up", "1 when the scrape's database query succeeded", 0)
            return
        yield GaugeMetricFamily("punchpass_database_up", "1 when the scrape's database query succeeded", 1)
        yield GaugeMetricFamily("punchpass_outbox_pending", "Outbox events not yet delivered (retrying included)",
                                waiting)
        yield GaugeMetricFamily("punchpass_outbox_dead", "Dead letters (`punchpass outbox retry-dead`)", dead)
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0
        yield GaugeMetricFamily("punchpass_outbox_oldest_pending_age_seconds",
                                "Age of the oldest undelivered event; 0 when none is waiting", max(age, 0))
