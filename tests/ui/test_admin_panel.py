"""The superuser panel as the UI's admin area: branding, the link from the header, actions that
go through the services (disable users, change visibility) and the sign-up switch."""

import pytest
from django.test import Client

from accounts import services as account_services
from registry.models import Repository, UsageLog
from tests.conftest import PASSWORD
from tests.ui.conftest import text
from ui.models import SiteConfiguration


@pytest.fixture
def root(db):
    return account_services.user_create(username="root", password=PASSWORD, is_superuser=True)


@pytest.fixture
def as_root(root):
    client = Client()
    client.force_login(root)
    return client


def test_the_panel_is_branded_and_linked_for_superusers_only(as_root, as_alice):
    assert "Registry superuser panel" in text(as_root.get("/admin/"))
    assert 'href="/admin/"' in as_root.get("/").content.decode()
    assert 'href="/admin/"' not in as_alice.get("/").content.decode()
    assert as_alice.get("/admin/").status_code == 302


def test_it_disables_and_enables_users_but_not_oneself(as_root, root, alice):
    response = as_root.post(
        "/admin/accounts/user/", {"action": "disable_users", "_selected_action": [alice.pk, root.pk]}, follow=True
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    root.refresh_from_db()
    assert not alice.is_active and root.is_active
    assert "Superusers cannot disable or demote themselves" in text(response)
    assert Client().post("/signin", {"username": "alice", "password": PASSWORD}).status_code == 400
    assert UsageLog.objects.filter(kind="user_disable", actor=root).exists()
    as_root.post("/admin/accounts/user/", {"action": "enable_users", "_selected_action": [alice.pk]})
    alice.refresh_from_db()
    assert alice.is_active


def test_it_changes_the_visibility_of_repositories(as_root, root, private_repo, public_repo):
    as_root.post(
        "/admin/registry/repository/",
        {"action": "make_public", "_selected_action": [private_repo.pk, public_repo.pk]},
    )
    assert set(Repository.objects.values_list("visibility", flat=True)) == {"public"}
    assert UsageLog.objects.filter(kind="change_repo_visibility", actor=root, repository=private_repo).count() == 1
    as_root.post("/admin/registry/repository/", {"action": "make_private", "_selected_action": [public_repo.pk]})
    public_repo.refresh_from_db()
    assert public_repo.visibility == "private"


def test_the_site_configuration_holds_the_sign_up_switch(as_root, root):
    response = as_root.get("/admin/ui/siteconfiguration/")
    assert response.status_code == 302
    change_url = response["Location"]
    page = as_root.get(change_url)
    assert page.status_code == 200 and "user_creation_enabled" in page.content.decode()
    response = as_root.post(change_url, {})  # the checkbox unticked
    assert response.status_code == 302
    config = SiteConfiguration.objects.get()
    assert not config.user_creation_enabled and config.updated_by == root
    assert Client().get("/signup").status_code == 403
    assert as_root.get("/admin/ui/siteconfiguration/add/").status_code == 403
