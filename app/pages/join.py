"""/join/<slug>: a program's public enrollment page, and what follows it: the card's "Add to Apple Wallet" and
"Add to Google Wallet" badges (the visitor's platform first; a computer gets a QR code to carry on with the
phone), the hand-off page that QR opens, the printable poster and the badges' artwork.

No API key anywhere: the form is protected by the visitor's session cookie and its CSRF token
(`app/member_sessions.py`), and rate limited per address (RATE_LIMIT_JOIN, `app/ratelimits.py`)."""

from __future__ import annotations

import segno
from flask import Response, abort, make_response, redirect, render_template, request, url_for
from marshmallow import ValidationError

import app.member_sessions as member_sessions
from app.api.present import apple_pass_url, member_json
from app.api.schemas import MemberIn
from app.domain.errors import InvalidInput
from app.domain.members import enroll_member, find_by_download_token
from app.domain.programs import find_by_slug
from app.models import Member, Program
from app.pages import bp
from app.pages.catalogue import LANGUAGE_NAMES, finish_page, page_locale, t
from app.qr import qr_svg
from app.services import app_config, db_session
from passes.strings import LOCALES

BADGE_BRANDS = ("apple", "google")
# Which form field each problem is about, and the sentence the page shows for it.
FIELD_ERRORS = {"name": "join.error.name", "email": "join.error.email", "phone": "join.error.phone",
                "referral_code": "join.error.referral", "consent": "join.error.consent"}


@bp.get("/join/<slug>")
def join(slug: str):
    program = program_or_404(slug)
    session = member_sessions.read(request) or member_sessions.new_session()
    form = {"referral_code": request.args.get("ref", "")[:16]}
    return respond(session, render_template("join.html", **page_context(session), program=program, form=form,
                                            errors={}))


@bp.post("/join/<slug>")
def join_submit(slug: str):
    """Enroll, then show the card's wallet badges. The member is signed in on this browser (their member page)."""
    program = program_or_404(slug)
    session = member_sessions.read(request)
    form = {name: request.form.get(name, "").strip() for name in ("name", "email", "phone", "referral_code")}
    if not member_sessions.csrf_matches(session, request.form.get(member_sessions.CSRF_FIELD)):
        return _form_again(member_sessions.new_session(), program, form, {"form": "signin.expired_form"}, 400)
    errors, member = _enroll(program, form)
    if errors:
        return _form_again(session, program, form, errors, 422)
    db_session().commit()
    return respond(member_sessions.new_session(member), redirect(url_for("pages.join_card", slug=program.slug), 303))


@bp.get("/join/<slug>/card")
def join_card(slug: str):
    """The new member's wallet badges; someone else's browser (no session) goes back to the form."""
    program = program_or_404(slug)
    session = member_sessions.read(request)
    member = session_member(session)
    if member is None or member.program_id != program.id:
        return respond(session or member_sessions.new_session(), redirect(url_for("pages.join", slug=slug), 303))
    return respond(session, render_template("join_card.html", **page_context(session), program=program,
                                            member=member, buttons=wallet_buttons(member), platform=platform(),
                                            qr_url=url_for("pages.join_card_qr", slug=slug)))


@bp.get("/join/<slug>/card-qr.svg")
def join_card_qr(slug: str):
    """The hand-off QR for a computer: the card's page (`/cards/<token>`), which a phone opens to add the card."""
    member = session_member(member_sessions.read(request))
    if member is None or member.program.slug != slug:
        abort(404)
    return _svg(qr_svg(card_page_url(member)), cache="no-store")


@bp.get("/cards/<token>")
def card_page(token: str):
    """The card link as a page (the desktop hand-off's QR opens it on the phone): the wallet badges, nothing else.
    Whoever holds the link holds the card anyway (`apple_pass_url` is the same token)."""
    member = find_by_download_token(db_session(), token) if len(token) >= 16 else None
    if member is None or member.deleted_at is not None:
        abort(404)
    session = member_sessions.read(request) or member_sessions.new_session()
    return respond(session, render_template("join_card.html", **page_context(session), program=member.program,
                                            member=member, buttons=wallet_buttons(member), platform=platform(),
                                            qr_url=None))


@bp.get("/join/<slug>/poster")
def poster(slug: str):
    """A4 poster for the counter or the window: the program's name, a QR code of its join page, a call to action
    in the visitor's language (?lang=ja for a Japanese one). SVG: prints sharp at any size from any browser."""
    program = program_or_404(slug)
    locale = page_locale(request)
    body = render_template("poster.svg", program=program, locale=locale, join_url=join_url(program),
                           qr=qr_path(join_url(program)), t=lambda key, **values: t(key, locale, **values))
    response = _svg(body, cache="no-cache")
    response.headers["Content-Disposition"] = f'inline; filename="{program.slug}-poster.svg"'
    return response


@bp.get("/badges/<brand>-<locale>.svg")
def badge(brand: str, locale: str):
    """The wallet badges, drawn here (never fetched from Apple or Google): black, with the brand's wording."""
    if brand not in BADGE_BRANDS or locale not in LOCALES:
        abort(404)
    text = t(f"badge.{brand}", locale)
    lines = badge_lines(brand, text)
    return _svg(render_template(f"badge_{brand}.svg", text=text, lines=lines, width=badge_width(lines)),
                cache="public, max-age=86400")


