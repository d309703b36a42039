"""The save link is public, stable and unguessable, like the Apple card link; the Google routes stay out of the
merchant API's OpenAPI document."""

from urllib.parse import urlsplit

from tests.factories import make_member, make_merchant, make_program


def test_the_save_link_is_stable_and_an_unknown_token_is_404(google_app):
    client = google_app.test_client()
    _, key = make_merchant(google_app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"])
    path = urlsplit(member["google_save_url"]).path
    assert client.get(path).status_code == 302 and client.get(path).status_code == 302
    assert client.get(path[:-3] + "xyz").status_code == 404
    assert client.get("/google/save/short").status_code == 404


def test_google_routes_are_not_part_of_the_merchant_api_document(google_app):
    paths = google_app.test_client().get("/openapi.json").get_json()["paths"]
    assert not [path for path in paths if path.startswith("/google")]
