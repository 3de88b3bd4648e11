"""Inputs and Quay's answer shapes for the build endpoints.

Inputs are DRF serializers; answers are plain dicts built by the ``*_view`` functions, each with
a documentation-only serializer beside it for the OpenAPI schema.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from accounts.rest.serializers import format_date
from builds.models import Build, Phase
from notifications.rest.serializers import FreeFormField


def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)


REPOSITORY = _path("repository", "The full path: namespace/name")
BUILD_UUID = _path("build_uuid", "The build's uuid")
LIMIT = OpenApiParameter(
    "limit", OpenApiTypes.INT, OpenApiParameter.QUERY, description="The number of builds to return (default 5)"
)
SINCE = OpenApiParameter(
    "since", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Only builds queued since this unix time"
)
START = OpenApiParameter(
    "start", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Index of the first log entry to return"
)


# ---------------------------------------------------------------------------------------------
# Inputs


class FileDropInput(serializers.Serializer):
    mimeType = serializers.CharField(
        max_length=255, allow_blank=True, help_text="Type of the file about to be uploaded"
    )


class BuildRequestInput(serializers.Serializer):
    file_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=64, help_text="The file_id of an upload"
    )
    archive_url = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=2048,
        help_text="An http(s) URL of a Dockerfile or a .tar.gz, .tar or .zip archive",
    )
    subdirectory = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Directory of the archive holding the Dockerfile"
    )
    dockerfile_path = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Path of the Dockerfile in the archive"
    )
    context = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="The build context (default: the Dockerfile's directory)",
    )
    docker_tags = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        allow_null=True,
        help_text='The tags to push (default ["latest"])',
    )
    pull_robot = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="A robot of the namespace to pull base images as"
    )


# ---------------------------------------------------------------------------------------------
# Outputs


def user_view(user) -> dict:
    return {"name": user.username, "kind": "user", "is_robot": user.is_robot}


def _trigger_of(build: Build) -> dict | None:
    """Quay's short trigger view inside a build; only the id once the trigger is deleted."""
    if build.trigger_uuid is None:
        return None
    from triggers.models import BuildTrigger  # triggers' API embeds build views: import late
    from triggers.rest.serializers import trigger_view

    trigger = BuildTrigger.objects.filter(uuid=build.trigger_uuid).first()
    if trigger is None:
        return {"id": str(build.trigger_uuid)}
    return trigger_view(trigger, for_build=True)


def build_view(build: Build, *, can_write: bool) -> dict:
    repository = build.repository
    view = {
        "id": str(build.uuid),
        "phase": build.phase,
        # Quay's ``started`` is when the build was requested.
        "started": format_date(build.created),
        "display_name": build.display_name,
        "status": build.status or {},
        "subdirectory": build.subdirectory,
        "dockerfile_path": build.dockerfile_path,
        "context": build.context,
        "tags": list(build.tags),
        "manual_user": build.started_by.username if build.started_by and build.is_manual else None,
        "is_writer": can_write,
        "trigger": _trigger_of(build),
        "trigger_metadata": build.trigger_metadata or {},
        "resource_key": str(build.package.uuid) if build.package is not None else None,
        "pull_robot": user_view(build.pull_robot) if build.pull_robot is not None else None,
        "repository": {"namespace": repository.namespace.name, "name": repository.name},
        "error": build.error_message or None,
    }
    if can_write and build.archive_url:
        view["archive_url"] = build.archive_url
    return view


class FileDropDoc(serializers.Serializer):
    url = serializers.CharField(help_text="Where to PUT the bytes (same user, session or token)")
    file_id = serializers.CharField(help_text="The file_id to start a build with")


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "is_robot": {"type": "boolean"}},
        "required": ["name", "kind", "is_robot"],
        "description": "The robot whose credentials pull the base images",
    }
)
class PullRobotField(serializers.DictField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "id": {"type": "string"},
            "service": {"type": "string"},
            "is_active": {"type": "boolean"},
            "build_source": {"type": "string", "nullable": True},
            "repository_url": {"type": "string", "nullable": True},
            "config": {"type": "object", "additionalProperties": True},
            "can_invoke": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "disabled_reason": {"type": "string", "nullable": True},
        },
        "required": ["id"],
        "description": "The trigger that started the build",
    }
)
class TriggerRefField(serializers.DictField):
    pass


class BuildRepositoryRefDoc(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()


class BuildDoc(serializers.Serializer):
    id = serializers.CharField()
    phase = serializers.ChoiceField(choices=[phase.value for phase in Phase])
    started = serializers.CharField(help_text="When the build was requested")
    display_name = serializers.CharField(allow_blank=True)
    status = FreeFormField(help_text="What the worker last reported")
    subdirectory = serializers.CharField(allow_blank=True)
    dockerfile_path = serializers.CharField()
    context = serializers.CharField(allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField())
    manual_user = serializers.CharField(allow_null=True)
    is_writer = serializers.BooleanField()
    trigger = TriggerRefField(allow_null=True)
    trigger_metadata = FreeFormField()
    resource_key = serializers.CharField(allow_null=True, help_text="The uploaded package's file_id")
    pull_robot = PullRobotField(allow_null=True)
    repository = BuildRepositoryRefDoc()
    error = serializers.CharField(allow_null=True)
    archive_url = serializers.CharField(required=False, help_text="The URL built from (writers only)")


class BuildListDoc(serializers.Serializer):
    builds = BuildDoc(many=True)


class BuildLogEntryDoc(serializers.Serializer):
    message = serializers.CharField(allow_blank=True)
    type = serializers.ChoiceField(choices=["command", "phase", "error"], required=False)
    data = FreeFormField(required=False)


class BuildLogsDoc(serializers.Serializer):
    start = serializers.IntegerField()
    total = serializers.IntegerField()
    logs = BuildLogEntryDoc(many=True)
