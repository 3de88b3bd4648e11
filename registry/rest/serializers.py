"""Input validation and Quay's response shapes for the repository endpoints.

Inputs are DRF serializers (they also document the request bodies in the OpenAPI schema);
outputs are plain dicts built by the ``*_view`` functions, with a documentation-only
serializer beside each so the schema shows Quay's field names.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import formatdate

from rest_framework import serializers

from accounts.models import Namespace, Team, User
from accounts.rest.serializers import avatar
from registry.models import Repository, RepositoryPermission, Role, Tag, UsageLog

VISIBILITIES = [Repository.Visibility.PUBLIC.value, Repository.Visibility.PRIVATE.value]
KINDS = [Repository.Kind.IMAGE.value, Repository.Kind.APPLICATION.value]
ROLES = [Role.READ.value, Role.WRITE.value, Role.ADMIN.value]


def rfc2822(moment: datetime | None) -> str | None:
    """Quay's date format in API responses (``Tue, 02 Jan 2024 10:00:00 -0000``)."""
    return formatdate(moment.timestamp()) if moment is not None else None


def user_avatar(user: User) -> dict:
    return avatar(user.username, user.email, "robot" if user.is_robot else "user")


def namespace_avatar(namespace: Namespace) -> dict:
    return avatar(namespace.name, namespace.email, "org" if namespace.is_organization else "user")


def team_avatar(team: Team) -> dict:
    return avatar(team.name, "", "team")


# ---------------------------------------------------------------------------------------------
# Inputs


class RepositoryCreateInput(serializers.Serializer):
    repository = serializers.CharField(max_length=255, help_text="Repository name (may contain /)")
    visibility = serializers.ChoiceField(choices=VISIBILITIES, help_text="Visibility the repository starts with")
    namespace = serializers.CharField(
        max_length=255, required=False, help_text="Namespace to create it in; the caller's own when omitted"
    )
    description = serializers.CharField(
        allow_blank=True, required=False, default="", max_length=65536, help_text="Markdown description"
    )
    repo_kind = serializers.ChoiceField(
        choices=KINDS, required=False, allow_null=True, default=None, help_text="image (default) or application"
    )


class RepositoryUpdateInput(serializers.Serializer):
    description = serializers.CharField(allow_blank=True, max_length=65536, help_text="Markdown description")


class VisibilityInput(serializers.Serializer):
    visibility = serializers.ChoiceField(choices=VISIBILITIES)


class RoleInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES, help_text="read, write or admin")


class StarInput(serializers.Serializer):
    namespace = serializers.CharField(max_length=255)
    repository = serializers.CharField(max_length=255)


# ---------------------------------------------------------------------------------------------
# Outputs


def repository_state(repository: Repository) -> str:
    return repository.state.upper()


def repository_summary(
    repository: Repository,
    *,
    starred: bool | None = None,
    last_modified: datetime | None | bool = False,
    popularity: int | None | bool = False,
) -> dict:
    """An entry of ``GET /repository``: optional keys appear only when asked for, as in Quay."""
    view = {
        "namespace": repository.namespace.name,
        "name": repository.name,
        "description": repository.description,
        "is_public": repository.is_public,
        "kind": repository.kind,
        "state": repository_state(repository),
        "quota": None,
    }
    if last_modified is not False:
        view["last_modified"] = int(last_modified.timestamp()) if last_modified else None
    if popularity is not False:
        view["popularity"] = float(popularity or 0)
    if starred is not None:
        view["is_starred"] = starred
    return view


def tag_view(tag: Tag) -> dict:
    view = {
        "name": tag.name,
        "size": tag.manifest.layers_size,
        "last_modified": rfc2822(tag.lifetime_start),
        "manifest_digest": tag.manifest.digest,
    }
    if tag.expiration is not None:
        view["expiration"] = rfc2822(tag.expiration)
    return view


def repository_detail(
    repository: Repository, *, role: str, starred: bool, tags: list[Tag] | None, stats: list[dict] | None
) -> dict:
    namespace = repository.namespace
    view = {
        "namespace": namespace.name,
        "name": repository.name,
        "kind": repository.kind,
        "description": repository.description,
        "is_public": repository.is_public,
        "is_organization": namespace.is_organization,
        "is_starred": starred,
        # Quay's badge token; badges are not served here, so there is none to hand out.
        "status_token": "",
        "trust_enabled": False,
        "tag_expiration_s": namespace.time_machine_seconds,
        "is_free_account": True,
        "state": repository_state(repository),
        "can_write": role in (Role.WRITE, Role.ADMIN) and repository.state == Repository.State.NORMAL,
        "can_admin": role == Role.ADMIN,
    }
    if tags is not None:
        view["tags"] = {tag.name: tag_view(tag) for tag in tags}
    if stats is not None:
        view["stats"] = stats
    return view


