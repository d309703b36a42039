"""How every dashboard page is answered: the page's locale and strings, the CSRF token for its forms, the
navigation, the renewed session cookie, and never a cached copy."""

from __future__ import annotations

from flask import g, make_response, render_template, request

from app.dashboard import sessions
from app.pages.catalogue import LANGUAGE_NAMES, finish_page, page_locale, t

NAVIGATION = (("dashboard.overview", "dash.nav.overview"), ("dashboard.programs_list", "dash.nav.programs"),
              ("dashboard.members_list", "dash.nav.members"), ("dashboard.tills", "dash.nav.tills"),
              ("dashboard.api_keys", "dash.nav.api_keys"), ("dashboard.webhooks_page", "dash.nav.webhooks"),
              ("dashboard.campaigns_page", "dash.nav.campaigns"),
              ("dashboard.challenges_page", "dash.nav.challenges"))


def render(template: str, status: int = 200, **context):
    """The template with the shared context; `g.session` (or a fresh one) goes back as the cookie."""
    session = getattr(g, "session", None) or sessions.read(request) or sessions.new_session()
    locale = page_locale(request)
    note = context.pop("note", None) or session.pop("note", None)  # or left by the form that sent the user here
    body = render_template(template, note=note, locale=locale, languages=LANGUAGE_NAMES, csrf=session["csrf"],
                           csrf_field=sessions.CSRF_FIELD, user=getattr(g, "user", None), navigation=NAVIGATION,
                           t=lambda key, **values: t(key, locale, **values), **context)
    return respond(make_response(body, status), session)


def respond(response, session: dict):
    sessions.write(response, session)
    return finish_page(response, request)


def locale() -> str:
    return page_locale(request)
