"""The merchant REST API under /api/v1: one blueprint per module, each guarded against input the database cannot
take (`guard.py`)."""

from app.api import checkout, fcm, member_admin, members, pairing, programs, rewards, webhooks
from app.api.guard import refuse_unusable_input

blueprints = [programs.bp, members.bp, checkout.bp, member_admin.bp, rewards.bp, pairing.bp, fcm.bp, webhooks.bp]
for _blueprint in blueprints:
    _blueprint.before_request(refuse_unusable_input)
