"""Programs, their rewards and images (admin keys only)."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.present import program_json
from app.api.schemas import ImagePath, ImageUpload, ProgramIn, ProgramOut, ProgramPatch, RewardIn, RewardOut
from app.auth import ADMIN, auth, current_caller
from app.domain import programs
from app.domain.errors import InvalidInput
from app.services import db_session
from passes.images import ImageError, prepare_image

bp = APIBlueprint("programs", __name__, url_prefix="/api/v1", tag="Programs")


@bp.post("/programs")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(ProgramIn, arg_name="data")
@bp.output(ProgramOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 409, 413, 422))
def create_program(data):
    program = programs.create_program(db_session(), current_caller().merchant_id, data)
    return program_json(program, [])


@bp.get("/programs/<int:program_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(ProgramOut)
@bp.doc(responses=problems(401, 403, 404))
def get_program(program_id):
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return program_json(program, list(programs.program_images(session, program.id)))


@bp.patch("/programs/<int:program_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(ProgramPatch, arg_name="data")  # every field is optional; a tier item stays complete
@bp.output(ProgramOut)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def update_program(program_id, data):
    """Branding, terms or tiers; every member's card is re-issued with the new design."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    programs.update_program(session, program, data)
    return program_json(program, list(programs.program_images(session, program.id)))


@bp.post("/programs/<int:program_id>/rewards")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(RewardIn, arg_name="data")
@bp.output(RewardOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def create_reward(program_id, data):
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return programs.add_reward(session, program, data["name"], data["points_cost"])


@bp.put("/programs/<int:program_id>/images/<kind>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(ImagePath, location="path", arg_name="path")
@bp.input(ImageUpload, location="files", arg_name="upload")
@bp.output(ProgramOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def upload_image(program_id, kind, path, upload):
    """Upload a logo, icon, strip or stamp once (PNG or JPEG); it is resized to Apple's @1x, @2x and @3x sizes. A
    stamp card's `stamp` icon marks each collected stamp of its strip (transparent: cut out of the stamp; opaque:
    filling it); its strip is always the stamps."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    try:
        files = prepare_image(kind, upload["file"].read())
    except ImageError as error:
        raise InvalidInput("file", str(error)) from None
    programs.set_program_images(session, program, kind, files)
    return program_json(program, list(programs.program_images(session, program.id)))
