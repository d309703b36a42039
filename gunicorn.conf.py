"""gunicorn's settings for `gunicorn wsgi:app`, read from the project root (the working directory).

Settings are checked once in the master before any worker starts, so a bad one is a single line naming it and
the server does not start (instead of every worker failing to boot in turn)."""

import os
import sys

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"  # `-b` overrides it


def on_starting(server) -> None:
    from app import check_settings
    from app.config import ConfigError
    try:
        check_settings()
    except ConfigError as error:
        print(f"punchpass: configuration error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
