"""Headers every response carries, set in one `after_request` hook.

- `X-Content-Type-Options: nosniff`: a browser never second-guesses the declared type (an uploaded image or a
  JSON body is never run as HTML or script).
- `Cache-Control: no-store` on the API's JSON: balances, keys and personal data stay out of shared and browser
  caches.
- A strict `Content-Security-Policy` on HTML: only this origin's files, no inline script or style. /docs also
  allows `data:` images (Swagger UI's icons are data URIs in its stylesheet)."""

from __future__ import annotations

from flask import Response, request

from app.errors import PROBLEM_JSON

CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
DOCS_CSP = CSP + "; img-src 'self' data:"


def add_security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith("/api/") and response.mimetype in ("application/json", PROBLEM_JSON):
        response.headers["Cache-Control"] = "no-store"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = DOCS_CSP if request.path == "/docs" else CSP
    return response