def user_permission_view(user: User, role: str, *, organization: bool, org_member: bool) -> dict:
    view = {"role": role, "name": user.username, "is_robot": user.is_robot, "avatar": user_avatar(user)}
    if organization:
        view["is_org_member"] = org_member
    return view


def team_permission_view(permission: RepositoryPermission) -> dict:
    return {"role": permission.role, "name": permission.team.name, "avatar": team_avatar(permission.team)}


def log_view(entry: UsageLog) -> dict:
    view = {
        "kind": entry.kind,
        "metadata": entry.metadata,
        "ip": entry.ip,
        "datetime": rfc2822(entry.created),
    }
    if entry.actor is not None:
        view["performer"] = {
            "kind": "user",
            "name": entry.actor.username,
            "is_robot": entry.actor.is_robot,
            "avatar": user_avatar(entry.actor),
        }
    elif entry.actor_name and not entry.actor_name.startswith("$"):
        # The account is gone; its name is all that is left.
        view["performer"] = {
            "kind": "user",
            "name": entry.actor_name,
            "is_robot": "+" in entry.actor_name,
            "avatar": avatar(entry.actor_name, "", "robot" if "+" in entry.actor_name else "user"),
        }
    if entry.namespace is not None:
        view["namespace"] = {
            "kind": "org" if entry.namespace.is_organization else "user",
            "name": entry.namespace.name,
            "avatar": namespace_avatar(entry.namespace),
        }
    return view


# Documentation-only shapes (the OpenAPI schema shows these; views return dicts).


class AvatarDoc(serializers.Serializer):
    name = serializers.CharField()
    hash = serializers.CharField()
    color = serializers.CharField()
    kind = serializers.CharField()


class RepositoryCreatedDoc(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()


class RepositorySummaryDoc(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    is_public = serializers.BooleanField()
    kind = serializers.CharField()
    state = serializers.CharField()
    last_modified = serializers.IntegerField(required=False, allow_null=True)
    popularity = serializers.FloatField(required=False)
    is_starred = serializers.BooleanField(required=False)


class RepositoryListDoc(serializers.Serializer):
    repositories = RepositorySummaryDoc(many=True)
    next_page = serializers.CharField(required=False)


class TagDoc(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField()
    last_modified = serializers.CharField()
    manifest_digest = serializers.CharField()
    expiration = serializers.CharField(required=False)


class RepositoryDetailDoc(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    description = serializers.CharField()
    is_public = serializers.BooleanField()
    is_organization = serializers.BooleanField()
    is_starred = serializers.BooleanField()
    status_token = serializers.CharField()
    trust_enabled = serializers.BooleanField()
    tag_expiration_s = serializers.IntegerField()
    state = serializers.CharField()
    can_write = serializers.BooleanField()
    can_admin = serializers.BooleanField()
    tags = serializers.DictField(child=TagDoc(), required=False)


class SuccessDoc(serializers.Serializer):
    success = serializers.BooleanField()


class StarredDoc(serializers.Serializer):
    namespace = serializers.CharField()
    repository = serializers.CharField()


class UserPermissionDoc(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    name = serializers.CharField()
    is_robot = serializers.BooleanField()
    avatar = AvatarDoc()
    is_org_member = serializers.BooleanField(required=False)


class TeamPermissionDoc(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    name = serializers.CharField()
    avatar = AvatarDoc()


class UserPermissionListDoc(serializers.Serializer):
    permissions = serializers.DictField(child=UserPermissionDoc())


class TeamPermissionListDoc(serializers.Serializer):
    permissions = serializers.DictField(child=TeamPermissionDoc())


class PerformerDoc(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    is_robot = serializers.BooleanField()
    avatar = AvatarDoc()


class LogEntryDoc(serializers.Serializer):
    kind = serializers.CharField()
    metadata = serializers.DictField()
    ip = serializers.CharField(allow_null=True)
    datetime = serializers.CharField()
    performer = PerformerDoc(required=False)


class LogListDoc(serializers.Serializer):
    start_time = serializers.CharField()
    end_time = serializers.CharField()
    logs = LogEntryDoc(many=True)
    next_page = serializers.CharField(required=False)


class AggregatedLogDoc(serializers.Serializer):
    kind = serializers.CharField()
    count = serializers.IntegerField()
    datetime = serializers.CharField()


class AggregatedLogListDoc(serializers.Serializer):
    aggregated = AggregatedLogDoc(many=True)
