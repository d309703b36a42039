"""Public pages: the customer's card link, the home page (the routes are in `routes.py`)."""

from flask import Blueprint

bp = Blueprint("pages", __name__)

from app.pages import routes  # noqa: E402, F401 - registers the routes on bp; they import bp from here
