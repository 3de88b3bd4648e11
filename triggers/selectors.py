"""Reads about build triggers."""

from __future__ import annotations

import uuid as uuid_module

from accounts import crypto
from accounts import selectors as account_selectors
from accounts.models import Namespace, Team, User
from builds.models import Build
from registry.models import Repository
from triggers.models import BuildTrigger, ProviderApp


def _as_uuid(value) -> uuid_module.UUID | None:
    if isinstance(value, uuid_module.UUID):
        return value
    try:
        return uuid_module.UUID(str(value))
    except (TypeError, ValueError):
        return None


def trigger_by_uuid(*, trigger_uuid, repository: Repository | None = None) -> BuildTrigger | None:
    """The trigger with this uuid (in ``repository`` when given), or None; a malformed uuid is None."""
    key = _as_uuid(trigger_uuid)
    if key is None:
        return None
    rows = BuildTrigger.objects.select_related("repository__namespace", "pull_robot", "connected_user")
    if repository is not None:
        rows = rows.filter(repository=repository)
    return rows.filter(uuid=key).first()


def triggers_of(*, repository: Repository):
    return (
        BuildTrigger.objects.filter(repository=repository)
        .select_related("pull_robot", "connected_user")
        .order_by("created", "pk")
    )


def trigger_private_key(trigger_uuid) -> str | None:
    """The decrypted SSH private key of a trigger, for the build manager's job only; None when the
    trigger is gone or has no key. Never put it in an API answer, a log or an event."""
    key = _as_uuid(trigger_uuid)
    if key is None:
        return None
    encrypted = BuildTrigger.objects.filter(uuid=key).values_list("private_key_encrypted", flat=True).first()
    return crypto.decrypt(encrypted) if encrypted else None


def trigger_webhook_secret(*, trigger: BuildTrigger) -> str | None:
    """The webhook secret, decrypted, for View Credentials (admins only)."""
    return crypto.decrypt(trigger.webhook_secret_encrypted) if trigger.webhook_secret_encrypted else None


def trigger_builds(*, trigger: BuildTrigger, limit: int):
    """The builds a trigger started, newest first."""
    return (
        Build.objects.filter(repository_id=trigger.repository_id, trigger_uuid=trigger.uuid)
        .select_related("repository__namespace", "pull_robot", "started_by")
        .order_by("-created", "-pk")[:limit]
    )


def trigger_service_of(trigger_uuid) -> str | None:
    """The service (``custom-git``, ``github`` ...) of a trigger: the ``trigger_kind`` of build
    events. None when the trigger is gone."""
    key = _as_uuid(trigger_uuid)
    if key is None:
        return None
    return BuildTrigger.objects.filter(uuid=key).values_list("service", flat=True).first()


def administers_namespace(*, user: User, namespace: Namespace) -> bool:
    if user.is_superuser or namespace.user_id == user.pk:
        return True
    if namespace.kind != Namespace.Kind.ORGANIZATION:
        return False
    return Team.Role.ADMIN in account_selectors.organization_roles(user=user, organization=namespace)


def enabled_providers() -> list[str]:
    """The git providers (``github``, ``gitlab``, ``bitbucket``) whose OAuth application is set up
    and switched on: the trigger kinds a user may create besides custom git."""
    rows = ProviderApp.objects.filter(enabled=True).exclude(client_id="").exclude(client_secret_encrypted="")
    return sorted(rows.values_list("service", flat=True))
