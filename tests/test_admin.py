"""The superuser panel: every model has a working change list with search and filters."""

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts import services as account_services


@pytest.fixture
def superuser_client(client, db):
    account_services.user_create(username="root", password="password-123", is_superuser=True)
    assert client.login(username="root", password="password-123")
    return client


@pytest.mark.parametrize(
    "model",
    [m for m in admin.site._registry if m._meta.app_label in ("accounts", "registry")],
    ids=lambda m: m._meta.label,
)
def test_it_lists_searches_and_filters_every_model(superuser_client, alice, model):
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    response = superuser_client.get(url)
    assert response.status_code == 200
    model_admin = admin.site._registry[model]
    assert model_admin.list_display != ("__str__",), "each model names its list columns"
    if model_admin.search_fields:
        assert superuser_client.get(url, {"q": "alice"}).status_code == 200


def test_it_refuses_the_panel_to_ordinary_users(client, alice):
    assert client.login(username="alice", password="password-123")
    response = client.get(reverse("admin:registry_repository_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_never_shows_robot_token_ciphertext(superuser_client, alice_robot):
    robot_user, token = alice_robot
    url = reverse("admin:accounts_robot_change", args=[robot_user.robot.pk])
    body = superuser_client.get(url).content.decode()
    assert robot_user.robot.token_encrypted not in body
    assert token not in body


def test_it_gives_a_user_added_in_the_panel_a_namespace(superuser_client):
    from accounts.models import Namespace

    response = superuser_client.post(
        reverse("admin:accounts_user_add"),
        {"username": "dave", "password1": "a-long-password-1", "password2": "a-long-password-1",
         "usable_password": "true"},
    )
    assert response.status_code == 302, response.content[:2000]
    namespace = Namespace.objects.get(name="dave")
    assert namespace.kind == Namespace.Kind.USER
    assert namespace.user.username == "dave"


def test_it_queues_a_garbage_collection_pass_from_the_runs_list(superuser_client, alice, monkeypatch):
    from quay_site.celery import app
    from registry.models import GarbageCollectionRun

    url = reverse("admin:registry_garbagecollectionrun_changelist")
    page = superuser_client.get(url).content.decode()
    assert reverse("admin:registry_garbagecollectionrun_run") in page and "csrfmiddlewaretoken" in page
    assert superuser_client.get(reverse("admin:registry_garbagecollectionrun_run")).status_code == 405
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    response = superuser_client.post(reverse("admin:registry_garbagecollectionrun_run"), follow=True)
    assert "Garbage collection queued" in response.content.decode()
    run = GarbageCollectionRun.objects.get()
    assert run.trigger == GarbageCollectionRun.Trigger.ADMIN and run.finished is not None and not run.error


def test_it_collects_garbage_in_selected_repositories(superuser_client, alice):
    from datetime import timedelta

    from django.utils import timezone

    from registry import services
    from registry.models import GarbageCollectionRun, Manifest, Repository, Tag
    from tests.registry.conftest import make_image, store_image, user_principal

    repository = services.repository_create(
        namespace=alice.namespace, name="app", principal=user_principal(alice), visibility="private"
    )
    store_image(repository, "latest", make_image("old"), user_principal(alice))
    store_image(repository, "latest", make_image("new"), user_principal(alice))
    # The first image's tag ended long ago, past the grace period and the time machine.
    long_ago = timezone.now() - timedelta(days=60)
    Tag.objects.filter(lifetime_end__isnull=False).update(lifetime_start=long_ago, lifetime_end=long_ago)
    Manifest.objects.update(created=long_ago)
    response = superuser_client.post(
        reverse("admin:registry_repository_changelist"),
        {"action": "collect_garbage", "_selected_action": [repository.pk]},
        follow=True,
    )
    assert "Removed 1 manifest(s)" in response.content.decode()
    assert Manifest.objects.filter(repository=repository).count() == 1
    run = GarbageCollectionRun.objects.get()
    assert run.trigger == GarbageCollectionRun.Trigger.ADMIN and run.repository == Repository.objects.get()
