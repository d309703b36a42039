"""Production entry point: `gunicorn wsgi:app` from the project root (gunicorn.conf.py holds the settings);
workers run separately: `punchpass worker`."""

from app import create_app
from workers.queue import connect_rq

app = create_app()
connect_rq(app)
