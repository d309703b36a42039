"""Programs: the branding editor (with a live preview of the card's front), images, tiers and rewards. Every
save goes through the domain function behind the merchant API (`PATCH /api/v1/programs/{id}`, rewards,
image upload), checked by the API's schemas: the next pass a member downloads has the change."""

from __future__ import annotations

from flask import Response, abort, g, request, url_for
from sqlalchemy import select

from app.api.schemas import BrandingIn, RewardIn, RewardPatch, TierIn
from app.dashboard import bp
from app.dashboard.engagement import engagement_context
from app.dashboard.forms import FormError, load, number, save
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import owner_only, signed_in
from app.domain import programs, rewards
from app.domain.errors import DomainError, InvalidInput
from app.models import Member, Program
from app.pages.catalogue import t
from app.services import db_session
from passes.images import ImageError, prepare_image

IMAGE_KINDS = ("logo", "icon", "strip", "stamp")
NEW_TIER_ROWS = 2  # empty rows under the tiers, to add one


@bp.get("/programs")
@signed_in
def programs_list():
    found = db_session().scalars(select(Program).where(Program.merchant_id == g.user.merchant_id)
                                 .order_by(Program.id)).all()
    if len(found) == 1:
        return program(found[0].id)
    return render("dashboard/programs.html", programs=found)


@bp.get("/programs/<int:program_id>")
@signed_in
def program(program_id: int):
    session = db_session()
    found = _program(program_id)
    images = programs.program_images(session, found.id)
    sample = session.scalar(select(Member).where(Member.program_id == found.id, Member.deleted_at.is_(None))
                            .order_by(Member.id))
    return render("dashboard/program.html", program=found, sample=sample, new_tier_rows=NEW_TIER_ROWS,
                  has_logo="logo.png" in images, image_kinds=_image_kinds(found),
                  rewards=[r for r in found.rewards if r.retired_at is None], **engagement_context(session, found))


def _image_kinds(program: Program) -> tuple[str, ...]:
    """A stamp card's strip is its stamps, so it takes a stamp icon instead of a strip; a points card the reverse."""
    unused = "strip" if program.type == "stamps" else "stamp"
    return tuple(kind for kind in IMAGE_KINDS if kind != unused)


@bp.get("/programs/<int:program_id>/images/<name>")
@signed_in
def program_image(program_id: int, name: str):
    """The uploaded images, for the preview."""
    data = programs.program_images(db_session(), _program(program_id).id).get(name)
    if data is None:
        abort(404)
    return Response(data, mimetype="image/png", headers={"Cache-Control": "no-store"})


@bp.post("/programs/<int:program_id>/branding")
@signed_in
@owner_only
def save_branding(program_id: int):
    found = _program(program_id)
    form = {name: request.form.get(name, "") for name in programs.BRANDING_FIELDS}
    form["logo_text"] = form["logo_text"].strip() or None

    def change():
        programs.update_program(db_session(), found, {"branding": load(BrandingIn(), form)})
    return save(change, t("dash.saved.branding", locale()), _back(program_id))


@bp.post("/programs/<int:program_id>/images")
@signed_in
@owner_only
def upload_image(program_id: int):
    found = _program(program_id)
    kind, upload = request.form.get("kind"), request.files.get("file")

    def change():
        if kind not in _image_kinds(found) or upload is None or not upload.filename:
            raise InvalidInput("file", t("dash.image.choose", locale()))
        try:
            files = prepare_image(kind, upload.read())
        except ImageError as error:
            raise FormError(str(error)) from None
        programs.set_program_images(db_session(), found, kind, files)
    return save(change, t("dash.saved.image", locale()), _back(program_id))


@bp.post("/programs/<int:program_id>/tiers")
@signed_in
@owner_only
def save_tiers(program_id: int):
    """The whole tier set, as the API replaces it: a row with an id changes that tier, an emptied name removes it."""
    found = _program(program_id)
    rows = zip(request.form.getlist("tier_id"), request.form.getlist("tier_name"),
               request.form.getlist("tier_threshold"), strict=False)
    items = [{"name": name.strip(), "threshold": number(threshold), **({"id": number(id_)} if id_ else {})}
             for id_, name, threshold in rows if name.strip()]

    def change():
        programs.update_program(db_session(), found, {"tiers": load(TierIn(many=True), items)})
    return save(change, t("dash.saved.tiers", locale()), _back(program_id))


@bp.post("/programs/<int:program_id>/rewards")
@signed_in
@owner_only
def create_reward(program_id: int):
    found = _program(program_id)

    def change():
        data = load(RewardIn(), {"name": request.form.get("name", "").strip(),
                                 "points_cost": number(request.form.get("points_cost"))})
        programs.add_reward(db_session(), found, data["name"], data["points_cost"])
    return save(change, t("dash.saved.reward", locale()), _back(program_id))


@bp.post("/rewards/<int:reward_id>")
@signed_in
@owner_only
def edit_reward(reward_id: int):
    reward = _reward(reward_id)

    def change():
        data = load(RewardPatch(), {"name": request.form.get("name", "").strip(),
                                    "points_cost": number(request.form.get("points_cost")),
                                    "active": request.form.get("active") == "on"})
        rewards.update_reward(db_session(), reward, data)
    return save(change, t("dash.saved.reward", locale()), _back(reward.program_id))


@bp.post("/rewards/<int:reward_id>/retire")
@signed_in
@owner_only
def retire_reward(reward_id: int):
    reward = _reward(reward_id)
    return save(lambda: rewards.retire_reward(db_session(), reward), t("dash.saved.retired", locale()),
                _back(reward.program_id))


def _program(program_id: int) -> Program:
    """The user's merchant's program; another merchant's is a 404 (the domain's rule)."""
    try:
        return programs.get_program(db_session(), g.user.merchant_id, program_id)
    except DomainError:
        abort(404)


def _reward(reward_id: int):
    try:
        return rewards.get_merchant_reward(db_session(), g.user.merchant_id, reward_id)
    except DomainError:
        abort(404)


def _back(program_id: int) -> str:
    return url_for("dashboard.program", program_id=program_id)
