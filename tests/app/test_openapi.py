"""`/openapi.json` describes the merchant API of the contract; `/docs` renders it."""

from __future__ import annotations

import re

import pytest

from app.untrusted import STORABLE_TEXT_PATTERN
from tests.factories import earn, make_member, make_merchant, make_program

CONTRACT_OPERATIONS = {
    ("post", "/api/v1/programs"), ("get", "/api/v1/programs/{program_id}"),
    ("post", "/api/v1/programs/{program_id}/rewards"), ("post", "/api/v1/programs/{program_id}/members"),
    ("get", "/api/v1/members/{member_id}"), ("post", "/api/v1/members/{member_id}/earn"),
    ("post", "/api/v1/members/{member_id}/redeem"), ("get", "/api/v1/members/{member_id}/transactions"),
    ("post", "/api/v1/checkout/lookup"), ("get", "/api/v1/members/{member_id}/pass.pkpass"),
    ("post", "/api/v1/transactions/{transaction_id}/reverse"),
}


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200, "GET /openapi.json failed; see test_openapi_json_is_openapi_3"
    return response.get_json()


def test_openapi_json_is_openapi_3(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]


def test_openapi_lists_every_contract_operation(spec):
    listed = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert CONTRACT_OPERATIONS <= listed, CONTRACT_OPERATIONS - listed


