"""/dashboard: the merchant's own pages (programs and branding, members, rewards, tiers, tills, API keys,
webhooks, analytics). Server-rendered; every change goes through the same domain function as the merchant API.

An APIBlueprint kept out of /openapi.json: APIFlask reads every blueprint's `enable_openapi` when it collects
the auth of before_request hooks, which a plain Flask Blueprint with such a hook lacks."""

from apiflask import APIBlueprint

bp = APIBlueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates", enable_openapi=False)
