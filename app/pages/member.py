"""The member's own pages: "lost your card?" (a magic link by mail), the link itself, and /member: balance,
tier and progress, held points, history, affordable rewards, the referral link, the wallet badges again.

The link's GET only asks "open your card on this device?"; the button POSTs and spends it. Mail scanners that
fetch every link in a message would otherwise use it up before the customer clicks."""

from __future__ import annotations

from flask import make_response, redirect, render_template, request, url_for

import app.member_sessions as member_sessions
from app.domain import member_links
from app.domain.ledger import entries_for
from app.domain.members import next_goals
from app.domain.rewards import redeemable_rewards
from app.pages import bp
from app.pages.catalogue import page_locale, t
from app.pages.join import (
    join_url,
    page_context,
    platform,
    program_or_404,
    respond,
    session_member,
    wallet_buttons,
)
from app.services import db_session

HISTORY_PAGE = 20
ENTRY_LABELS = ("earn", "redeem", "hold", "capture", "release", "adjust", "reversal", "expire", "referral")


@bp.get("/join/<slug>/lost")
def lost_card(slug: str):
    program = program_or_404(slug)
    session = member_sessions.read(request) or member_sessions.new_session()
    return respond(session, render_template("lost_card.html", **page_context(session), program=program, sent=False))


@bp.post("/join/<slug>/lost")
def lost_card_submit(slug: str):
    """The same answer whatever the email: the worker mails a link only if it belongs to a member."""
    program = program_or_404(slug)
    session = member_sessions.read(request)
    if not member_sessions.csrf_matches(session, request.form.get(member_sessions.CSRF_FIELD)):
        session = member_sessions.new_session()
        return respond(session, make_response(render_template(
            "lost_card.html", **page_context(session), program=program, sent=False, error="signin.expired_form"), 400))
    email = request.form.get("email", "").strip()[:254]
    if "@" in email:
        member_links.request_member_links(db_session(), program, email, page_locale(request))
        db_session().commit()
    return respond(session, render_template("lost_card.html", **page_context(session), program=program, sent=True))


@bp.get("/member/link/<token>")
def member_link(token: str):
    session = member_sessions.read(request) or member_sessions.new_session()
    live = len(token) <= 100 and member_links.live_link(db_session(), token) is not None
    body = render_template("member_link.html", **page_context(session), token=token, live=live)
    return respond(session, make_response(body, 200 if live else 410))


@bp.post("/member/link/<token>")
def member_link_use(token: str):
    session = member_sessions.read(request)
    if not member_sessions.csrf_matches(session, request.form.get(member_sessions.CSRF_FIELD)):
        return redirect(url_for("pages.member_link", token=token), 303)
    member = member_links.use_link(db_session(), token) if len(token) <= 100 else None
    if member is None:
        session = session or member_sessions.new_session()
        body = render_template("member_link.html", **page_context(session), token=token, live=False)
        return respond(session, make_response(body, 410))
    db_session().commit()
    return respond(member_sessions.new_session(member), redirect(url_for("pages.member_page"), 303))


@bp.get("/member")
def member_page():
    session = member_sessions.read(request) or member_sessions.new_session()
    member = session_member(session)
    if member is None:
        return respond(session, make_response(render_template(
            "public_message.html", **page_context(session), heading=t("me.title", page_locale(request)),
            message="me.signed_out"), 401))
    before = request.args.get("before", type=int)
    entries = entries_for(db_session(), member, before, HISTORY_PAGE + 1)
    upcoming_tier, upcoming_reward = next_goals(member)
    referral_url = f"{join_url(member.program)}?ref={member.referral_code}"
    return respond(session, render_template(
        "member.html", **page_context(session), member=member, program=member.program,
        tier_progress=tier_progress(member, upcoming_tier), upcoming_tier=upcoming_tier,
        upcoming_reward=upcoming_reward, rewards=redeemable_rewards(member.program, member.available_points),
        entries=entries[:HISTORY_PAGE], older=entries[HISTORY_PAGE - 1].id if len(entries) > HISTORY_PAGE else None,
        paged=before is not None, referral_url=referral_url, buttons=wallet_buttons(member), platform=platform(),
        entry_label=lambda kind: f"kind.{kind}" if kind in ENTRY_LABELS else "kind.other"))


@bp.post("/member/sign-out")
def member_sign_out():
    session = member_sessions.read(request)
    if member_sessions.csrf_matches(session, request.form.get(member_sessions.CSRF_FIELD)):
        session = member_sessions.new_session()
    return respond(session, redirect(url_for("pages.member_page"), 303))


def tier_progress(member, upcoming_tier) -> tuple[int, int] | None:
    """(points earned since the current tier's threshold, points between it and the next): a progress bar."""
    if upcoming_tier is None:
        return None
    floor = member.tier.threshold if member.tier else 0
    span = max(1, member.lifetime_points + upcoming_tier.points_needed - floor)
    return min(span, max(0, member.lifetime_points - floor)), span
