"""The permission matrix of the /v2/ API, in the manner of Quay's ``test/specs.py``:
endpoint x principal x repository visibility -> expected status.

The expectations follow Quay's rules: read gives pull, write gives push and delete, admin
gives everything; public repositories give everybody pull, without a token too; a user with
no role on the repository is treated exactly as an anonymous caller. A refused request changes
nothing.
"""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import crypto
from accounts import services as account_services
from registry import services
from registry.models import (
    Manifest,
    Repository,
    RepositoryAccessToken,
    RepositoryBlob,
    Role,
    UploadSession,
)
from registry.permissions import Principal
from registry.selectors import alive_tags
from tests.conftest import PASSWORD
from tests.registry.conftest import V2, assert_error, grant, make_image, sha256, store_blob, store_image, user_principal

PULLERS = {"reader", "writer", "admin", "robot-read", "robot-write", "token-read", "token-write"}
PUSHERS = {"writer", "admin", "robot-write", "token-write"}
PRINCIPALS = ["no-token", "anonymous", "outsider", *sorted(PULLERS)]
UPLOAD_DATA = b"chunk of a layer"


@dataclass
class Ctx:
    repo: Repository
    image: object  # the tagged image v1
    new_image: object  # an image whose blobs are uploaded, for PUT manifest
    upload: str | None = None  # an upload session of the caller


def _principal(name: str, repo: Repository, alice) -> tuple[V2 | None, Principal]:
    """The caller for a principal kind, set up with exactly the role its name says."""
    if name == "no-token":
        return None, Principal(kind="anonymous")
    if name == "anonymous":
        return V2(), Principal(kind="anonymous")
    if name == "admin":
        return V2("alice", PASSWORD), user_principal(alice)
    if name.startswith("token-"):
        code = crypto.random_token(40)
        row = RepositoryAccessToken.objects.create(
            repository=repo,
            code_prefix=code[: RepositoryAccessToken.PREFIX_LENGTH],
            code_hash=crypto.token_hash(code),
            role=Role.READ if name == "token-read" else Role.WRITE,
        )
        principal = Principal(
            kind="token", access_token_id=row.pk, access_token_repository_id=repo.pk, access_token_role=row.role
        )
        return V2("$token", code), principal
    if name.startswith("robot-"):
        user, token = account_services.robot_create(namespace=alice.namespace, short_name=name.replace("-", ""))
        grant(repo, user, Role.READ if name == "robot-read" else Role.WRITE)
        return V2(user.username, token), user_principal(user)
    user = account_services.user_create(username=name, password=PASSWORD)
    if name == "outsider":
        # A member of another organization, with no relation to alice's repository.
        account_services.organization_create(name="elsewhere", creator=user)
    else:
        grant(repo, user, Role.READ if name == "reader" else Role.WRITE)
    return V2(name, PASSWORD), user_principal(user)


def _octet(data: bytes) -> dict:
    return {"data": data, "content_type": "application/octet-stream"}


# endpoint -> (action the token must carry, success status, request(client, ctx) -> (method, path, extra))
ENDPOINTS = {
    "GET manifest": ("pull", 200, lambda ctx: ("get", "manifests/v1", {})),
    "HEAD manifest": ("pull", 200, lambda ctx: ("head", f"manifests/{ctx.image.digest}", {})),
    "PUT manifest": (
        "push",
        201,
        lambda ctx: (
            "put",
            "manifests/v2",
            {"data": ctx.new_image.raw, "content_type": ctx.new_image.media_type},
        ),
    ),
    "DELETE manifest": ("delete", 202, lambda ctx: ("delete", f"manifests/{ctx.image.digest}", {})),
    "DELETE tag": ("delete", 202, lambda ctx: ("delete", "manifests/v1", {})),
    "GET blob": ("pull", 200, lambda ctx: ("get", f"blobs/{sha256(ctx.image.blobs[1])}", {})),
    "HEAD blob": ("pull", 200, lambda ctx: ("head", f"blobs/{sha256(ctx.image.blobs[1])}", {})),
    "POST upload": ("push", 202, lambda ctx: ("post", "blobs/uploads/", _octet(b""))),
    "POST monolithic upload": (
        "push",
        201,
        lambda ctx: ("post", f"blobs/uploads/?digest={sha256(UPLOAD_DATA)}", _octet(UPLOAD_DATA)),
    ),
    "GET upload": ("push", 204, lambda ctx: ("get", f"blobs/uploads/{ctx.upload}", {})),
    "PATCH upload": ("push", 202, lambda ctx: ("patch", f"blobs/uploads/{ctx.upload}", _octet(UPLOAD_DATA))),
    "PUT upload": (
        "push",
        201,
        lambda ctx: ("put", f"blobs/uploads/{ctx.upload}?digest={sha256(UPLOAD_DATA)}", _octet(UPLOAD_DATA)),
    ),
    "DELETE upload": ("push", 204, lambda ctx: ("delete", f"blobs/uploads/{ctx.upload}", {})),
    "DELETE blob": ("delete", 202, lambda ctx: ("delete", f"blobs/{sha256(ctx.image.blobs[1])}", {})),
    "tags/list": ("pull", 200, lambda ctx: ("get", "tags/list", {})),
    "referrers": ("pull", 200, lambda ctx: ("get", f"referrers/{ctx.image.digest}", {})),
}

