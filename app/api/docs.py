"""`/docs`: Swagger UI over /openapi.json, from the copy in app/static/swagger-ui (swagger-ui-dist 5.35.0 from
npm, Apache-2.0): a self-hosted service loads nothing from a CDN, and the page's scripts are files, so its
Content-Security-Policy stays `default-src 'self'`. (APIFlask's own page has an inline script and style.)"""

from __future__ import annotations

from flask import Blueprint, render_template_string

bp = Blueprint("docs", __name__)


@bp.get("/docs")
def docs():
    return render_template_string(PAGE)


PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Punchpass API</title>
<link rel="stylesheet" href="{{ url_for('static', filename='swagger-ui/swagger-ui.css') }}">
<body>
<div id="swagger-ui" data-spec-url="{{ url_for('openapi.spec') }}"></div>
<script src="{{ url_for('static', filename='swagger-ui/swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('static', filename='swagger-ui/swagger-ui-standalone-preset.js') }}"></script>
<script src="{{ url_for('static', filename='swagger-ui/init.js') }}"></script>
</body></html>"""
