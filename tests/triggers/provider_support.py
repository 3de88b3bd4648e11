"""The GitHub/GitLab/Bitbucket trigger setup as a repository admin does it, over real HTTP: the
REST API (/api/v1/repository/acme/app/trigger/...), the provider's authorize page (a local fake
provider), the OAuth callback in a signed-in browser session, and the provider's deliveries."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from accounts import crypto
from builds.models import Build
from tests.triggers.fake_providers import FakeProvider
from triggers import services
from triggers.models import BuildTrigger

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
BASE = "repository/acme/app/trigger"


def start_fake(settings, cls: type[FakeProvider]) -> FakeProvider:
    """A fake provider on 127.0.0.1, entered as the provider's OAuth application (web URL only:
    the API URL is derived as for GitHub Enterprise / self-hosted GitLab)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    fake = cls()
    services.provider_app_set(
        service=cls.service,
        enabled=True,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        web_url=fake.url,
    )
    fake.callback_url = services.oauth_redirect_uri(cls.service)
    return fake


def fake_fixture(cls: type[FakeProvider]):
    @pytest.fixture
    def fixture(settings, world):
        fake = start_fake(settings, cls)
        yield fake
        fake.stop()

    return fixture


class Setup:
    """One repository admin (alice) setting up a provider trigger on acme/app."""

    def __init__(self, world, fake: FakeProvider):
        self.world = world
        self.fake = fake
        self.admin = world.api("admin")
        self.browser = Client()
        self.browser.force_login(world.alice)
        self.hooks = Client()  # the provider's side: no session, no token

    def create(self) -> str:
        response = self.admin.post(f"{BASE}/", {"service": self.fake.service})
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["is_active"] is False
        return body["id"]

    def connect_url(self, trigger_id: str) -> str:
        response = self.admin.post(f"{BASE}/{trigger_id}/connect")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["redirect_uri"] == f"https://quay.example.com/oauth2/{self.fake.service}/callback"
        return body["authorize_url"]

    def callback(self, location: str, browser: Client | None = None):
        """Follow the provider's redirect back to the registry, in the browser."""
        parts = urlsplit(location)
        assert parts.netloc == "quay.example.com"
        assert parts.path == f"/oauth2/{self.fake.service}/callback"
        return (browser or self.browser).get(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})

    def connect(self, trigger_id: str):
        location = self.fake.consent(self.connect_url(trigger_id))
        return self.callback(location)

    def activate(self, trigger_id: str, source: str, **config):
        return self.admin.post(f"{BASE}/{trigger_id}/activate", {"config": {"build_source": source, **config}})

    def ready(self, source: str, **config) -> BuildTrigger:
        """Create, connect and activate a trigger on ``source``."""
        trigger_id = self.create()
        response = self.connect(trigger_id)
        assert response.status_code == 302, response.content
        response = self.activate(trigger_id, source, **config)
        assert response.status_code == 200, response.content
        return BuildTrigger.objects.get(uuid=trigger_id)


def stored_token(trigger_id) -> str:
    trigger = BuildTrigger.objects.get(uuid=trigger_id)
    return crypto.decrypt(trigger.auth_token_encrypted)


def webhook_secret(trigger: BuildTrigger) -> str:
    trigger.refresh_from_db()
    return crypto.decrypt(trigger.webhook_secret_encrypted)


def builds_of(trigger: BuildTrigger) -> list[Build]:
    return list(Build.objects.filter(trigger_uuid=trigger.uuid).order_by("created", "pk"))