def wallet_buttons(member: Member) -> list[dict]:
    return badges_in_order(apple_pass_url(member), member_json(member)["google_save_url"], platform())


def badges_in_order(apple_url: str, google_url: str | None, visitor_platform: str) -> list[dict]:
    """The badges to show, in order: the visitor's platform first (Android: Google; otherwise Apple). Google's
    only when Google Wallet is configured (the member's `google_save_url` is not null)."""
    buttons = [{"brand": "apple", "href": apple_url, "label": "badge.apple"}]
    if google_url:
        buttons.append({"brand": "google", "href": google_url, "label": "badge.google"})
    return list(reversed(buttons)) if visitor_platform == "android" else buttons


def platform() -> str:
    """"ios", "android" or "desktop", from the User-Agent (an iPad asking for the desktop site says Macintosh:
    it gets the QR code as well as the badges, and can still tap the badge)."""
    agent = request.headers.get("User-Agent", "")
    if any(device in agent for device in ("iPhone", "iPad", "iPod")):
        return "ios"
    return "android" if "Android" in agent else "desktop"


def badge_lines(brand: str, text: str) -> list[str]:
    """Apple's English badge reads "Add to" over a larger "Apple Wallet"; every other badge is one line."""
    prefix = "Add to "
    return [prefix.strip(), text[len(prefix):]] if brand == "apple" and text.startswith(prefix) else [text]


def badge_width(lines: list[str]) -> int:
    """Icon, text and padding: Latin letters about half an em wide, CJK a full em (16 px, or 19 px for a second
    line)."""
    size = 19 if len(lines) == 2 else 16
    text = lines[-1]
    return 52 + round(sum(size if ord(char) > 0x2E80 else size * 0.5 for char in text)) + 14


def join_url(program: Program) -> str:
    return f"{app_config().public_base_url}/join/{program.slug}"


def card_page_url(member: Member) -> str:
    return f"{app_config().public_base_url}/cards/{member.download_token}"


def qr_path(text: str) -> tuple[int, str]:
    """The QR code as one SVG path (one unit per module, 4 modules of quiet zone): its size and path data."""
    matrix = segno.make(text, error="m").matrix
    size = len(matrix) + 8
    path = "".join(f"M{x + 4},{y + 4}h1v1h-1z" for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark)
    return size, path


def session_member(session: dict) -> Member | None:
    member_id = session.get("member_id")
    member = db_session().get(Member, member_id) if isinstance(member_id, int) else None
    return member if member_sessions.signed_in_member(session, member) else None


def page_context(session: dict) -> dict:
    locale = page_locale(request)
    return {"locale": locale, "languages": LANGUAGE_NAMES, "csrf": session["csrf"],
            "csrf_field": member_sessions.CSRF_FIELD, "t": lambda key, **values: t(key, locale, **values)}


def respond(session: dict, response) -> Response:
    """Every answer refreshes the visitor's cookie and remembers a language picked with ?lang=."""
    response = make_response(response)
    member_sessions.write(response, session, request)
    return finish_page(response, request)


def join_throttled(retry_after: int) -> Response:
    """The rate limiter's answer on the public forms: a page saying to wait (429)."""
    session = member_sessions.read(request) or member_sessions.new_session()
    body = render_template("public_message.html", **page_context(session), heading="Punchpass",
                           message="join.error.too_many")
    response = respond(session, make_response(body, 429))
    response.headers["Retry-After"] = str(retry_after)
    return response


def _enroll(program: Program, form: dict) -> tuple[dict, Member | None]:
    """Problems by field (catalogue keys), or the new member."""
    errors = {} if request.form.get("consent") == "yes" else {"consent": FIELD_ERRORS["consent"]}
    locale = page_locale(request)
    data = {key: value for key, value in form.items() if value}
    try:
        data = MemberIn().load({**data, "locale": locale if locale in program.locales else program.locales[0]})
    except ValidationError as error:
        errors.update({field: FIELD_ERRORS.get(field, "error.server") for field in error.messages})
    if errors:
        return errors, None
    try:
        return {}, enroll_member(db_session(), program, data, ip=request.remote_addr)
    except InvalidInput as error:
        db_session().rollback()
        return {error.field: FIELD_ERRORS.get(error.field, "error.server")}, None


def _form_again(session: dict, program: Program, form: dict, errors: dict, status: int) -> Response:
    body = render_template("join.html", **page_context(session), program=program, form=form, errors=errors)
    return respond(session, make_response(body, status))


def program_or_404(slug: str) -> Program:
    program = find_by_slug(db_session(), slug) if len(slug) <= 60 else None
    if program is None:
        session = member_sessions.read(request) or member_sessions.new_session()
        abort(respond(session, make_response(render_template(
            "public_message.html", **page_context(session), heading="Punchpass", message="join.not_found"), 404)))
    return program


def _svg(body: str, cache: str) -> Response:
    response = Response(body, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = cache
    return response
