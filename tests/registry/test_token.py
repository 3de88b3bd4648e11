"""The token endpoint /v2/auth: every kind of credential, granted scopes, and the JWT itself."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.utils import timezone

from accounts import crypto
from accounts import services as account_services
from registry import services
from registry.models import RepositoryAccessToken, RepositoryPermission, Role
from registry.tokens import parse_scope, signing_key
from tests.conftest import PASSWORD, basic
from tests.registry.conftest import assert_error, grant, user_principal

PULL = "repository:alice/app:pull"
PUSH = "repository:alice/app:pull,push"


def claims_of(response) -> dict:
    token = response.json()["token"]
    key = signing_key()
    return jwt.decode(token, key.public_key, algorithms=["RS256"], audience="testserver")


def access_of(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return claims_of(response)["access"]


def create_access_token(repository, role: str, *, expiration=None) -> str:
    code = crypto.random_token(40)
    RepositoryAccessToken.objects.create(
        repository=repository,
        friendly_name="ci",
        code_prefix=code[: RepositoryAccessToken.PREFIX_LENGTH],
        code_hash=crypto.token_hash(code),
        role=role,
        expiration=expiration,
    )
    return code


def test_it_issues_an_anonymous_token_without_credentials(anon, repo):
    response = anon.token_response(PULL)
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] >= 60
    assert body["issued_at"].endswith("Z")
    claims = claims_of(response)
    assert claims["sub"] == ""
    # A private repository grants an anonymous caller nothing, but the answer is still 200.
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": []}]


def test_it_grants_anonymous_pull_of_a_public_repository(anon, public_repo):
    response = anon.token_response("repository:alice/public:pull,push")
    assert access_of(response) == [{"type": "repository", "name": "alice/public", "actions": ["pull"]}]


def test_it_grants_a_user_with_a_password(as_alice, repo):
    response = as_alice.token_response(PUSH)
    claims = claims_of(response)
    assert claims["sub"] == "alice"
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
    assert claims["context"]["user_id"] == repo.namespace.user_id


def test_it_grants_a_robot_with_its_token(v2, alice, repo, make_robot):
    robot = make_robot(alice.namespace, "ci")
    grant(repo, robot.user, Role.WRITE)
    response = v2(robot.username, robot.password).token_response(PUSH)
    assert response.status_code == 200
    claims = claims_of(response)
    assert claims["sub"] == "alice+ci"
    assert claims["context"]["kind"] == "robot"
    assert claims["access"][0]["actions"] == ["pull", "push"]


def test_it_refuses_a_robot_with_a_wrong_token(v2, alice, make_robot):
    robot = make_robot(alice.namespace, "ci")
    wrong_last = "y" if robot.password.endswith("x") else "x"
    response = v2(robot.username, robot.password[:-1] + wrong_last).token_response(PULL)
    assert_error(response, 401, "UNAUTHORIZED")


def test_it_refuses_a_robot_with_its_empty_password(v2, alice, make_robot):
    # Robots have unusable passwords: the robot name alone never authenticates.
    make_robot(alice.namespace, "ci")
    response = v2("alice+ci", "").token_response(PULL)
    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(("role", "granted"), [(Role.READ, ["pull"]), (Role.WRITE, ["pull", "push"])])
def test_it_grants_a_repository_access_token(v2, repo, role, granted):
    code = create_access_token(repo, role)
    response = v2("$token", code).token_response(PUSH)
    claims = claims_of(response)
    assert claims["sub"] == "$token"
    assert claims["context"]["kind"] == "token"
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": granted}]


def test_a_repository_access_token_grants_nothing_on_another_repository(v2, alice, repo):
    services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    code = create_access_token(repo, Role.WRITE)
    response = v2("$token", code).token_response("repository:alice/other:pull,push")
    assert access_of(response) == [{"type": "repository", "name": "alice/other", "actions": []}]


def test_it_refuses_a_wrong_or_expired_repository_access_token(v2, repo):
    code = create_access_token(repo, Role.READ)
    # Same prefix (the row is found) but another code: the hash decides.
    assert_error(v2("$token", code[:-1] + ("A" if code[-1] != "A" else "B")).token_response(PULL), 401, "UNAUTHORIZED")
    expired = create_access_token(repo, Role.READ, expiration=timezone.now() - timedelta(seconds=1))
    assert_error(v2("$token", expired).token_response(PULL), 401, "UNAUTHORIZED")


def test_it_grants_an_app_token_as_app_or_as_the_username(v2, alice, repo):
    row, token = account_services.app_token_create(user=alice, title="cli")
    for username in ("$app", "alice"):
        response = v2(username, token).token_response(PUSH)
        claims = claims_of(response)
        assert claims["sub"] == "alice"
        assert claims["access"][0]["actions"] == ["pull", "push"]
    row.refresh_from_db()
    assert row.last_accessed is not None


def test_it_refuses_an_app_token_under_another_username_or_expired(v2, alice, bob, repo):
    _, token = account_services.app_token_create(user=alice, title="cli")
    assert_error(v2("bob", token).token_response(PULL), 401, "UNAUTHORIZED")
    _, old = account_services.app_token_create(
        user=alice, title="old", expiration=timezone.now() - timedelta(seconds=1)
    )
    assert_error(v2("$app", old).token_response(PULL), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "authorization",
    [
        basic("alice", "wrong-password"),
        basic("nobody", PASSWORD),
        basic("alice", ""),
        "Basic not-base64!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer abc",
    ],
    ids=["wrong-password", "unknown-user", "empty-password", "bad-base64", "no-colon", "not-basic"],
)
def test_it_answers_401_for_bad_credentials(client, alice, repo, authorization):
    response = client.get(f"/v2/auth?service=testserver&scope={PULL}", HTTP_AUTHORIZATION=authorization)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Basic realm=")


def test_valid_credentials_without_rights_get_200_not_401(as_bob, repo):
    response = as_bob.token_response(PUSH, "repository:nobody/missing:pull")
    assert access_of(response) == [
        {"type": "repository", "name": "alice/app", "actions": []},
        {"type": "repository", "name": "nobody/missing", "actions": []},
    ]


def test_it_grants_only_the_allowed_part_of_the_asked_actions(as_bob, bob, repo):
    grant(repo, bob, Role.READ)
    response = as_bob.token_response("repository:alice/app:pull,push,delete,*")
    assert access_of(response) == [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]


def test_a_team_role_grants_through_membership(v2, alice, charlie, org):
    repository = services.repository_create(namespace=org, name="tool", principal=user_principal(alice))
    team = account_services.team_create(organization=org, name="readers")
    account_services.team_member_add(team=team, user=charlie)
    caller = v2("charlie", PASSWORD)
    assert access_of(caller.token_response("repository:acme/tool:pull,push"))[0]["actions"] == []
    RepositoryPermission.objects.create(repository=repository, team=team, role=Role.READ)
    assert access_of(caller.token_response("repository:acme/tool:pull,push"))[0]["actions"] == ["pull"]


def test_an_organization_admin_gets_every_action(as_alice, alice, org):
    services.repository_create(namespace=org, name="tool", principal=user_principal(alice))
    response = as_alice.token_response("repository:acme/tool:pull,push,delete,*")
    assert access_of(response)[0]["actions"] == ["*", "delete", "pull", "push"]


def test_a_regenerated_robot_token_replaces_the_old_one(v2, alice, repo, make_robot):
    robot = make_robot(alice.namespace, "ci")
    new_token = account_services.robot_regenerate_token(robot=robot.user.robot)
    assert_error(v2(robot.username, robot.password).token_response(PULL), 401, "UNAUTHORIZED")
    assert v2(robot.username, new_token).token_response(PULL).status_code == 200


def test_an_inactive_user_cannot_get_a_token(v2, bob):
    bob.is_active = False
    bob.save()
    assert_error(v2("bob", PASSWORD).token_response(PULL), 401, "UNAUTHORIZED")


def test_a_write_role_grants_delete_but_not_star(as_bob, bob, repo):
    grant(repo, bob, Role.WRITE)
    response = as_bob.token_response("repository:alice/app:pull,push,delete,*")
    assert access_of(response)[0]["actions"] == ["delete", "pull", "push"]


def test_scopes_may_be_space_separated_in_one_parameter(as_alice, public_repo, repo):
    response = as_alice.client.get(
        "/v2/auth",
        {"service": "testserver", "scope": "repository:alice/app:pull repository:alice/public:pull"},
        HTTP_AUTHORIZATION=basic("alice", PASSWORD),
    )
    assert [entry["name"] for entry in access_of(response)] == ["alice/app", "alice/public"]


def test_a_scope_name_may_carry_a_registry_port():
    scope = parse_scope("repository:localhost:5000/alice/app:pull,push")
    assert (scope.type, scope.name, scope.actions) == ("repository", "localhost:5000/alice/app", ("pull", "push"))
    typed = parse_scope("repository(plugin):alice/app:pull")
    assert (typed.type, typed.name, typed.actions) == ("repository", "alice/app", ("pull",))


def test_a_scope_with_a_port_in_the_name_keeps_the_whole_name(as_alice, repo):
    response = as_alice.token_response("repository:localhost:5000/alice/app:pull")
    [entry] = access_of(response)
    assert (entry["type"], entry["name"]) == ("repository", "localhost:5000/alice/app")


def test_malformed_scopes_are_ignored(as_alice, repo):
    response = as_alice.token_response("garbage", "repository::pull", PULL)
    assert access_of(response) == [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]


def test_it_grants_the_catalog_scope(anon, db):
    response = anon.token_response("registry:catalog:*")
    assert access_of(response) == [{"type": "registry", "name": "catalog", "actions": ["*"]}]


def test_the_jwt_carries_every_claim_and_a_kid(as_alice, repo):
    before = int(time.time())
    response = as_alice.token_response(PULL)
    token = response.json()["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == signing_key().kid
    # libtrust key id: twelve groups of four base32 characters.
    assert len(header["kid"].split(":")) == 12
    claims = claims_of(response)
    assert set(claims) >= {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    assert claims["iss"] == settings.REGISTRY_TOKEN_ISSUER
    assert claims["aud"] == "testserver"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["nbf"] <= claims["iat"]
    assert claims["exp"] - claims["iat"] == response.json()["expires_in"] >= 60
    assert claims["jti"] != claims_of(as_alice.token_response(PULL))["jti"]


# ---------------------------------------------------------------------------------------------
# Tokens the registry must refuse


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _valid_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "iss": settings.REGISTRY_TOKEN_ISSUER,
        "sub": "alice",
        "aud": "testserver",
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now,
        "jti": "x" * 32,
        "access": [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}],
        "context": {"kind": "user"},
    }
    claims.update(overrides)
    return claims


def _sign(claims: dict, **headers) -> str:
    key = signing_key()
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, **headers})


def _assert_rejected(client, token: str) -> None:
    response = client.get("/v2/alice/app/tags/list", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Bearer realm=")


def test_a_token_we_signed_ourselves_is_accepted(client, alice, repo):
    # The control for the rejections below: the same claims, correctly signed, work.
    claims = _valid_claims(context={"kind": "user", "user_id": alice.pk})
    response = client.get("/v2/alice/app/tags/list", HTTP_AUTHORIZATION=f"Bearer {_sign(claims)}")
    assert response.status_code == 200


def test_a_token_signed_with_another_key_is_rejected(client, repo):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Even claiming our kid: the signature is checked against our key only.
    forged = jwt.encode(_valid_claims(), other, algorithm="RS256", headers={"kid": signing_key().kid})
    _assert_rejected(client, forged)
    _assert_rejected(client, jwt.encode(_valid_claims(), other, algorithm="RS256", headers={"kid": "ABCD"}))


def test_a_tampered_token_is_rejected(client, as_alice, repo):
    token = as_alice.token(PULL)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["access"][0]["actions"] = ["pull", "push", "*"]
    _assert_rejected(client, f"{header}.{_b64(json.dumps(claims).encode())}.{signature}")


def test_an_expired_token_is_rejected(client, repo):
    now = int(time.time())
    _assert_rejected(client, _sign(_valid_claims(exp=now - 60, iat=now - 400, nbf=now - 400)))


def test_a_token_for_another_audience_or_issuer_is_rejected(client, repo):
    _assert_rejected(client, _sign(_valid_claims(aud="elsewhere.example")))
    _assert_rejected(client, _sign(_valid_claims(iss="someone-else")))


def test_a_token_missing_a_required_claim_is_rejected(client, repo):
    claims = _valid_claims()
    del claims["jti"]
    _assert_rejected(client, _sign(claims))


def test_alg_none_is_rejected(client, repo):
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": signing_key().kid}).encode())
    unsigned = f"{header}.{_b64(json.dumps(_valid_claims()).encode())}."
    _assert_rejected(client, unsigned)


def test_hs256_with_the_public_key_as_secret_is_rejected(client, repo):
    public_pem = signing_key().public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": signing_key().kid}).encode())
    payload = _b64(json.dumps(_valid_claims()).encode())
    signature = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    _assert_rejected(client, f"{header}.{payload}.{signature}")


def test_garbage_and_non_bearer_authorization_are_rejected(client, repo):
    _assert_rejected(client, "not-a-jwt")
    response = client.get("/v2/alice/app/tags/list", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert_error(response, 401, "UNAUTHORIZED")