@pytest.mark.parametrize("method, path, properties", [
    ("post", "/api/v1/programs", {"name", "currency", "points_per_unit", "branding", "tiers", "locales"}),
    ("post", "/api/v1/programs/{program_id}/rewards", {"name", "points_cost"}),
    ("post", "/api/v1/programs/{program_id}/members", {"name", "email", "external_id", "locale", "referral_code"}),
    ("post", "/api/v1/members/{member_id}/earn", {"amount", "points", "reference"}),
    ("post", "/api/v1/members/{member_id}/redeem", {"points", "reward_id"}),
    ("post", "/api/v1/checkout/lookup", {"barcode", "phone", "email"}),
    ("post", "/api/v1/checkout/holds", {"barcode", "member_id", "points", "reward_id", "ttl_seconds"}),
    ("post", "/api/v1/transactions/{transaction_id}/reverse", {"points"}),
])
def test_openapi_describes_request_bodies(spec, method, path, properties):
    schema = resolve(spec, spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"])
    assert properties <= set(schema["properties"]), set(schema["properties"])


def test_openapi_declares_bearer_auth_on_the_merchant_api(spec):
    schemes = spec["components"]["securitySchemes"]
    bearer = [name for name, scheme in schemes.items() if scheme["type"] == "http" and scheme["scheme"] == "bearer"]
    assert bearer, schemes
    earn = spec["paths"]["/api/v1/members/{member_id}/earn"]["post"]
    assert any(set(requirement) & set(bearer) for requirement in earn.get("security", spec.get("security", [])))


def test_openapi_document_is_valid(spec):
    validator = pytest.importorskip("openapi_spec_validator",
                                    reason="openapi-spec-validator is not installed in the venv")
    validator.validate(spec)


def test_docs_page_is_html(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "/openapi.json" in response.get_data(as_text=True)


def test_docs_page_loads_only_same_origin_assets_which_answer_200(client):
    html = client.get("/docs").get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) >= 4, urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        with client.get(url) as asset:
            assert asset.status_code == 200, url
    assert re.search(r"<script>|<style>|\son\w+=|style=", html) is None, "inline script or style on /docs"


def resolve(spec: dict, schema: dict) -> dict:
    """Follow a local `$ref` such as `#/components/schemas/EarnIn`."""
    while "$ref" in schema:
        node = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_error_is_documented_as_a_problem(spec):
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"}


def test_every_api_operation_documents_401_and_429_with_retry_after(spec):
    for method, path, operation in operations(spec):
        if path.startswith("/api/"):
            assert {"401", "429"} <= set(operation["responses"]), (method, path)
            assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_decimals_are_documented_as_the_strings_they_are(spec, app, client):
    schemas = spec["components"]["schemas"]
    assert schemas["ProgramOut"]["properties"]["points_per_unit"] == {"type": "string", "format": "decimal"}
    assert schemas["TransactionOut"]["properties"]["amount"]["type"] == ["string", "null"]
    _, key = make_merchant(app)
    assert isinstance(make_program(client, key, points_per_unit="1.5")["points_per_unit"], str)


def test_constraints_marshmallow_checks_in_code_are_in_the_document(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["EarnIn"]["oneOf"] == [{"required": ["amount"]}, {"required": ["points"]},
                                          {"required": ["items"]}, {"required": ["stamps"]}]
    assert schemas["RedeemIn"]["oneOf"] == [{"required": ["points"]}, {"required": ["reward_id"]},
                                            {"required": ["voucher_id"]}]
    assert schemas["AdjustIn"]["properties"]["points"]["not"] == {"const": 0}
    assert schemas["HoldIn"]["allOf"] == [
        {"oneOf": [{"required": ["barcode"]}, {"required": ["member_id"]}]},
        {"oneOf": [{"required": ["points"]}, {"required": ["reward_id"]}]}]
    assert schemas["LookupIn"]["oneOf"] == [{"required": ["barcode"]}, {"required": ["phone"]},
                                            {"required": ["email"]}]
    assert schemas["HoldIn"]["properties"]["ttl_seconds"]["maximum"] == 3600
    upload = spec["paths"]["/api/v1/programs/{program_id}/images/{kind}"]["put"]
    kind = next(parameter for parameter in upload["parameters"] if parameter["name"] == "kind")
    assert kind["schema"]["enum"] == ["logo", "icon", "strip", "stamp"]


@pytest.mark.parametrize("method, path, required", [
    ("post", "/api/v1/programs", True), ("post", "/api/v1/members/{member_id}/earn", True),
    ("put", "/api/v1/programs/{program_id}/images/{kind}", True),
    ("patch", "/api/v1/programs/{program_id}", False), ("post", "/api/v1/transactions/{transaction_id}/reverse", False),
])
def test_a_body_is_required_where_an_empty_one_is_refused(spec, method, path, required):
    assert spec["paths"][path][method]["requestBody"]["required"] is required


@pytest.mark.parametrize("value, accepted", [
    ("12.50", True), (12.5, True), (40, True), ("9999999.99", True),
    ("1e3", False), (" 12.5", False), ("1_000", False), ("12.505", False), ("-1", False), (True, False),
    (1_000_000_000.01, False),
])
def test_earn_amount_accepts_exactly_what_the_document_says(app, client, value, accepted):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    response = earn(client, key, member["id"], amount=value)
    assert (response.status_code == 201) is accepted, response.get_json()


def test_points_may_be_a_json_number_without_a_fraction(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    assert earn(client, key, member["id"], points=40.0).status_code == 201
    assert earn(client, key, member["id"], points=40.5).status_code == 422
    assert earn(client, key, member["id"], points="40").status_code == 422


def test_query_text_says_it_refuses_nul_like_body_text(spec):
    """app/api/guard.py refuses a NUL in query text (422): the schema says so, so a client (or schemathesis) knows."""
    parameters = {parameter["name"]: parameter["schema"]
                  for parameter in spec["paths"]["/api/v1/programs/{program_id}/members"]["get"]["parameters"]}
    assert parameters["q"]["pattern"] == parameters["tier"]["pattern"] == STORABLE_TEXT_PATTERN


def test_every_schema_keeps_its_own_name(app):
    """Two schema classes of one name make apispec rename one and leave refs to a name that is not there."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app._get_spec(force_update=True)
    assert not [str(w.message) for w in caught if "Multiple schemas resolved" in str(w.message)]
