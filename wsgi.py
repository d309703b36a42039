"""Production entry point: `gunicorn wsgi:app` from the project root (gunicorn.conf.py holds the settings);
workers run separately: `punchpass worker`."""

import gc

from app import create_app
from workers.queue import connect_rq

app = create_app()
connect_rq(app)
# What start-up built lives as long as the process: out of the collector's sight, a full collection does not walk
# it (about 150 ms of CPU each time one runs in a worker, a pause every request in flight waits out).
gc.collect()
gc.freeze()
