"""Inputs and Quay's answer shapes for the build trigger endpoints.

The trigger view is Quay's (``id, service, is_active, build_source, repository_url, config,
can_invoke, enabled, disabled_reason`` and ``pull_robot`` for admins). As in Quay, an admin sees
a custom git trigger's credentials in ``config.credentials``: the SSH public key and the webhook
URL with its secret. The private key is never in an answer.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from notifications.rest.serializers import FreeFormField
from triggers import services
from triggers.models import BuildTrigger


def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)


REPOSITORY = _path("repository", "The full path: namespace/name")
TRIGGER_UUID = _path("trigger_uuid", "The UUID of the build trigger")
LIMIT = OpenApiParameter(
    "limit", OpenApiTypes.INT, OpenApiParameter.QUERY, description="The number of builds to return (default 5)"
)


# ---------------------------------------------------------------------------------------------
# Inputs


class TriggerCreateInput(serializers.Serializer):
    service = serializers.ChoiceField(choices=BuildTrigger.Service.values, help_text="The git service")
    config = serializers.DictField(
        required=False, help_text="When given (custom-git), the trigger is activated at once with this config"
    )
    pull_robot = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="A robot of the namespace to pull base images as"
    )


class TriggerUpdateInput(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Whether the build trigger is enabled")


class TriggerActivateInput(serializers.Serializer):
    config = serializers.DictField(
        help_text=(
            "build_source (required: the git URL for custom-git; the repository's full name, such as owner/name, "
            "for github, gitlab and bitbucket), branchtag_regex, context, dockerfile_path, subdir, "
            "tag_templates, default_tag_from_ref, latest_for_default_branch"
        )
    )
    pull_robot = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="The name of the robot that will pull images"
    )


class RefInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["branch", "tag"], help_text="branch or tag")
    name = serializers.CharField(max_length=255, help_text="The branch or tag name")


class RunParametersInput(serializers.Serializer):
    commit_sha = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="(Custom git) the commit SHA to build"
    )
    refs = RefInput(required=False, allow_null=True, help_text="The branch or tag to build")
    branch_name = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="The branch to build (older clients)"
    )

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError(f"unknown run parameter(s): {', '.join(sorted(unknown))}")
        return attrs


# ---------------------------------------------------------------------------------------------
# Outputs


def robot_view(user) -> dict:
    return {"name": user.username, "kind": "user", "is_robot": user.is_robot}


def trigger_view(
    trigger: BuildTrigger, *, can_read: bool = False, can_admin: bool = False, for_build: bool = False
) -> dict:
    """Quay's trigger view; ``for_build`` is the smaller form a build view embeds."""
    can_read = can_read or can_admin
    config = dict(trigger.config) if can_admin else {}
    if can_admin and not for_build:
        credentials = services.credentials_of(trigger)
        if credentials is not None:
            config["credentials"] = [{"name": "SSH Public Key", "value": credentials.public_key}]
            if credentials.webhook_url:
                config["credentials"].append({"name": "Webhook Endpoint URL", "value": credentials.webhook_url})
    view = {
        "id": str(trigger.uuid),
        "service": trigger.service,
        "is_active": trigger.is_active,
        "build_source": trigger.build_source if can_read else None,
        # A custom git server has no web page Quay knows of; a provider's repository has one.
        "repository_url": (trigger.remote.get("html_url") or None) if can_read else None,
        "config": config,
        "can_invoke": can_admin,
        "enabled": trigger.enabled,
        "disabled_reason": trigger.disabled_reason or None,
    }
    if not for_build and can_admin and trigger.pull_robot is not None:
        view["pull_robot"] = robot_view(trigger.pull_robot)
    return view


