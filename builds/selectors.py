"""Reads about builds: the effective settings, a repository's builds, a build's log."""

from __future__ import annotations

import hmac
import logging
import uuid as uuid_module
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db.models import QuerySet

from accounts import crypto
from builds import packages
from builds.models import FINAL_PHASES, Build, BuildPackage, BuildSettings
from registry.models import Repository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EffectiveBuildSettings:
    """What is in force: the environment's values where set, else the superuser's."""

    enabled: bool
    enabled_from_environment: bool
    registration_secret: str = field(repr=False)
    secret_from_environment: bool
    max_queued_per_namespace: int


def stored_build_settings() -> BuildSettings:
    """The superuser's row (an unsaved default one before anything was saved)."""
    return BuildSettings.objects.filter(pk=1).first() or BuildSettings(pk=1)


def build_settings() -> EffectiveBuildSettings:
    row = stored_build_settings()
    env_enabled = settings.FEATURE_BUILD_SUPPORT
    env_secret = settings.BUILDER_REGISTRATION_SECRET
    secret = env_secret
    if not secret and row.registration_secret_encrypted:
        try:
            secret = crypto.decrypt(row.registration_secret_encrypted)
        except InvalidToken:
            # Encrypted under another key (SECRET_KEY changed): no worker can register until the
            # superuser sets the secret again, which is what the log line says.
            log.warning("The stored build worker registration secret cannot be decrypted; set it again")
            secret = ""
    return EffectiveBuildSettings(
        enabled=bool(env_enabled) if env_enabled is not None else row.enabled,
        enabled_from_environment=env_enabled is not None,
        registration_secret=secret,
        secret_from_environment=bool(env_secret),
        max_queued_per_namespace=row.max_queued_per_namespace,
    )


def builds_enabled() -> bool:
    return build_settings().enabled


def registration_secret_matches(secret: str) -> bool:
    """Whether a worker's secret is the registration secret (never true while none is set)."""
    expected = build_settings().registration_secret
    if not expected or not isinstance(secret, str):
        return False
    return hmac.compare_digest(secret.encode(), expected.encode())


def queued_count(*, namespace_id: int) -> int:
    """Builds of a namespace that are not finished (waiting or running): what the limit counts."""
    return Build.objects.filter(namespace_id_cached=namespace_id).exclude(phase__in=FINAL_PHASES).count()


def builds_for_repository(
    *, repository: Repository, limit: int | None = None, since: datetime | None = None
) -> QuerySet[Build]:
    """The repository's builds, newest first."""
    rows = (
        Build.objects.filter(repository=repository)
        .select_related("repository__namespace", "pull_robot", "started_by", "package")
        .order_by("-created", "-id")
    )
    if since is not None:
        rows = rows.filter(created__gte=since)
    return rows[:limit] if limit is not None else rows


def _parse_uuid(value) -> uuid_module.UUID | None:
    try:
        return uuid_module.UUID(str(value))
    except ValueError:
        return None


def build_by_uuid(*, repository: Repository, build_uuid) -> Build | None:
    """The build with this uuid in this repository (None for another repository's build)."""
    parsed = _parse_uuid(build_uuid)
    if parsed is None:
        return None
    return (
        Build.objects.select_related("repository__namespace", "pull_robot", "started_by", "package")
        .filter(repository=repository, uuid=parsed)
        .first()
    )


def build_by_uuid_any(*, build_uuid) -> Build | None:
    """A build by uuid alone, for callers that check access themselves (the package download)."""
    parsed = _parse_uuid(build_uuid)
    if parsed is None:
        return None
    return Build.objects.select_related("package", "repository__namespace").filter(uuid=parsed).first()


def package_for_upload(*, package_uuid, user) -> BuildPackage | None:
    """A filedrop package of ``user`` (another user's is as good as missing)."""
    parsed = _parse_uuid(package_uuid)
    if parsed is None or user is None or not user.is_authenticated:
        return None
    return BuildPackage.objects.filter(uuid=parsed, owner=user).first()


def build_logs(*, build: Build, start: int = 0) -> tuple[list[dict], int]:
    """The build's log entries from index ``start`` and the total count. Entries are
    ``{message, type?, data?}``; the log is read from the database while the build runs and
    from its archive once it was archived."""
    start = max(0, int(start))
    if not build.logs_archived:
        rows = build.log_entries.order_by("seq")
        total = rows.count()
        # By position, not by seq value, and no further than ``total``: entries that arrive
        # between the two queries are left for the next call, whose ``start`` is this total.
        entries = [packages.log_entry_view(entry) for entry in rows[start:total]] if start < total else []
        if len(entries) == max(total - start, 0) and (total or not _archived_since(build)):
            return entries, total
        # The build ended and its rows moved to storage between our reads: read the archive.
    entries = packages.read_archived_logs(build)
    return entries[start:], len(entries)


def _archived_since(build: Build) -> bool:
    return Build.objects.filter(pk=build.pk, logs_archived=True).exists()
