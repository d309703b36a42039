"""gunicorn's settings for `gunicorn wsgi:app`, read from the project root (the working directory).

Settings are checked once in the master before any worker starts, so a bad one is a single line naming it and
the server does not start (instead of every worker failing to boot in turn).

Threaded workers: a sync worker serves one connection at a time, so a few idle TCP connections stalled the whole
service. A gthread worker gives each request a thread and parks idle connections on its poller (gunicorn >= 26
also hands back a new connection that sends nothing for 5 s), so silent clients do not hold the workers.
Anything here can be overridden on the command line (`-b HOST:PORT`, `-w N`, `--threads N`).

Metrics: prometheus_client chooses where samples live when it is first imported, so PROMETHEUS_MULTIPROC_DIR is
set here, before the app (which imports it) is: every worker writes its samples to files in that directory and
`/metrics`, answered by any worker, adds them up. Unset, the master makes a temporary one and removes it on exit;
a directory you choose is kept (prometheus_client advises emptying it between deployments).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger

_METRICS_DIR_PREFIX = "punchpass-metrics-"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_DIR_PREFIX)
# Recognised by name, not remembered: a reload (SIGHUP) reads this file again with the variable already set.
_METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
_made_metrics_dir = _METRICS_DIR.parent == Path(tempfile.gettempdir()) and _METRICS_DIR.name.startswith(
    _METRICS_DIR_PREFIX)

from prometheus_client import multiprocess  # noqa: E402  (after the directory is set)

from app import check_settings  # noqa: E402
from app.config import ConfigError  # noqa: E402
from app.logs import mask_secrets  # noqa: E402

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"  # `-b` overrides it

# Processes for CPU, threads for waiting on PostgreSQL, Redis and clients. 8 workers x 8 threads keeps
# the busiest case at 64 database connections, under PostgreSQL's default max_connections of 100.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * (os.cpu_count() or 1) + 1, 8))
threads = 8

timeout = 30  # a worker silent this long (stuck, not merely busy: threads keep it alive) is restarted
graceful_timeout = 20  # on a restart or SIGTERM, requests in flight get this long to finish
keepalive = 5  # seconds an idle keep-alive connection stays open (clients and proxies reuse them)

# Request heads: our URLs and headers are short; refuse oversized ones (400/431) before Flask sees them.
# Bodies are capped by the app (MAX_CONTENT_LENGTH).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190


class MaskedAccessLogger(Logger):
    """The card link's token and device library ids masked in every access-log atom (request line, path,
    referer, environ); the Authorization header keeps only its scheme, whatever access_log_format says."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                atoms[name] = mask_secrets(value)
        if "{authorization}i" in atoms:
            atoms["{authorization}i"] = atoms["{authorization}i"].partition(" ")[0] + " ***"
        return atoms


logger_class = MaskedAccessLogger


def on_starting(server) -> None:
    try:
        check_settings()
    except ConfigError as error:
        print(f"punchpass: configuration error: {error}", file=sys.stderr, flush=True)
        on_exit(server)  # gunicorn calls it only after a start
        sys.exit(2)


def child_exit(server, worker) -> None:
    """A dead worker's live gauges leave the sum; its counters and histograms stay counted."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
