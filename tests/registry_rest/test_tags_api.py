"""Quay's tag API: the history listing with its filters and pages, creating and moving tags,
expirations, deletes, restores within the time machine, the admin's permanent delete, the
namespace windows set through the API, and who may call what."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from accounts import scopes
from registry import services
from registry.models import Manifest, Repository, Role, Tag, UsageLog
from tests.conftest import PASSWORD
from tests.registry.conftest import V2, make_image, make_index, store_image
from tests.registry.test_tag_services import labelled_image
from tests.registry_rest.conftest import as_principal, problem
from tests.registry_rest.test_matrix import CALLERS, _call, _headers
from tests.test_openapi_schema import mismatches

TAGS = "repository/acme/app/tag/"
ALIVE_KEYS = {"name", "reversion", "start_ts", "manifest_digest", "is_manifest_list", "size", "last_modified"}
ENDED_KEYS = ALIVE_KEYS | {"end_ts", "expiration"}


class Pushed:
    """acme/app with two images: ``latest`` moved from ``first`` to ``second``, ``v1`` on first."""

    def __init__(self, world):
        principal = as_principal(world.alice)
        self.world = world
        self.first = store_image(world.app, "latest", make_image("first", layers=2), principal)
        store_image(world.app, "v1", self.first, principal)
        self.second = store_image(world.app, "latest", make_image("second"), principal)


@pytest.fixture
def pushed(world) -> Pushed:
    return Pushed(world)


def listing(api, path=TAGS, **params):
    response = api.get(path, **params)
    assert response.status_code == 200, response.content
    return response.json()


def names_and_digests(body):
    return [(tag["name"], tag["manifest_digest"]) for tag in body["tags"]]


# ---------------------------------------------------------------------------------------------
# Listing


def test_the_listing_is_the_whole_history_newest_first_with_quays_fields(world, pushed):
    body = listing(world.api("member"))
    assert body["page"] == 1 and body["has_additional"] is False
    assert names_and_digests(body) == [
        ("latest", pushed.second.digest),
        ("v1", pushed.first.digest),
        ("latest", pushed.first.digest),
    ]
    alive, v1, ended = body["tags"]
    assert set(alive) == ALIVE_KEYS and set(ended) == ENDED_KEYS
    assert ended["end_ts"] == alive["start_ts"] and ended["expiration"].endswith("-0000")
    assert alive["is_manifest_list"] is False and alive["reversion"] is False
    first = Manifest.objects.get(digest=pushed.first.digest)
    assert v1["size"] == first.layers_size > 0
    row = Tag.objects.get(name="v1")
    assert v1["start_ts"] == int(row.lifetime_start.timestamp())
    assert v1["last_modified"] == row.lifetime_start.strftime("%a, %d %b %Y %H:%M:%S -0000")


def test_an_index_is_a_manifest_list(world):
    principal = as_principal(world.alice)
    children = [store_image(world.app, f"c{n}", make_image(f"c{n}"), principal) for n in range(2)]
    index = store_image(world.app, "multi", make_index(children), principal)
    body = listing(world.api("admin"), specificTag="multi")
    (tag,) = body["tags"]
    assert tag["is_manifest_list"] is True and tag["manifest_digest"] == index.digest
    assert tag["size"] == sum(Manifest.objects.get(digest=c.digest).layers_size for c in children)


def test_pages_are_numbered_from_one_and_say_whether_more_follow(world):
    principal = as_principal(world.alice)
    image = store_image(world.app, "t0", make_image("p"), principal)
    for n in range(1, 5):
        services.tag_create_or_move(
            repository=world.app, name=f"t{n}", manifest_digest=image.digest, principal=principal, ip=None
        )
    api = world.api("admin")
    pages = [listing(api, limit=2, page=page) for page in (1, 2, 3)]
    assert [[t["name"] for t in p["tags"]] for p in pages] == [["t4", "t3"], ["t2", "t1"], ["t0"]]
    assert [p["has_additional"] for p in pages] == [True, True, False]
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert listing(api, limit=2, page=9)["tags"] == []
    # Out-of-range values are brought into range, as Quay does.
    assert listing(api, limit=0, page=0) | {"tags": None} == {"tags": None, "page": 1, "has_additional": True}
    problem(api.get(TAGS, page="two"), 400, "invalid_request")
    problem(api.get(TAGS, page=str(10**30)), 400, "invalid_request")


def test_at_most_a_hundred_entries_per_page(world):
    principal = as_principal(world.alice)
    image = store_image(world.app, "t", make_image("p"), principal)
    manifest = Manifest.objects.get(digest=image.digest)
    now = timezone.now()
    Tag.objects.bulk_create(
        Tag(repository=world.app, name=f"bulk{n:03}", manifest=manifest, lifetime_start=now - timedelta(seconds=n))
        for n in range(120)
    )
    body = listing(world.api("admin"), limit=500)
    assert len(body["tags"]) == 100 and body["has_additional"] is True
    assert len(listing(world.api("admin"))["tags"]) == 50


def test_one_tags_history_only_active_tags_and_name_filters(world, pushed):
    api = world.api("member")
    assert names_and_digests(listing(api, specificTag="latest")) == [
        ("latest", pushed.second.digest),
        ("latest", pushed.first.digest),
    ]
    assert names_and_digests(listing(api, onlyActiveTags="true")) == [
        ("latest", pushed.second.digest),
        ("v1", pushed.first.digest),
    ]
    assert [t["name"] for t in listing(api, filter_tag_name="like:ates")["tags"]] == ["latest", "latest"]
    assert [t["name"] for t in listing(api, filter_tag_name="eq:v1")["tags"]] == ["v1"]
    assert listing(api, filter_tag_name="eq:v")["tags"] == []
    body = problem(api.get(TAGS, filter_tag_name="regex:.*"), 400, "invalid_request")
    assert "filter_tag_name" in body["detail"]


def test_hidden_and_purged_rows_are_not_listed(world, pushed):
    principal = as_principal(world.alice)
    store_image(world.app, make_image("by-digest").digest, make_image("by-digest"), principal)
    services.tag_purge(repository=world.app, name="v1", alive=True, principal=principal, ip=None)
    assert [t["name"] for t in listing(world.api("admin"))["tags"]] == ["latest", "latest"]


def test_an_expired_tag_is_listed_as_ended_and_not_as_active(world, pushed):
    when = timezone.now() - timedelta(minutes=1)
    Tag.objects.filter(name="v1").update(expiration=when)
    api = world.api("member")
    (v1,) = listing(api, specificTag="v1")["tags"]
    assert v1["end_ts"] == int(when.timestamp())
    assert "v1" not in [t["name"] for t in listing(api, onlyActiveTags="1")["tags"]]


def test_a_public_repository_is_listed_to_anyone_a_private_one_is_not(world, pushed):
    problem(world.api("anonymous").get(TAGS), 401, "invalid_token")
    problem(world.api("user").get(TAGS), 404, "not_found")
    world.app.visibility = Repository.Visibility.PUBLIC
    world.app.save()
    assert len(listing(world.api("anonymous"))["tags"]) == 3


# ---------------------------------------------------------------------------------------------
# Create, move, expiration


def put_tag(api, tag, body):
    return api.put(f"repository/acme/app/tag/{tag}", body)


def test_put_creates_and_moves_a_tag(world, pushed):
    api = world.api("admin")
    response = put_tag(api, "prod", {"manifest_digest": pushed.first.digest})
    assert response.status_code == 201 and response.json() == "Updated"
    assert put_tag(api, "prod", {"manifest_digest": pushed.second.digest}).status_code == 201
    assert names_and_digests(listing(api, specificTag="prod")) == [
        ("prod", pushed.second.digest),
        ("prod", pushed.first.digest),
    ]
    entries = UsageLog.objects.filter(metadata__tag="prod").order_by("pk")
    assert [(e.kind, e.actor, e.ip) for e in entries] == [
        ("create_tag", world.alice, "127.0.0.1"),
        ("move_tag", world.alice, "127.0.0.1"),
    ]
    response = V2("alice", PASSWORD).client.get("/v2/acme/app/manifests/prod", **V2("alice", PASSWORD).pull("acme/app"))
    assert response.status_code == 200 and response["Docker-Content-Digest"] == pushed.second.digest


def test_put_with_an_expiration_sets_it_and_null_clears_it(world, pushed):
    api = world.api("admin")
    when = int((timezone.now() + timedelta(days=3)).timestamp())
    assert put_tag(api, "latest", {"expiration": when}).status_code == 201
    (alive, _) = listing(api, specificTag="latest")["tags"]
    assert alive["end_ts"] == when and "expiration" in alive
    assert UsageLog.objects.filter(kind="change_tag_expiration").count() == 1
    assert put_tag(api, "latest", {"expiration": None}).status_code == 201
    (alive, _) = listing(api, specificTag="latest")["tags"]
    assert "end_ts" not in alive and "expiration" not in alive
    # Both at once: the new row gets the expiration.
    assert put_tag(api, "next", {"manifest_digest": pushed.first.digest, "expiration": when}).status_code == 201
    assert listing(api, specificTag="next")["tags"][0]["end_ts"] == when


@pytest.mark.parametrize(
    "tag, body, status",
    [
        ("latest", {"expiration": 1000}, 400),
        ("latest", {"expiration": "soon"}, 400),
        ("latest", {"expiration": 1e300}, 400),
        ("latest", {}, 400),
        ("-bad", {"manifest_digest": "FIRST"}, 400),
        ("new", {"manifest_digest": "sha256:" + "0" * 64}, 404),
        ("new", {"manifest_digest": "not-a-digest"}, 404),
        ("missing", {"expiration": 4102444800}, 404),
    ],
)
def test_put_refuses_bad_input_and_changes_nothing(world, pushed, tag, body, status):
    body = {k: (pushed.first.digest if v == "FIRST" else v) for k, v in body.items()}
    before = list(Tag.objects.values_list("pk", "lifetime_end", "expiration"))
    problem(put_tag(world.api("admin"), tag, body), status)
    assert list(Tag.objects.values_list("pk", "lifetime_end", "expiration")) == before


def test_a_reader_may_not_change_tags_and_a_read_only_repository_refuses(world, pushed):
    problem(put_tag(world.api("member"), "x", {"manifest_digest": pushed.first.digest}), 403, "insufficient_scope")
    world.app.state = Repository.State.READ_ONLY
    world.app.save()
    body = problem(put_tag(world.api("admin"), "x", {"manifest_digest": pushed.first.digest}), 503)
    assert "read only" in body["detail"]
    problem(world.api("admin").delete("repository/acme/app/tag/latest"), 503)
    assert not Tag.objects.filter(name="x").exists()


def test_a_label_pushed_with_the_image_shows_as_the_expiration(world):
    image = labelled_image({"quay.expires-after": "2d"})
    V2("alice", PASSWORD).push_image("acme/app", "nightly", image)
    (tag,) = listing(world.api("admin"), specificTag="nightly")["tags"]
    assert tag["end_ts"] - tag["start_ts"] == 2 * 86400


# ---------------------------------------------------------------------------------------------
# Delete and restore


def test_delete_ends_the_tag_and_a_second_delete_is_not_found(world, pushed):
    api = world.api("admin")
    response = api.delete("repository/acme/app/tag/v1")
    assert response.status_code == 204
    (v1,) = listing(api, specificTag="v1")["tags"]
    assert "end_ts" in v1
    problem(api.delete("repository/acme/app/tag/v1"), 404, "not_found")
    assert UsageLog.objects.filter(kind="delete_tag").count() == 1


def restore(api, tag, digest):
    return api.post(f"repository/acme/app/tag/{tag}/restore", {"manifest_digest": digest})


def test_restore_goes_back_in_time_as_a_reversion(world, pushed):
    api = world.api("admin")
    response = restore(api, "latest", pushed.first.digest)
    assert response.status_code == 200 and response.json() == {}
    latest = listing(api, specificTag="latest")["tags"]
    assert [(t["manifest_digest"], t["reversion"]) for t in latest] == [
        (pushed.first.digest, True),
        (pushed.second.digest, False),
        (pushed.first.digest, False),
    ]
    assert UsageLog.objects.get(kind="revert_tag").metadata == {"tag": "latest", "digest": pushed.first.digest}


def test_a_deleted_tag_can_be_restored(world, pushed):
    api = world.api("admin")
    assert api.delete("repository/acme/app/tag/v1").status_code == 204
    assert restore(api, "v1", pushed.first.digest).status_code == 200
    assert listing(api, specificTag="v1")["tags"][0]["reversion"] is True


def test_restore_of_a_collected_manifest_is_not_found_and_tags_nothing(world, pushed):
    Manifest.objects.filter(digest=pushed.first.digest).delete()
    count = Tag.objects.count()
    problem(restore(world.api("admin"), "latest", pushed.first.digest), 404, "not_found")
    assert Tag.objects.count() == count
    assert not UsageLog.objects.filter(kind="revert_tag").exists()


def test_restore_outside_the_window_is_refused(world, pushed):
    admin = world.api("admin")
    assert admin.put("organization/acme", {"tag_expiration_s": 0}).status_code == 200
    body = problem(restore(admin, "latest", pushed.first.digest), 400, "invalid_request")
    assert "time machine" in body["detail"]
    # A window long enough makes the same entry restorable again (nothing was collected).
    assert admin.put("organization/acme", {"tag_expiration_s": 86400}).status_code == 200
    assert restore(admin, "latest", pushed.first.digest).status_code == 200


def test_restore_needs_a_digest_and_write_access(world, pushed):
    admin = world.api("admin")
    body = problem(admin.post("repository/acme/app/tag/latest/restore", {}), 400, "invalid_request")
    assert body["detail"] == "Missing manifest_digest"
    problem(restore(world.api("member"), "latest", pushed.first.digest), 403, "insufficient_scope")
    problem(restore(world.api("other_org"), "latest", pushed.first.digest), 404, "not_found")
    problem(restore(world.api("anonymous"), "latest", pushed.first.digest), 401, "invalid_token")
    problem(restore(admin, "v1", pushed.second.digest), 400, "invalid_request")
    assert not UsageLog.objects.filter(kind="revert_tag").exists()


# ---------------------------------------------------------------------------------------------
# Permanent delete (out of the time machine)


def expire(api, tag, body):
    return api.post(f"repository/acme/app/tag/{tag}/expire", body)


def test_an_admin_ends_a_tag_for_good(world, pushed):
    admin = world.api("admin")
    response = expire(admin, "v1", {"is_alive": True})
    assert response.status_code == 200 and response.json() == ""
    assert "v1" not in [t["name"] for t in listing(admin)["tags"]]
    problem(restore(admin, "v1", pushed.first.digest), 400)
    assert UsageLog.objects.get(kind="purge_tag").metadata["tag"] == "v1"


def test_an_admin_purges_ended_entries_of_a_manifest(world, pushed):
    admin = world.api("admin")
    assert expire(admin, "latest", {"manifest_digest": pushed.first.digest}).status_code == 200
    assert names_and_digests(listing(admin, specificTag="latest")) == [("latest", pushed.second.digest)]
    problem(expire(admin, "latest", {"manifest_digest": pushed.first.digest}), 404)
    body = problem(expire(admin, "latest", {}), 400)
    assert body["detail"] == "manifest_digest required when is_alive set to false"
    problem(expire(admin, "nope", {"is_alive": True}), 404)


def test_a_writer_who_is_not_admin_may_not_purge(world, pushed):
    services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    writer = world.api("user")
    problem(expire(writer, "v1", {"is_alive": True}), 403, "insufficient_scope")
    assert put_tag(writer, "made-by-writer", {"manifest_digest": pushed.first.digest}).status_code == 201
    assert not Tag.objects.filter(purged=True).exists()


# ---------------------------------------------------------------------------------------------
# The namespace's window through the API


@pytest.mark.parametrize("seconds, status", [(0, 200), (86400, 200), (2419200, 200), (3600, 400), (60, 400)])
def test_an_organization_window_is_one_of_the_options(world, seconds, status):
    response = world.api("admin").put("organization/acme", {"tag_expiration_s": seconds})
    assert response.status_code == status, response.content
    world.acme.refresh_from_db()
    if status == 200:
        assert response.json()["tag_expiration_s"] == seconds == world.acme.time_machine_seconds
    else:
        assert problem(response, 400)["detail"] == "Invalid tag expiration option"
        assert world.acme.time_machine_seconds == 14 * 86400


def test_a_user_sets_the_window_of_their_own_namespace(world):
    api = world.api("user")
    response = api.put("user/", {"tag_expiration_s": 604800})
    assert response.status_code == 200 and response.json()["tag_expiration_s"] == 604800
    world.charlie.namespace.refresh_from_db()
    assert world.charlie.namespace.time_machine_seconds == 604800
    assert UsageLog.objects.get(kind="user_change_tag_expiration").metadata == {"tag_expiration": 604800}
    problem(api.put("user/", {"tag_expiration_s": 5}), 400, "invalid_request")
    assert "email" in problem(api.put("user/", {"email": "x@example.com"}), 400)["detail"]
    problem(world.api("user", token_scopes={scopes.USER_READ}).put("user/", {"tag_expiration_s": 0}), 403)
    problem(world.api("anonymous").put("user/", {"tag_expiration_s": 0}), 401)


# ---------------------------------------------------------------------------------------------
# Who may call what


@pytest.fixture
def matrix_world(world):
    """The permission matrix's cast (the robot writes acme/app) with acme/app's two images."""
    services.repository_permission_set_user(
        repository=world.app, username="acme+bot", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    return Pushed(world)


def _endpoints():
    first = make_image("first", layers=2).digest
    return [
        ("get", TAGS, None, "repo:read", [401, 404, 200, 404, 200, 200, 404, 401]),
        ("put", f"{TAGS}prod", {"manifest_digest": first}, "repo:write", [401, 404, 403, 404, 201, 201, 404, 401]),
        ("delete", f"{TAGS}v1", None, "repo:write", [401, 404, 403, 404, 204, 204, 404, 401]),
        (
            "post",
            f"{TAGS}latest/restore",
            {"manifest_digest": first},
            "repo:write",
            [401, 404, 403, 404, 200, 200, 404, 401],
        ),
        ("post", f"{TAGS}v1/expire", {"is_alive": True}, "repo:admin", [401, 404, 403, 404, 200, 200, 404, 401]),
        ("get", f"repository/acme/app/manifest/{first}", None, "repo:read", [401, 404, 200, 404, 200, 200, 404, 401]),
        (
            "get",
            f"repository/acme/app/manifest/{first}/labels",
            None,
            "repo:read",
            [401, 404, 200, 404, 200, 200, 404, 401],
        ),
    ]


ENDPOINTS = _endpoints()
IDS = [f"{e[0]} {e[1]}" for e in ENDPOINTS]


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("method, path, body, scope, expected", ENDPOINTS, ids=IDS)
def test_permission_matrix(matrix_world, who, method, path, body, scope, expected):
    want = expected[CALLERS.index(who)]
    response = _call(Client(), method, path, body, _headers(matrix_world.world, who))
    assert response.status_code == want, (who, method, path, response.content[:300])
    if want >= 400:
        problem(response, want, {401: "invalid_token", 403: "insufficient_scope", 404: "not_found"}[want])


@pytest.mark.parametrize("method, path, body, scope, expected", ENDPOINTS, ids=IDS)
def test_each_endpoint_enforces_its_scope(matrix_world, method, path, body, scope, expected):
    world = matrix_world.world
    lacking = {s for s in scopes.ALL if scope not in scopes.expand({s})}
    body_ = problem(_call(Client(), method, path, body, _headers(world, "admin", lacking)), 403, "insufficient_scope")
    assert scope in body_["detail"]
    allowed = _call(Client(), method, path, body, _headers(world, "admin", {scope}))
    assert allowed.status_code == expected[CALLERS.index("admin")], allowed.content[:300]


# ---------------------------------------------------------------------------------------------
# The answers are the documented shapes


@pytest.fixture(scope="module")
def api_schema():
    document = SchemaGenerator().get_schema(request=None, public=True)
    # Through JSON, as clients read it (lazy strings and enums become plain values).
    return json.loads(json.dumps(document, default=str))


@pytest.mark.parametrize(
    "path, template",
    [
        (TAGS, "/api/v1/repository/{repository}/tag/"),
        (f"{TAGS}?specificTag=latest", "/api/v1/repository/{repository}/tag/"),
        ("repository/acme/app/manifest/FIRST", "/api/v1/repository/{repository}/manifest/{manifestref}"),
        ("repository/acme/app/manifest/INDEX", "/api/v1/repository/{repository}/manifest/{manifestref}"),
        ("repository/acme/app/manifest/FIRST/labels", "/api/v1/repository/{repository}/manifest/{manifestref}/labels"),
        ("user/", "/api/v1/user/"),
    ],
)
def test_real_answers_have_the_documented_shape(api_schema, world, pushed, path, template):
    schema = api_schema
    principal = as_principal(world.alice)
    index = store_image(world.app, "multi", make_index([pushed.first, pushed.second]), principal)
    path = path.replace("FIRST", pushed.first.digest).replace("INDEX", index.digest)
    response = world.api("admin").get(path)
    assert response.status_code == 200, response.content
    documented = schema["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert mismatches(schema, response.json(), documented) == []
