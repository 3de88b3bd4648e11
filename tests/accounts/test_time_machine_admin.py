"""The time machine window in the superuser panel: one of TAG_EXPIRATION_OPTIONS, as through the
API; a window set before the options changed may stay but cannot be chosen anew."""

import pytest
from django.urls import reverse

from accounts import services as account_services
from accounts.models import Namespace


@pytest.fixture
def superuser_client(client, db):
    account_services.user_create(username="root", password="password-123", is_superuser=True)
    assert client.login(username="root", password="password-123")
    return client


def change(client, namespace: Namespace, seconds):
    return client.post(
        reverse("admin:accounts_namespace_change", args=[namespace.pk]),
        {
            "name": namespace.name,
            "kind": namespace.kind,
            "user": namespace.user_id or "",
            "email": namespace.email,
            "time_machine_seconds": seconds,
        },
    )


def test_the_form_offers_the_options_by_name(superuser_client, org):
    body = superuser_client.get(reverse("admin:accounts_namespace_change", args=[org.pk])).content.decode()
    for label in ("0 seconds", "1 day", "1 week", "2 weeks", "4 weeks"):
        assert f">{label}</option>" in body


def test_an_option_is_saved_and_another_value_refused(superuser_client, org):
    assert change(superuser_client, org, 604800).status_code == 302
    org.refresh_from_db()
    assert org.time_machine_seconds == 604800
    response = change(superuser_client, org, 3600)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    org.refresh_from_db()
    assert org.time_machine_seconds == 604800


def test_a_window_from_before_may_stay(superuser_client, org):
    Namespace.objects.filter(pk=org.pk).update(time_machine_seconds=3600)
    body = superuser_client.get(reverse("admin:accounts_namespace_change", args=[org.pk])).content.decode()
    assert "1 hour (no longer an option)" in body
    assert change(superuser_client, org, 3600).status_code == 302
    assert change(superuser_client, org, 7200).status_code == 200
