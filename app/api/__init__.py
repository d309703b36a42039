"""The merchant REST API under /api/v1: one blueprint per module, each guarded against input the database cannot
take (`guard.py`)."""

from app.api import (
    campaigns,
    challenges,
    checkout,
    engagement,
    fcm,
    locations,
    member_admin,
    members,
    offers,
    pairing,
    programs,
    rewards,
    webhooks,
)
from app.api.guard import refuse_unusable_input

blueprints = [programs.bp, members.bp, checkout.bp, member_admin.bp, rewards.bp, pairing.bp, fcm.bp, webhooks.bp,
              engagement.bp, campaigns.bp, locations.bp, offers.bp, challenges.bp]
for _blueprint in blueprints:
    _blueprint.before_request(refuse_unusable_input)
