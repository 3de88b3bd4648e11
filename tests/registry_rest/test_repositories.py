"""Repositories through /api/v1: create, list, read, describe, delete, visibility, stars."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import scopes
from registry import services
from registry.models import Repository, RepositoryPermission, Role, Star, UsageLog
from tests.registry.conftest import V2, make_image, make_index
from tests.registry_rest.conftest import Api, as_principal, problem

PASSWORD = "password-123"
SUMMARY_KEYS = {"namespace", "name", "description", "is_public", "kind", "state", "quota"}
DETAIL_KEYS = {
    "namespace",
    "name",
    "kind",
    "description",
    "is_public",
    "is_organization",
    "is_starred",
    "status_token",
    "trust_enabled",
    "tag_expiration_s",
    "is_free_account",
    "state",
    "can_write",
    "can_admin",
}


def _public(world, name: str, namespace=None) -> Repository:
    return services.repository_create(
        namespace=namespace or world.acme,
        name=name,
        principal=as_principal(world.alice),
        visibility=Repository.Visibility.PUBLIC,
    )


# ---------------------------------------------------------------------------------------------
# Create


def test_it_creates_a_repository_in_an_organization(world):
    body = {"repository": "api", "namespace": "acme", "visibility": "private", "description": "The API"}
    response = world.api("admin").post("repository", body)
    assert response.status_code == 201, response.content
    assert response.json() == {"namespace": "acme", "name": "api", "kind": "image"}
    repo = Repository.objects.get(namespace=world.acme, name="api")
    assert repo.visibility == "private" and repo.description == "The API"
    log = UsageLog.objects.get(kind="create_repo", repository=repo)
    assert log.actor == world.alice and log.metadata == {"repo": "api", "namespace": "acme"}


def test_it_creates_in_the_callers_namespace_when_none_is_given(world):
    response = world.api("user").post("repository", {"repository": "tools/cli", "visibility": "public"})
    assert response.status_code == 201, response.content
    assert response.json() == {"namespace": "charlie", "name": "tools/cli", "kind": "image"}
    assert Repository.objects.get(namespace__name="charlie", name="tools/cli").is_public


@pytest.mark.parametrize("repo_kind, kind", [("application", "application"), (None, "image"), ("image", "image")])
def test_it_creates_repositories_of_each_kind(world, repo_kind, kind):
    body = {"repository": "charts", "visibility": "private", "description": "", "repo_kind": repo_kind}
    response = world.api("admin").post("repository", body)
    assert response.status_code == 201 and response.json()["kind"] == kind
    assert Repository.objects.get(namespace__name="alice", name="charts").kind == kind


def test_a_creator_gets_admin_on_what_it_creates(world):
    body = {"repository": "made", "namespace": "acme", "visibility": "private"}
    response = world.api("creator").post("repository", body)
    assert response.status_code == 201
    repo = Repository.objects.get(namespace=world.acme, name="made")
    assert RepositoryPermission.objects.get(repository=repo, user=world.dave).role == Role.ADMIN
    assert world.api("creator").get("repository/acme/made").json()["can_admin"] is True


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"repository": "app", "namespace": "acme", "visibility": "private"}, "Repository already exists"),
        ({"repository": "Bad_Name", "namespace": "acme", "visibility": "private"}, "Invalid repository name"),
        ({"repository": "x/", "namespace": "acme", "visibility": "private"}, "Invalid repository name"),
        ({"repository": "ok", "namespace": "acme", "visibility": "secret"}, "visibility"),
        ({"namespace": "acme", "visibility": "private"}, "repository"),
        ({"repository": "ok", "namespace": "acme", "visibility": "private", "repo_kind": "helm"}, "repo_kind"),
    ],
)
def test_it_refuses_bad_creation_input(world, body, detail):
    body_ = problem(world.api("admin").post("repository", body), 400, "invalid_request")
    assert detail in body_["detail"]
    assert Repository.objects.count() == 1


@pytest.mark.parametrize(
    "who, namespace, status",
    [
        ("anonymous", "acme", 401),
        ("user", "acme", 403),
        ("member", "acme", 403),
        ("other_org", "acme", 403),
        ("superuser", "acme", 403),
        ("user", "nosuchns", 403),
        ("user", "alice", 403),
        ("creator", "acme", 201),
        ("admin", "acme", 201),
    ],
)
def test_only_admins_and_creators_create_in_an_organization(world, who, namespace, status):
    response = world.api(who).post("repository", {"repository": "new", "namespace": namespace, "visibility": "private"})
    assert response.status_code == status, response.content
    assert Repository.objects.filter(name="new").exists() == (status == 201)


def test_creating_needs_the_repo_create_scope(world):
    problem(
        world.api("admin", token_scopes={scopes.REPO_WRITE}).post(
            "repository", {"repository": "new", "namespace": "acme", "visibility": "private"}
        ),
        403,
        "insufficient_scope",
    )
    response = world.api("admin", token_scopes={scopes.REPO_CREATE}).post(
        "repository", {"repository": "new", "namespace": "acme", "visibility": "private"}
    )
    assert response.status_code == 201


# ---------------------------------------------------------------------------------------------
# List


def test_listing_needs_a_filter(world):
    body = problem(world.api("admin").get("repository"), 400, "invalid_request")
    assert body["detail"] == "namespace, starred or public are required for this API call"


def test_it_lists_a_namespace_with_quay_fields(world):
    response = world.api("member").get("repository", namespace="acme")
    assert response.status_code == 200
    [entry] = response.json()["repositories"]
    assert set(entry) == SUMMARY_KEYS | {"is_starred"}
    assert entry == {
        "namespace": "acme",
        "name": "app",
        "description": "The app",
        "is_public": False,
        "kind": "image",
        "state": "NORMAL",
        "quota": None,
        "is_starred": False,
    }
    assert "next_page" not in response.json()


@pytest.mark.parametrize(
    "who, names",
    [
        ("admin", ["app", "open"]),
        ("member", ["app"]),
        ("creator", []),
        ("user", []),
        ("other_org", []),
        ("anonymous", []),
    ],
)
def test_a_namespace_listing_shows_what_the_caller_has_a_role_on(world, who, names):
    _public(world, "open")
    response = world.api(who).get("repository", namespace="acme")
    assert [r["name"] for r in response.json()["repositories"]] == names


def test_public_true_adds_public_repositories(world):
    _public(world, "open")
    response = world.api("user").get("repository", namespace="acme", public="true")
    assert [r["name"] for r in response.json()["repositories"]] == ["open"]
    anonymous = Api().get("repository", public="true").json()["repositories"]
    assert [r["name"] for r in anonymous] == ["open"]
    assert set(anonymous[0]) == SUMMARY_KEYS  # no is_starred without a user


def test_it_lists_only_the_kind_asked_for(world):
    services.repository_create(
        namespace=world.acme, name="chart", principal=as_principal(world.alice), kind=Repository.Kind.APPLICATION
    )
    api = world.api("admin")
    assert [r["name"] for r in api.get("repository", namespace="acme").json()["repositories"]] == ["app"]
    listed = api.get("repository", namespace="acme", repo_kind="application").json()["repositories"]
    assert [(r["name"], r["kind"]) for r in listed] == [("chart", "application")]
    problem(api.get("repository", namespace="acme", repo_kind="nope"), 400)


def test_last_modified_and_popularity_appear_when_asked(world):
    V2("alice", PASSWORD).push_image("acme/app", "latest")
    api = world.api("admin")
    plain = api.get("repository", namespace="acme").json()["repositories"][0]
    assert "last_modified" not in plain and "popularity" not in plain
    entry = api.get("repository", namespace="acme", last_modified="true", popularity="true").json()["repositories"][0]
    tag_start = world.app.tags.get(name="latest").lifetime_start
    assert entry["last_modified"] == int(tag_start.timestamp())
    # create_repo, change_repo_permission (fixture), create_tag and push_repo.
    assert entry["popularity"] == float(UsageLog.objects.filter(repository=world.app).count()) == 4.0


def test_public_listing_pages_with_next_page(world):
    Repository.objects.bulk_create(
        [Repository(namespace=world.acme, name=f"pub{i:03d}", visibility="public") for i in range(130)]
    )
    api = world.api("user")
    first = api.get("repository", public="true").json()
    assert len(first["repositories"]) == 100 and first["next_page"]
    second = api.get("repository", public="true", next_page=first["next_page"]).json()
    assert len(second["repositories"]) == 30 and "next_page" not in second
    names = [r["name"] for r in first["repositories"] + second["repositories"]]
    assert names == [f"pub{i:03d}" for i in range(130)]
    problem(api.get("repository", public="true", next_page="forged"), 400, "invalid_request")


def test_a_page_token_of_another_listing_is_refused(world):
    Repository.objects.bulk_create(
        [Repository(namespace=world.acme, name=f"pub{i:03d}", visibility="public") for i in range(101)]
    )
    for i in range(101):
        Star.objects.create(user=world.charlie, repository=Repository.objects.get(name=f"pub{i:03d}"))
    api = world.api("user")
    starred_token = api.get("user/starred").json()["next_page"]
    problem(api.get("repository", public="true", next_page=starred_token), 400)


# ---------------------------------------------------------------------------------------------
# Read


def test_it_reads_a_repository_with_its_tags(world):
    image = V2("alice", PASSWORD).push_image("acme/app", "latest")
    response = world.api("member").get("repository/acme/app")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_KEYS | {"tags"}
    assert body["namespace"] == "acme" and body["name"] == "app" and body["is_organization"] is True
    assert body["is_public"] is False and body["state"] == "NORMAL" and body["kind"] == "image"
    assert body["can_write"] is False and body["can_admin"] is False
    assert body["tag_expiration_s"] == world.acme.time_machine_seconds
    tag = body["tags"]["latest"]
    assert tag["manifest_digest"] == image.digest
    assert tag["size"] == sum(len(b) for b in image.blobs[1:])
    assert tag["last_modified"].endswith("-0000")
    assert "tags" not in world.api("member").get("repository/acme/app", includeTags="false").json()


def test_it_reads_stats_when_asked(world):
    body = world.api("admin").get("repository/acme/app", includeStats="true").json()
    assert len(body["stats"]) == 92
    today = timezone.now().date().isoformat()
    assert body["stats"][-1] == {"date": today, "count": 2}
    assert sum(day["count"] for day in body["stats"]) == 2


def test_it_reads_nested_repository_names(world):
    services.repository_create(namespace=world.acme, name="team/tool", principal=as_principal(world.alice))
    body = world.api("admin").get("repository/acme/team/tool").json()
    assert (body["namespace"], body["name"]) == ("acme", "team/tool")


def test_an_index_tag_reports_the_size_of_its_children(world):
    client = V2("alice", PASSWORD)
    children = [client.push_image("acme/app", f"c{i}", make_image(f"s{i}")) for i in range(2)]
    index = make_index(children)
    response = client.put_manifest("acme/app", "multi", index.raw, index.media_type)
    assert response.status_code == 201
    tags = world.api("admin").get("repository/acme/app").json()["tags"]
    assert tags["multi"]["manifest_digest"] == index.digest
    assert tags["multi"]["size"] == sum(tags[f"c{i}"]["size"] for i in range(2))


def test_can_write_and_can_admin_follow_the_role(world):
    admin = world.api("admin").get("repository/acme/app").json()
    assert (admin["can_write"], admin["can_admin"]) == (True, True)
    services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    writer = world.api("user").get("repository/acme/app").json()
    assert (writer["can_write"], writer["can_admin"]) == (True, False)
    Repository.objects.filter(pk=world.app.pk).update(state=Repository.State.READ_ONLY)
    frozen = world.api("user").get("repository/acme/app").json()
    assert frozen["can_write"] is False and frozen["state"] == "READ_ONLY"


def test_public_repositories_are_readable_anonymously(world):
    _public(world, "open")
    response = Api().get("repository/acme/open")
    assert response.status_code == 200
    assert response.json()["is_public"] is True and response.json()["can_write"] is False
    problem(Api().get("repository/acme/app"), 401, "invalid_token")
    problem(Api().get("repository/acme/missing"), 401, "invalid_token")
    problem(world.api("user").get("repository/acme/missing"), 404, "not_found")
    problem(world.api("user").get("repository/NOT_VALID/x"), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# Update, delete, visibility


def test_it_changes_the_description(world):
    response = world.api("admin").put("repository/acme/app", {"description": "New words"})
    assert response.status_code == 200 and response.json() == {"success": True}
    world.app.refresh_from_db()
    assert world.app.description == "New words"
    log = UsageLog.objects.filter(kind="set_repo_description").get()
    assert log.metadata["description"] == "New words" and log.actor == world.alice
    problem(world.api("admin").put("repository/acme/app", {}), 400, "invalid_request")


def test_writers_may_change_the_description_readers_may_not(world):
    problem(world.api("member").put("repository/acme/app", {"description": "x"}), 403, "insufficient_scope")
    services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    assert world.api("user").put("repository/acme/app", {"description": "x"}).status_code == 200


def test_it_deletes_a_repository_with_everything_in_it(world):
    client = V2("alice", PASSWORD)
    children = [client.push_image("acme/app", f"c{i}", make_image(f"d{i}")) for i in range(2)]
    index = make_index(children)
    assert client.put_manifest("acme/app", "multi", index.raw, index.media_type).status_code == 201
    Star.objects.create(user=world.bob, repository=world.app)
    response = world.api("admin").delete("repository/acme/app")
    assert response.status_code == 204 and response.content == b""
    assert not Repository.objects.filter(pk=world.app.pk).exists()
    assert not Star.objects.exists() and not RepositoryPermission.objects.filter(repository_id=world.app.pk).exists()
    log = UsageLog.objects.get(kind="delete_repo")
    assert log.namespace == world.acme and log.repository is None
    assert log.metadata == {"repo": "app", "namespace": "acme"}
    problem(world.api("admin").get("repository/acme/app"), 404)
    # The name is free again, and a push recreates it empty.
    client.push_image("acme/app", "latest")
    assert list(world.api("admin").get("repository/acme/app").json()["tags"]) == ["latest"]


def test_it_deletes_open_uploads_with_the_repository(world, settings, django_capture_on_commit_callbacks):
    client = V2("alice", PASSWORD)
    response = client.client.post("/v2/acme/app/blobs/uploads/", **client.push("acme/app"))
    assert response.status_code == 202
    uuid = response["Docker-Upload-UUID"]
    patch = client.client.patch(
        response["Location"], data=b"partial", content_type="application/octet-stream", **client.push("acme/app")
    )
    assert patch.status_code == 202
    uploads = settings.STORAGE_DIR / "uploads"
    assert any(uuid in str(p) for p in uploads.rglob("*"))
    with django_capture_on_commit_callbacks(execute=True):
        response = world.api("admin").delete("repository/acme/app")
    assert response.status_code == 204
    assert not any(uuid in str(p) for p in uploads.rglob("*"))


def test_only_admins_delete(world):
    problem(world.api("member").delete("repository/acme/app"), 403, "insufficient_scope")
    problem(world.api("user").delete("repository/acme/app"), 404, "not_found")
    assert Repository.objects.filter(pk=world.app.pk).exists()


def test_it_changes_visibility(world):
    api = world.api("admin")
    response = api.post("repository/acme/app/changevisibility", {"visibility": "public"})
    assert response.status_code == 200 and response.json() == {"success": True}
    assert Api().get("repository/acme/app").status_code == 200
    log = UsageLog.objects.get(kind="change_repo_visibility")
    assert log.metadata == {"repo": "app", "namespace": "acme", "visibility": "public"}
    problem(api.post("repository/acme/app/changevisibility", {"visibility": "hidden"}), 400)
    assert api.post("repository/acme/app/changevisibility", {"visibility": "private"}).status_code == 200
    problem(Api().get("repository/acme/app"), 401)
    problem(world.api("member").post("repository/acme/app/changevisibility", {"visibility": "public"}), 403)


def test_the_changevisibility_route_wins_over_a_nested_name(world):
    """``acme/app/changevisibility`` is the verb on acme/app, not a repository of that name."""
    response = world.api("admin").post("repository/acme/app/changevisibility", {"visibility": "public"})
    assert response.status_code == 200
    assert not Repository.objects.filter(name="app/changevisibility").exists()


# ---------------------------------------------------------------------------------------------
# Stars


def test_it_stars_and_unstars(world):
    api = world.api("member")
    response = api.post("user/starred", {"namespace": "acme", "repository": "app"})
    assert response.status_code == 201 and response.json() == {"namespace": "acme", "repository": "app"}
    assert api.post("user/starred", {"namespace": "acme", "repository": "app"}).status_code == 201
    assert Star.objects.filter(user=world.bob).count() == 1
    listed = api.get("user/starred").json()
    assert listed == {
        "repositories": [
            {"namespace": "acme", "name": "app", "description": "The app", "is_public": False, "kind": "image"}
        ]
    }
    assert api.get("repository/acme/app").json()["is_starred"] is True
    assert api.get("repository", starred="true").json()["repositories"][0]["is_starred"] is True
    assert api.get("repository", namespace="acme").json()["repositories"][0]["is_starred"] is True
    assert world.api("admin").get("repository", namespace="acme").json()["repositories"][0]["is_starred"] is False
    response = api.delete("user/starred/acme/app")
    assert response.status_code == 204
    assert api.get("user/starred").json() == {"repositories": []}


def test_it_does_not_star_what_the_caller_cannot_see(world):
    problem(world.api("user").post("user/starred", {"namespace": "acme", "repository": "app"}), 404)
    problem(world.api("user").post("user/starred", {"namespace": "acme", "repository": "nope"}), 404)
    problem(world.api("user").delete("user/starred/acme/app"), 404)
    problem(Api().post("user/starred", {"namespace": "acme", "repository": "app"}), 401)
    problem(Api().get("repository", starred="true"), 400)
    assert not Star.objects.exists()


def test_starred_lists_hide_repositories_that_became_invisible(world):
    Star.objects.create(user=world.bob, repository=world.app)
    services.repository_permission_delete_team(
        repository=world.app, team_name="devs", principal=as_principal(world.alice), ip=None
    )
    api = world.api("member")
    assert api.get("repository", starred="true").json()["repositories"] == []
    # The star itself can still be removed.
    assert api.delete("user/starred/acme/app").status_code == 204


def test_it_pages_starred_repositories(world):
    repos = Repository.objects.bulk_create(
        [Repository(namespace=world.acme, name=f"pub{i:03d}", visibility="public") for i in range(101)]
    )
    Star.objects.bulk_create([Star(user=world.charlie, repository=r) for r in repos])
    api = world.api("user")
    first = api.get("user/starred").json()
    second = api.get("user/starred", next_page=first["next_page"]).json()
    assert len(first["repositories"]) == 100 and len(second["repositories"]) == 1


def test_old_rows_still_show_the_recent_window_for_popularity(world):
    UsageLog.objects.filter(repository=world.app).update(created=timezone.now() - timedelta(days=30))
    entry = world.api("admin").get("repository", namespace="acme", popularity="1").json()["repositories"][0]
    assert entry["popularity"] == 0.0
