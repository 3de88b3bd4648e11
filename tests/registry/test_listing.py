"""``tags/list`` and ``_catalog``: sorted, paged with n/last and Link, capped, and scoped."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import services as account_services
from registry import services
from registry.models import Manifest, Repository, RepositoryPermission, Role, Tag
from tests.registry.conftest import assert_error, grant, make_image, store_image, user_principal

TAGS = ["v2", "latest", "1.0", "v10", "Alpha", "_private", "beta"]


@pytest.fixture
def tagged(alice, repo):
    principal = user_principal(alice)
    image = store_image(repo, TAGS[0], make_image(), principal)
    manifest = Manifest.objects.get(digest=image.digest)
    for name in TAGS[1:]:
        services.tag_set(repository=repo, name=name, manifest=manifest, principal=principal, ip=None)
    return manifest


def tags(client, caller, query=""):
    response = client.get(f"/v2/alice/app/tags/list{query}", **caller.pull("alice/app"))
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "alice/app"
    return response


def test_tags_are_sorted(client, as_alice, tagged):
    assert tags(client, as_alice).json()["tags"] == sorted(TAGS)


def test_tags_page_with_n_last_and_link(client, as_alice, tagged):
    expected = sorted(TAGS)
    response = tags(client, as_alice, "?n=3")
    assert response.json()["tags"] == expected[:3]
    assert response["Link"] == f'</v2/alice/app/tags/list?n=3&last={expected[2]}>; rel="next"'
    seen = list(expected[:3])
    while "Link" in response:
        path = response["Link"][1 : response["Link"].index(">")]
        response = client.get(path, **as_alice.pull("alice/app"))
        seen += response.json()["tags"]
    assert seen == expected


def test_tags_after_last(client, as_alice, tagged):
    assert tags(client, as_alice, "?last=latest").json()["tags"] == [t for t in sorted(TAGS) if t > "latest"]
    response = tags(client, as_alice, "?last=zzz")
    assert response.json()["tags"] == []
    assert "Link" not in response


def test_the_last_page_has_no_link(client, as_alice, tagged):
    response = tags(client, as_alice, f"?n={len(TAGS)}")
    assert len(response.json()["tags"]) == len(TAGS)
    assert "Link" not in response


def test_n_is_capped(client, as_alice, tagged, settings):
    settings.REGISTRY_PAGE_MAX = 2
    response = tags(client, as_alice, "?n=1000")
    assert response.json()["tags"] == sorted(TAGS)[:2]
    assert response["Link"].startswith("</v2/alice/app/tags/list?n=2&")


def test_a_default_page_size_applies_without_n_or_with_garbage(client, as_alice, tagged, settings):
    settings.REGISTRY_PAGE_DEFAULT = 4
    assert len(tags(client, as_alice).json()["tags"]) == 4
    assert len(tags(client, as_alice, "?n=many").json()["tags"]) == 4
    assert tags(client, as_alice, "?n=0").json()["tags"] == []


def test_deleted_hidden_and_expired_tags_are_not_listed(client, as_alice, alice, repo, tagged):
    services.tag_delete(repository=repo, name="latest", principal=user_principal(alice), ip=None)
    Tag.objects.filter(name="beta").update(expiration=timezone.now() - timedelta(seconds=1))
    by_digest = make_image("by-digest")
    as_alice.push_image("alice/app", by_digest.digest, by_digest)  # leaves a hidden temporary tag
    assert Tag.objects.filter(hidden=True).exists()
    assert tags(client, as_alice).json()["tags"] == sorted(set(TAGS) - {"latest", "beta"})


def test_an_empty_repository_has_an_empty_list(client, as_alice, repo):
    assert tags(client, as_alice).json()["tags"] == []


# ---------------------------------------------------------------------------------------------
# Catalog


@pytest.fixture
def repositories(alice, bob, org):
    """alice: alice/a-private, alice/b-public; bob: bob/private, bob/shared (alice may read);
    acme (alice admin): acme/internal."""
    alice_p, bob_p = user_principal(alice), user_principal(bob)
    public = Repository.Visibility.PUBLIC
    services.repository_create(namespace=alice.namespace, name="a-private", principal=alice_p)
    services.repository_create(namespace=alice.namespace, name="b-public", principal=alice_p, visibility=public)
    services.repository_create(namespace=bob.namespace, name="private", principal=bob_p)
    shared = services.repository_create(namespace=bob.namespace, name="shared", principal=bob_p)
    grant(shared, alice, Role.READ)
    services.repository_create(namespace=org, name="internal", principal=alice_p)


def catalog(client, caller, query=""):
    response = client.get(f"/v2/_catalog{query}", **caller.headers("registry:catalog:*"))
    assert response.status_code == 200, response.content
    return response


def test_the_catalog_needs_a_token(client, repositories):
    response = client.get("/v2/_catalog")
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].endswith(',scope="registry:catalog:*"')


def test_the_catalog_lists_what_the_caller_may_pull(client, as_alice, as_bob, anon, repositories):
    assert catalog(client, as_alice).json()["repositories"] == [
        "acme/internal",
        "alice/a-private",
        "alice/b-public",
        "bob/shared",
    ]
    assert catalog(client, as_bob).json()["repositories"] == ["alice/b-public", "bob/private", "bob/shared"]
    assert catalog(client, anon).json()["repositories"] == ["alice/b-public"]


def test_an_organization_member_sees_only_what_their_teams_may_read(client, v2, charlie, org, repositories):
    team = account_services.team_create(organization=org, name="readers")
    account_services.team_member_add(team=team, user=charlie)
    internal = Repository.objects.get(namespace=org, name="internal")
    assert catalog(client, v2("charlie", "password-123")).json()["repositories"] == ["alice/b-public"]
    RepositoryPermission.objects.create(repository=internal, team=team, role=Role.READ)
    assert catalog(client, v2("charlie", "password-123")).json()["repositories"] == ["acme/internal", "alice/b-public"]


def test_the_catalog_pages_with_n_last_and_link(client, as_alice, repositories):
    response = catalog(client, as_alice, "?n=2")
    assert response.json()["repositories"] == ["acme/internal", "alice/a-private"]
    assert response["Link"] == '</v2/_catalog?n=2&last=alice%2Fa-private>; rel="next"'
    path = response["Link"][1 : response["Link"].index(">")]
    response = client.get(path, **as_alice.headers("registry:catalog:*"))
    assert response.json()["repositories"] == ["alice/b-public", "bob/shared"]
    assert "Link" not in response


def test_the_catalog_page_size_is_capped(client, as_alice, repositories, settings):
    settings.REGISTRY_PAGE_MAX = 3
    response = catalog(client, as_alice, "?n=50")
    assert len(response.json()["repositories"]) == 3
    assert response["Link"].startswith("</v2/_catalog?n=3&")
