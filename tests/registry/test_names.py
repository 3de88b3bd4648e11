"""Repository names: NAME_INVALID for bad grammar, NAME_UNKNOWN only after authorization, and
no way to tell a private repository from a missing one without access."""

import jwt
import pytest

from registry.models import Repository
from tests.registry.conftest import assert_error, sha256

INVALID = [
    "Alice/App",  # upper case
    "app",  # a single component: no namespace
    "alice/../app",
    "alice//app",
    "alice/app-",
    "alice/-app",
    "alice/app..x",
    "alice/" + "a" * 250,  # over 255 characters
]


@pytest.mark.parametrize("name", INVALID)
def test_an_invalid_name_is_name_invalid(client, as_alice, repo, name):
    headers = as_alice.headers(f"repository:{name}:pull,push")
    for method, path in [
        ("get", f"/v2/{name}/tags/list"),
        ("get", f"/v2/{name}/manifests/latest"),
        ("head", f"/v2/{name}/blobs/{sha256(b'x')}"),
        ("post", f"/v2/{name}/blobs/uploads/"),
        ("get", f"/v2/{name}/referrers/{sha256(b'x')}"),
    ]:
        response = getattr(client, method)(path, **headers)
        assert_error(response, 400, "NAME_INVALID")
    assert Repository.objects.count() == 1


def test_an_invalid_name_in_a_scope_is_granted_nothing(as_alice, alice):
    response = as_alice.token_response("repository:Alice/App:pull,push")
    assert response.status_code == 200
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "Alice/App", "actions": []}]


def test_a_missing_repository_is_name_unknown_once_authorized(client, as_alice, alice):
    # alice could create alice/missing by pushing, so a push token names it; reading it is 404.
    headers = as_alice.push("alice/missing")
    assert_error(client.get("/v2/alice/missing/tags/list", **headers), 404, "NAME_UNKNOWN")
    assert_error(client.get("/v2/alice/missing/manifests/latest", **headers), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/alice/missing/blobs/{sha256(b'x')}", **headers), 404, "NAME_UNKNOWN")
    assert not Repository.objects.exists()


def test_a_repository_deleted_after_the_token_was_issued_is_name_unknown(client, as_alice, repo):
    headers = as_alice.pull("alice/app")
    repo.delete()
    assert_error(client.get("/v2/alice/app/tags/list", **headers), 404, "NAME_UNKNOWN")


def _normalized(response, name):
    return (
        response.status_code,
        response.content.replace(name.encode(), b"NAME"),
        response["WWW-Authenticate"].replace(name, "NAME"),
    )


@pytest.mark.parametrize("who", ["anonymous-without-token", "anonymous", "bob"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", "tags/list"), ("get", "manifests/latest"), ("head", "manifests/latest"), ("post", "blobs/uploads/")],
)
def test_a_private_repository_looks_like_a_missing_one(client, v2, bob, repo, who, method, suffix):
    answers = []
    for name in ("alice/app", "alice/missing"):
        if who == "anonymous-without-token":
            headers = {}
        else:
            caller = v2("bob", "password-123") if who == "bob" else v2()
            headers = caller.headers(f"repository:{name}:pull,push")
        response = getattr(client, method)(f"/v2/{name}/{suffix}", **headers)
        assert_error(response, 401, "UNAUTHORIZED")
        answers.append(_normalized(response, name))
    assert answers[0] == answers[1]


def test_a_private_repository_of_a_missing_namespace_looks_the_same(client, as_bob, repo):
    bodies = []
    for name in ("alice/app", "nobody/app"):
        response = client.get(f"/v2/{name}/tags/list", **as_bob.pull(name))
        bodies.append(_normalized(response, name))
    assert bodies[0] == bodies[1]
