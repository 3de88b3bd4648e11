"""A push to a missing repository creates it where the caller may create; the usage log
records pushes, pulls, creation and tag changes."""

from accounts import services as account_services
from accounts.models import Team
from registry.models import Repository, RepositoryPermission, Role, UsageLog
from tests.conftest import PASSWORD
from tests.registry.conftest import assert_error, flush_pulls, make_image, sha256


def test_a_push_creates_a_private_image_repository_in_the_own_namespace(client, as_bob, bob):
    image = as_bob.push_image("bob/new/nested", "v1")
    repository = Repository.objects.get(namespace__name="bob", name="new/nested")
    assert repository.visibility == Repository.Visibility.PRIVATE
    assert repository.kind == Repository.Kind.IMAGE
    log = UsageLog.objects.get(kind=UsageLog.Kind.CREATE_REPO)
    assert (log.actor, log.actor_name, log.repository) == (bob, "bob", repository)
    assert log.metadata == {"repo": "new/nested", "namespace": "bob"}
    assert log.ip == "127.0.0.1"
    # The owner of the namespace is admin already: no extra permission row.
    assert not RepositoryPermission.objects.filter(repository=repository).exists()
    response = client.get("/v2/bob/new/nested/manifests/v1", **as_bob.pull("bob/new/nested"))
    assert response.content == image.raw
    # Created once, even though every blob and the manifest went through repository_for.
    assert UsageLog.objects.filter(kind=UsageLog.Kind.CREATE_REPO).count() == 1


def test_a_push_creates_in_an_organization_where_the_caller_is_a_creator(client, v2, charlie, creators_team):
    account_services.team_member_add(team=creators_team, user=charlie)
    v2("charlie", PASSWORD).push_image("acme/tool", "v1")
    repository = Repository.objects.get(namespace__name="acme", name="tool")
    assert repository.visibility == Repository.Visibility.PRIVATE
    # The creator is not an organization admin: they get admin on what they created.
    assert RepositoryPermission.objects.get(repository=repository).user == charlie
    assert RepositoryPermission.objects.get(repository=repository).role == Role.ADMIN


def test_an_organization_admin_creates_too(as_alice, org):
    as_alice.push_image("acme/by-admin", "v1")
    assert Repository.objects.filter(namespace=org, name="by-admin").exists()


def test_a_robot_in_a_creator_team_creates_in_the_organization(org, creators_team, make_robot):
    robot = make_robot(org, "builder")
    account_services.team_member_add(team=creators_team, user=robot.user)
    robot.push_image("acme/built", "v1")
    repository = Repository.objects.get(namespace=org, name="built")
    assert UsageLog.objects.get(kind=UsageLog.Kind.CREATE_REPO).actor == robot.user
    assert RepositoryPermission.objects.get(repository=repository).user == robot.user


def _assert_push_refused(client, caller, name):
    headers = caller.push(name)
    data = b"layer"
    response = client.post(
        f"/v2/{name}/blobs/uploads/?digest={sha256(data)}",
        data=data,
        content_type="application/octet-stream",
        **headers,
    )
    assert_error(response, 401, "UNAUTHORIZED")
    image = make_image()
    response = client.put(f"/v2/{name}/manifests/v1", data=image.raw, content_type=image.media_type, **headers)
    assert_error(response, 401, "UNAUTHORIZED")
    assert not Repository.objects.exists()
    assert not UsageLog.objects.exists()


def test_a_push_to_another_users_namespace_is_refused(client, as_bob, alice):
    _assert_push_refused(client, as_bob, "alice/new")


def test_a_push_to_an_organization_where_the_caller_is_only_a_member_is_refused(client, v2, charlie, org):
    team = account_services.team_create(organization=org, name="devs", role=Team.Role.MEMBER)
    account_services.team_member_add(team=team, user=charlie)
    _assert_push_refused(client, v2("charlie", PASSWORD), "acme/new")


def test_a_push_to_a_missing_namespace_is_refused(client, as_bob):
    _assert_push_refused(client, as_bob, "nobody/new")


def test_anonymous_pushes_create_nothing(client, anon, alice):
    _assert_push_refused(client, anon, "alice/new")


def test_a_robot_cannot_create_in_its_owners_user_namespace(client, alice, make_robot):
    # Robots create only in organizations, through a team; a user namespace belongs to its user.
    _assert_push_refused(client, make_robot(alice.namespace, "ci"), "alice/new")


# ---------------------------------------------------------------------------------------------
# Usage log


def kinds(repository=None):
    query = UsageLog.objects.order_by("id")
    if repository is not None:
        query = query.filter(repository=repository)
    return [(log.kind, log.metadata.get("tag")) for log in query]


def test_push_and_tag_changes_are_logged(client, as_alice, alice):
    first = as_alice.push_image("alice/app", "v1")
    repository = Repository.objects.get(name="app")
    second = as_alice.push_image("alice/app", "v1", make_image("second"))
    as_alice.push_image("alice/app", "v1", second)  # the same manifest again: no tag change
    response = client.delete("/v2/alice/app/manifests/v1", **as_alice.delete("alice/app"))
    assert response.status_code == 202
    assert kinds(repository) == [
        ("create_repo", None),
        ("create_tag", "v1"),
        ("push_repo", "v1"),
        ("move_tag", "v1"),
        ("push_repo", "v1"),
        ("push_repo", "v1"),
        ("delete_tag", "v1"),
    ]
    move = UsageLog.objects.get(kind=UsageLog.Kind.MOVE_TAG)
    assert move.metadata == {"tag": "v1", "digest": second.digest}
    push = UsageLog.objects.filter(kind=UsageLog.Kind.PUSH_REPO).first()
    assert push.metadata == {"tag": "v1", "digest": first.digest, "media_type": first.media_type}
    assert {log.actor for log in UsageLog.objects.all()} == {alice}


def test_a_push_by_digest_logs_a_push_without_tag(as_alice, alice):
    image = make_image()
    as_alice.push_image("alice/app", image.digest, image)
    assert kinds() == [("create_repo", None), ("push_repo", None)]


def test_pulls_are_logged_in_batches(client, as_alice, alice, anon):
    image = as_alice.push_image("alice/app", "v1")
    repository = Repository.objects.get(name="app")
    before = UsageLog.objects.count()
    headers = as_alice.pull("alice/app")
    client.get("/v2/alice/app/manifests/v1", **headers)
    client.get(f"/v2/alice/app/manifests/{image.digest}", **headers)
    client.head("/v2/alice/app/manifests/v1", **headers)  # a HEAD is no pull
    client.get("/v2/alice/app/manifests/missing", **headers)  # nor is a 404
    assert UsageLog.objects.count() == before
    assert flush_pulls() == 2
    pulls = list(UsageLog.objects.filter(kind=UsageLog.Kind.PULL_REPO).order_by("id"))
    assert [p.metadata for p in pulls] == [
        {"reference": "v1", "digest": image.digest},
        {"reference": image.digest, "digest": image.digest},
    ]
    assert {(p.actor, p.actor_name, p.repository, p.namespace_id) for p in pulls} == {
        (alice, "alice", repository, alice.namespace.pk)
    }
    assert flush_pulls() == 0


def test_an_anonymous_pull_is_logged_without_actor(client, as_alice, alice):
    as_alice.push_image("alice/app", "v1")
    Repository.objects.update(visibility=Repository.Visibility.PUBLIC)
    assert client.get("/v2/alice/app/manifests/v1").status_code == 200
    assert flush_pulls() == 1
    pull = UsageLog.objects.get(kind=UsageLog.Kind.PULL_REPO)
    assert (pull.actor, pull.actor_name) == (None, "")
