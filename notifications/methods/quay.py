"""In-app notification: a notice under the bell of a user, of each member of a team, or of each
admin of the organization that owns the repository (Quay's "Quay Notification")."""

from __future__ import annotations

from accounts.models import Namespace, Team, User
from notifications import selectors
from notifications.methods.base import ConfigError, Context, Method, Outcome, PermanentError
from notifications.models import Method as MethodName
from notifications.models import UserNotification

TARGET_KINDS = ("user", "team", "org")


class QuayNotificationMethod(Method):
    name = MethodName.QUAY_NOTIFICATION

    def clean(self, *, repository, config):
        target = config.get("target")
        if not isinstance(target, dict) or target.get("kind") not in TARGET_KINDS:
            raise ConfigError("Missing target: an object with kind (user, team or org) and name")
        name = target.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("Missing target name")
        kind = target["kind"]
        namespace = repository.namespace
        if kind == "user":
            if not User.objects.filter(username=name, is_robot=False, is_active=True).exists():
                raise ConfigError(f"Unknown user {name}")
        elif kind == "team":
            if not namespace.is_organization or not Team.objects.filter(organization=namespace, name=name).exists():
                raise ConfigError(f"Unknown team {name} in {namespace.name}")
        elif (
            name != namespace.name or not Namespace.objects.filter(name=name, kind=Namespace.Kind.ORGANIZATION).exists()
        ):
            # Only the organization that owns the repository may be told about it.
            raise ConfigError("The organization must be the one that owns the repository")
        return {"target": {"kind": kind, "name": name}}

    def send(self, context: Context) -> Outcome:
        target = context.config["target"]
        users = selectors.target_users(repository=context.repository, kind=target["kind"], name=target["name"])
        if users is None:
            raise PermanentError(f"The {target['kind']} {target['name']} no longer exists")
        organization = context.repository.namespace if target["kind"] == "org" else None
        # One row per user and delivery: a retried delivery adds nobody twice.
        UserNotification.objects.bulk_create(
            [
                UserNotification(
                    user=user,
                    kind=context.event.name,
                    organization=organization,
                    repository=context.repository,
                    delivery_id=context.delivery_id,
                    metadata=context.payload,
                )
                for user in users
            ],
            ignore_conflicts=True,
        )
        return Outcome(response_excerpt=f"{len(users)} recipient(s)")
