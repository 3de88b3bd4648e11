"""Fixtures and helpers shared by the build manager's tests (test_manager, test_consumers)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from accounts.models import User
from builds import services as build_services
from builds.models import Build
from notifications import services as notification_services
from registry import services as registry_services
from registry.models import Repository
from registry.permissions import Principal

SECRET = "registration-secret-for-tests"
DOCKERFILE = b"FROM scratch\nCOPY . /\n"


@dataclass
class World:
    alice: User
    repository: Repository

    def principal(self) -> Principal:
        return Principal(kind="user", user=self.alice)

    def build(self, *, tags=("latest",), **kwargs) -> Build:
        """Queue a real build through the build service, from an uploaded Dockerfile."""
        package = build_services.package_create(owner=self.alice, mime_type="text/plain")
        package = build_services.package_upload(package=package, stream=io.BytesIO(DOCKERFILE), length=len(DOCKERFILE))
        return build_services.build_create(
            repository=self.repository, principal=self.principal(), package=package, tags=list(tags), **kwargs
        )

    def listen(self, *events: str) -> None:
        """Rules for ``events`` on the repository, so that emitted events are recorded."""
        for event in events:
            notification_services.notification_create(
                repository=self.repository,
                event=event,
                method="quay_notification",
                config={"target": {"kind": "user", "name": self.alice.username}},
                event_config={},
                title=event,
                principal=self.principal(),
                ip=None,
            )


@pytest.fixture
def builds_on(settings, tmp_path):
    settings.FEATURE_BUILD_SUPPORT = True
    settings.BUILDER_REGISTRATION_SECRET = SECRET
    settings.BUILD_PACKAGE_DIR = tmp_path / "build-packages"
    settings.BUILD_MAX_ATTEMPTS = 3
    settings.BUILD_HEARTBEAT_TIMEOUT_SECONDS = 60.0
    return settings


@pytest.fixture
def world(alice, builds_on) -> World:
    repository = registry_services.repository_create(
        namespace=alice.namespace, name="app", principal=Principal(kind="user", user=alice)
    )
    return World(alice=alice, repository=repository)


@pytest.fixture
def eager_celery():
    """Tasks queued after a commit (the dispatcher) run inline, as the Celery worker would."""
    from quay_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous
