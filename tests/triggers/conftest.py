"""Build trigger fixtures: builds switched on, the REST cast of tests/registry_rest, a custom git
trigger on ``acme/app`` with its webhook secret, and a helper that POSTs a push to the webhook."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.conftest import basic
from tests.registry_rest.conftest import World, as_principal, world  # noqa: F401  (fixture)
from triggers import services

GIT_URL = "git@git.example.com:acme/app.git"
SHA = "1c002dd4b536e7479fe34593e72e6c6c1819e53b"


@pytest.fixture(autouse=True)
def _builds_on(settings):
    settings.FEATURE_BUILD_SUPPORT = True
    settings.SERVER_HOSTNAME = "quay.example.com"
    settings.PREFERRED_URL_SCHEME = "https"


def push_payload(**overrides) -> dict:
    payload = {
        "commit": SHA,
        "ref": "refs/heads/main",
        "default_branch": "main",
        "commit_info": {
            "url": "https://git.example.com/acme/app/commit/" + SHA,
            "message": "Add the health check",
            "date": "2026-11-30T10:00:00+00:00",
            "author": {"username": "alice", "url": "https://git.example.com/alice", "avatar_url": "https://a/x.png"},
            "committer": {"username": "bob", "url": "https://git.example.com/bob", "avatar_url": "https://a/y.png"},
        },
    }
    payload.update(overrides)
    return payload


class Hook:
    """POSTs to one trigger's webhook the way a git server's hook would."""

    def __init__(self, trigger, secret: str):
        self.trigger = trigger
        self.secret = secret
        self.client = Client()

    @property
    def path(self) -> str:
        return f"/webhooks/push/trigger/{self.trigger.uuid}"

    def post(
        self,
        payload=None,
        *,
        secret: str | None = "",
        raw: bytes | None = None,
        content_type="application/json",
        path: str | None = None,
        **headers,
    ):
        secret = self.secret if secret == "" else secret
        if secret is not None and "HTTP_AUTHORIZATION" not in headers and "HTTP_X_TRIGGER_TOKEN" not in headers:
            headers["HTTP_AUTHORIZATION"] = basic("$token", secret)
        body = raw if raw is not None else json.dumps(payload if payload is not None else push_payload())
        return self.client.post(path or self.path, data=body, content_type=content_type, **headers)


@pytest.fixture
def custom_git(world):  # noqa: F811
    """A custom git trigger on acme/app (no pull robot) and its webhook secret."""
    return services.trigger_create_custom_git(
        repository=world.app, principal=as_principal(world.alice), build_source=GIT_URL
    )


@pytest.fixture
def hook(custom_git) -> Hook:
    trigger, secret = custom_git
    return Hook(trigger, secret)


def make_trigger(world: World, **config) -> Hook:  # noqa: F811
    build_source = config.pop("build_source", GIT_URL)
    pull_robot = config.pop("pull_robot", None)
    trigger, secret = services.trigger_create_custom_git(
        repository=world.app,
        principal=as_principal(world.alice),
        build_source=build_source,
        pull_robot=pull_robot,
        config=config,
    )
    return Hook(trigger, secret)
