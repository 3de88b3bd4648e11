"""Reads of the notifications app: rules, the delivery log, the bell, authorized addresses."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Q, QuerySet

from accounts.models import Namespace, Team, User
from notifications.models import AuthorizedEmail, Delivery, RepositoryNotification, UserNotification
from registry.models import Repository, RepositoryPermission, Role


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Rules


def notifications_listening(*, repository: Repository, event: str) -> list[RepositoryNotification]:
    """The enabled rules of a repository for one event (one indexed query, on every push)."""
    return list(RepositoryNotification.objects.filter(repository=repository, event=event, enabled=True))


def notifications_of(*, repository: Repository) -> QuerySet[RepositoryNotification]:
    return RepositoryNotification.objects.filter(repository=repository).order_by("created", "id")


def notification_by_uuid(*, repository: Repository, notification_uuid) -> RepositoryNotification | None:
    """A rule of this repository (another repository's rule is not found)."""
    value = _uuid(notification_uuid)
    if value is None:
        return None
    return RepositoryNotification.objects.filter(repository=repository, uuid=value).first()


# ---------------------------------------------------------------------------------------------
# Deliveries


def deliveries_of(
    *, notification: RepositoryNotification, page: int, limit: int, with_attempts: bool = False
) -> tuple[list[Delivery], bool]:
    """One page of a rule's delivery log, newest first, and whether more follow; with
    ``with_attempts``, each delivery's attempts come along in one more query (the UI's log)."""
    rows = Delivery.objects.filter(notification=notification).select_related("event").order_by("-created", "-id")
    if with_attempts:
        rows = rows.prefetch_related("attempt_log")
    found = list(rows[page * limit : (page + 1) * limit + 1])
    return found[:limit], len(found) > limit


def delivery_by_uuid(*, notification: RepositoryNotification, delivery_uuid) -> Delivery | None:
    value = _uuid(delivery_uuid)
    if value is None:
        return None
    return (
        Delivery.objects.filter(notification=notification, uuid=value)
        .select_related("event")
        .prefetch_related("attempt_log")
        .first()
    )


def deliveries_due(*, now: datetime, limit: int) -> list[int]:
    """Deliveries to send now: pending and due, or being sent under a lease that has lapsed (the
    worker died). A rule whose endpoint is failing gets
    one delivery at a time (its earliest), so a receiver that is down sees one probe per backoff
    interval instead of every backlogged event at once."""
    due = Q(state=Delivery.State.PENDING, next_attempt_at__lte=now)
    lapsed = Q(state=Delivery.State.SENDING, lease_expires__lt=now)
    open_gate = (
        Q(notification__enabled=True)
        & (Q(notification__retry_after__isnull=True) | Q(notification__retry_after__lte=now))
    ) | Q(is_test=True)
    rows = (
        Delivery.objects.filter(due | lapsed)
        .filter(open_gate)
        .order_by("next_attempt_at", "id")
        .values_list("pk", "notification_id", "notification__number_of_failures", "is_test")[: limit * 4]
    )
    chosen: list[int] = []
    probes: dict[int, int] = {}
    for pk, notification_id, failures, is_test in rows:
        if failures and not is_test:
            # The probe is the earliest event, so a recovered endpoint hears them in order.
            probes[notification_id] = min(pk, probes.get(notification_id, pk))
        else:
            chosen.append(pk)
    return (chosen + sorted(probes.values()))[:limit]


# ---------------------------------------------------------------------------------------------
# People


def organization_admins(*, namespace: Namespace) -> list[User]:
    return list(
        User.objects.filter(
            teams__organization=namespace, teams__role=Team.Role.ADMIN, is_robot=False, is_active=True
        ).distinct()
    )


def repository_admins(*, repository: Repository) -> list[User]:
    """The people who administer a repository: its owner (a user namespace) or the admins of its
    organization, and whoever holds the admin role on it directly or through a team."""
    namespace = repository.namespace
    owners = (
        Q(pk=namespace.user_id) if namespace.user_id else Q(teams__organization=namespace, teams__role=Team.Role.ADMIN)
    )
    granted = RepositoryPermission.objects.filter(repository=repository, role=Role.ADMIN)
    direct = Q(pk__in=granted.filter(user__isnull=False).values("user_id"))
    through_team = Q(teams__in=granted.filter(team__isnull=False).values("team_id"))
    return list(
        User.objects.filter(owners | direct | through_team, is_robot=False, is_active=True).distinct().order_by("id")
    )


def target_users(*, repository: Repository, kind: str, name: str) -> list[User] | None:
    """Who an in-app notification reaches now; None when the target no longer exists."""
    namespace = repository.namespace
    if kind == "user":
        user = User.objects.filter(username=name, is_robot=False, is_active=True).first()
        return [user] if user is not None else None
    if kind == "team":
        team = Team.objects.filter(organization=namespace, name=name).first()
        if team is None:
            return None
        return list(team.members.filter(is_robot=False, is_active=True).order_by("id"))
    if kind == "org":
        if namespace.name != name or not namespace.is_organization:
            return None
        return organization_admins(namespace=namespace)
    return None


# ---------------------------------------------------------------------------------------------
# Authorized e-mail addresses


def authorized_email(*, repository: Repository, email: str) -> AuthorizedEmail | None:
    return AuthorizedEmail.objects.filter(repository=repository, email=email.strip().lower()).first()


def email_is_authorized(*, repository: Repository, email: str) -> bool:
    return AuthorizedEmail.objects.filter(repository=repository, email=email.strip().lower(), confirmed=True).exists()


def authorized_email_by_code_hash(*, code_hash: str) -> AuthorizedEmail | None:
    return AuthorizedEmail.objects.filter(code_hash=code_hash).select_related("repository__namespace").first()


# ---------------------------------------------------------------------------------------------
# The bell


def user_notifications(
    *, user: User, page: int, limit: int, include_dismissed: bool = False
) -> tuple[list[UserNotification], bool]:
    """One page of a user's notices, newest first, and whether more follow."""
    rows = UserNotification.objects.filter(user=user).select_related("organization")
    if not include_dismissed:
        rows = rows.filter(dismissed=False)
    found = list(rows.order_by("-created", "-id")[page * limit : (page + 1) * limit + 1])
    return found[:limit], len(found) > limit


def user_notification_unread_count(*, user: User) -> int:
    return UserNotification.objects.filter(user=user, dismissed=False).count()


def user_notification_by_uuid(*, user: User, notification_uuid) -> UserNotification | None:
    """One of the user's notices (another user's is not found)."""
    value = _uuid(notification_uuid)
    if value is None:
        return None
    return UserNotification.objects.filter(user=user, uuid=value).select_related("organization").first()
