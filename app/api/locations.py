"""A program's shops and iBeacons, where its cards surface on the lock screen (admin keys only). One list
replaced as a whole (PUT), so a till-side script cannot leave half a set behind."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.location_schemas import RelevanceIn, RelevanceOut
from app.api.openapi import problems
from app.auth import ADMIN, auth, current_caller
from app.domain import programs, relevance
from app.services import db_session

bp = APIBlueprint("locations", __name__, url_prefix="/api/v1", tag="Locations")


def _relevance_json(program) -> dict:
    return {"locations": program.locations or [], "beacons": program.beacons or []}


@bp.get("/programs/<int:program_id>/locations")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(RelevanceOut)
@bp.doc(responses=problems(401, 403, 404))
def get_locations(program_id):
    return _relevance_json(programs.get_program(db_session(), current_caller().merchant_id, program_id))


@bp.put("/programs/<int:program_id>/locations")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(RelevanceIn, arg_name="data")
@bp.output(RelevanceOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def put_locations(program_id, data):
    """Replace the program's locations (at most 10, each with a relevant text per locale) and iBeacons (at most
    10). Apple cards carry them (`locations`, `beacons`), the Google class its `merchantLocations`; a change
    re-issues every card."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    relevance.set_relevance(session, program, data["locations"], data["beacons"])
    return _relevance_json(program)
