"""Security headers: nosniff everywhere, no caching of API JSON, a strict Content-Security-Policy on HTML."""

from __future__ import annotations

import pytest

from tests.factories import auth, make_member, make_merchant, make_program


@pytest.fixture
def member_and_key(app, client):
    _, key = make_merchant(app)
    return make_member(client, key, make_program(client, key)["id"]), key


def test_every_response_says_nosniff(client, member_and_key):
    member, key = member_and_key
    for response in (client.get("/"), client.get("/openapi.json"), client.get("/docs"),
                     client.get(f"/api/v1/members/{member['id']}", headers=auth(key)),
                     client.get("/api/v1/members/1"), client.get("/no/such/page"),
                     client.get(member["apple_pass_url"].removeprefix("https://punchpass.test")),
                     client.get("/static/swagger-ui/swagger-ui.css")):
        with response:
            assert response.headers["X-Content-Type-Options"] == "nosniff", response.request.path


def test_api_json_is_never_stored_by_a_cache(client, member_and_key):
    member, key = member_and_key
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).headers["Cache-Control"] == "no-store"
    problem = client.get("/api/v1/members/987654321", headers=auth(key))
    assert problem.mimetype == "application/problem+json" and problem.headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/members/1").headers["Cache-Control"] == "no-store"  # 401


def test_html_pages_get_a_strict_content_security_policy(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_docs_policy_allows_only_data_images_beyond_self(client):
    policy = client.get("/docs").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'" and directives["img-src"] == "'self' data:"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_json_and_files_carry_no_page_policy(client):
    assert "Content-Security-Policy" not in client.get("/openapi.json").headers