SCOPE_ACTIONS = {"pull": "pull", "push": "pull,push", "delete": "pull,push,delete"}


def expected_status(endpoint: str, principal: str, visibility: str) -> int:
    action, success, _ = ENDPOINTS[endpoint]
    if action == "pull":
        allowed = principal in PULLERS or visibility == Repository.Visibility.PUBLIC
    else:
        allowed = principal in PUSHERS
    return success if allowed else 401


def snapshot(repo: Repository):
    """Everything a /v2/ request could change in the repository."""
    return (
        sorted(Manifest.objects.filter(repository=repo).values_list("digest", flat=True)),
        sorted(alive_tags(repo).values_list("name", "manifest__digest")),
        sorted(RepositoryBlob.objects.filter(repository=repo).values_list("blob__digest", flat=True)),
        sorted(UploadSession.objects.filter(repository=repo).values_list("uuid", "offset")),
    )


@pytest.mark.parametrize("visibility", [Repository.Visibility.PRIVATE, Repository.Visibility.PUBLIC])
@pytest.mark.parametrize("principal_name", PRINCIPALS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_permission_matrix(client, alice, endpoint, principal_name, visibility):
    owner = user_principal(alice)
    repo = services.repository_create(namespace=alice.namespace, name="app", principal=owner, visibility=visibility)
    image = store_image(repo, "v1", make_image("v1"), owner)
    new_image = make_image("v2")
    for blob in new_image.blobs:
        store_blob(repo, blob, owner)
    caller, principal = _principal(principal_name, repo, alice)
    ctx = Ctx(repo=repo, image=image, new_image=new_image)
    # Every caller gets its own upload session, so only the right to push decides.
    ctx.upload = str(services.upload_start(repository=repo, principal=principal).pk)

    action, _, build = ENDPOINTS[endpoint]
    method, suffix, extra = build(ctx)
    headers = caller.headers(f"repository:alice/app:{SCOPE_ACTIONS[action]}") if caller else {}
    before = snapshot(repo)
    response = getattr(client, method)(f"/v2/alice/app/{suffix}", **extra, **headers)

    expected = expected_status(endpoint, principal_name, visibility)
    if expected == 401:
        assert_error(response, 401, "UNAUTHORIZED")
        assert response["WWW-Authenticate"].startswith('Bearer realm="http://testserver/v2/auth"')
        assert snapshot(repo) == before
    else:
        assert response.status_code == expected, response.content
        assert response["Docker-Distribution-API-Version"] == "registry/2.0"
        if action != "pull" and endpoint != "GET upload":
            assert snapshot(repo) != before


def test_the_matrix_expects_what_quay_does():
    # A few rows spelled out, so a wrong expected_status cannot make the matrix vacuous.
    private, public = Repository.Visibility.PRIVATE, Repository.Visibility.PUBLIC
    assert expected_status("GET manifest", "anonymous", private) == 401
    assert expected_status("GET manifest", "no-token", public) == 200
    assert expected_status("GET manifest", "outsider", public) == 200
    assert expected_status("PUT manifest", "outsider", public) == 401
    assert expected_status("PUT manifest", "reader", private) == 401
    assert expected_status("PUT manifest", "robot-write", private) == 201
    assert expected_status("DELETE manifest", "token-read", public) == 401
    assert expected_status("DELETE manifest", "token-write", private) == 202
    assert expected_status("DELETE blob", "writer", private) == 202


def test_a_user_without_a_role_gets_the_answers_of_an_anonymous_caller(client, alice):
    owner = user_principal(alice)
    repo = services.repository_create(namespace=alice.namespace, name="app", principal=owner)
    store_image(repo, "v1", make_image("v1"), owner)
    outsider, _ = _principal("outsider", repo, alice)
    scope = "repository:alice/app:pull,push"
    answers = []
    for caller in (outsider, V2()):
        headers = caller.headers(scope)
        put = client.put("/v2/alice/app/manifests/v2", data=b"{}", content_type="application/json", **headers)
        get = client.get("/v2/alice/app/tags/list", **headers)
        answers.append([(r.status_code, r.content, r["WWW-Authenticate"]) for r in (put, get)])
    assert answers[0] == answers[1]
    assert answers[0][0][0] == answers[0][1][0] == 401


@pytest.mark.parametrize("revoke", ["delete", "expire"])
def test_a_revoked_access_token_stops_writes_before_its_bearer_token_expires(client, alice, revoke):
    """A build's job token is revoked when the build is requeued or ends; a worker holding a
    bearer token issued before that must not push any more (pulls of a readable repository are
    not a write and keep their token's lifetime)."""
    owner = user_principal(alice)
    repo = services.repository_create(namespace=alice.namespace, name="app", principal=owner)
    caller, principal = _principal("token-write", repo, alice)
    headers = caller.push("alice/app")
    image = make_image("first")
    caller.push_image("alice/app", "v1", image)
    row = RepositoryAccessToken.objects.get(pk=principal.access_token_id)
    if revoke == "delete":
        row.delete()
    else:
        row.expiration = timezone.now() - timedelta(seconds=1)
        row.save(update_fields=["expiration"])
    later = make_image("second")
    assert caller.upload_blob("alice/app", later.blobs[0], headers).status_code == 401
    response = caller.put_manifest("alice/app", "v2", image.raw, image.media_type, headers)
    assert response.status_code == 401
    assert client.get("/v2/alice/app/manifests/v1", **headers).status_code == 200
