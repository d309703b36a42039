"""Apple's PassKit web service under PUBLIC_BASE_URL/wallet (the routes are in `routes.py`)."""

from flask import Blueprint

bp = Blueprint("wallet", __name__, url_prefix="/wallet/v1")

from app.wallet import routes  # noqa: E402, F401 - registers the routes on bp; they import bp from here
