"""``/api/v1/discovery`` (Swagger 2.0, Quay's shape), the OpenAPI 3 schema and the docs page."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.views.static import serve

from accounts import scopes
from quay_site import urls
from registry.rest import discovery
from registry.rest.schema import required_scope
from tests.registry_rest.conftest import Api


@pytest.fixture(scope="module")
def document():
    discovery._paths_definitions_tags.cache_clear()
    discovery._openapi_document.cache_clear()
    response = Client().get("/api/v1/discovery", HTTP_HOST="registry.example")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_is_swagger_2_with_quays_oauth_scopes(document):
    assert document["swagger"] == "2.0"
    assert document["host"] == "registry.example" and document["basePath"] == "/"
    oauth = document["securityDefinitions"]["oauth2_implicit"]
    assert oauth["type"] == "oauth2" and oauth["flow"] == "implicit"
    assert oauth["authorizationUrl"] == "http://registry.example/oauth/authorize"
    assert oauth["scopes"] == scopes.DESCRIPTIONS
    assert set(oauth["scopes"]) == {
        "repo:read",
        "repo:write",
        "repo:admin",
        "repo:create",
        "user:read",
        "user:admin",
        "org:admin",
        "super:user",
    }


def test_every_api_view_path_and_method_is_described_with_its_scope(document):
    endpoints = discovery.api_endpoints()
    assert len(endpoints) > 20
    for path, view_class in endpoints:
        entry = document["paths"][path]
        for method in ("get", "post", "put", "delete"):
            if not hasattr(view_class, method):
                assert method not in entry, (path, method)
                continue
            operation = entry[method]
            scope = required_scope(view_class, method)
            if scope is None:
                assert "security" not in operation, (path, method)
            else:
                assert operation["security"] == [{"oauth2_implicit": [scope]}], (path, method)
            names = [p["name"] for p in operation["parameters"] if p["in"] == "path"]
            assert names == re.findall(r"{(\w+)}", path), (path, method)
    # Paths of other apps come from the same URL patterns.
    assert "/api/v1/user/" in document["paths"]


@pytest.mark.parametrize(
    "path, method, operation_id, scope",
    [
        ("/api/v1/repository", "post", "createRepo", "repo:create"),
        ("/api/v1/repository", "get", "listRepos", "repo:read"),
        ("/api/v1/repository/{repository}", "get", "getRepo", "repo:read"),
        ("/api/v1/repository/{repository}", "put", "updateRepo", "repo:write"),
        ("/api/v1/repository/{repository}", "delete", "deleteRepository", "repo:admin"),
        ("/api/v1/repository/{repository}/changevisibility", "post", "changeRepoVisibility", "repo:admin"),
        ("/api/v1/repository/{repository}/permissions/user/{username}", "put", "changeUserPermissions", "repo:admin"),
        ("/api/v1/repository/{repository}/permissions/team/", "get", "listRepoTeamPermissions", "repo:admin"),
        ("/api/v1/repository/{repository}/logs", "get", "listRepoLogs", "repo:admin"),
        ("/api/v1/user/logs", "get", "listUserLogs", "user:admin"),
        ("/api/v1/organization/{orgname}/logs", "get", "listOrgLogs", "org:admin"),
        ("/api/v1/user/starred", "post", "createStar", "repo:read"),
    ],
)
def test_quay_operation_ids_and_scopes(document, path, method, operation_id, scope):
    operation = document["paths"][path][method]
    assert operation["operationId"] == operation_id
    assert operation["security"] == [{"oauth2_implicit": [scope]}]
    assert operation["description"]
    assert set(operation["responses"]) >= {"400", "401", "403", "404"}


def test_query_parameters_and_bodies_are_described(document):
    listing = document["paths"]["/api/v1/repository"]["get"]
    query = {p["name"]: p for p in listing["parameters"] if p["in"] == "query"}
    assert set(query) >= {"namespace", "public", "starred", "last_modified", "popularity", "next_page"}
    assert query["public"]["type"] == "boolean" and query["namespace"]["type"] == "string"
    create = document["paths"]["/api/v1/repository"]["post"]
    [body] = [p for p in create["parameters"] if p["in"] == "body"]
    name = body["schema"]["$ref"].removeprefix("#/definitions/")
    definition = document["definitions"][name]
    assert set(definition["properties"]) == {"repository", "visibility", "namespace", "description", "repo_kind"}
    assert set(definition["required"]) == {"repository", "visibility"}
    assert "201" in create["responses"]
    assert document["paths"]["/api/v1/repository/{repository}"]["delete"]["responses"]["204"]


def test_every_reference_resolves(document):
    text = str(document)
    refs = set(re.findall(r"#/definitions/(\w+)", text))
    assert refs and refs <= set(document["definitions"])
    assert "#/components/" not in text
    assert "ApiError" in document["definitions"]


def test_discovery_is_public_and_tags_are_sorted(document):
    tags = [t["name"] for t in document["tags"]]
    assert tags == sorted(tags) and "repositories" in tags
    assert Api().get("discovery").status_code == 200
    assert "security" not in document["paths"]["/api/v1/discovery"]["get"]


@pytest.mark.django_db
def test_the_openapi_schema_covers_the_rest_api():
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/repository/{repository}" in schema["paths"]
    assert not any(path.startswith("/v2/") for path in schema["paths"])
    operation = schema["paths"]["/api/v1/repository/{repository}"]["delete"]
    assert operation["operationId"] == "deleteRepository"
    assert {"oauth2_implicit": ["repo:admin"]} in operation["security"]
    public_read = schema["paths"]["/api/v1/repository/{repository}"]["get"]["security"]
    assert {} in public_read
    flows = schema["components"]["securitySchemes"]["oauth2_implicit"]["flows"]
    assert flows["implicit"]["scopes"] == scopes.DESCRIPTIONS


@pytest.mark.django_db
def test_the_docs_page_uses_local_assets_only(settings, tmp_path, monkeypatch):
    page = Client().get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    script_url = next(s for s in sources if "script" in s and "static" not in s).replace("&amp;", "&")
    script = Client().get(script_url)
    assert script.status_code == 200 and b"/api/v1/openapi.json" in script.content
    # The assets are static files of the sidecar app, served once collected.
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    for pattern in urls.urlpatterns:
        if getattr(pattern, "callback", None) is serve:
            monkeypatch.setitem(pattern.default_args, "document_root", settings.STATIC_ROOT)
    asset = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert b"SwaggerUIBundle" in b"".join(asset.streaming_content)
