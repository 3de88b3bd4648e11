"""``GET /v2/``, the Bearer challenge, and the headers every /v2/ answer carries."""

import pytest

from tests.registry.conftest import assert_error, sha256

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


def test_it_challenges_without_a_token(client, db):
    response = client.get("/v2/")
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"] == 'Bearer realm="http://testserver/v2/auth",service="testserver"'


def test_the_challenge_follows_the_configured_host_and_scheme(client, db, settings):
    settings.SERVER_HOSTNAME = "registry.example:8443"
    settings.PREFERRED_URL_SCHEME = "https"
    response = client.get("/v2/")
    assert response["WWW-Authenticate"] == (
        'Bearer realm="https://registry.example:8443/v2/auth",service="registry.example:8443"'
    )


def test_it_answers_200_with_any_valid_token(client, anon, as_alice):
    for caller in (anon, as_alice):
        response = client.get("/v2/", **caller.headers())
        assert response.status_code == 200
        assert response.json() == {}
        assert response[API_VERSION[0]] == API_VERSION[1]


def test_a_repository_challenge_names_the_scope_to_ask_for(client, repo):
    response = client.get("/v2/alice/app/tags/list")
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"] == (
        'Bearer realm="http://testserver/v2/auth",service="testserver",scope="repository:alice/app:pull"'
    )
    response = client.post("/v2/alice/app/blobs/uploads/")
    assert response["WWW-Authenticate"].endswith(',scope="repository:alice/app:pull,push"')


def test_an_unsupported_method_gets_the_spec_error_body(client, as_alice, repo):
    response = client.post("/v2/alice/app/manifests/latest", **as_alice.push("alice/app"))
    assert_error(response, 405, "UNSUPPORTED")
    assert "PUT" in response["Allow"]


@pytest.fixture
def pushed(as_alice, repo):
    return as_alice.push_image("alice/app", "v1")


def _requests(pushed):
    """One request of every /v2/ endpoint, answered with success or with an error."""
    layer = sha256(pushed.blobs[1])
    missing = sha256(b"missing")
    return [
        ("get", "/v2/", {}),
        ("get", "/v2/_catalog", {}),
        ("get", "/v2/alice/app/tags/list", {}),
        ("get", "/v2/alice/app/manifests/v1", {}),
        ("head", "/v2/alice/app/manifests/v1", {}),
        ("get", "/v2/alice/app/manifests/nope", {}),
        ("put", "/v2/alice/app/manifests/v2", {"data": b"{", "content_type": "application/json"}),
        ("delete", "/v2/alice/app/manifests/nope", {}),
        ("get", f"/v2/alice/app/blobs/{layer}", {}),
        ("head", f"/v2/alice/app/blobs/{missing}", {}),
        ("get", f"/v2/alice/app/blobs/{layer}", {"HTTP_RANGE": "bytes=9999-"}),
        ("delete", f"/v2/alice/app/blobs/{missing}", {}),
        ("post", "/v2/alice/app/blobs/uploads/", {}),
        ("patch", "/v2/alice/app/blobs/uploads/00000000-0000-0000-0000-000000000000", {}),
        ("put", "/v2/alice/app/blobs/uploads/not-a-uuid?digest=" + missing, {}),
        ("get", f"/v2/alice/app/referrers/{pushed.digest}", {}),
        ("get", "/v2/alice/app/referrers/sha256:bad", {}),
        ("get", "/v2/Bad/Name/tags/list", {}),
        ("get", "/v2/alice/missing/tags/list", {}),
    ]


def test_every_answer_carries_the_api_version_header(client, as_alice, pushed):
    scopes = ("repository:alice/app:pull,push,delete", "repository:alice/missing:pull", "registry:catalog:*")
    with_token = as_alice.headers(*scopes)
    statuses = set()
    for method, path, extra in _requests(pushed):
        for headers in ({}, with_token):
            response = getattr(client, method)(path, **{**extra, **headers})
            statuses.add(response.status_code)
            assert response[API_VERSION[0]] == API_VERSION[1], (method, path, response.status_code)
    # The sweep covers successes and every family of error the API answers with.
    assert statuses >= {200, 202, 400, 401, 404, 416}, statuses
