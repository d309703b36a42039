"""/dashboard: the merchant's own pages (programs and branding, members, rewards, tiers, tills, API keys,
webhooks, analytics). Server-rendered; every change goes through the same domain function as the merchant API."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates")

