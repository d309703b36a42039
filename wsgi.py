"""Production entry point: `gunicorn wsgi:app` (workers run separately: `punchpass worker`)."""

from app import create_app

app = create_app()
