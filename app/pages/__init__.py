"""Public pages: the customer's card link, the home page. Only the blueprint lives here; its routes are in `routes.py`,
which the app factory imports."""

from flask import Blueprint

bp = Blueprint("pages", __name__, template_folder="templates")
