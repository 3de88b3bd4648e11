"""``docker login -u '$oauthtoken' -p <API token>``: the token's repo scopes cap the registry grant."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from accounts import scopes
from accounts import services as account_services
from registry import services
from registry.models import Repository
from tests.registry.conftest import V2
from tests.registry_rest.conftest import as_principal


def _oauth_client(user, token_scopes) -> V2:
    _, token = account_services.oauth_token_create(user=user, scopes=token_scopes)
    return V2("$oauthtoken", token)


def _granted(client: V2, scope: str) -> list[str]:
    response = client.token_response(scope)
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "alice"
    [access] = claims["access"]
    return access["actions"]


@pytest.mark.parametrize(
    "token_scopes, actions",
    [
        ({scopes.REPO_READ}, ["pull"]),
        ({scopes.REPO_WRITE}, ["delete", "pull", "push"]),
        ({scopes.REPO_ADMIN}, ["*", "delete", "pull", "push"]),
        ({scopes.USER_ADMIN, scopes.ORG_ADMIN}, []),
    ],
)
def test_the_token_scopes_cap_what_is_granted(world, token_scopes, actions):
    client = _oauth_client(world.alice, token_scopes)
    assert _granted(client, "repository:acme/app:pull,push,delete,*") == actions


def test_the_grant_never_exceeds_the_users_role(world):
    # bob only reads acme/app through his team: a repo:admin token does not change that.
    _, token = account_services.oauth_token_create(user=world.bob, scopes={scopes.REPO_ADMIN})
    response = V2("$oauthtoken", token).token_response("repository:acme/app:pull,push")
    [access] = jwt.decode(response.json()["token"], options={"verify_signature": False})["access"]
    assert access["actions"] == ["pull"]


def test_creating_a_repository_by_push_needs_repo_create(world):
    write_only = _oauth_client(world.alice, {scopes.REPO_WRITE})
    assert _granted(write_only, "repository:acme/fresh:pull,push") == []
    creator = _oauth_client(world.alice, {scopes.REPO_WRITE, scopes.REPO_CREATE})
    assert _granted(creator, "repository:acme/fresh:pull,push") == ["pull", "push"]


def test_a_write_token_pushes_and_a_read_token_cannot(world):
    writer = _oauth_client(world.alice, {scopes.REPO_WRITE})
    image = writer.push_image("acme/app", "via-oauth")
    assert world.app.tags.get(name="via-oauth").manifest.digest == image.digest
    reader = _oauth_client(world.alice, {scopes.REPO_READ})
    response = reader.upload_blob("acme/app", b"blob", reader.push("acme/app"))
    assert response.status_code == 401
    pulled = reader.client.get("/v2/acme/app/manifests/via-oauth", **reader.pull("acme/app"))
    assert pulled.status_code == 200


def test_the_catalog_needs_repo_read(world):
    without = _oauth_client(world.alice, {scopes.USER_READ})
    with_read = _oauth_client(world.alice, {scopes.REPO_READ})
    for client, expected in ((without, []), (with_read, ["*"])):
        response = client.token_response("registry:catalog:*")
        [access] = jwt.decode(response.json()["token"], options={"verify_signature": False})["access"]
        assert access["actions"] == expected


@pytest.mark.parametrize("password", ["not-a-token", "", "x" * 40])
def test_an_unknown_token_is_refused(world, password):
    response = V2("$oauthtoken", password).token_response("repository:acme/app:pull")
    assert response.status_code == 401


def test_an_expired_token_or_disabled_user_is_refused(world):
    _, expired = account_services.oauth_token_create(
        user=world.alice, scopes={scopes.REPO_READ}, expires=timezone.now() - timedelta(seconds=1)
    )
    assert V2("$oauthtoken", expired).token_response("repository:acme/app:pull").status_code == 401
    _, token = account_services.oauth_token_create(user=world.charlie, scopes={scopes.REPO_READ})
    world.charlie.is_active = False
    world.charlie.save(update_fields=["is_active"])
    assert V2("$oauthtoken", token).token_response("repository:acme/app:pull").status_code == 401


def test_public_repositories_are_pullable_with_any_token(world):
    services.repository_create(
        namespace=world.acme,
        name="open",
        principal=as_principal(world.alice),
        visibility=Repository.Visibility.PUBLIC,
    )
    client = _oauth_client(world.alice, {scopes.REPO_READ})
    assert _granted(client, "repository:acme/open:pull") == ["pull"]
