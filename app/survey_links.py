"""Survey links: `/join/<slug>/survey/<token>`, the token the invitation's id signed with SECRET_KEY (a salt of
its own), so nobody can guess another member's link or make one up. Stable per invitation: the card's link does
not change each time the card is built. Whether it is still open is the invitation's business."""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.models import Program, SurveyInvitation
from app.services import app_config

_SALT = "survey-invitation"


def survey_token(invitation_id: int) -> str:
    return _serializer().dumps(invitation_id)


def invitation_id_from(token: str) -> int | None:
    """The invitation a token names; None when it is forged or mangled."""
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def survey_url(program: Program, invitation: SurveyInvitation) -> str:
    return f"{app_config().public_base_url}/join/{program.slug}/survey/{survey_token(invitation.id)}"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)
