"""Google Wallet's public side under PUBLIC_BASE_URL/google: the member's save link, the program images Google
fetches, and Google's save/delete callbacks. Only the blueprint lives here; its routes are in `routes.py`, which
the app factory imports."""

from flask import Blueprint

bp = Blueprint("google", __name__, url_prefix="/google")
