"""Members seen from the merchant's back office (admin keys): correct their details, list and search them,
delete one on request (the till's read-and-earn routes are in members.py)."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.present import member_json
from app.api.schemas import MemberOut, MemberPage, MemberPatch, MemberQuery
from app.auth import ADMIN, auth, current_caller
from app.domain import member_lifecycle, members, programs
from app.services import db_session

bp = APIBlueprint("member_admin", __name__, url_prefix="/api/v1", tag="Member records")


@bp.patch("/members/<int:member_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(MemberPatch, arg_name="data")
@bp.output(MemberOut)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def update_member(member_id, data):
    """Correct a member's name, email, phone, locale or external_id (null clears an optional one); a new name
    re-issues the card."""
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    return member_json(member_lifecycle.update_member(session, member, data))


@bp.delete("/members/<int:member_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output({}, status_code=204)
@bp.doc(responses=problems(400, 401, 403, 404))
def delete_member(member_id):
    """Delete on request (GDPR, APPI, PIPA): name, email, phone and external_id are erased, the ledger is kept
    for accounting, the card is voided on the customer's devices, and `member.deleted` is sent. The member is
    not found afterwards."""
    session = db_session()
    member_lifecycle.delete_member(session, members.get_member(session, current_caller().merchant_id, member_id))
    return ""


@bp.get("/programs/<int:program_id>/members")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(MemberQuery, location="query", arg_name="query")
@bp.output(MemberPage)
@bp.doc(responses=problems(401, 403, 404, 422))
def list_members(program_id, query):
    """The program's members, newest first; `q` searches name, email, phone and external_id, `tier` filters by
    tier name; pass `next_before` back as `before` for the next page."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    found = member_lifecycle.search_members(session, program, query=query.get("q"), tier=query.get("tier"),
                                            before=query.get("before"), limit=query["limit"] + 1)
    page = found[:query["limit"]]
    return {"data": [member_json(member) for member in page],
            "next_before": page[-1].id if len(found) > query["limit"] else None}