class RobotRefDoc(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    is_robot = serializers.BooleanField()


class TriggerDoc(serializers.Serializer):
    id = serializers.CharField()
    service = serializers.ChoiceField(choices=BuildTrigger.Service.values)
    is_active = serializers.BooleanField(help_text="Activated: has its key pair and webhook secret")
    build_source = serializers.CharField(allow_null=True, help_text="The git URL cloned")
    repository_url = serializers.CharField(allow_null=True, help_text="The git repository's web page, if known")
    config = FreeFormField(
        help_text="The trigger config; for admins of a custom git trigger also credentials (public key, webhook URL)"
    )
    can_invoke = serializers.BooleanField()
    enabled = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(
        choices=BuildTrigger.DisabledReason.values, allow_null=True, help_text="Why the trigger is disabled"
    )
    pull_robot = RobotRefDoc(required=False, help_text="The robot that pulls base images (admins)")


class TriggerListDoc(serializers.Serializer):
    triggers = TriggerDoc(many=True)


# ---------------------------------------------------------------------------------------------
# GitHub, GitLab and Bitbucket setup

FIELD_NAME = _path("field_name", "refs (branches and tags), branch_name or tag_name")
FORCE = OpenApiParameter(
    "force",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description="Delete even if the deploy key or webhook cannot be removed at the git provider",
)


class SourcesInput(serializers.Serializer):
    namespace = serializers.CharField(max_length=255, help_text="The namespace for which to fetch sources")


class FieldValuesInput(serializers.Serializer):
    config = FreeFormField(required=False, help_text="The trigger config so far (build_source)")


class ConnectInput(serializers.Serializer):
    return_to = serializers.CharField(
        required=False,
        max_length=1024,
        help_text="A path on this site to send the browser to once connected (default: the repository's builds tab)",
    )


class ConnectDoc(serializers.Serializer):
    authorize_url = serializers.CharField(help_text="Send the user's browser here to grant access")
    redirect_uri = serializers.CharField(help_text="Where the provider sends the browser back")


class NamespaceDoc(serializers.Serializer):
    personal = serializers.BooleanField(help_text="The user's own namespace")
    id = serializers.CharField(help_text="What to pass as namespace to .../sources")
    title = serializers.CharField()
    avatar_url = serializers.CharField(allow_null=True)
    url = serializers.CharField()
    score = serializers.IntegerField()


class NamespaceListDoc(serializers.Serializer):
    namespaces = NamespaceDoc(many=True)


class SourceDoc(serializers.Serializer):
    name = serializers.CharField()
    full_name = serializers.CharField(help_text="The build_source to activate with")
    description = serializers.CharField(allow_blank=True)
    last_updated = serializers.IntegerField(help_text="Seconds since the epoch")
    url = serializers.CharField()
    has_admin_permissions = serializers.BooleanField()
    private = serializers.BooleanField()


class SourceListDoc(serializers.Serializer):
    sources = SourceDoc(many=True)


class FieldValuesDoc(serializers.Serializer):
    values = serializers.ListField(
        child=serializers.JSONField(), help_text="refs: {kind, name} objects; branch_name and tag_name: names"
    )


# ---------------------------------------------------------------------------------------------
# Analyze and subdir


class AnalyzeInput(serializers.Serializer):
    config = serializers.DictField(help_text="The trigger config to analyze (the keys of activate's config)")


class AnalyzeRobotDoc(serializers.Serializer):
    name = serializers.CharField(help_text="The robot's full name, namespace+robot")
    kind = serializers.CharField(help_text="Always user")
    is_robot = serializers.BooleanField()
    can_read = serializers.BooleanField(help_text="Whether the robot can already pull the base image")


class AnalyzeDoc(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["publicbase", "requiresrobot", "warning", "error", "notimplemented"],
        help_text="publicbase: no robot needed; requiresrobot: the base image is a private repository here",
    )
    message = serializers.CharField(allow_null=True, help_text="Why, for warning, error and notimplemented")
    namespace = serializers.CharField(allow_null=True, help_text="The base image's namespace (else the trigger's)")
    name = serializers.CharField(allow_null=True, help_text="The base image's repository, when it is in this registry")
    robots = AnalyzeRobotDoc(many=True, help_text="The namespace's robots, for its administrators")
    is_admin = serializers.BooleanField(help_text="Whether the caller administers the trigger's namespace")


class SubdirInput(serializers.Serializer):
    build_source = serializers.CharField(
        required=False, help_text="The repository to list (default: the trigger's own); also accepted inside config"
    )
    config = serializers.DictField(required=False, help_text="A trigger config whose build_source to list")


class SubdirDoc(serializers.Serializer):
    status = serializers.ChoiceField(choices=["success", "error"])
    message = serializers.CharField(required=False, help_text="Why the listing failed (status error)")
    dockerfile_paths = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="The Dockerfiles on the default branch, from /"
    )
    contextMap = serializers.DictField(  # Quay spells this key so
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For each Dockerfile path, the directories that may be its build context",
    )
