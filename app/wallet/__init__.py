"""Apple's PassKit web service under PUBLIC_BASE_URL/wallet. Only the blueprint lives here; its routes are in
`routes.py`, which the app factory imports."""

from flask import Blueprint

bp = Blueprint("wallet", __name__, url_prefix="/wallet/v1")
