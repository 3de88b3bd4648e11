"""The + menu's New Repository: image or application, namespace choice, and every error kept
next to what the user typed."""

import re

import pytest
from django.test import Client

from registry.models import Repository, RepositoryPermission, UsageLog
from tests.ui.conftest import make_repository, text


def create(client, **fields):
    data = {"kind": "image", "namespace": "alice", "name": "web", "visibility": "private", "description": ""}
    data.update(fields)
    return client.post("/new/repository", data)


def test_the_plus_menu_is_on_every_page_for_signed_in_users(as_alice, public_repo):
    for url in ("/", f"/repository/{public_repo.full_name}", "/user/settings", "/organizations"):
        body = as_alice.get(url).content.decode()
        assert 'aria-label="Create new"' in body, url
        assert 'href="/new/repository"' in body and 'href="/new/organization"' in body


def test_anonymous_visitors_are_sent_to_sign_in(anonymous):
    response = anonymous.get("/new/repository")
    assert response.status_code == 302 and response["Location"].startswith("/signin?next=")


def test_the_form_offers_the_users_namespace_and_organizations_where_they_create(as_alice, org, as_bob, bob):
    body = as_alice.get("/new/repository").content.decode()
    assert '<option value="alice" selected>' in body
    assert '<option value="acme">acme (organization)</option>' in body
    assert "Container Image Repository" in body and "Application Repository" in body
    assert '<option value="acme"' not in as_bob.get("/new/repository").content.decode()


@pytest.mark.parametrize("kind", ["image", "application"])
def test_it_creates_an_empty_repository(as_alice, alice, kind):
    response = create(as_alice, kind=kind, name="web/frontend", visibility="public", description="# Web")
    assert response.status_code == 302
    assert response["Location"] == "/repository/alice/web/frontend"
    repository = Repository.objects.get(namespace__name="alice", name="web/frontend")
    assert (repository.kind, repository.visibility, repository.description) == (kind, "public", "# Web")
    assert not repository.tags.exists()
    assert UsageLog.objects.filter(kind="create_repo", repository=repository, actor=alice).exists()
    page = as_alice.get(response["Location"])
    assert "Created the repository alice/web/frontend." in text(page)


def test_it_creates_in_an_organization_for_a_team_creator(as_bob, bob, org, creators_team, alice):
    from accounts import services as account_services

    account_services.team_member_add(team=creators_team, user=bob)
    response = create(as_bob, namespace="acme", name="service")
    assert response.status_code == 302
    repository = Repository.objects.get(namespace__name="acme", name="service")
    # The creator administers what they created.
    assert RepositoryPermission.objects.get(repository=repository, user=bob).role == "admin"


def test_a_bad_name_is_explained_and_the_input_kept(as_alice):
    response = create(as_alice, name="Not Valid!", description="kept text")
    assert response.status_code == 400
    assert "is not a valid repository name" in text(response)
    body = response.content.decode()
    assert 'value="Not Valid!"' in body and "kept text" in body
    assert not Repository.objects.exists()


def test_a_taken_name_is_explained(as_alice, alice, private_repo):
    response = create(as_alice, name="secret")
    assert response.status_code == 400
    assert "The repository alice/secret already exists." in text(response)


def test_no_permission_in_a_namespace_is_explained(as_bob, alice, org):
    for namespace in ("alice", "acme"):
        response = create(as_bob, namespace=namespace, name="sneaky")
        assert response.status_code == 400
        assert f"You do not have permission to create repositories in the namespace “{namespace}”." in text(response)
    assert not Repository.objects.filter(name="sneaky").exists()


def test_creating_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        "/new/repository", {"kind": "image", "namespace": "alice", "name": "x", "visibility": "private"}
    )
    assert response.status_code == 403
    assert "Form expired" in text(response)
    assert not Repository.objects.exists()
    page = client.get("/new/repository")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post(
        "/new/repository",
        {"kind": "image", "namespace": "alice", "name": "x", "visibility": "private", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302


def test_a_repository_made_by_the_form_is_reachable_from_the_list(as_alice, alice):
    make_repository(alice.namespace, "existing", alice)
    create(as_alice, name="fresh")
    assert "alice/fresh" in text(as_alice.get("/"))
