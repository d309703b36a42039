"""`/openapi.json` describes the merchant API of the contract; `/docs` renders it."""

from __future__ import annotations

import re

import pytest

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
    ("post", "/api/v1/checkout/lookup", {"barcode"}),
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
