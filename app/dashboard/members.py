"""Members: search (the API's member list), a member's ledger, an adjustment with a reason (staff may do this),
and delete on request (owner)."""

from __future__ import annotations

from flask import abort, g, request, url_for
from sqlalchemy import select

from app.api.schemas import AdjustIn
from app.dashboard import bp
from app.dashboard.forms import load, number, save
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import owner_only, signed_in
from app.domain import ledger, member_lifecycle, members
from app.domain.errors import DomainError
from app.models import Program
from app.pages.catalogue import t
from app.services import db_session

PAGE_SIZE = 50
LEDGER_SIZE = 100


@bp.get("/members")
@signed_in
def members_list():
    session = db_session()
    owned = session.scalars(select(Program).where(Program.merchant_id == g.user.merchant_id)
                            .order_by(Program.id)).all()
    chosen = next((p for p in owned if str(p.id) == request.args.get("program")), owned[0] if owned else None)
    query = request.args.get("q", "").strip()[:100]
    found = member_lifecycle.search_members(session, chosen, query=query or None, limit=PAGE_SIZE) if chosen else []
    return render("dashboard/members.html", programs=owned, program=chosen, query=query, members=found)


@bp.get("/members/<int:member_id>")
@signed_in
def member(member_id: int):
    found = _member(member_id)
    entries = ledger.entries_for(db_session(), found, None, LEDGER_SIZE)
    return render("dashboard/member.html", member=found, entries=entries)


@bp.post("/members/<int:member_id>/adjust")
@signed_in
def adjust(member_id: int):
    """Staff and owners: a correction with a reason the member reads in their history."""
    back = url_for("dashboard.member", member_id=member_id)

    def change():
        data = load(AdjustIn(), {"points": number(request.form.get("points")),
                                 "reason": request.form.get("reason", "").strip()})
        locked = ledger.get_member_for_update(db_session(), g.user.merchant_id, member_id)
        ledger.adjust_points(db_session(), locked, data["points"], reason=data["reason"])
    return save(change, t("dash.saved.adjusted", locale()), back)


@bp.post("/members/<int:member_id>/delete")
@signed_in
@owner_only
def delete(member_id: int):
    found = _member(member_id)
    if request.form.get("confirm") != "yes":
        abort(400, "confirm")
    program_id = found.program_id
    return save(lambda: member_lifecycle.delete_member(db_session(), found), t("dash.saved.deleted", locale()),
                url_for("dashboard.members_list", program=program_id))


def _member(member_id: int):
    try:
        return members.get_member(db_session(), g.user.merchant_id, member_id)
    except DomainError:
        abort(404)
